"""Benchmark tasks, installed as ``sci_diffusion.tasks``: each binds data, a model and an
evaluation. A task config names its class by ``task.kind``; classes are imported lazily, so
that listing or running one task never imports another task's heavy dependencies (MuJoCo,
RDKit)."""

from .registry import KINDS, TASKS, build_task, task_kind, task_names

__all__ = ["KINDS", "TASKS", "build_task", "task_kind", "task_names"]
