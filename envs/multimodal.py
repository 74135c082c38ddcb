"""A planar reach task whose expert is multimodal by design.

A puck (radius 0.03 m, two slide joints driven by force motors) starts in a small region below
a fixed block and must reach a goal in a small region above it. The straight line is blocked,
so every successful trajectory passes the block on the left or on the right: the two modes are
equally good, and their average (going straight) gets stuck against the block. This makes it
the benchmark on which policies that model multimodal action distributions (diffusion) should
beat mean-squared-error regression.

Geometry (metres, world frame, arena centred at the origin):

* arena: inner walls at ``x = +-0.5`` and ``y = +-0.5``;
* obstacle: ``x in [-0.2, 0.2]``, ``y in [-0.05, 0.05]``;
* start region: ``x in [-0.1, 0.1]``, ``y in [-0.35, -0.25]``;
* goal region: ``x in [-0.1, 0.1]``, ``y in [0.25, 0.35]``.

Dynamics: physics timestep 0.01 s, ``frame_skip = 5`` so one env step is 0.05 s. An action
``a in [-1, 1]^2`` is a force of ``a`` newtons on the x and y joints; with joint damping
2 N s/m the puck's terminal speed is 0.5 m/s.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium import spaces

ENV_ID = "sci_diffusion/MultimodalReach-v0"
"""The gymnasium id registered by :func:`register_envs`."""

ASSET_PATH = Path(__file__).parent / "assets" / "multimodal_reach.xml"
"""The MJCF model of the task."""

MAX_EPISODE_STEPS = 120
"""Episode length limit in env steps (120 steps = 6 s; the expert needs about 40)."""

FRAME_SKIP = 5
"""Physics steps per env step (5 x 0.01 s = 0.05 s)."""

SUCCESS_RADIUS = 0.05
"""Success when the puck centre is within this distance of the goal, metres."""

OBSTACLE_HALF_EXTENTS = (0.2, 0.05)
"""Half sizes of the obstacle block along x and y, metres (it is centred at the origin)."""

AGENT_RADIUS = 0.03
"""Radius of the puck, metres."""

START_LOW = np.array([-0.1, -0.35])
START_HIGH = np.array([0.1, -0.25])
GOAL_LOW = np.array([-0.1, 0.25])
GOAL_HIGH = np.array([0.1, 0.35])

POS_BOUND = 0.6
"""Observation bound on positions, metres (the arena is +-0.5 m; contacts may penetrate)."""

VEL_BOUND = 2.0
"""Observation bound on velocities, m/s (the terminal speed is 0.5 m/s; reported velocities
are clipped to this bound)."""


class MultimodalReachEnv(gym.Env[np.ndarray, np.ndarray]):
    """Reach a goal behind an obstacle: pass it on the left or on the right.

    Observation (float32, shape ``(6,)``): ``[agent x, agent y, agent vx, agent vy, goal x,
    goal y]``, positions in metres (bounded by +-0.6), velocities in m/s (clipped to +-2).

    Action (float32, shape ``(2,)``, in ``[-1, 1]^2``, clipped): force on the puck in newtons
    along x and y.

    Reward: minus the distance (metres) from the puck centre to the goal.

    Termination: ``info["is_success"]`` becomes True, and the episode terminates, when the
    distance is below :data:`SUCCESS_RADIUS` (0.05 m). Episodes are truncated after
    ``max_episode_steps`` (default :data:`MAX_EPISODE_STEPS` = 120) steps.

    ``info`` also holds ``"distance"`` (metres) and ``"goal"`` (metres, shape ``(2,)``).
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 20}

    def __init__(
        self,
        render_mode: str | None = None,
        width: int = 240,
        height: int = 240,
        max_episode_steps: int = MAX_EPISODE_STEPS,
    ) -> None:
        """Load the model.

        Args:
            render_mode: ``None`` or ``"rgb_array"``.
            width: rendered image width, pixels (at most 640).
            height: rendered image height, pixels (at most 640).
            max_episode_steps: truncate after this many env steps (one step is 0.05 s).
        """
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"unsupported render_mode {render_mode!r}")
        self.render_mode = render_mode
        self.width = width
        self.height = height
        self.max_episode_steps = max_episode_steps

        self.model = mujoco.MjModel.from_xml_path(str(ASSET_PATH))
        self.data = mujoco.MjData(self.model)
        self._goal_site = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_SITE, "goal")
        self._camera = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_CAMERA, "top")
        self._renderer: mujoco.Renderer | None = None

        self.dt = self.model.opt.timestep * FRAME_SKIP
        """Duration of one env step, seconds."""

        high = np.array(
            [POS_BOUND, POS_BOUND, VEL_BOUND, VEL_BOUND, POS_BOUND, POS_BOUND], dtype=np.float32
        )
        self.observation_space = spaces.Box(-high, high, dtype=np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)

        self.goal = np.zeros(2)
        self._steps = 0

    # -- helpers ---------------------------------------------------------------------------

    @property
    def agent_pos(self) -> np.ndarray:
        """Puck centre ``(x, y)``, metres (a copy)."""
        return self.data.qpos[:2].copy()

    def _obs(self) -> np.ndarray:
        pos = np.clip(self.data.qpos[:2], -POS_BOUND, POS_BOUND)
        vel = np.clip(self.data.qvel[:2], -VEL_BOUND, VEL_BOUND)
        return np.concatenate([pos, vel, self.goal]).astype(np.float32)

    def _distance(self) -> float:
        return float(np.linalg.norm(self.data.qpos[:2] - self.goal))

    # -- gymnasium API ---------------------------------------------------------------------

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Sample a start below the obstacle and a goal above it (from ``self.np_random``)."""
        super().reset(seed=seed)
        mujoco.mj_resetData(self.model, self.data)
        start = self.np_random.uniform(START_LOW, START_HIGH)
        self.goal = self.np_random.uniform(GOAL_LOW, GOAL_HIGH)
        self.data.qpos[:2] = start
        self.data.qvel[:] = 0.0
        self.model.site_pos[self._goal_site, :2] = self.goal
        mujoco.mj_forward(self.model, self.data)
        self._steps = 0
        distance = self._distance()
        info = {
            "is_success": distance < SUCCESS_RADIUS,
            "distance": distance,
            "goal": self.goal.copy(),
        }
        return self._obs(), info

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Apply force ``action`` (newtons, clipped to ``[-1, 1]``) for 0.05 s."""
        action = np.clip(np.asarray(action, dtype=np.float64).reshape(2), -1.0, 1.0)
        self.data.ctrl[:] = action
        mujoco.mj_step(self.model, self.data, nstep=FRAME_SKIP)
        self._steps += 1
        distance = self._distance()
        success = distance < SUCCESS_RADIUS
        truncated = (not success) and self._steps >= self.max_episode_steps
        info = {"is_success": success, "distance": distance, "goal": self.goal.copy()}
        return self._obs(), -distance, success, truncated, info

    def render(self) -> np.ndarray | None:  # type: ignore[override]
        """Top-down view as an ``(height, width, 3)`` uint8 array (``None`` without
        ``render_mode="rgb_array"``)."""
        if self.render_mode != "rgb_array":
            return None
        if self._renderer is None:
            self._renderer = mujoco.Renderer(self.model, height=self.height, width=self.width)
        self._renderer.update_scene(self.data, camera=self._camera)
        return self._renderer.render()

    def close(self) -> None:
        """Release the renderer (its GL context) if one was created."""
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
        super().close()


def register_envs() -> None:
    """Register :data:`ENV_ID` with gymnasium (idempotent); see ``sci_diffusion.envs``."""
    from sci_diffusion.envs import register_envs as register_all

    register_all()
