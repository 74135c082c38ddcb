"""Rollout speed with the envs in worker processes vs. the in-process lockstep loop.

Why: ``play_episodes(workers=k)`` (:mod:`sci_diffusion.envs.vector`) moves the envs' physics
and rendering into ``k`` processes and pays for it with process start-up (each spawned worker
imports gymnasium, MuJoCo and torch) and one pipe round trip per step. Whether that pays
depends on how much work a step is: a state-only MuJoCo step is microseconds (the round trip
dominates), a pixel step renders every camera in software (milliseconds, which the workers do
concurrently). This bench measures both on the machine at hand, side by side in one run, so
the choice of ``workers`` for evaluation and demonstration collection rests on numbers.

What is timed, as medians over ``repeats`` interleaved rounds (every configuration once per
round, so a change in the machine's load hits all of them alike):

* ``episodes`` — ``play_episodes`` of ``episodes`` seeds, ``n_envs`` in lockstep, with an actor
  that needs no env objects: for ``multimodal`` its scripted expert acting on the state
  (``expert.act(state, None)``: the expert reads only the observation), for other tasks a
  fixed deterministic function of the state. ``pool=cold``: ``workers=k`` as a caller gets it
  (workers started and closed inside the call); ``pool=warm``: the same episodes on a
  :class:`~sci_diffusion.envs.vector.VectorEnvs` opened before the round (what a kept-open
  pool costs per evaluation).
* ``demos`` — ``collect_demos`` of the same seeds (scripted expert on the env objects, HDF5
  written): ``workers=0`` (this process) vs. ``workers=k`` (seed shards in ``k`` processes).

Both observation modes: ``state`` and ``pixels`` (the task's cameras at its default size,
:func:`~sci_diffusion.envs.pixels.pixel_spec`). All configurations must give the same
episodes (``same_episodes`` in the result: lengths and returns compared).

Reading the numbers on a shared machine: the load average before and after is recorded, and
for the configurations whose processes are all observable (``workers=0``, warm pools) the CPU
seconds they used, as ``cores_used = CPU s / wall s``. Workers can only be faster if the
scheduler gives them more than one core. On Linux with ``sched_autogroup`` (recorded) the CPU
is shared fairly between *sessions*, not processes: while another session keeps the cores busy,
this one gets about its share however many workers it starts (``cores_used`` stays near 1),
and ``workers > 0`` then only adds its overheads.

Run: ``python -m sci_diffusion.bench.rollouts [--episodes 20 --n-envs 10 --workers 0 2
--repeats 3 --json out.json]``. Keep this module's imports light: spawned workers import the
main module.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sci_diffusion.envs.episodes import Actor, state_of

__all__ = ["ExpertStateActor", "StateFunctionActor", "bench_rollouts", "main", "table"]


class ExpertStateActor(Actor):
    """A task's scripted experts (one per slot) acting on the state alone:
    ``expert.act(state, None)``. Only for experts that never read the env (``multimodal``);
    unlike :class:`~sci_diffusion.envs.episodes.ExpertActor` it runs with the envs in worker
    processes."""

    def __init__(self, make_expert: Callable[[], Any]) -> None:
        self.make_expert = make_expert
        self.experts: dict[int, Any] = {}

    def reset(self, slot: int, seed: int, obs: Any) -> None:
        if slot not in self.experts:
            self.experts[slot] = self.make_expert()
        self.experts[slot].reset(seed)

    def act(self, step: int, slots: list[int], obs: list[Any], envs: list[Any]) -> np.ndarray:
        return np.stack([np.asarray(self.experts[k].act(state_of(o), None), np.float32)
                         for k, o in zip(slots, obs, strict=True)])  # fmt: skip


class StateFunctionActor(Actor):
    """A fixed deterministic policy of the state: ``mid + half * tanh(state @ W)``, ``W``
    ``(obs_dim, action_dim)`` drawn once from ``seed``, ``mid``/``half`` the action box's centre
    and half-width (any task; no learning, no env objects)."""

    def __init__(self, obs_dim: int, low: np.ndarray, high: np.ndarray, seed: int = 0) -> None:
        low, high = np.asarray(low, np.float32), np.asarray(high, np.float32)
        self.mid, self.half = (high + low) / 2, (high - low) / 2
        rng = np.random.default_rng(seed)
        self.weights = rng.normal(0, 1 / np.sqrt(obs_dim), (obs_dim, low.size)).astype(np.float32)

    def act(self, step: int, slots: list[int], obs: list[Any], envs: list[Any]) -> np.ndarray:
        states = np.stack([np.asarray(state_of(o), np.float32) for o in obs])  # (B, obs_dim)
        return self.mid + self.half * np.tanh(states @ self.weights)  # (B, action_dim)


def _actor_factory(task: Any) -> Callable[[], Actor]:
    if task.name == "multimodal":
        return lambda: ExpertStateActor(task.make_expert)
    env = task.make_env(0)
    try:
        obs_dim = int(np.prod(env.observation_space.shape))
        low, high = env.action_space.low, env.action_space.high
    finally:
        env.close()
    return lambda: StateFunctionActor(obs_dim, low, high)


def _load() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def _machine() -> dict[str, Any]:
    from importlib import metadata

    versions = {}
    for dist in ("mujoco", "gymnasium", "numpy"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    return {
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        **versions,
        "mujoco_gl": os.environ.get("MUJOCO_GL"),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "load_average_before": _load(),
        "sched_autogroup": _read("/proc/sys/kernel/sched_autogroup_enabled"),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


Key = tuple[str, str, int, str | None]
"""A configuration: (run, obs, workers, pool)."""


def bench_rollouts(
    task: str = "multimodal",
    episodes: int = 20,
    n_envs: int = 10,
    workers: Sequence[int] = (0, 2),
    pixels: Sequence[bool] = (False, True),
    repeats: int = 3,
    demos: bool = True,
    warm: bool = True,
    progress: bool = True,
) -> dict[str, Any]:
    """Time the configurations of the module docstring; returns ``{"benchmark": "rollouts",
    "machine", "config", "records", "speedup", "same_episodes", "pool_open_s", "wall_s"}``.

    ``records``: one per configuration, ``{"run": "episodes"|"demos", "obs": "state"|"pixels",
    "workers", "pool": "cold"|"warm"|"shards"|None, "wall_s" (median), "walls_s" (all
    repeats), "episodes_per_s", "steps_per_s" (env steps), "env_steps", "cpu_s" (median CPU
    seconds of this process and the pool's workers; None for cold pools and shards, whose
    workers are not observable), "cores_used" (``cpu_s / wall_s``)}``. ``speedup``:
    ``"<run>/<obs>/<pool>/workers=<k>"`` -> median wall of ``workers=0`` divided by that of
    ``workers=k`` (> 1: the workers are faster). ``same_episodes``: per run and obs, whether
    every configuration and repeat gave the same episodes. ``pool_open_s``: seconds to open
    each warm pool (the first one in a process also starts the fork server). ``progress``
    prints a line per measurement on stderr.
    """
    from sci_diffusion.envs.pixels import pixel_spec
    from sci_diffusion.envs.registry import get_task
    from sci_diffusion.envs.vector import VectorEnvs
    from sci_diffusion.io.progress import stage

    def say(message: str) -> None:
        if progress:
            stage(f"bench rollouts: {message}")

    spec = get_task(task)
    make_actor = _actor_factory(spec)
    workers = sorted({int(w) for w in workers})
    obs_modes = {("pixels" if p else "state"): (pixel_spec(spec) if p else None)
                 for p in pixels}  # fmt: skip
    configs: list[Key] = []
    for obs in obs_modes:
        for k in workers:
            configs.append(("episodes", obs, k, "cold" if k else None))
            if k and warm:
                configs.append(("episodes", obs, k, "warm"))
            if demos:
                configs.append(("demos", obs, k, "shards" if k else None))
    machine = _machine()
    start = time.perf_counter()
    walls: dict[Key, list[float]] = {key: [] for key in configs}
    cpus: dict[Key, list[float | None]] = {key: [] for key in configs}
    outcomes: dict[Key, list[tuple[int, int, float, bool]]] = {}
    pools: dict[tuple[str, int], VectorEnvs] = {}
    opened: dict[str, float] = {}
    try:
        for _, obs, k, pool in configs:
            if pool == "warm":
                say(f"opening a warm pool: {obs}, {k} workers")
                t0 = time.perf_counter()
                pools[obs, k] = VectorEnvs.for_task(task, min(n_envs, episodes), k,
                                                    pixels=obs_modes[obs])  # fmt: skip
                opened[f"{obs}/workers={k}"] = round(time.perf_counter() - t0, 3)
        with tempfile.TemporaryDirectory(prefix="bench-rollouts-") as tmp:
            for r in range(repeats):
                for key in configs:
                    run, obs, k, pool = key
                    warm_pool = pools.get((obs, k)) if pool == "warm" else None
                    t0, c0 = time.perf_counter(), _cpu_seconds(warm_pool, k)
                    if run == "episodes":
                        outcome = _episodes(spec, make_actor(), episodes, n_envs, obs_modes[obs],
                                            k, warm_pool)
                    else:
                        outcome = _demos(task, episodes, Path(tmp) / f"{obs}-{k}-{r}",
                                         obs_modes[obs], k)  # fmt: skip
                    wall = time.perf_counter() - t0
                    c1 = _cpu_seconds(warm_pool, k)
                    walls[key].append(wall)
                    cpus[key].append(None if c0 is None or c1 is None else c1 - c0)
                    if outcomes.setdefault(key, outcome) != outcome:
                        outcomes[key] = []  # differs between repeats: marked below
                    say(f"round {r + 1}/{repeats}: {run} {obs} workers={k}"
                        f"{f' ({pool})' if pool else ''}: {wall:.2f} s")  # fmt: skip
    finally:
        for vec in pools.values():
            vec.close()
    machine["load_average_after"] = _load()
    order = sorted(walls, key=lambda key: (key[0] != "episodes", key[1] != "state", key[2],
                                           key[3] == "warm"))  # fmt: skip
    records = [_record(key, walls[key], cpus[key], episodes, outcomes[key]) for key in order]
    speedup = {}
    for rec in records:
        base = next(b for b in records if b["run"] == rec["run"] and b["obs"] == rec["obs"]
                    and b["workers"] == 0) if 0 in workers else None  # fmt: skip
        if rec["workers"] > 0 and base is not None:
            speedup[_label(rec)] = round(base["wall_s"] / rec["wall_s"], 3)
    same: dict[str, bool] = {}
    for (run, obs, _, _), outcome in outcomes.items():
        reference = outcomes[next(key for key in configs if key[:2] == (run, obs))]
        same[f"{run}/{obs}"] = same.get(f"{run}/{obs}", True) and bool(outcome) and (
            outcome == reference)
    config = {"task": task, "episodes": episodes, "n_envs": n_envs, "workers": workers,
              "obs": list(obs_modes), "repeats": repeats, "demos": demos, "warm": warm}
    return {"benchmark": "rollouts", "machine": machine, "config": config, "records": records,
            "speedup": speedup, "same_episodes": same, "pool_open_s": opened,
            "wall_s": round(time.perf_counter() - start, 2)}  # fmt: skip


def _episodes(spec: Any, actor: Actor, episodes: int, n_envs: int, pixels: Any, workers: int,
              pool: Any) -> list[tuple[int, int, float, bool]]:  # fmt: skip
    """``play_episodes`` of seeds ``0..episodes-1``: (seed, length, return, success) each."""
    from sci_diffusion.envs.episodes import play_episodes

    played = play_episodes(spec, actor, range(episodes), n_envs=n_envs, pixels=pixels,
                           workers=workers, envs=pool)  # fmt: skip
    return [(ep.seed, ep.length, ep.episode_return, ep.success) for ep in played]


def _demos(task: str, episodes: int, out: Path, pixels: Any,
           workers: int) -> list[tuple[int, int, float, bool]]:  # fmt: skip
    """``collect_demos`` of seeds ``0..episodes-1`` into ``out`` (the read-back is not timed
    separately: it is small next to the collection): (seed, length, return, success) each."""
    from sci_diffusion.envs.demos import collect_demos, load_demos

    collect_demos(task, episodes, out, seed=0, progress=False, pixels=pixels, workers=workers)
    data = load_demos(out)
    return [(int(s), int(n), float(np.sum(r)), bool(ok))
            for s, n, r, ok in zip(data.seeds, data.lengths, data.rewards, data.success,
                                   strict=True)]  # fmt: skip


def _record(key: Key, times: list[float], cpus: list[float | None], episodes: int,
            outcome: list[tuple[int, int, float, bool]]) -> dict[str, Any]:  # fmt: skip
    run, obs, k, pool = key
    median = statistics.median(times)
    steps = sum(n for _, n, _, _ in outcome)
    cpu = None if None in cpus else statistics.median(cpus)
    return {"run": run, "obs": obs, "workers": k, "pool": pool, "wall_s": round(median, 4),
            "walls_s": [round(t, 4) for t in times],
            "episodes_per_s": round(episodes / median, 3),
            "steps_per_s": round(steps / median, 1), "env_steps": steps,
            "cpu_s": None if cpu is None else round(cpu, 3),
            "cores_used": None if cpu is None else round(cpu / median, 2)}  # fmt: skip


def _cpu_seconds(pool: Any, workers: int) -> float | None:
    """CPU seconds so far of this process (all its threads, Mesa's rendering threads included)
    plus the workers of ``pool``; None where the workers are not observable (``workers > 0``
    without an open pool: they come and go inside the call) or ``/proc`` is missing."""
    if workers > 0 and pool is None:
        return None
    total = time.process_time()
    for proc in pool.processes if pool is not None else ():
        try:
            fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime+stime
    return total


def _label(rec: dict[str, Any]) -> str:
    return f"{rec['run']}/{rec['obs']}/{rec['pool'] or '-'}/workers={rec['workers']}"


def table(result: dict[str, Any]) -> str:
    """The records as a markdown table, with the speed-up over ``workers=0``."""
    speedup = result["speedup"]
    lines = [
        "| run | obs | workers | pool | median wall s | episodes/s | env steps/s | cores used "
        "| speed-up |",
        "|---|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for rec in result["records"]:
        ratio = speedup.get(_label(rec))
        lines.append(
            f"| {rec['run']} | {rec['obs']} | {rec['workers']} | {rec['pool'] or '-'} | "
            f"{rec['wall_s']:.2f} | {rec['episodes_per_s']:.2f} | {rec['steps_per_s']:.0f} | "
            f"{'-' if rec['cores_used'] is None else rec['cores_used']} | "
            f"{'1 (ref.)' if rec['workers'] == 0 else f'{ratio:.2f}x' if ratio else '-'} |"
        )
    m, c = result["machine"], result["config"]
    lines.append("")
    lines.append(f"{c['task']}, {c['episodes']} episodes, n_envs={c['n_envs']}, median of "
                 f"{c['repeats']}; {m['cpu_count']} CPUs, load average {m['load_average_before']}"
                 f" before, {m['load_average_after']} after; MUJOCO_GL={m['mujoco_gl']}; same "
                 f"episodes in every configuration: {all(result['same_episodes'].values())}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="multimodal")
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--n-envs", type=int, default=10)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--obs", choices=("state", "pixels"), nargs="+",
                        default=["state", "pixels"])  # fmt: skip
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-demos", action="store_true", help="skip collect_demos timing")
    parser.add_argument("--no-warm", action="store_true", help="skip the kept-open pools")
    parser.add_argument("--json", type=Path, help="also write the result as JSON here")
    args = parser.parse_args(argv)
    result = bench_rollouts(args.task, args.episodes, args.n_envs, args.workers,
                            [o == "pixels" for o in args.obs], args.repeats,
                            demos=not args.no_demos, warm=not args.no_warm)  # fmt: skip
    if args.json:
        from sci_diffusion.io.files import write_json_atomic

        write_json_atomic(args.json, result)
    print(table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
