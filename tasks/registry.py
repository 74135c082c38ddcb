"""Task configs -> implementing classes, imported on demand.

A task config names its class by ``task.kind`` (``toy2d``, ``policy``, ``molecule_graph``,
``molecule_3d``), so a new task of an existing kind — a MuJoCo environment, a molecule data set
— is just its config file (plus its environment or data-set module): no line here. Run
directories saved before ``task.kind`` existed are resolved by their task name.
"""

from __future__ import annotations

import importlib
from importlib import resources
from typing import TYPE_CHECKING, Any

from sci_diffusion.io.errors import UserInputError

if TYPE_CHECKING:
    from .base import Task

KINDS: dict[str, tuple[str, str]] = {
    "toy2d": ("sci_diffusion.tasks.toy2d", "Toy2DTask"),
    "policy": ("sci_diffusion.tasks.policy", "PolicyTask"),
    "molecule_graph": ("sci_diffusion.tasks.molecule_graph", "MoleculeGraphTask"),
    "molecule_3d": ("sci_diffusion.tasks.molecule_3d", "Molecule3DTask"),
}
"""``task.kind`` -> (module, class). Add a line here only for a new kind of task."""

_LEGACY_KINDS = {
    "toy2d": "toy2d", "multimodal": "policy", "reacher": "policy", "pusher": "policy",
    "metaworld": "policy", "qm9_graph": "molecule_graph", "moses_graph": "molecule_graph",
    "qm9_3d": "molecule_3d", "qm9_3d_h": "molecule_3d",
}  # fmt: skip
"""The kinds of the tasks that existed before ``task.kind`` (for saved run configs)."""

TASKS: dict[str, tuple[str, str]] = {name: KINDS[kind] for name, kind in _LEGACY_KINDS.items()}
"""Deprecated: name -> (module, class) of the original tasks; use :data:`KINDS`."""


def task_names() -> list[str]:
    """Every task with a config in the packaged ``configs/task/``."""
    folder = resources.files("sci_diffusion.configs") / "task"
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def task_kind(cfg: Any) -> str:
    """``cfg.task.kind``, or the kind of a known task name for configs saved without one."""
    kind = cfg.task.get("kind") or _LEGACY_KINDS.get(str(cfg.task.get("name")))
    if kind is None:
        raise UserInputError(f"task {cfg.task.get('name')!r} has no task.kind; set task.kind "
                             f"to one of {', '.join(KINDS)}")  # fmt: skip
    if kind not in KINDS:
        raise UserInputError(f"unknown task.kind {kind!r}; available: {', '.join(KINDS)}")
    return str(kind)


def build_task(cfg: Any) -> Task:
    """Instantiate the class of ``cfg.task.kind`` with the whole resolved config."""
    module, cls = KINDS[task_kind(cfg)]
    return getattr(importlib.import_module(module), cls)(cfg)
