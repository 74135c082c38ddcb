"""Old names that still work, with a :class:`DeprecationWarning` that names the new one."""

from __future__ import annotations

import functools
import importlib
import warnings
from collections.abc import Callable, Mapping
from typing import Any


def moved_names(module: str, moved: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for names that moved: ``{old name: "package.module:new name"}``.

    >>> __getattr__ = moved_names(__name__, {"old": "sci_diffusion.chem.parallel:map_chunks"})
    """

    def __getattr__(name: str) -> Any:
        if name not in moved:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        where, new = moved[name].split(":")
        warnings.warn(
            f"{module}.{name} is deprecated; use {where}.{new}", DeprecationWarning, stacklevel=2
        )
        return getattr(importlib.import_module(where), new)

    return __getattr__


def renamed(old: str, new: Callable[..., Any], instead: str | None = None) -> Callable[..., Any]:
    """A function ``old`` that warns and calls ``new`` (for a name kept beside its successor);
    ``instead`` says what to use (default: ``new``'s full name)."""
    instead = instead or f"{new.__module__}.{new.__name__}"

    @functools.wraps(new)
    def alias(*args: Any, **kwargs: Any) -> Any:
        warnings.warn(f"{old} is deprecated; use {instead}", DeprecationWarning, stacklevel=2)
        return new(*args, **kwargs)

    alias.__name__ = alias.__qualname__ = old.rsplit(".", 1)[-1]
    return alias
