"""Measure the scripted experts' success rates.

Usage::

    OMP_NUM_THREADS=1 .venv/bin/python scripts/measure_experts.py [--out results.json]
        [--episodes 100] [--mw-episodes 50] [--pusher-steps 100 300] [--only reacher pusher ...]

Every episode runs through the one episode loop (``sci_diffusion.envs.episodes``) with the
task's one success rule from the registry (``sci_diffusion.envs.experts.success``), the same
loop and rule that demonstration collection and policy evaluation use.
Reacher-v5 and Pusher-v5: seeds 0..N-1 (``env.reset(seed=i)``), success judged after the last
step. Pusher is measured at its default 100-step horizon and at the longer horizons given by
``--pusher-steps``. Meta-World (MT1, env seeded 0, episode i reset with seed i): success =
``info["success"]`` at any step within the env's ``max_path_length`` (the benchmark
convention); the success rate at the final step and the mean first-success step are reported
too.

All 50 Meta-World tasks (MT50, the names of Meta-World's own registry), ``--jobs`` worker
processes, the table written into docs/robotics.md::

    OMP_NUM_THREADS=1 .venv/bin/python scripts/measure_experts.py --mt50 --jobs 2 \
        [--mw-episodes 50] [--out mt50.json] [--doc docs/robotics.md]

is ``python -m sci_diffusion.bench.metaworld experts`` (:func:`measure_experts` there).
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


def measure(
    task: str, episodes: int, max_steps: int | None = None, env_name: str | None = None
) -> dict[str, Any]:
    """The expert of registry task ``task`` on seeds 0..episodes-1 (one env, env seed 0),
    judged by the task's success rule; ``max_steps`` overrides the task's horizon."""
    from sci_diffusion.envs.episodes import ExpertActor, play_episodes
    from sci_diffusion.envs.registry import get_task

    spec = get_task(task)
    t0 = time.perf_counter()
    played = play_episodes(spec, ExpertActor.for_task(spec, env_name=env_name),
                           range(episodes), env_name=env_name, max_steps=max_steps,
                           progress=True, desc=f"expert {env_name or task}")  # fmt: skip
    seconds = time.perf_counter() - t0
    horizon = spec.max_steps if max_steps is None else max_steps
    row: dict[str, Any] = {
        "task": env_name or (spec.env_id if max_steps is None else f"{spec.env_id} "
                             f"({max_steps} steps)"),
        "episodes": episodes,
        "max_steps": horizon,
        "success_rate": float(np.mean([ep.success for ep in played])),
    }
    if spec.success.any_step:
        row["final_step_success_rate"] = float(np.mean([ep.final_success for ep in played]))
    row["failed_seeds"] = [ep.seed for ep in played if not ep.success]
    if spec.success.distance is not None:
        distances = [ep.final_distance for ep in played]
        row["final_dist_mean_m"] = float(np.mean(distances))
        row["final_dist_max_m"] = float(np.max(distances))
    if spec.success.any_step:
        first = [ep.first_success_step for ep in played if ep.first_success_step is not None]
        row["mean_first_success_step"] = float(np.mean(first)) if first else None
    row["seconds"] = seconds
    row["steps"] = int(sum(ep.length for ep in played))
    return row


def measure_reacher(episodes: int) -> dict[str, Any]:
    """Reacher-v5, 50 steps, success at the final step."""
    return measure("reacher", episodes)


def measure_pusher(episodes: int, max_steps: int) -> dict[str, Any]:
    """Pusher-v5 with a ``max_steps`` horizon, success at the final step."""
    return measure("pusher", episodes, max_steps=max_steps)


def measure_metaworld(name: str, episodes: int) -> dict[str, Any]:
    """One Meta-World MT1 task; success at any step (benchmark convention) and at the end."""
    return measure("metaworld", episodes, env_name=name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=100, help="Reacher/Pusher episodes")
    parser.add_argument("--mw-episodes", type=int, default=50, help="episodes per MW task")
    parser.add_argument("--pusher-steps", type=int, nargs="+", default=[100, 300])
    parser.add_argument("--only", nargs="+", default=None, help="reacher, pusher, or MW names")
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    parser.add_argument("--mt50", action="store_true",
                        help="every Meta-World task instead (sci_diffusion.bench.metaworld)")
    parser.add_argument("--jobs", type=int, default=2, help="--mt50: worker processes")
    parser.add_argument("--doc", default=None, help="--mt50: Markdown file for the table")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    if args.mt50:
        from pathlib import Path

        from sci_diffusion.bench.metaworld import expert_table, measure_experts

        out = Path(args.out) if args.out else None
        result = measure_experts(args.only, episodes=args.mw_episodes, jobs=args.jobs, out=out,
                                 doc=Path(args.doc) if args.doc else None,
                                 command="python scripts/measure_experts.py --mt50 "
                                 f"--jobs {args.jobs}")  # fmt: skip
        print(expert_table(result, json_path=out))
        return 0

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
