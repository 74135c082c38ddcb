"""Task name → how to make the environment and its scripted expert.

:data:`ENV_TASKS` maps the names accepted by ``sci-diffusion demos task=<name>`` to an
:class:`EnvTask`. Gymnasium, MuJoCo and Meta-World are imported only when an environment or an
expert is made, so importing this module is cheap.

* ``multimodal``: ``sci_diffusion/MultimodalReach-v0`` (120 steps, terminates on success),
  :class:`~sci_diffusion.envs.experts.multimodal.MultimodalReachExpert`, success =
  :data:`~sci_diffusion.envs.experts.success.MULTIMODAL_SUCCESS` (``info["is_success"]``).
* ``reacher``: gymnasium ``Reacher-v5`` (50 steps), :class:`ReacherExpert`, success =
  :data:`~sci_diffusion.envs.experts.success.REACHER_SUCCESS` (``reacher_success`` after the
  last step).
* ``pusher``: gymnasium ``Pusher-v5`` with ``max_episode_steps=300`` (the default 100 steps is
  too short for the soft puck contact, see ``docs/robotics.md``), :class:`PusherExpert`,
  success = :data:`~sci_diffusion.envs.experts.success.PUSHER_SUCCESS` (``pusher_success``
  after the last step).
* ``metaworld``: Meta-World MT1 ``env_name`` (default ``push-v3``; 500 steps): any of the 50
  names of Meta-World's own registry (:func:`metaworld_env_names`, read lazily from
  ``metaworld.env_dict.ALL_V3_ENVIRONMENTS``; an unknown name is refused with the list),
  :class:`MetaWorldExpert` (the package's scripted policy for that task), success =
  :data:`~sci_diffusion.envs.experts.success.METAWORLD_SUCCESS` (``info["success"]`` at any
  step, the benchmark convention).

Episodes of every task run through one loop, :func:`sci_diffusion.envs.episodes.play_episodes`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sci_diffusion.envs.cameras import FreeCamera
from sci_diffusion.envs.experts.success import (
    METAWORLD_SUCCESS,
    MULTIMODAL_SUCCESS,
    PUSHER_SUCCESS,
    REACHER_SUCCESS,
    SuccessRule,
)
from sci_diffusion.io.errors import UserInputError

__all__ = ["DEFAULT_METAWORLD_ENV", "ENV_TASKS", "EnvTask", "get_task", "metaworld_env_names"]

DEFAULT_METAWORLD_ENV = "push-v3"
"""Meta-World task used when ``task=metaworld`` is given without ``env_name``."""

PUSHER_MAX_STEPS = 300
"""Pusher-v5 horizon for demonstrations (the default 100 steps: expert success 1/100)."""


@dataclass(frozen=True)
class EnvTask:
    """How to build one demonstration task.

    Attributes:
        name: the task name (key of :data:`ENV_TASKS`).
        env_id: the gymnasium id of the environment.
        make_env: ``make_env(seed, render_mode=None, env_name=None)`` → a gymnasium env. ``seed``
            matters only for Meta-World (it fixes the MT1 task set); episodes are seeded at
            ``reset``.
        make_expert: ``make_expert(env_name=None)`` → an :class:`~..experts.base.Expert`.
        max_steps: episode horizon in env steps (the env truncates there itself).
        success: the environment's :class:`~sci_diffusion.envs.experts.success.SuccessRule`
            (also callable as ``success(env, info)``: the check on the state after a step).
        needs_env_name: whether the task takes an ``env_name`` (Meta-World).
        expert_version: bumped whenever the expert's behaviour changes, so that cached
            demonstrations of an older expert are never reused.
        observation: what the observation vector holds, with units (model cards).
        gaps: known differences between this simulation and a real system (model cards).
        cameras: the cameras ``task.cameras`` may name: ``None`` for a camera of the MJCF
            model, a :class:`~sci_diffusion.envs.cameras.FreeCamera` for one placed here.
        default_cameras: the cameras used when ``task.cameras`` is empty (default: all).
        image_size: default square frame size in pixels (``task.image_size``), chosen by
            measurement (docs/robotics.md, "Pixels").
        proprio: indices of the state vector a ``pixels+proprio`` policy also sees (the
            agent's own joints/effector, never object or goal positions).
    """

    name: str
    env_id: str
    make_env: Callable[..., Any]
    make_expert: Callable[..., Any]
    max_steps: int
    success: SuccessRule
    needs_env_name: bool = False
    expert_version: int = 1
    observation: str = "see docs/robotics.md"
    gaps: str = "see docs/robotics.md"
    cameras: dict[str, FreeCamera | None] = field(default_factory=dict)
    default_cameras: tuple[str, ...] = ()
    image_size: int = 84
    proprio: tuple[int, ...] = ()

    @property
    def success_any_step(self) -> bool:
        """Whether success after any step counts (``success.any_step``), else the last."""
        return self.success.any_step


def _no_env_name(task: str, env_name: str | None) -> None:
    if env_name is not None:
        raise UserInputError(
            f"task {task!r} takes no env_name (only task 'metaworld' does); leave env_name= out"
        )


# -- multimodal ---------------------------------------------------------------------------------


def _make_multimodal(
    seed: int | None = None, render_mode: str | None = None, env_name: str | None = None
) -> Any:
    import gymnasium as gym

    import sci_diffusion.envs  # noqa: F401  (registers the env id)

    _no_env_name("multimodal", env_name)
    return gym.make("sci_diffusion/MultimodalReach-v0", render_mode=render_mode)


def _multimodal_expert(env_name: str | None = None) -> Any:
    from sci_diffusion.envs.experts.multimodal import MultimodalReachExpert

    _no_env_name("multimodal", env_name)
    return MultimodalReachExpert()


# -- reacher / pusher ---------------------------------------------------------------------------


def _make_reacher(
    seed: int | None = None, render_mode: str | None = None, env_name: str | None = None
) -> Any:
    import gymnasium as gym

    _no_env_name("reacher", env_name)
    return gym.make("Reacher-v5", render_mode=render_mode)


def _reacher_expert(env_name: str | None = None) -> Any:
    from sci_diffusion.envs.experts.reacher import ReacherExpert

    _no_env_name("reacher", env_name)
    return ReacherExpert()


def _make_pusher(
    seed: int | None = None, render_mode: str | None = None, env_name: str | None = None
) -> Any:
    import gymnasium as gym

    _no_env_name("pusher", env_name)
    return gym.make("Pusher-v5", max_episode_steps=PUSHER_MAX_STEPS, render_mode=render_mode)


def _pusher_expert(env_name: str | None = None) -> Any:
    from sci_diffusion.envs.experts.pusher import PusherExpert

    _no_env_name("pusher", env_name)
    return PusherExpert()


# -- Meta-World ---------------------------------------------------------------------------------


def _make_metaworld(
    seed: int | None = None, render_mode: str | None = None, env_name: str | None = None
) -> Any:
    from sci_diffusion.envs.experts.metaworld_experts import make_metaworld_env

    kwargs = {} if render_mode is None else {"render_mode": render_mode}
    return make_metaworld_env(env_name or DEFAULT_METAWORLD_ENV, seed, **kwargs)


def metaworld_env_names() -> tuple[str, ...]:
    """The Meta-World task names ``task=metaworld task.env_name=<name>`` accepts: every v3
    environment the installed package registers (MT50), in its own order."""
    from sci_diffusion.envs.experts.metaworld_experts import metaworld_env_names as names

    return names()


def _metaworld_expert(env_name: str | None = None) -> Any:
    from sci_diffusion.envs.experts.metaworld_experts import MetaWorldExpert

    return MetaWorldExpert(env_name or DEFAULT_METAWORLD_ENV)


ENV_TASKS: dict[str, EnvTask] = {
    "multimodal": EnvTask(
        name="multimodal",
        env_id="sci_diffusion/MultimodalReach-v0",
        make_env=_make_multimodal,
        make_expert=_multimodal_expert,
        max_steps=120,
        success=MULTIMODAL_SUCCESS,
        expert_version=2,  # 2: shared approach point below the obstacle (one decision state)
        observation="6-D: puck x, y (m), vx, vy (m/s), goal x, y (m)",
        gaps="a point mass with ideal force motors and no floor friction; no sensor noise "
        "or actuation delay",
        cameras={"top": None},
        image_size=64,
        proprio=(0, 1, 2, 3),  # the puck's position and velocity; the goal only in the image
    ),
    "reacher": EnvTask(
        name="reacher",
        env_id="Reacher-v5",
        make_env=_make_reacher,
        make_expert=_reacher_expert,
        max_steps=50,
        success=REACHER_SUCCESS,
        expert_version=2,  # 2: fingertip speed limit 1 m/s (smoother, 3% saturated actions)
        observation="10-D: cos and sin of the two joint angles, target x, y (m), joint "
        "velocities (rad/s), fingertip-minus-target x, y (m)",
        gaps="planar two-link arm with ideal torque motors, no gravity load, no sensor noise",
        cameras={"overhead": FreeCamera((0.0, 0.0, 0.0), 0.75, 90.0, -90.0)},
        proprio=(0, 1, 2, 3, 6, 7),  # joint cos/sin and velocities
    ),
    "pusher": EnvTask(
        name="pusher",
        env_id="Pusher-v5",
        make_env=_make_pusher,
        make_expert=_pusher_expert,
        max_steps=PUSHER_MAX_STEPS,
        success=PUSHER_SUCCESS,
        observation="23-D: 7 joint angles (rad), 7 joint velocities (rad/s), fingertip, "
        "puck and goal positions x, y, z (m)",
        gaps="the puck's ~8e-6 kg mass makes contacts soft (pushes top out at 3-5 cm/s); "
        "ideal torque motors; no sensor noise",
        cameras={"overhead": FreeCamera((0.3, -0.2, -0.3), 2.2, 90.0, -90.0)},
        proprio=tuple(range(14)),  # joint angles and velocities
    ),
    "metaworld": EnvTask(
        name="metaworld",
        env_id="Meta-World/MT1",
        make_env=_make_metaworld,
        make_expert=_metaworld_expert,
        max_steps=500,
        success=METAWORLD_SUCCESS,
        needs_env_name=True,
        # 2: the reset seed picks the MT1 configuration (make_metaworld_env, task_from_seed);
        # before, the env's reset history did, so cached demonstrations differ.
        expert_version=2,
        observation="39-D Meta-World state: hand position (m), gripper opening, two object "
        "poses (position + quaternion), the previous frame of these 18, goal position (m)",
        gaps="simulated Sawyer driven by mocap end-effector position targets, not joint "
        "torques; no camera or sensor noise",
        cameras={name: None for name in ("corner", "corner2", "corner3", "corner4", "topview",
                                         "behindGripper", "gripperPOV")},
        default_cameras=("corner2",),
        proprio=(0, 1, 2, 3),  # hand position and gripper opening
    ),
}
"""The demonstration tasks by name."""


def get_task(name: str) -> EnvTask:
    """The :class:`EnvTask` called ``name``; :class:`UserInputError` listing the names if
    unknown."""
    if name not in ENV_TASKS:
        raise UserInputError(f"unknown task {name!r}; available: {', '.join(ENV_TASKS)}")
    return ENV_TASKS[name]
