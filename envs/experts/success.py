"""Success predicates for the scripted-expert tasks, shared by the tests and by evaluation.

Each predicate reads the privileged MuJoCo state of a (possibly wrapped) gymnasium env and is
meant to be evaluated once, at the end of an episode. Meta-World tasks need no predicate here:
their success is the env's own ``info["success"]`` (see
:mod:`sci_diffusion.envs.experts.metaworld_experts`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "PUSHER_SUCCESS_DIST",
    "REACHER_SUCCESS_DIST",
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
