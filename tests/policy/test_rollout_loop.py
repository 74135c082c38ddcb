"""Policy evaluation (``policy.rollout.run_episodes``) is the one episode loop with the policy
as its batched actor: a trivial act function gives the same episodes either way, and the
receding-horizon bookkeeping (histories, one batched call per replan) is the documented one.
Budget: ~2 s (multimodal and Reacher episodes, no network)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from support import detour_actions

import sci_diffusion.envs  # noqa: F401  (chooses the headless GL backend before mujoco loads)

pytest.importorskip("gymnasium")
pytest.importorskip("mujoco")

from sci_diffusion.envs.episodes import FunctionActor, play_episodes
from sci_diffusion.envs.registry import get_task
from sci_diffusion.policy.rollout import (
    PolicyActor,
    episode_table,
    run_episodes,
    summarize,
)


def _straight(obs: np.ndarray) -> np.ndarray:
    """Multimodal: a PD push straight at the goal (stuck at the block); Reacher: torques
    against the fingertip-to-target offset (the last two entries; never within 1 cm)."""
    if obs.shape[1] == 6:
        return np.clip(10 * (obs[:, 4:6] - obs[:, :2]) - 0.5 * obs[:, 2:4], -1, 1)
    return np.clip(-5 * obs[:, -2:], -1, 1)


class _ActPolicy:
    """A :class:`Policy` stand-in whose chunk is ``fn`` of the newest observation, repeated;
    it logs every call's batch of histories."""

    def __init__(self, fn, n_obs_steps: int = 1, n_action_steps: int = 1, horizon: int = 1):
        self.fn, self.calls = fn, []
        self.n_obs_steps, self.n_action_steps, self.horizon = n_obs_steps, n_action_steps, horizon

    def predict_chunk(self, obs_history: np.ndarray, generator: torch.Generator) -> np.ndarray:
        self.calls.append(obs_history.copy())
        action = self.fn(obs_history[:, -1]).astype(np.float32)
        return np.repeat(action[:, None], self.horizon, axis=1)


@pytest.mark.parametrize(
    ("name", "fn", "successes"),
    [("multimodal", _straight, 0), ("multimodal", detour_actions, 5), ("reacher", _straight, 0)],
)
def test_trivial_policy_through_rollout_matches_the_shared_loop(name, fn, successes) -> None:
    task, seeds = get_task(name), [0, 1, 2, 3, 4]
    gen = torch.Generator().manual_seed(0)
    evaluated = run_episodes(_ActPolicy(fn), task, seeds, gen, n_envs=2, progress=False)
    shared = play_episodes(task, FunctionActor(fn), seeds, n_envs=2)
    assert episode_table(evaluated) == episode_table(shared)
    assert summarize(evaluated) == summarize(shared)
    assert [ep.final_distance for ep in evaluated] == [ep.final_distance for ep in shared]
    assert sum(ep.success for ep in shared) == successes


def test_policy_actor_plans_every_n_action_steps_from_the_last_observations() -> None:
    task, seeds = get_task("multimodal"), [5, 6, 7]
    policy = _ActPolicy(_straight, n_obs_steps=2, n_action_steps=3, horizon=4)
    actor = PolicyActor(policy, torch.Generator().manual_seed(0))
    eps = play_episodes(task, actor, seeds, n_envs=3, max_steps=7, record=True)
    assert len(policy.calls) == 3  # steps 0, 3, 6: one batched call for all running envs
    obs = np.stack([np.stack(ep.obs) for ep in eps])  # (3, 8, 6)
    for call, step in zip(policy.calls, (0, 3, 6), strict=True):
        assert call.shape == (3, 2, 6)
        expected = obs[:, [max(step - 1, 0), step]]  # the first observation repeated at 0
        np.testing.assert_array_equal(call, expected)
