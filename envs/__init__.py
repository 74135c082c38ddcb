"""MuJoCo environments and scripted experts, installed as ``sci_diffusion.envs``.

Importing this package registers our gymnasium environments (``sci_diffusion/<Name>-v0``) by
entry-point string, so MuJoCo itself is imported only when an environment is made::

    import gymnasium as gym
    import sci_diffusion.envs  # noqa: F401  (registers)
    env = gym.make("sci_diffusion/MultimodalReach-v0")
"""

from __future__ import annotations

import contextlib
import os

if "MUJOCO_GL" not in os.environ and not os.environ.get("DISPLAY"):
    # Headless: MuJoCo picks its GL backend once, at import; EGL needs no display.
    os.environ["MUJOCO_GL"] = "egl"


def _check_gl_bindings() -> None:
    """MuJoCo's EGL and OSMesa backends import PyOpenGL inside ``import mujoco``: without it
    every environment fails to load, state-only ones too (seen on a bare GPU image). Load
    MuJoCo without rendering then, and say so: state policies work, camera frames fail with
    :class:`~sci_diffusion.envs.cameras.RenderError` naming the fix."""
    import importlib.util
    import warnings

    backend = os.environ.get("MUJOCO_GL", "").lower().strip()
    if backend in ("egl", "osmesa") and importlib.util.find_spec("OpenGL") is None:
        os.environ["MUJOCO_GL"] = "disable"
        warnings.warn(
            f"MUJOCO_GL={backend} needs PyOpenGL, which is not installed: MuJoCo loads without "
            "rendering (state observations work; pixels need `pip install PyOpenGL`)",
            RuntimeWarning,
            stacklevel=2,
        )


_check_gl_bindings()

ENV_IDS = {"sci_diffusion/MultimodalReach-v0": "sci_diffusion.envs.multimodal:MultimodalReachEnv"}


def register_envs() -> None:
    """Register every environment of :data:`ENV_IDS` with gymnasium (idempotent)."""
    import gymnasium as gym

    for env_id, entry_point in ENV_IDS.items():
        if env_id not in gym.registry:
            # The env truncates itself at its own max_episode_steps.
            gym.register(id=env_id, entry_point=entry_point, max_episode_steps=None)


with contextlib.suppress(ImportError):  # no gymnasium: the core and chemistry need none
    register_envs()
