"""Measure the scripted experts' success rates.

Usage::

    OMP_NUM_THREADS=1 .venv/bin/python scripts/measure_experts.py [--out results.json]
        [--episodes 100] [--mw-episodes 50] [--pusher-steps 100 300] [--only reacher pusher ...]

Reacher-v5 and Pusher-v5: seeds 0..N-1 (``env.reset(seed=i)``), success from
``sci_diffusion.envs.experts.success`` at the end of the episode. Pusher is measured at its
default 100-step horizon and at the longer horizons given by ``--pusher-steps``.
Meta-World (MT1, env seeded 0, episode i reset with seed i): success = ``info["success"]`` at any
step within the env's ``max_path_length`` (the benchmark convention); the success rate at the
final step and the mean first-success step are reported too.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from typing import Any

import numpy as np

os.environ.setdefault("OMP_NUM_THREADS", "1")

METAWORLD_TASKS = (
    "reach-v3",
    "push-v3",
    "pick-place-v3",
    "drawer-open-v3",
    "door-open-v3",
    "button-press-topdown-v3",
)


def measure_reacher(episodes: int) -> dict[str, Any]:
    """Reacher-v5, 50 steps, success at the final step."""
    import gymnasium as gym

    from sci_diffusion.envs.experts.reacher import ReacherExpert
    from sci_diffusion.envs.experts.success import reacher_distance, reacher_success

    env = gym.make("Reacher-v5")
    return _final_step_rates("Reacher-v5", env, ReacherExpert(), episodes,
                             reacher_success, reacher_distance)  # fmt: skip


def _final_step_rates(
    label: str, env: Any, expert: Any, episodes: int, success: Any, distance: Any
) -> dict[str, Any]:
    """Roll ``expert`` for seeds 0..episodes-1; success and distance judged at the last step."""
    ok, dist, t0, steps = [], [], time.perf_counter(), 0
    for seed in range(episodes):
        obs, _ = env.reset(seed=seed)
        expert.reset(seed)
        done = False
        while not done:
            obs, _, term, trunc, _ = env.step(expert.act(obs, env))
            steps += 1
            done = term or trunc
        ok.append(success(env))
        dist.append(distance(env))
    return {
        "task": label,
        "episodes": episodes,
        "max_steps": int(env.spec.max_episode_steps),
        "success_rate": float(np.mean(ok)),
        "failed_seeds": [s for s, o in enumerate(ok) if not o],
        "final_dist_mean_m": float(np.mean(dist)),
        "final_dist_max_m": float(np.max(dist)),
        "seconds": time.perf_counter() - t0,
        "steps": steps,
    }


def measure_pusher(episodes: int, max_steps: int) -> dict[str, Any]:
    """Pusher-v5 with a ``max_steps`` horizon, success at the final step."""
    import gymnasium as gym

    from sci_diffusion.envs.experts.pusher import PusherExpert
    from sci_diffusion.envs.experts.success import pusher_goal_distance, pusher_success

    env = gym.make("Pusher-v5", max_episode_steps=max_steps)
    return _final_step_rates(f"Pusher-v5 ({max_steps} steps)", env, PusherExpert(), episodes,
                             pusher_success, pusher_goal_distance)  # fmt: skip


def measure_metaworld(name: str, episodes: int) -> dict[str, Any]:
    """One Meta-World MT1 task; success at any step (benchmark convention) and at the end."""
    from sci_diffusion.envs.experts.metaworld_experts import MetaWorldExpert, make_metaworld_env

    env, expert = make_metaworld_env(name, seed=0), MetaWorldExpert(name)
    horizon = int(env.unwrapped.max_path_length)
    any_ok, final_ok, first, t0, steps = [], [], [], time.perf_counter(), 0
    for seed in range(episodes):
        obs, _ = env.reset(seed=seed)
        expert.reset(seed)
        hit, k, done, info = None, 0, False, {}
        while not done:
            obs, _, term, trunc, info = env.step(expert.act(obs, env))
            if info["success"] and hit is None:
                hit = k
            k += 1
            done = term or trunc
        steps += k
        any_ok.append(hit is not None)
        final_ok.append(bool(info["success"]))
        if hit is not None:
            first.append(hit)
    return {
        "task": name,
        "episodes": episodes,
        "max_steps": horizon,
        "success_rate": float(np.mean(any_ok)),
        "final_step_success_rate": float(np.mean(final_ok)),
        "failed_seeds": [s for s, o in enumerate(any_ok) if not o],
        "mean_first_success_step": float(np.mean(first)) if first else None,
        "seconds": time.perf_counter() - t0,
        "steps": steps,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=100, help="Reacher/Pusher episodes")
    parser.add_argument("--mw-episodes", type=int, default=50, help="episodes per MW task")
    parser.add_argument("--pusher-steps", type=int, nargs="+", default=[100, 300])
    parser.add_argument("--only", nargs="+", default=None, help="reacher, pusher, or MW names")
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")

    want = set(args.only) if args.only else None
    rows: list[dict[str, Any]] = []
    if want is None or "reacher" in want:
        rows.append(measure_reacher(args.episodes))
    if want is None or "pusher" in want:
        rows.extend(measure_pusher(args.episodes, s) for s in args.pusher_steps)
    for name in METAWORLD_TASKS:
        if want is None or name in want:
            rows.append(measure_metaworld(name, args.mw_episodes))

    print(f"{'task':<26}{'eps':>5}{'steps':>7}{'success':>9}{'final':>7}{'s':>7}  failed seeds")
    for r in rows:
        final = r.get("final_step_success_rate", r["success_rate"])
        failed = ",".join(map(str, r["failed_seeds"][:15]))
        failed += "…" if len(r["failed_seeds"]) > 15 else ""
        print(
            f"{r['task']:<26}{r['episodes']:>5}{r['max_steps']:>7}{r['success_rate']:>9.2f}"
            f"{final:>7.2f}{r['seconds']:>7.1f}  {failed}"
        )
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
