"""What the LeRobot and robomimic converters share: the error, the target env's dimensions,
the imported set's ``meta.json`` and its all-or-nothing write."""

from __future__ import annotations

import datetime as _dt
import importlib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from sci_diffusion.envs.demos import FORMAT_VERSION, DemoFormatError, _versions, _write_dataset
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


def write_imported(
    dest: Path,
    episodes: list[dict[str, Any]],
    meta: dict[str, Any],
    versions: tuple[str, ...] = (),
) -> dict:
    """Complete ``meta`` (counts, dims, observed action range, date, versions) and write
    ``demos.hdf5`` + ``meta.json`` into ``dest`` all-or-nothing.

    ``episodes``: dicts of ``obs`` (T or T+1, D), ``actions`` (T, A), ``rewards`` (T,) float32,
    ``success`` (bool or None: unknown), ``seed`` (int, -1 unknown) and optionally ``images``
    (``{camera: uint8 (rows of obs, H, W, C)}``). Episodes with unknown success are stored as
    successes and ``expert_success_rate`` is null (as for the npz importer). ``versions``:
    extra distributions whose versions ``meta["versions"]`` records. Returns the meta written.
    """
    known = [e["success"] for e in episodes if e["success"] is not None]
    all_known = len(known) == len(episodes)
    for e in episodes:
        e["success"] = True if e["success"] is None else bool(e["success"])
    acts = np.concatenate([e["actions"] for e in episodes])
    lengths = [len(e["actions"]) for e in episodes]
    seeds = [int(e["seed"]) for e in episodes]
    full = {
        "format_version": FORMAT_VERSION,
        "env_id": meta.pop("env_id"),
        "task": meta.pop("task", None),
        "env_name": meta.pop("env_name", None),
        "episodes": len(episodes),
        "successes": int(sum(e["success"] for e in episodes)),
        "expert_success_rate": (sum(known) / len(known)) if all_known else None,
        "obs_dim": int(episodes[0]["obs"].shape[1]),
        "action_dim": int(episodes[0]["actions"].shape[1]),
        "action_low": acts.min(axis=0).astype(float).tolist(),  # observed range
        "action_high": acts.max(axis=0).astype(float).tolist(),
        "max_steps": int(max(lengths)),
        "seed_start": seeds[0] if all(s >= 0 for s in seeds) else None,
        "seed_end": seeds[-1] if all(s >= 0 for s in seeds) else None,
        "total_steps": int(sum(lengths)),
        "mean_length": float(np.mean(lengths)),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "versions": _versions(versions),
        **meta,
    }
    _write_dataset(Path(dest), episodes, full)
    return full
