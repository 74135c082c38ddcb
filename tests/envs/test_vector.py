"""Env slots in worker processes (``sci_diffusion.envs.vector``): the same episodes as the
in-process loop, only the running slots stepped, worker failures raised with their traceback
and no process left behind.

Budget: ~20 s on 2 busy cores: the fork server's imports once (~2 s; later pools start in
~0.1 s), the rest episodes and first renders; the pools are few and small.
"""

from __future__ import annotations

import dataclasses
import functools
import multiprocessing as mp
import os
import signal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from support import detour_actions

import sci_diffusion.envs  # noqa: F401  (chooses the headless GL backend before mujoco loads)

pytest.importorskip("gymnasium")
pytest.importorskip("mujoco")

from sci_diffusion.envs.episodes import (
    Actor,
    Episode,
    ExpertActor,
    FunctionActor,
    play_episodes,
    state_of,
)
from sci_diffusion.envs.pixels import make_env, pixel_spec
from sci_diffusion.envs.registry import get_task
from sci_diffusion.envs.vector import (
    THREAD_VARS,
    StepRequest,
    VectorEnvs,
    WorkerError,
    run_sharded,
)
from sci_diffusion.io.errors import UserInputError


def _reach(obs: np.ndarray) -> np.ndarray:
    """Reacher: torques against the fingertip-to-target offset (never within 1 cm)."""
    return np.clip(-5 * obs[:, -2:], -1, 1)


class _StateActor(Actor):
    """``fn`` of the stacked state vectors (dict observations: their ``"state"``)."""

    def __init__(self, fn: Any) -> None:
        self.fn = fn

    def act(self, step: int, slots: list[int], obs: list[Any], envs: list[Any]) -> np.ndarray:
        return self.fn(np.stack([np.asarray(state_of(o), np.float32) for o in obs]))


def _assert_same(a: list[Episode], b: list[Episode]) -> None:
    """Bitwise the same episodes: outcome, records (observations, frames) and films."""
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        fields = ("seed", "success", "episode_return", "length", "failure", "final_success",
                  "first_success_step", "final_distance")  # fmt: skip
        assert [getattr(x, f) for f in fields] == [getattr(y, f) for f in fields]
        rx, ry = x.record(), y.record()
        for key in ("obs", "actions", "rewards"):
            np.testing.assert_array_equal(rx[key], ry[key])
        assert sorted(rx.get("images", {})) == sorted(ry.get("images", {}))
        for camera, frames in rx.get("images", {}).items():
            np.testing.assert_array_equal(frames, ry["images"][camera])
        assert (x.frames is None) == (y.frames is None)
        if x.frames is not None:
            np.testing.assert_array_equal(np.stack(x.frames), np.stack(y.frames))


def _no_children() -> None:
    assert mp.active_children() == []


# -- same episodes as in-process ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "fn", "pixels", "render"),
    [
        ("multimodal", detour_actions, False, 2),
        ("multimodal", detour_actions, True, 0),
        ("reacher", _reach, False, 0),
    ],
    ids=["multimodal-state", "multimodal-pixels", "reacher"],
)
def test_workers_give_bitwise_the_in_process_episodes(name, fn, pixels, render) -> None:
    task, seeds = get_task(name), [0, 1, 2, 3, 4]
    spec = pixel_spec(task) if pixels else None
    kwargs = dict(n_envs=3, record=True, render=render, pixels=spec, max_steps=60)
    local = play_episodes(task, _StateActor(fn), seeds, **kwargs)
    remote = play_episodes(task, _StateActor(fn), seeds, workers=2, **kwargs)
    _assert_same(local, remote)
    assert len({ep.length for ep in local}) > 1 or name == "reacher"  # some episodes waited
    if pixels:
        assert remote[0].record()["images"]["top"].shape == (remote[0].length + 1, 64, 64, 3)
    _no_children()


def test_only_running_slots_are_stepped_and_an_open_pool_serves_several_calls() -> None:
    task = get_task("multimodal")
    push = np.array([0.5, 0.3], np.float32)
    with VectorEnvs.for_task("multimodal", 3, workers=2) as vec:
        assert [w for w, _ in vec.placement] == [0, 0, 1]  # contiguous blocks
        (o0, f0), (o2, f2) = vec.reset([(0, 7, False), (2, 7, False)])
        np.testing.assert_array_equal(o0, o2)
        assert f0 is None and f2 is None
        first = vec.step([StepRequest(0, push, False, False)])[0]
        for _ in range(2):  # slot 2 waits while slot 0 moves on
            vec.step([StepRequest(0, push, False, False)])
        late = vec.step([StepRequest(2, push, False, True)])[0]
        np.testing.assert_array_equal(late.obs, first.obs)
        assert first.success is False and first.distance is None  # any-step rule, not done
        assert late.done and late.distance is not None  # final: judged and measured
        # the same pool, kept open, plays whole evaluations (workers= is then ignored)
        runs = [play_episodes(task, FunctionActor(detour_actions), [3, 4], envs=vec, max_steps=30)
                for _ in range(2)]  # fmt: skip
        summary = [[(ep.length, ep.episode_return, ep.success) for ep in r] for r in runs]
        assert summary[0] == summary[1]
        assert all(p.is_alive() for p in vec.processes)
    assert all(p.exitcode == 0 for p in vec.processes)
    _no_children()


def test_demo_collection_shards_seeds_over_workers(tmp_path: Path) -> None:
    from sci_diffusion.envs.demos import collect_demos, load_demos

    spec = pixel_spec(get_task("multimodal"))
    metas = {}
    for workers in (0, 2):
        metas[workers] = collect_demos("multimodal", 5, tmp_path / str(workers), seed=2,
                                       render=2, progress=False, pixels=spec,
                                       workers=workers)  # fmt: skip
    one, two = (load_demos(tmp_path / str(w), images=True) for w in (0, 2))
    np.testing.assert_array_equal(one.seeds, [2, 3, 4, 5, 6])
    for key in ("seeds", "success", "lengths"):
        np.testing.assert_array_equal(getattr(one, key), getattr(two, key))
    for i in range(len(one)):
        for key in ("obs", "actions", "rewards"):
            np.testing.assert_array_equal(getattr(one, key)[i], getattr(two, key)[i])
        np.testing.assert_array_equal(one.images[i]["top"], two.images[i]["top"])
    assert len(metas[2]["videos"]) == 2  # the first two episodes filmed, as in one process
    volatile = {"date", "collect_seconds"}
    assert {k: v for k, v in metas[0].items() if k not in volatile} == {
        k: v for k, v in metas[2].items() if k not in volatile}  # fmt: skip
    _no_children()


# -- refusals -----------------------------------------------------------------------------------


def test_actors_that_need_env_objects_and_unregistered_tasks_are_refused() -> None:
    task = get_task("multimodal")
    with pytest.raises(UserInputError, match="ExpertActor needs the env objects"):
        play_episodes(task, ExpertActor.for_task(task), [0], workers=1)
    changed = dataclasses.replace(task, make_env=lambda *a, **k: None)
    with pytest.raises(UserInputError, match="needs a registered task"):
        play_episodes(changed, FunctionActor(detour_actions), [0], workers=1)
    with pytest.raises(UserInputError, match="workers must be an integer >= 0"):
        play_episodes(task, FunctionActor(detour_actions), [0], workers=-1)
    _no_children()


# -- failures -----------------------------------------------------------------------------------


class _Broken:
    """An env whose ``step`` raises on its ``fail_at``-th call."""

    def __init__(self, fail_at: int) -> None:
        self.env, self.fail_at, self.calls = make_env("multimodal"), fail_at, 0
        self.action_space = self.env.action_space

    def reset(self, **kwargs: Any) -> Any:
        return self.env.reset(**kwargs)

    def step(self, action: Any) -> Any:
        self.calls += 1
        if self.calls >= self.fail_at:
            raise ValueError(f"broken on step {self.calls}")
        return self.env.step(action)

    def close(self) -> None:
        self.env.close()


def _broken(fail_at: int) -> _Broken:
    return _Broken(fail_at)


def _raise_for(x: int) -> int:
    if x == 3:
        raise KeyError(f"job {x} failed")
    return x * x


def test_worker_exceptions_arrive_with_their_traceback_and_close_every_worker() -> None:
    # while building the envs
    with pytest.raises(WorkerError, match="unknown task 'no-such-task'") as info:
        VectorEnvs(functools.partial(make_env, "no-such-task"), 4, workers=2)
    assert "Traceback (most recent call last)" in info.value.remote_traceback
    _no_children()
    # while stepping: the other worker (busy or not) is stopped too
    vec = VectorEnvs(functools.partial(_broken, 2), 2, workers=2)
    vec.reset([(0, 0, False), (1, 0, False)])
    action = np.zeros(2, np.float32)
    vec.step([StepRequest(1, action, False, False)])
    with pytest.raises(WorkerError, match="ValueError: broken on step 2") as info:
        vec.step([StepRequest(0, action, False, False), StepRequest(1, action, False, False)])
    assert info.value.worker == 1 and "env slots 1-1 of 2" in str(info.value)
    assert all(p.exitcode is not None for p in vec.processes)
    vec.close()  # idempotent
    _no_children()


def test_a_killed_worker_and_a_failing_job_are_reported() -> None:
    vec = VectorEnvs.for_task("multimodal", 2, workers=2)
    os.kill(vec.processes[1].pid, signal.SIGKILL)
    vec.processes[1].join()
    with pytest.raises(WorkerError, match=r"exited \(exit code -9\) without a reply"):
        vec.reset([(0, 0, False), (1, 0, False)])
    _no_children()
    done: list[int] = []
    assert run_sharded(_raise_for, [(1,), (2,)], 2, lambda j, r: done.append(j)) == [1, 4]
    assert sorted(done) == [0, 1]
    with pytest.raises(WorkerError, match="KeyError: 'job 3 failed'"):
        run_sharded(_raise_for, [(1,), (3,), (2,)], 2)
    _no_children()


def _env_var(name: str) -> str | None:
    return os.environ.get(name)


def test_workers_start_with_one_thread_and_leave_the_parent_environment_alone() -> None:
    before = {name: os.environ.get(name) for name in THREAD_VARS}
    seen = run_sharded(_env_var, [(name,) for name in THREAD_VARS], 1)
    assert seen == ["1"] * len(THREAD_VARS)
    assert {name: os.environ.get(name) for name in THREAD_VARS} == before
    _no_children()
