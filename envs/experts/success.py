"""When an episode counts as a success: one :class:`SuccessRule` per environment.

The rules are the only definition of success: the registry gives each task its rule
(``EnvTask.success``) and the one episode loop (:mod:`sci_diffusion.envs.episodes`) applies it
for demonstration collection, policy evaluation and the expert measurements alike.

* :data:`MULTIMODAL_SUCCESS`: the env's ``info["is_success"]`` (puck centre within 0.05 m of
  the goal) at any step; the env terminates on success, so that step is the last one.
* :data:`REACHER_SUCCESS`: :func:`reacher_success` after the last step.
* :data:`PUSHER_SUCCESS`: :func:`pusher_success` after the last step.
* :data:`METAWORLD_SUCCESS`: the env's ``info["success"]`` at any step (the benchmark
  convention; see :mod:`sci_diffusion.envs.experts.metaworld_experts`).

The Reacher and Pusher predicates read the privileged MuJoCo state of a (possibly wrapped)
gymnasium env.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "METAWORLD_SUCCESS",
    "MULTIMODAL_SUCCESS",
    "PUSHER_SUCCESS",
    "PUSHER_SUCCESS_DIST",
    "REACHER_SUCCESS",
    "REACHER_SUCCESS_DIST",
    "SuccessRule",
    "pusher_goal_distance",
    "pusher_success",
    "reacher_distance",
    "reacher_success",
]

REACHER_SUCCESS_DIST = 0.01
"""Reacher-v5: largest fingertip-to-target distance (m, in the arm's plane) counted as success,
evaluated at the end of the 50-step episode (so "reached and stayed there", not "passed
through"). 0.01 m is the radius of the fingertip sphere (the target sphere's is 0.009 m): within
it the fingertip visibly covers the target centre. It is about 5 % of the 0.21 m arm reach, and
far above what the operational-space expert leaves (< 1e-5 m)."""

PUSHER_SUCCESS_DIST = 0.08
"""Pusher-v5: largest puck-centre-to-goal distance (m, in the table plane) counted as success,
evaluated at the end of the episode. 0.08 m is the radius of the red goal disc drawn on the table
(``goal`` geom, size 0.08): success means the puck's centre lies on the goal marker. The puck
itself has radius 0.05 m; initial puck-goal distances are 0.17–0.36 m."""


def _unwrapped(env: Any) -> Any:
    return getattr(env, "unwrapped", env)


def reacher_distance(env: Any) -> float:
    """Fingertip-to-target distance (m) in the plane of a ``Reacher-v5`` env."""
    data = _unwrapped(env).data
    return float(np.linalg.norm(data.body("fingertip").xpos[:2] - data.body("target").xpos[:2]))


def reacher_success(env: Any) -> bool:
    """Whether the fingertip is within :data:`REACHER_SUCCESS_DIST` of the target now."""
    return reacher_distance(env) <= REACHER_SUCCESS_DIST


def pusher_goal_distance(env: Any) -> float:
    """Puck-centre-to-goal distance (m) in the table plane of a ``Pusher-v5`` env."""
    data = _unwrapped(env).data
    return float(np.linalg.norm(data.body("object").xpos[:2] - data.body("goal").xpos[:2]))


def pusher_success(env: Any) -> bool:
    """Whether the puck centre is within :data:`PUSHER_SUCCESS_DIST` of the goal now."""
    return pusher_goal_distance(env) <= PUSHER_SUCCESS_DIST


@dataclass(frozen=True)
class SuccessRule:
    """When an episode of one environment counts as a success.

    Attributes:
        check: ``check(env, info)`` → whether the state after a step is a success state
            (``info``: that step's info dict).
        any_step: True: the episode succeeds if ``check`` holds after any step; False: only
            the state after the last step counts ("reached and stayed there").
        description: one line for documents and reports.
        distance: ``distance(env, info)`` → the distance (m) that ``check`` thresholds, when
            there is one (reported by the expert measurements), else None.
    """

    check: Callable[[Any, dict], bool]
    any_step: bool
    description: str
    distance: Callable[[Any, dict], float] | None = None

    def __call__(self, env: Any, info: dict) -> bool:
        """``check(env, info)`` as a bool (the rule is also the old ``EnvTask.success``
        callable)."""
        return bool(self.check(env, info))


MULTIMODAL_SUCCESS = SuccessRule(
    check=lambda env, info: bool(info.get("is_success", False)),
    any_step=True,  # the env terminates on success: the last step is the one
    description='info["is_success"] (puck centre within 0.05 m of the goal); the episode '
    "terminates on success",
    distance=lambda env, info: float(info["distance"]),
)
REACHER_SUCCESS = SuccessRule(
    check=lambda env, info: reacher_success(env),
    any_step=False,
    description=f"fingertip within {REACHER_SUCCESS_DIST} m of the target after the last step",
    distance=lambda env, info: reacher_distance(env),
)
PUSHER_SUCCESS = SuccessRule(
    check=lambda env, info: pusher_success(env),
    any_step=False,
    description=f"puck centre within {PUSHER_SUCCESS_DIST} m of the goal after the last step",
    distance=lambda env, info: pusher_goal_distance(env),
)
METAWORLD_SUCCESS = SuccessRule(
    check=lambda env, info: bool(info.get("success", False)),
    any_step=True,
    description='info["success"] at any step (Meta-World benchmark convention)',
)
