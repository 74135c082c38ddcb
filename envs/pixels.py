"""Image observations: a task's env seen through its cameras (``task.obs=pixels|pixels+proprio``).

:class:`PixelObservations` wraps any MuJoCo env of :data:`~sci_diffusion.envs.registry.ENV_TASKS`
and returns, at every ``reset`` and ``step``, a dict observation::

    {"state": float32 (obs_dim,),            # the env's own vector, always kept (data sets,
                                             #  proprioception, success diagnostics)
     "<camera>": uint8 (H, W, 3), ...}       # one frame per camera, rendered after the step

Which part of it a policy sees is the task's choice (``pixels``: the images only;
``pixels+proprio``: the images and the task's proprioceptive state dimensions,
:attr:`EnvTask.proprio`). Frames come from one :class:`~sci_diffusion.envs.cameras.CameraRig`
per env (software-rendering settings, reused renderer).

:func:`make_env` is the picklable env factory (a top-level function of plain arguments) that
worker processes call to build the same env as the main process.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sci_diffusion.io.errors import UserInputError

from . import episodes
from .cameras import CameraRig, FreeCamera

__all__ = ["OBS_MODES", "STATE_KEY", "PixelObservations", "PixelSpec", "make_env", "pixel_spec"]

OBS_MODES = ("state", "pixels", "pixels+proprio")
"""``task.obs`` choices."""

STATE_KEY = episodes.STATE_KEY
"""Key of the state vector in a dict observation (no camera may use it)."""


@dataclass(frozen=True)
class PixelSpec:
    """Which cameras, at what size: ``cameras`` name -> ``None`` (the model's own camera) or a
    :class:`FreeCamera`; frames are ``(height, width, 3)``."""

    cameras: Mapping[str, FreeCamera | None] = field(default_factory=dict)
    height: int = 84
    width: int = 84

    @property
    def frame_shapes(self) -> dict[str, list[int]]:
        """``{camera: [H, W, 3]}`` (the data sets' ``meta["cameras"]``)."""
        return {name: [self.height, self.width, 3] for name in self.cameras}


def pixel_spec(env_task: Any, cameras: Sequence[str] | None = None,
               image_size: int | None = None) -> PixelSpec:  # fmt: skip
    """The task's cameras (``cameras``: a subset by name, or the task's defaults when None or
    empty) at ``image_size`` square pixels (the task's default when None)."""
    known = dict(env_task.cameras)
    names = list(cameras) if cameras else list(env_task.default_cameras or known)
    for name in names:
        if name == STATE_KEY:
            raise UserInputError(f"a camera may not be called {STATE_KEY!r}")
    size = int(image_size or env_task.image_size)
    # a name the task does not list is passed on as a model camera (checked when rendering)
    return PixelSpec({n: known.get(n) for n in names}, size, size)


class PixelObservations:
    """``env`` with dict observations ``{"state": vector, camera: frame, ...}`` (see the module
    docstring). Everything else (``action_space``, ``unwrapped``, ``render``, ``close``) is the
    wrapped env's; :meth:`close` also releases the renderer."""

    def __init__(self, env: Any, spec: PixelSpec) -> None:
        import gymnasium as gym
        from gymnasium import spaces

        self.env, self.spec = env, spec
        u = env.unwrapped
        self.rig = CameraRig(u.model, u.data, spec.cameras, spec.height, spec.width)
        frames = {name: spaces.Box(0, 255, (spec.height, spec.width, 3), np.uint8)
                  for name in spec.cameras}  # fmt: skip
        self.observation_space = gym.spaces.Dict({STATE_KEY: env.observation_space, **frames})
        self.action_space = env.action_space

    def __getattr__(self, name: str) -> Any:
        return getattr(self.env, name)

    @property
    def unwrapped(self) -> Any:
        return self.env.unwrapped

    def _observe(self, state: Any) -> dict[str, np.ndarray]:
        return {STATE_KEY: np.asarray(state, dtype=np.float32), **self.rig.render()}

    def reset(self, **kwargs: Any) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        state, info = self.env.reset(**kwargs)
        return self._observe(state), info

    def step(self, action: Any) -> tuple[dict[str, np.ndarray], float, bool, bool, dict]:
        state, reward, terminated, truncated, info = self.env.step(action)
        return self._observe(state), reward, terminated, truncated, info

    def render(self) -> Any:
        return self.env.render()

    def close(self) -> None:
        self.rig.close()
        self.env.close()


def make_env(task_name: str, env_seed: int = 0, env_name: str | None = None,
             render_mode: str | None = None, pixels: PixelSpec | None = None) -> Any:  # fmt: skip
    """The env of task ``task_name`` (``EnvTask.make_env``), wrapped in
    :class:`PixelObservations` when ``pixels`` is given. Picklable as a ``functools.partial``
    (worker processes build their envs with it)."""
    from .registry import get_task

    env = get_task(task_name).make_env(env_seed, render_mode=render_mode, env_name=env_name)
    return env if pixels is None else PixelObservations(env, pixels)
