"""Registries by convention: the entry ``<name>`` of a registry is the module
``<package>.<name>``, so adding one is adding a module (no table to edit).

Used for the policy methods (:mod:`.methods`, ``policy=<name>``) and the policy backbones
(:mod:`.backbones`, ``model=<name>``); each config group's yaml files share the names.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

from sci_diffusion.io.errors import UserInputError

__all__ = ["load_plugin", "plugin_names"]


def plugin_names(package: str) -> list[str]:
    """The entries of the registry ``package``: its modules whose names do not start with
    ``_``, sorted."""
    found = importlib.import_module(package).__path__
    return sorted(m.name for m in pkgutil.iter_modules(found) if not m.name.startswith("_"))


def load_plugin(package: str, name: str, what: str, key: str) -> ModuleType:
    """The module ``<package>.<name>``; an unknown name raises ``UserInputError`` naming the config
    ``key`` it came from, ``what`` the entries are and the available ones."""
    names = plugin_names(package)
    if name not in names:
        raise UserInputError(f"{key} {name!r} is not a {what}; available: {', '.join(names)}")
    return importlib.import_module(f"{package}.{name}")
