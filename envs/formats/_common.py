"""What the LeRobot and robomimic converters share: the error, the target env's dimensions,
the imported set's ``meta.json`` and its all-or-nothing write."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np

from sci_diffusion.envs.demos import DemoFormatError, write_imported_dataset
from sci_diffusion.io.errors import UserInputError

__all__ = ["DataFormatError", "EnvDims", "env_dims", "require", "write_imported"]


class DataFormatError(DemoFormatError):
    """A data set in another format (LeRobot, robomimic) is malformed or does not fit the
    target env. The message names the file, the field, the problem and the fix; ``path`` and
    ``field`` hold the first two."""

    def __init__(self, path: Path | str, field: str, problem: str, fix: str) -> None:
        super().__init__(f"{path}: {field}: {problem}; {fix}")
        self.path, self.field = Path(path), field


def require(module: str, package: str) -> ModuleType:
    """Import ``module`` or raise a :class:`UserInputError` naming the pip package to add."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise UserInputError(
            f"this needs the {package!r} package; pip install 'sci-diffusion[robotics]' "
            f"(or pip install {package})"
        ) from None


@dataclass(frozen=True)
class EnvDims:
    """What a converter checks a data set against: the env of one of our tasks."""

    task: str
    env_id: str
    env_name: str | None
    obs_dim: int
    action_dim: int
    fps: float | None
    """Control rate (env steps per second, ``1 / env.dt``); None when the env has no ``dt``."""


def env_dims(task: str, env_name: str | None = None) -> EnvDims:
    """Make the env of ``task`` (``ENV_TASKS``) once and read its dimensions and rate."""
    from sci_diffusion.envs.registry import DEFAULT_METAWORLD_ENV, get_task

    spec = get_task(task)
    if spec.needs_env_name and env_name is None:
        env_name = DEFAULT_METAWORLD_ENV
    env = spec.make_env(0, env_name=env_name)
    try:
        dt = getattr(env.unwrapped, "dt", None)
        return EnvDims(task, spec.env_id, env_name, int(np.prod(env.observation_space.shape)),
                       int(np.prod(env.action_space.shape)),
                       None if not dt else round(1.0 / float(dt), 6))  # fmt: skip
    finally:
        env.close()


def check_dims(dims: EnvDims, obs_dim: int, action_dim: int, path: Path, obs_field: str,
               action_field: str) -> None:  # fmt: skip
    """Raise :class:`DataFormatError` (naming ``path`` and the field) when the data set's
    observation or action dimension is not the env's."""
    env = f"task={dims.task} ({dims.env_id}{f' {dims.env_name}' if dims.env_name else ''})"
    fix = ("import it for the env it was recorded in (task=...), or leave task= out to import "
           "it unchecked")  # fmt: skip
    if action_dim != dims.action_dim:
        raise DataFormatError(path, action_field, f"action dimension {action_dim}, but {env} "
                              f"takes {dims.action_dim}-D actions", fix)  # fmt: skip
    if obs_dim != dims.obs_dim:
        raise DataFormatError(path, obs_field, f"observation dimension {obs_dim}, but {env} "
                              f"observes {dims.obs_dim}-D states", fix)  # fmt: skip


write_imported = write_imported_dataset  # the formats' name for it
