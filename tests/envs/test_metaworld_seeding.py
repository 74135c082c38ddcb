"""Meta-World episodes are the ones their reset seeds define, whatever the envs' history."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

pytest.importorskip("metaworld")

from sci_diffusion.envs.episodes import ExpertActor, play_episodes
from sci_diffusion.envs.registry import get_task

NAME = "push-back-v3"
SETUP = [4, 5, 6, 36, 37, 38]  # object and goal positions in the observation


def _setups(n_envs: int, seeds: list[int], env_seed: int = 0) -> list[tuple]:
    task = get_task("metaworld")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        envs = [task.make_env(env_seed, env_name=NAME) for _ in range(n_envs)]
        out = []
        for start in range(0, len(seeds), n_envs):
            for k, seed in enumerate(seeds[start : start + n_envs]):
                obs, _ = envs[k].reset(seed=seed)
                out.append(tuple(np.round(obs[SETUP], 6)))
        for env in envs:
            env.close()
    return out


def test_lockstep_envs_get_distinct_configurations():
    """Before, 25 envs built with one seed and reset together all drew the same MT1
    configuration: a 50-episode evaluation saw 2. Now the reset seed picks it."""
    seeds = list(range(100000, 100050))
    lockstep = _setups(25, seeds, env_seed=100000)
    assert len(set(lockstep)) >= 25
    assert lockstep == _setups(1, seeds, env_seed=100000)  # whatever n_envs


def test_same_seed_same_episode_whatever_came_before():
    assert _setups(1, [7, 3, 7])[0] == _setups(1, [7, 3, 7])[2] == _setups(1, [7])[0]
    assert _setups(1, [7])[0] != _setups(1, [8])[0]


def test_expert_episodes_equal_for_one_and_three_envs():
    task = get_task("metaworld")
    seeds = [0, 1, 2, 3]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        runs = [play_episodes(task, ExpertActor.for_task(task, n, env_name=NAME), seeds,
                              n_envs=n, env_name=NAME, max_steps=60) for n in (1, 3)]  # fmt: skip
    one, three = ([(ep.success, ep.first_success_step, ep.episode_return) for ep in r]
                  for r in runs)  # fmt: skip
    assert one == three


def test_the_packages_own_draw_is_kept_behind_a_flag():
    from sci_diffusion.envs.experts.metaworld_experts import make_metaworld_env

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        env = make_metaworld_env(NAME, 0, task_from_seed=False)
    assert type(env).__name__ != "SeededTaskWrapper"
    env.close()
