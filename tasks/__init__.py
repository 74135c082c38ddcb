"""Benchmark tasks, installed as ``sci_diffusion.tasks``: each binds data, a model and an
evaluation. Tasks are looked up by name and imported lazily, so that listing or running one
task never imports another task's heavy dependencies (MuJoCo, RDKit)."""

from .registry import TASKS, build_task, task_names

__all__ = ["TASKS", "build_task", "task_names"]
