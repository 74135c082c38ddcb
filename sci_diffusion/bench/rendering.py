"""What a camera frame costs: frames/s per policy task and size, MuJoCo's default scene flags
against :class:`~sci_diffusion.envs.cameras.CameraRig`'s (shadows, reflections, skybox off),
measured alternately in one run, beside the env's physics steps/s.

``python -m sci_diffusion.bench.rendering [--sizes 64 84 96] [--seconds 1.0]`` prints a
markdown table; ``render_rates`` returns the records.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["render_rates", "render_table"]

TASKS = ("multimodal", "reacher", "pusher", "metaworld")
METAWORLD_ENV = "drawer-open-v3"


def _rate(fn: Any, seconds: float) -> float:
    fn()  # warm-up (first frame allocates the GL context)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn()
        n += 1
    return n / (time.perf_counter() - start)


def render_rates(tasks: Sequence[str] = TASKS, sizes: Sequence[int] = (64, 84, 96),
                 seconds: float = 1.0, rounds: int = 3) -> list[dict[str, Any]]:  # fmt: skip
    """Per task (its default camera) and size: median frames/s with the default scene flags and
    with ours, alternating ``rounds`` times, and physics steps/s of random actions."""
    from sci_diffusion.envs.cameras import CameraRig
    from sci_diffusion.envs.pixels import pixel_spec
    from sci_diffusion.envs.registry import get_task

    records = []
    for name in tasks:
        task = get_task(name)
        env = task.make_env(0, env_name=METAWORLD_ENV if task.needs_env_name else None)
        try:
            env.reset(seed=0)
            u = env.unwrapped
            rng = np.random.default_rng(0)
            low, high = env.action_space.low, env.action_space.high

            def physics(env: Any = env, low: Any = low, high: Any = high, rng: Any = rng) -> None:
                action = rng.uniform(low, high).astype(np.float32)
                _, _, terminated, truncated, _ = env.step(action)
                if terminated or truncated:
                    env.reset(seed=0)

            steps = _rate(physics, seconds)
            env.reset(seed=0)
            for size in sizes:
                spec = pixel_spec(task, image_size=size)
                ours = CameraRig(u.model, u.data, spec.cameras, size, size)
                default = CameraRig(u.model, u.data, spec.cameras, size, size, disable=())
                fast, slow = [], []
                try:
                    for _ in range(rounds):
                        slow.append(_rate(default.render, seconds))
                        fast.append(_rate(ours.render, seconds))
                finally:
                    ours.close()
                    default.close()
                records.append({
                    "task": name, "camera": "+".join(spec.cameras), "size": size,
                    "default_fps": statistics.median(slow), "ours_fps": statistics.median(fast),
                    "speedup": statistics.median(fast) / statistics.median(slow),
                    "physics_steps_per_s": steps,
                })  # fmt: skip
        finally:
            env.close()
    return records


def render_table(records: list[dict[str, Any]]) -> str:
    lines = ["| task | camera | size | frames/s, default flags | frames/s, ours | speed-up | "
             "physics steps/s |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in records:
        lines.append(f"| {r['task']} | {r['camera']} | {r['size']} | {r['default_fps']:.1f} | "
                     f"{r['ours_fps']:.1f} | {r['speedup']:.1f}x | "
                     f"{r['physics_steps_per_s']:,.0f} |")  # fmt: skip
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS))
    parser.add_argument("--sizes", nargs="+", type=int, default=[64, 84, 96])
    parser.add_argument("--seconds", type=float, default=1.0)
    args = parser.parse_args(argv)
    records = []
    for task in args.tasks:
        print(f"[rendering] {task} ...", flush=True)
        records += render_rates([task], args.sizes, args.seconds)
    print(render_table(records))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
