"""Input validation shared by the core: every failure is a ``ValueError`` naming the fix."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import torch
from torch import Tensor

T = TypeVar("T")


def choose(kind: str, name: str, options: dict[str, T]) -> T:
    """Look ``name`` up in ``options`` or raise a ``ValueError`` listing the accepted names."""
    try:
        return options[name]
    except KeyError:
        accepted = ", ".join(sorted(options))
        raise ValueError(f"unknown {kind} {name!r}; accepted: {accepted}") from None


def check_times(t: Tensor, what: str = "t") -> None:
    """Times live in [0, 1]. This check syncs with the device: call it outside loops."""
    if not torch.is_floating_point(t):
        raise ValueError(f"{what} must be a floating-point tensor, got dtype {t.dtype}")
    if t.numel() and not bool(((t >= 0) & (t <= 1)).all()):  # NaN fails this too
        raise ValueError(
            f"{what} must lie in [0, 1] (0 = data, 1 = noise); got values in "
            f"[{float(t.min()):.4g}, {float(t.max()):.4g}]"
        )


def check_mask(mask: Tensor | None, x: Tensor, what: str = "mask") -> None:
    """A mask is boolean and matches the leading dimensions of ``x``."""
    if mask is None:
        return
    if mask.dtype != torch.bool:
        raise ValueError(f"{what} must be a bool tensor, got dtype {mask.dtype}")
    if mask.ndim > x.ndim or tuple(x.shape[: mask.ndim]) != tuple(mask.shape):
        raise ValueError(
            f"{what} of shape {tuple(mask.shape)} does not match the leading dimensions of "
            f"x with shape {tuple(x.shape)}; expected shape {tuple(x.shape[: mask.ndim])}"
            if mask.ndim <= x.ndim
            else f"{what} has more dimensions ({mask.ndim}) than x ({x.ndim})"
        )


def check_ndim(x: Tensor, ndim: int | Iterable[int], what: str, layout: str) -> None:
    allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
    if x.ndim not in allowed:
        raise ValueError(f"{what} must have layout {layout}; got shape {tuple(x.shape)}")


def accepts_keyword(fn: Callable[..., Any], name: str) -> bool:
    """Whether ``fn`` (a function, a bound method, a ``torch.nn.Module`` or a compiled one)
    names a parameter ``name`` that can be passed by keyword. ``**kwargs`` does not count:
    a catch-all may forward to code that does not expect the argument. Read once, when a
    wrapper is built, never per call."""
    target = getattr(fn, "_orig_mod", fn)  # torch.compile's OptimizedModule
    if isinstance(target, torch.nn.Module):
        target = target.forward
    try:
        parameter = inspect.signature(target).parameters.get(name)
    except (TypeError, ValueError):  # builtins without a signature
        return False
    return parameter is not None and parameter.kind in (
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
        inspect.Parameter.KEYWORD_ONLY,
    )
