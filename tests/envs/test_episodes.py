"""The one episode loop (``sci_diffusion.envs.episodes``) and the success rule per env.

Budget: a few seconds on 2 cores (multimodal episodes take ~0.1 s each; the rule tests use a
tiny fake env)."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import sci_diffusion.envs  # noqa: F401  (chooses the headless GL backend before mujoco loads)
from sci_diffusion.envs.episodes import (
    Actor,
    ExpertActor,
    play_episodes,
)
from sci_diffusion.envs.experts.success import SuccessRule

ROOT = Path(__file__).resolve().parents[2]
SEEDS = [3, 4, 5, 6, 7, 8]


def _script(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- a tiny env: position x on a line, success when x crosses 1 -----------------------------


class _Space:
    low, high, shape = np.array([-1.0]), np.array([1.0]), (1,)


class _LineEnv:
    """x += action; obs = [x]; terminates when ``terminate_at`` is crossed (if set)."""

    action_space = _Space()

    def __init__(self, terminate_at: float | None = None, horizon: int = 100) -> None:
        self.terminate_at, self.horizon = terminate_at, horizon
        self.executed: list[np.ndarray] = []
        self.closed = False

    def reset(self, seed: int | None = None) -> tuple[np.ndarray, dict]:
        self.x, self.t = float(seed or 0) / 10, 0
        return np.array([self.x]), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        self.executed.append(np.array(action))
        self.x += float(action[0])
        self.t += 1
        terminated = self.terminate_at is not None and self.x >= self.terminate_at
        return np.array([self.x]), -abs(1 - self.x), terminated, self.t >= self.horizon, {}

    def render(self) -> np.ndarray:
        return np.full((2, 2, 3), self.t, np.uint8)

    def close(self) -> None:
        self.closed = True


@dataclass(frozen=True)
class _Task:
    max_steps: int
    success: SuccessRule
    terminate_at: float | None = None

    def make_env(self, seed: int, render_mode: str | None = None, env_name: str | None = None):
        return _LineEnv(self.terminate_at)


def _above_one(any_step: bool) -> SuccessRule:
    return SuccessRule(
        check=lambda env, info: env.x >= 1.0,
        any_step=any_step,
        description="x >= 1",
        distance=lambda env, info: abs(1.0 - env.x),
    )


def _schedule(actions: list[float]) -> Actor:
    """The same action sequence for every episode, indexed by the batch step."""

    class Scheduled(Actor):
        def act(self, step, slots, obs, envs):
            return np.full((len(slots), 1), actions[step], np.float32)

    return Scheduled()


def test_any_step_rule_counts_a_passing_success_last_step_rule_does_not() -> None:
    # x: 0 -> 0.6 -> 1.2 (success) -> 0.7 -> 0.2 (not at the end)
    actions = [0.6, 0.6, -0.5, -0.5]
    ep_any = play_episodes(_Task(4, _above_one(True)), _schedule(actions), [0])[0]
    assert ep_any.success and ep_any.first_success_step == 1 and not ep_any.final_success
    assert ep_any.length == 4 and ep_any.final_distance == pytest.approx(0.8)
    ep_last = play_episodes(_Task(4, _above_one(False)), _schedule(actions), [0])[0]
    assert not ep_last.success and ep_last.first_success_step is None
    ep_end = play_episodes(_Task(2, _above_one(False)), _schedule(actions), [0])[0]
    assert ep_end.success and ep_end.final_success and ep_end.length == 2  # max_steps=2


def test_lockstep_finished_episodes_wait_and_non_finite_actions_never_reach_the_env() -> None:
    task = _Task(10, _above_one(True), terminate_at=1.0)
    seen: list[list[int]] = []

    class Recorder(Actor):
        def act(self, step, slots, obs, envs):
            seen.append(list(slots))
            out = np.full((len(slots), 1), 0.25, np.float32)
            out[[k == 2 for k in slots]] = np.nan  # slot 2: a broken plan
            return out

    envs = [_LineEnv(1.0) for _ in range(3)]
    # seeds 5, 0, 9 start at x = 0.5, 0.0, 0.9: two and four steps to x >= 1, slot 2 broken
    eps = play_episodes(task, Recorder(), [5, 0, 9], envs=envs, record=True, render=2)
    assert [ep.length for ep in eps] == [2, 4, 0]
    assert [ep.success for ep in eps] == [True, True, False]
    assert eps[2].failure == "non_finite_action" and not envs[2].executed
    assert seen == [[0, 1, 2], [0, 1], [1], [1]]  # one call per step for the running ones
    assert [len(f) for f in (eps[0].frames, eps[1].frames)] == [3, 5] and eps[2].frames is None
    record = eps[1].record()
    assert record["obs"].shape == (5, 1) and record["actions"].shape == (4, 1)
    assert record["obs"].dtype == np.float32 and record["rewards"].dtype == np.float32
    assert not any(env.closed for env in envs)  # given envs stay open


def test_action_noise_perturbs_executed_actions_only_and_is_seeded() -> None:
    task = _Task(5, _above_one(False))
    runs = []
    for _ in range(2):
        env = _LineEnv()
        ep = play_episodes(task, _schedule([0.1] * 5), [7], envs=[env], record=True,
                           action_noise=0.5)[0]  # fmt: skip
        runs.append((np.stack(env.executed), ep.record()))
    (executed, record), (executed2, _) = runs
    np.testing.assert_array_equal(record["actions"], np.full((5, 1), 0.1, np.float32))
    assert not np.allclose(executed, 0.1) and np.all(np.abs(executed) <= 1)
    np.testing.assert_array_equal(executed, executed2)
    with pytest.raises(ValueError, match="action_noise must be >= 0"):
        play_episodes(task, _schedule([0.1]), [0], action_noise=float("nan"))


# -- the real tasks --------------------------------------------------------------------------


gym = pytest.importorskip("gymnasium")
pytest.importorskip("mujoco")


def test_registry_rules_are_the_documented_ones() -> None:
    from sci_diffusion.envs.registry import ENV_TASKS

    any_step = {name: task.success.any_step for name, task in ENV_TASKS.items()}
    assert any_step == {"multimodal": True, "reacher": False, "pusher": False, "metaworld": True}
    assert all(task.success_any_step == task.success.any_step for task in ENV_TASKS.values())


def test_demos_and_expert_measurements_agree(tmp_path: Path) -> None:
    """Same seeds, same episodes: demonstration collection, ``measure_multimodal`` and
    ``measure_experts`` give the same successes and lengths, and the success flags stored in
    the demonstrations are the loop's."""
    from sci_diffusion.envs.demos import collect_demos, load_demos

    collect_demos("multimodal", len(SEEDS), tmp_path, seed=SEEDS[0], progress=False)
    demos = load_demos(tmp_path)
    from sci_diffusion.envs.experts.multimodal import MultimodalReachExpert

    measured = _script("measure_multimodal").run(MultimodalReachExpert(), SEEDS[-1] + 1)
    measured = measured[SEEDS[0] :]
    row = _script("measure_experts").measure("multimodal", SEEDS[-1] + 1)
    assert [ep.seed for ep in measured] == list(demos.seeds) == SEEDS
    assert [ep.success for ep in measured] == demos.success.tolist()
    assert [ep.length for ep in measured] == demos.lengths.tolist()
    failed = {s for s in row["failed_seeds"] if s >= SEEDS[0]}
    assert failed == {int(s) for s, ok in zip(demos.seeds, demos.success, strict=True) if not ok}
    # The flag is the registry rule applied to the stored final observation: within 0.05 m.
    final = np.stack([o[-1] for o in demos.obs])
    within = np.linalg.norm(final[:, :2] - final[:, 4:6], axis=1) < 0.05
    assert within.tolist() == demos.success.tolist()


def test_lockstep_batches_give_the_sequential_episodes() -> None:
    from sci_diffusion.envs.registry import get_task

    task = get_task("multimodal")
    one = play_episodes(task, ExpertActor.for_task(task), SEEDS, record=True)
    three = play_episodes(task, ExpertActor.for_task(task, n_envs=3), SEEDS, n_envs=3, record=True)
    for a, b in zip(one, three, strict=True):
        np.testing.assert_array_equal(a.record()["obs"], b.record()["obs"])
        assert (a.seed, a.success, a.length, a.episode_return) == (
            b.seed, b.success, b.length, b.episode_return)  # fmt: skip


def test_max_steps_overrides_the_horizon() -> None:
    from sci_diffusion.envs.registry import get_task

    task = get_task("multimodal")
    eps = play_episodes(task, ExpertActor.for_task(task), [0], max_steps=5)
    assert eps[0].length == 5 and not eps[0].success
