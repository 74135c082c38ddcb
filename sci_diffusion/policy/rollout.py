"""Seeded evaluation episodes: the policy as the batched actor of the one episode loop.

:func:`run_episodes` hands the policy to :func:`sci_diffusion.envs.episodes.play_episodes`:
``n_envs`` environments step in lockstep (finished members idle: no auto-reset, so every
episode is exactly the one its seed defines), and every ``n_action_steps`` env steps the
policy plans a chunk for all still-running episodes in one call — batching the network call
is where vectorization pays on CPU; the MuJoCo steps themselves are microseconds. Success is
the task's one rule (``EnvTask.success``), the same that judges the demonstrations.

With ``workers=k`` the envs (their physics and, for pixel observations, their rendering) run
in ``k`` worker processes (:mod:`sci_diffusion.envs.vector`) while the policy plans here: the
same episodes, sooner when rendering dominates (``sci_diffusion.bench.rollouts`` measures it).

Failure procedure: a planned chunk containing NaN/inf (the policy marks such rows, see
:meth:`~sci_diffusion.policy.policy.Policy.predict_chunk`) is never sent to the env. That
episode ends at once as a failure with ``failure = "non_finite_action"`` and is counted in
``non_finite_episodes``; the other episodes continue. Actions are always clipped to the env's
bounds before they are sent.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sci_diffusion.envs.episodes import Actor, Episode, observation_copy, play_episodes

from .policy import Policy, stack_observations
from .stats import wilson_interval

__all__ = [
    "Episode",
    "PolicyActor",
    "chunk_latency_ms",
    "episode_table",
    "run_episodes",
    "summarize",
    "write_videos",
]

EPISODE_FIELDS = ("seed", "success", "episode_return", "length", "failure")
"""The per-episode record of ``episodes.json`` (:func:`episode_table`)."""


class PolicyActor(Actor):
    """Receding horizon for a lockstep batch: each slot keeps its last ``n_obs_steps``
    observations (the first repeated at the start); every ``n_action_steps`` steps one
    :meth:`Policy.predict_chunk` call plans for all running slots, whose chunks are then
    executed one action per step."""

    def __init__(self, policy: Policy, generator: torch.Generator) -> None:
        self.policy, self.generator = policy, generator
        self.histories: dict[int, list[Any]] = {}
        self.plan: dict[int, np.ndarray] = {}

    def reset(self, slot: int, seed: int, obs: Any) -> None:
        self.histories[slot] = [observation_copy(obs)] * self.policy.n_obs_steps

    def act(self, step: int, slots: list[int], obs: list[Any], envs: list[Any]) -> np.ndarray:
        if step > 0:  # the observation after the previous step joins the history
            for k, o in zip(slots, obs, strict=True):
                self.histories[k] = [*self.histories[k][1:], observation_copy(o)]
        n = self.policy.n_action_steps
        if step % n == 0:
            history = stack_observations([self.histories[k] for k in slots])
            chunks = self.policy.predict_chunk(history, self.generator)
            self.plan = dict(zip(slots, chunks, strict=True))
        return np.stack([self.plan[k][step % n] for k in slots])


def run_episodes(
    policy: Policy,
    env_task: Any,
    seeds: list[int],
    generator: torch.Generator,
    *,
    n_envs: int = 10,
    env_name: str | None = None,
    env_seed: int = 0,
    record: int = 0,
    progress: bool = True,
    workers: int = 0,
    pixels: Any = None,
) -> list[Episode]:
    """Run one episode per seed (``env.reset(seed=s)``) with ``policy``.

    Args:
        env_task: an :class:`~sci_diffusion.envs.registry.EnvTask` (env factory, horizon,
            success rule).
        seeds: episode seeds, one episode each, in order.
        generator: the policy's sampling generator (consumed in a fixed order: deterministic).
        n_envs: environments stepped in lockstep (the batch of each policy call).
        env_name: Meta-World task name (``task=metaworld`` only).
        env_seed: construction seed of the env (Meta-World's MT1 task set).
        record: the first ``record`` episodes keep their rendered frames.
        progress: show progress over the episodes (:mod:`sci_diffusion.io.progress`).
        workers: 0: the envs step in this process; ``k >= 1``: in ``k`` worker processes
            (bitwise the same episodes; ``play_episodes(workers=...)``).
        pixels: a :class:`~sci_diffusion.envs.pixels.PixelSpec` for dict (camera)
            observations, passed on to ``play_episodes``.
    """
    return play_episodes(env_task, PolicyActor(policy, generator), seeds, n_envs=n_envs,
                         env_name=env_name, env_seed=env_seed, render=record,
                         progress=progress, desc="eval episodes", workers=workers,
                         pixels=pixels)  # fmt: skip


def chunk_latency_ms(
    policy: Policy, obs_history: Any, generator: torch.Generator, repeats: int = 20
) -> float:
    """Median wall time of one :meth:`Policy.predict_chunk` at batch 1, in milliseconds (after
    two warm-up calls)."""
    if isinstance(obs_history, dict):  # a pixel policy's {"state": (To, Do), camera: frames}
        one: Any = {k: np.asarray(v)[None] for k, v in obs_history.items()}
    else:
        one = np.asarray(obs_history, dtype=np.float32)[None]
    for _ in range(2):
        policy.predict_chunk(one, generator)
    times = []
    for _ in range(repeats):
        if policy.device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        policy.predict_chunk(one, generator)
        if policy.device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1000.0)


def summarize(episodes: list[Episode]) -> dict[str, Any]:
    """Success rate with its Wilson 95% interval, mean return and episode length."""
    n = len(episodes)
    successes = sum(ep.success for ep in episodes)
    low, high = wilson_interval(successes, n)
    return {
        "episodes": n,
        "successes": successes,
        "success_rate": successes / n,
        "success_ci95": [low, high],
        "success_ci95_method": "Wilson score interval",
        "mean_return": float(np.mean([ep.episode_return for ep in episodes])),
        "mean_episode_length": float(np.mean([ep.length for ep in episodes])),
        "non_finite_episodes": sum(ep.failure == "non_finite_action" for ep in episodes),
    }


def episode_table(episodes: list[Episode]) -> list[dict[str, Any]]:
    """Per-episode records (seed, success, return, length, failure) without frames."""
    return [{k: getattr(ep, k) for k in EPISODE_FIELDS} for ep in episodes]


def write_videos(episodes: list[Episode], out_dir: Path) -> list[str]:
    """Write the recorded episodes' frames as videos into ``out_dir``; returns file names."""
    from sci_diffusion.io.video import write_video

    names = []
    for ep in episodes:
        if ep.frames:
            tag = "success" if ep.success else "failure"
            names.append(write_video(out_dir, f"episode_seed{ep.seed}_{tag}.mp4", ep.frames).name)
    return names
