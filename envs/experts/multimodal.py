"""Scripted expert for :class:`sci_diffusion.envs.multimodal.MultimodalReachEnv`.

At every reset the expert flips a fair coin: it passes the obstacle on the left (``x < 0``) or
on the right (``x > 0``). It tracks waypoints with a proportional-derivative controller on the
observation: first a shared approach point centred below the obstacle, then beside the
obstacle's lower corner, beside its upper corner, then the goal. Every demonstration passes
through the same decision state below the obstacle and leaves it to the left or to the right
with equal probability, so the action distribution there is bimodal and its mean (push
straight up) drives the puck into the obstacle. (Without the shared approach the side can be
read off the first steps' direction, and a state-feedback regressor recovers it: see
docs/robotics.md.)
"""

from __future__ import annotations

from typing import Any

import numpy as np

APPROACH = (0.0, -0.17)
"""The decision point every demonstration passes through, metres: centred 0.09 m below the
obstacle's lower face (0.12 m from it, minus the puck radius)."""

SIDE_X = 0.33
"""|x| of the side waypoints, metres (obstacle half-width 0.2 + puck radius 0.03 + 0.1)."""

SIDE_Y = (-0.12, 0.1)
"""y of the lower and upper side waypoints, metres (the obstacle spans y in [-0.05, 0.05])."""

WAYPOINT_RADIUS = 0.05
"""Switch to the next waypoint within this distance, metres."""

KP = 10.0
"""Proportional gain, newtons per metre (of the normalised action)."""

KD = 0.5
"""Derivative gain on the velocity, newton seconds per metre."""

SEED_SALT = 0x5EED_51DE
"""Mixed into the expert's seed. Gymnasium seeds ``env.np_random`` with
``PCG64(SeedSequence(seed))``, the same stream as ``np.random.default_rng(seed)``; without the
salt the coin flip would equal the env's first draw (the start x) and the side would be a
deterministic function of the observation, i.e. not multimodal at all."""


class MultimodalReachExpert:
    """Go around the obstacle on a side chosen at random (probability 1/2 each)."""

    def __init__(self) -> None:
        self.side: int = 1
        """+1: pass on the right (x > 0); -1: pass on the left (x < 0)."""
        self._waypoint = 0

    @property
    def mode(self) -> str:
        """``"left"`` or ``"right"``: the side chosen at the last reset."""
        return "right" if self.side > 0 else "left"

    def reset(self, seed: int | None = None) -> None:
        """Choose the side from ``np.random.default_rng([SEED_SALT, seed])`` (fresh entropy
        when ``seed`` is None); independent of the env's draws for the same seed."""
        rng = np.random.default_rng(None if seed is None else [SEED_SALT, seed])
        self.side = 1 if rng.random() < 0.5 else -1
        self._waypoint = 0

    def waypoints(self, goal: np.ndarray) -> list[np.ndarray]:
        """The waypoints ``(x, y)`` in metres for the chosen side, ending at ``goal``."""
        return [
            np.array(APPROACH),
            np.array([self.side * SIDE_X, SIDE_Y[0]]),
            np.array([self.side * SIDE_X, SIDE_Y[1]]),
            np.asarray(goal, dtype=np.float64),
        ]

    def act(self, obs: np.ndarray, env: Any = None) -> np.ndarray:
        """Force command in ``[-1, 1]^2`` (float32) from ``obs = [x, y, vx, vy, gx, gy]``
        (metres, m/s); ``env`` is not used."""
        obs = np.asarray(obs, dtype=np.float64)
        pos, vel, goal = obs[:2], obs[2:4], obs[4:6]
        points = self.waypoints(goal)
        while (
            self._waypoint < len(points) - 1
            and np.linalg.norm(points[self._waypoint] - pos) < WAYPOINT_RADIUS
        ):
            self._waypoint += 1
        target = points[self._waypoint]
        action = KP * (target - pos) - KD * vel
        return np.clip(action, -1.0, 1.0).astype(np.float32)


class StraightToGoalController:
    """Baseline: push straight at the goal (the average of the expert's two modes)."""

    def reset(self, seed: int | None = None) -> None:
        """Stateless; ``seed`` is ignored."""

    def act(self, obs: np.ndarray, env: Any = None) -> np.ndarray:
        """Proportional-derivative force towards the goal, in ``[-1, 1]^2``, float32."""
        obs = np.asarray(obs, dtype=np.float64)
        action = KP * (obs[4:6] - obs[:2]) - KD * obs[2:4]
        return np.clip(action, -1.0, 1.0).astype(np.float32)
