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
into the grid (a network modifying its ``t``, a view of it, in place), the entry is found
altered at its next use and rebuilt. The derived coefficients are never handed to networks;
a custom ``denoise_at`` receives ``(alpha, sigma)`` views and must not write into them.
"""

from __future__ import annotations

import math
import threading
import weakref
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

    __slots__ = ("_memo", "_version", "shared", "steps", "times", "validated")

    def __init__(self, times: Tensor, shared: bool) -> None:
        self.times = times
        self.steps = times.unbind(0)
        self.shared = shared
        self.validated = False
        self._memo: dict[Hashable, Any] = {}
        self._version = _version(times) if shared else None

    def intact(self) -> bool:
        """Nothing has written into the grid (or a view of it, such as the ``t`` handed to a
        network) since the entry was built."""
        return self._version is None or self.times._version == self._version

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
        else:
            value = build()
        self._memo[key] = value
        return value

    def peek(self, key: Hashable, default: Any = None) -> Any:
        """The value memoized under ``key``, or ``default`` (nothing is built)."""
        return self._memo.get(key, default)


def _version(tensor: Tensor) -> int | None:
    """The version counter (``None`` for an inference tensor, which has none)."""
    try:
        return tensor._version
    except RuntimeError:
        return None


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
    """The grid's values, or ``None`` if not shareable (not a small CPU grid of shape (N+1,),
    or holding ``-0.0``, which compares equal to ``0.0``)."""
    if not times.is_cpu or times.ndim != 1 or times.requires_grad or len(times) > MAX_POINTS:
        return None
    values = tuple(times.tolist())
    if 0.0 in values and any(math.copysign(1.0, v) < 0 for v in values if v == 0.0):
        return None
    return times.dtype, values


_pinned: dict[int, tuple[weakref.ref[Tensor], GridEntry]] = {}


def pin_grid(times: Tensor) -> GridEntry:
    """Share ``times`` itself (any device) by identity: every sampler call given this very
    tensor reuses one entry, whose values are read from it only when first built. For a
    fixed grid that is sampled many times, e.g. by a captured loop
    (:class:`~sci_diffusion.core.capture.CapturedSampler`: the grid's coefficients are then
    computed before the capture, not replayed). The entry goes when ``times`` does."""
    key = id(times)
    found = _pinned.get(key)
    if found is not None and found[0]() is times:
        return found[1]
    entry = GridEntry(times, shared=True)

    def unpin(_: object, key: int = key) -> None:
        current = _pinned.get(key)
        if current is not None and current[1] is entry:
            del _pinned[key]

    _pinned[key] = (weakref.ref(times, unpin), entry)
    return entry


def grid_entry(times: Tensor, check: bool) -> GridEntry:
    """The entry of ``times`` (shared for CPU grids of shape (N+1,) and for pinned grids,
    :func:`pin_grid`), checked with :func:`validate_times` if ``check`` and not checked
    before."""
    pinned = _pinned.get(id(times))
    if pinned is not None and pinned[0]() is times and pinned[1].intact():
        entry = pinned[1]
        if check and not entry.validated:
            validate_times(entry.times)
            entry.validated = True
        return entry
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
