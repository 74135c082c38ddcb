"""Seeded evaluation episodes, run in lockstep batches with one batched policy call per replan.

``n_envs`` environments step together (a synchronous vector env whose finished members simply
idle: no auto-reset, so every episode is exactly the one its seed defines). Every
``n_action_steps`` env steps the policy plans a chunk for all still-running episodes at once —
batching the network call is where vectorization pays on CPU; the MuJoCo steps themselves are
microseconds.

Failure procedure: a planned chunk containing NaN/inf (the policy marks such rows, see
:meth:`~sci_diffusion.policy.policy.Policy.predict_chunk`) is never sent to the env. That
episode ends at once as a failure with ``failure = "non_finite_action"`` and is counted in
``non_finite_episodes``; the other episodes continue. Actions are always clipped to the env's
bounds before they are sent.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .policy import Policy
from .stats import wilson_interval


@dataclass
class Episode:
    seed: int
    success: bool = False
    episode_return: float = 0.0
    length: int = 0
    failure: str | None = None
    frames: list[np.ndarray] | None = field(default=None, repr=False)


def _history(queue: list[np.ndarray]) -> np.ndarray:
    return np.stack(queue)


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
    """
    render_mode = "rgb_array" if record > 0 else None
    envs = [env_task.make_env(env_seed, render_mode=render_mode, env_name=env_name)
            for _ in range(min(n_envs, len(seeds)))]  # fmt: skip
    episodes: list[Episode] = []
    try:
        for start in range(0, len(seeds), len(envs)):
            batch = seeds[start : start + len(envs)]
            episodes += _run_batch(policy, env_task, envs, batch, start, record, generator)
    finally:
        for env in envs:
            env.close()
    return episodes


def _run_batch(
    policy: Policy,
    env_task: Any,
    envs: list[Any],
    seeds: list[int],
    first_index: int,
    record: int,
    generator: torch.Generator,
) -> list[Episode]:
    episodes = [Episode(seed) for seed in seeds]
    histories: list[list[np.ndarray]] = []
    for k, (env, ep) in enumerate(zip(envs, episodes, strict=False)):
        obs, _ = env.reset(seed=ep.seed)
        histories.append([np.asarray(obs, dtype=np.float32)] * policy.n_obs_steps)
        if first_index + k < record:
            ep.frames = [env.render()]
    running = list(range(len(episodes)))
    plan: dict[int, np.ndarray] = {}
    for step in range(env_task.max_steps):
        if not running:
            break
        if step % policy.n_action_steps == 0:
            chunks = policy.predict_chunk(
                np.stack([_history(histories[k]) for k in running]), generator
            )
            plan = dict(zip(running, chunks, strict=True))
        finished = []
        for k in running:
            env, ep = envs[k], episodes[k]
            action = plan[k][step % policy.n_action_steps]
            if not np.isfinite(action).all():
                ep.failure = "non_finite_action"
                finished.append(k)
                continue
            obs, reward, terminated, truncated, info = env.step(action)
            ep.episode_return += float(reward)
            ep.length += 1
            histories[k] = [*histories[k][1:], np.asarray(obs, dtype=np.float32)]
            if ep.frames is not None:
                ep.frames.append(env.render())
            if env_task.success_any_step:
                ep.success = ep.success or env_task.success(env, info)
            done = terminated or truncated or ep.length >= env_task.max_steps
            if done and not env_task.success_any_step:
                ep.success = env_task.success(env, info)
            if done:
                finished.append(k)
        running = [k for k in running if k not in finished]
    return episodes


def chunk_latency_ms(
    policy: Policy, obs_history: np.ndarray, generator: torch.Generator, repeats: int = 20
) -> float:
    """Median wall time of one :meth:`Policy.predict_chunk` at batch 1, in milliseconds (after
    two warm-up calls)."""
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
    return [{k: v for k, v in asdict(ep).items() if k != "frames"} for ep in episodes]


def write_videos(episodes: list[Episode], out_dir: Path) -> list[str]:
    """Write the recorded episodes' frames as videos into ``out_dir``; returns file names."""
    from sci_diffusion.io.video import write_video

    names = []
    for ep in episodes:
        if ep.frames:
            tag = "success" if ep.success else "failure"
            names.append(write_video(out_dir, f"episode_seed{ep.seed}_{tag}.mp4", ep.frames).name)
    return names
