"""Task name -> implementing class, imported on demand."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .base import Task

TASKS: dict[str, tuple[str, str]] = {
    "toy2d": ("sci_diffusion.tasks.toy2d", "Toy2DTask"),
    "multimodal": ("sci_diffusion.tasks.policy", "PolicyTask"),
    "reacher": ("sci_diffusion.tasks.policy", "PolicyTask"),
    "pusher": ("sci_diffusion.tasks.policy", "PolicyTask"),
    "metaworld": ("sci_diffusion.tasks.policy", "PolicyTask"),
    "qm9_graph": ("sci_diffusion.tasks.molecule_graph", "MoleculeGraphTask"),
    "moses_graph": ("sci_diffusion.tasks.molecule_graph", "MoleculeGraphTask"),
    "qm9_3d": ("sci_diffusion.tasks.molecule_3d", "Molecule3DTask"),
    "qm9_3d_h": ("sci_diffusion.tasks.molecule_3d", "Molecule3DTask"),
}
"""Registered tasks: name -> (module, class). Add a line here to add a task."""


def task_names() -> list[str]:
    return sorted(TASKS)


def build_task(cfg: Any) -> Task:
    """Instantiate the task named ``cfg.task.name`` with the whole resolved config."""
    name = cfg.task.name
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; available: {', '.join(task_names())}")
    module, cls = TASKS[name]
    return getattr(importlib.import_module(module), cls)(cfg)
