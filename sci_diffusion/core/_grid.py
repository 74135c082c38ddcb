"""What a sampler call derives from its time grid alone, computed once and shared.

A policy plans every chunk on the same grid (``time_grid(10)``), so everything that depends
only on the grid and the schedule — the validity checks, ``(alpha, sigma)`` at every time,
each sampler's step coefficients, the per-step time views — is the same from call to call.
:func:`grid_entry` keeps it in a small LRU cache keyed by the grid's exact bytes (CPU grids of
shape (N+1,) only: reading the values of a device tensor would synchronise, so those get a
fresh, unshared entry), and the sampler memoizes its derived tensors on the entry
(:meth:`GridEntry.memo`). Values are computed by the same operations as before, so sharing
changes no result.

The shared tensors are private: copies of the caller's grid, built outside inference mode and
without autograd (usable later with gradients enabled, e.g. by guidance). If anything writes
into one (a network modifying its ``t`` in place), the entry is found altered at its next use
and rebuilt.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

import torch
from torch import Tensor

from ._checks import check_times
from .schedules import SCHEDULES, Schedule

T = TypeVar("T")

CACHE_SIZE = 64
"""Grids kept (least recently used dropped first)."""
MAX_POINTS = 4097
"""Longer grids are not shared (their key would cost more than it saves)."""


class GridEntry:
    """One grid and what samplers derived from it.

    Attributes:
        times: the grid, shape (N+1, ...) (a private copy when shared).
        steps: its times as views, ``steps[i] = times[i]`` (one ``unbind``, not N indexings).
        shared: whether the entry lives in the cache (its memo outlives the call).
        validated: whether :func:`validate_times` passed on it.
    """

    __slots__ = ("_guards", "_memo", "shared", "steps", "times", "validated")

    def __init__(self, times: Tensor, shared: bool) -> None:
        self.times = times
        self.steps = times.unbind(0)
        self.shared = shared
        self.validated = False
        self._memo: dict[Hashable, Any] = {}
        self._guards: list[tuple[Tensor, int]] = []
        if shared:
            self._guard(times)

    def _guard(self, value: Any) -> None:
        """Remember the version counter of every tensor (its base) inside ``value``."""
        if isinstance(value, Tensor):
            base = value._base if value._base is not None else value
            if all(base is not known for known, _ in self._guards):
                self._guards.append((base, base._version))
        elif isinstance(value, (tuple, list)):
            for item in value:
                self._guard(item)
        elif isinstance(value, dict):
            for item in value.values():
                self._guard(item)

    def intact(self) -> bool:
        """No shared tensor has been written to since it was built."""
        return all(tensor._version == version for tensor, version in self._guards)

    def memo(self, key: Hashable, build: Callable[[], T]) -> T:
        """``build()`` once per ``key`` for this grid. ``key`` must name everything the value
        depends on besides the grid (schedule, dtype, layout). Shared values are built
        outside inference mode and without autograd."""
        try:
            return self._memo[key]  # type: ignore[no-any-return]
        except KeyError:
            pass
        if self.shared:
            with torch.inference_mode(False), torch.no_grad():
                value = build()
            self._guard(value)
        else:
            value = build()
        self._memo[key] = value
        return value


def schedule_key(schedule: Schedule) -> Hashable | None:
    """What determines a built-in schedule's values (its class and constructor arguments),
    or ``None`` for any other schedule (a subclass may compute from state of its own)."""
    if type(schedule) not in _BUILT_IN:
        return None
    try:
        key = (type(schedule), tuple(sorted(vars(schedule).items())))
        hash(key)
    except TypeError:
        return None
    return key


_BUILT_IN = frozenset(SCHEDULES.values())


def validate_times(times: Tensor) -> None:
    """The one-time grid checks: float, in [0, 1], non-increasing (they read values: on a
    device they synchronise once, before the loop)."""
    check_times(times, "times")
    if bool((times[1:] > times[:-1]).any()):
        raise ValueError("times must be non-increasing (from noise at times[0] to data)")


_cache: OrderedDict[Hashable, GridEntry] = OrderedDict()
_lock = threading.Lock()


def _key(times: Tensor) -> Hashable | None:
    """The grid's exact bytes (``-0.0`` and ``0.0`` differ), or ``None`` if not shareable."""
    if (
        times.device.type != "cpu"
        or times.ndim != 1
        or times.requires_grad
        or times.numel() > MAX_POINTS
        or not torch.is_floating_point(times)
    ):
        return None
    try:
        raw = times.numpy().tobytes()
    except (TypeError, RuntimeError):  # bfloat16 has no numpy dtype
        return None
    return times.dtype, raw


def grid_entry(times: Tensor, check: bool) -> GridEntry:
    """The entry of ``times`` (shared for CPU grids of shape (N+1,)), checked with
    :func:`validate_times` if ``check`` and not checked before."""
    key = _key(times)
    if key is None:
        entry = GridEntry(times, shared=False)
    else:
        found = _cache.get(key)
        if found is not None and found.intact():
            entry = found
            with _lock:
                if key in _cache:
                    _cache.move_to_end(key)
        else:
            with torch.inference_mode(False), torch.no_grad():
                copy = times.clone()
            entry = GridEntry(copy, shared=True)
            with _lock:
                _cache[key] = entry
                while len(_cache) > CACHE_SIZE:
                    _cache.popitem(last=False)
    if check and not entry.validated:
        validate_times(entry.times)
        entry.validated = True
    return entry


def clear_grid_cache() -> None:
    """Drop every shared grid (tests; memory is bounded by :data:`CACHE_SIZE` anyway)."""
    with _lock:
        _cache.clear()
