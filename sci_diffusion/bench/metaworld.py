"""Meta-World MT50: the scripted expert on every task, the default state recipe on a list.

Two commands (``sci-diffusion bench metaworld <experts|train> ...``, the same as
``python -m sci_diffusion.bench.metaworld ...``; ``table`` rebuilds the policy table from the
results folder):

* :func:`measure_experts` plays the package's scripted policy (:class:`MetaWorldExpert`) on
  every task of Meta-World's own registry (or a list), ``episodes`` seeded episodes each
  (reset seeds ``0..episodes-1``, env seed 0), one task per worker process, ``jobs`` processes
  at a time. Every episode runs through the one episode loop
  (:func:`~sci_diffusion.envs.episodes.play_episodes`) with the task's success rule
  (``info["success"]`` at any step of 500). Per task: success with its Wilson 95% interval,
  success after the last step, the **mean episode length** (steps until the first success;
  a failed episode counts its full 500 steps: the length the episode has when it ends on
  success, Meta-World's MT1 envs themselves never stop early) and the task's wall and CPU
  seconds. Writes JSON and the table between markers in a Markdown file (docs/robotics.md).
* :func:`train_eval` trains and evaluates the default state recipe (``sci-diffusion train
  task=metaworld task.env_name=<name>`` with the task's defaults, then ``sci-diffusion eval
  run=<run>``) on a list of tasks, one ``train`` + ``eval`` pipeline per task, ``jobs`` at a
  time, each in its own processes (``OMP_NUM_THREADS=1``). ``hardest:<k>`` picks the ``k``
  tasks with the longest expert episodes from an expert JSON. One JSON per task lands in
  ``results_dir`` (so a long run can be stopped and continued: finished tasks are skipped),
  and the table of every result there, the policy's success and Wilson interval beside the
  expert's with the training budget, is written between markers in docs/benchmarks.md.

Training runs through the ``sci-diffusion`` command in child processes (not an import of
``train``: this module sits on the same layer), exactly as a user runs it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from ..envs.experts.metaworld_experts import check_metaworld_env_name, metaworld_env_names
from ..io.errors import UserInputError
from ..io.files import write_json_atomic, write_text_atomic
from ..io.progress import Progress, stage
from ..policy.stats import wilson_interval

__all__ = [
    "EXPERT_MARKER",
    "POLICY_MARKER",
    "expert_table",
    "hardest_tasks",
    "machine_note",
    "main",
    "measure_expert",
    "measure_experts",
    "policy_table",
    "resolve_tasks",
    "train_eval",
    "write_doc_section",
]

EXPERT_MARKER = "mt50-experts"
"""Marker name of the expert table in docs/robotics.md."""
POLICY_MARKER = "mt50-policy"
"""Marker name of the policy table in docs/benchmarks.md."""
RATIO_AIM = 0.9
"""The policy's success should be at least this fraction of the expert's."""


# -- shared helpers ----------------------------------------------------------------------------


def machine_note() -> str:
    """``"<n>-core CPU (<processor>), load average a/b/c"``: where a measurement ran."""
    try:
        load = "/".join(f"{v:.1f}" for v in os.getloadavg())
    except (AttributeError, OSError):
        load = "n/a"
    cpu = platform.processor() or platform.machine()
    return f"{os.cpu_count()}-core CPU ({cpu}), load average {load} at the end"


def _today() -> str:
    return datetime.datetime.now(datetime.timezone.utc).date().isoformat()


def _metaworld_version() -> str | None:
    try:
        from importlib.metadata import version

        return version("metaworld")
    except Exception:  # metadata missing: report None
        return None


def write_doc_section(path: Path, marker: str, text: str) -> None:
    """Put ``text`` between ``<!-- marker:begin -->`` and ``<!-- marker:end -->`` in the Markdown
    file ``path`` (replacing what was there; appended with the markers when they are absent),
    atomically."""
    begin, end = f"<!-- {marker}:begin -->", f"<!-- {marker}:end -->"
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    block = f"{begin}\n{text.rstrip()}\n{end}"
    if begin in old and end in old and old.index(begin) < old.index(end):
        new = old[: old.index(begin)] + block + old[old.index(end) + len(end) :]
    else:
        new = old.rstrip("\n") + ("\n\n" if old else "") + block + "\n"
    write_text_atomic(path, new)


def _fmt_ci(ci: Sequence[float]) -> str:
    return f"[{ci[0]:.2f}, {ci[1]:.2f}]"


# -- the expert on every task ------------------------------------------------------------------


def measure_expert(env_name: str, episodes: int = 50, seed: int = 0, env_seed: int = 0,
                   max_steps: int | None = None, n_envs: int = 1) -> dict[str, Any]:  # fmt: skip
    """The scripted expert of ``env_name`` on reset seeds ``seed..seed+episodes-1`` (``n_envs``
    envs in lockstep, constructed with ``env_seed``), judged by the Meta-World success rule;
    one result row. ``seed=100000, env_seed=100000, n_envs=25`` replays the exact episodes of
    a default policy evaluation (``task.eval``; MT1 draws each reset's task setup from the
    env's own RNG, so the env count matters)."""
    from ..envs.episodes import ExpertActor, play_episodes
    from ..envs.registry import get_task

    check_metaworld_env_name(env_name)
    task = get_task("metaworld")
    wall, cpu = time.perf_counter(), time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Meta-World's gymnasium warnings, once per env
        played = play_episodes(task, ExpertActor.for_task(task, n_envs, env_name=env_name),
                               range(seed, seed + episodes), n_envs=n_envs, env_name=env_name,
                               env_seed=env_seed, max_steps=max_steps)  # fmt: skip
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    successes = sum(ep.success for ep in played)
    first = [ep.first_success_step for ep in played if ep.first_success_step is not None]
    lengths = [ep.first_success_step + 1 if ep.first_success_step is not None else ep.length
               for ep in played]  # fmt: skip
    return {
        "env_name": env_name,
        "episodes": episodes,
        "seeds": [seed, seed + episodes - 1],
        "env_seed": env_seed,
        "n_envs": n_envs,
        "max_steps": task.max_steps if max_steps is None else int(max_steps),
        "successes": successes,
        "success_rate": successes / episodes,
        "success_ci95": list(wilson_interval(successes, episodes)),
        "final_step_success_rate": float(np.mean([ep.final_success for ep in played])),
        "mean_length": float(np.mean(lengths)),
        "mean_length_definition": "steps until the first success; failures count all steps",
        "mean_first_success_step": float(np.mean(first)) if first else None,
        "failed_seeds": [ep.seed for ep in played if not ep.success],
        "seconds": wall,
        "cpu_seconds": cpu,
        "steps": int(sum(ep.length for ep in played)),
    }


def _measure_in_worker(env_name: str, episodes: int) -> dict[str, Any]:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    return measure_expert(env_name, episodes)


def _run_pool(fn: Callable[..., dict[str, Any]], tasks: Sequence[str], args: tuple, jobs: int,
              desc: str, progress: bool) -> list[dict[str, Any]]:  # fmt: skip
    """``fn(task, *args)`` for every task, ``jobs`` worker processes at a time (inline for
    ``jobs <= 1``), with progress over tasks; rows in the order of ``tasks``."""
    rows: dict[str, dict[str, Any]] = {}
    bar = Progress(len(tasks), desc, unit="task", enabled=progress)
    try:
        if jobs <= 1 or len(tasks) <= 1:
            for name in tasks:
                rows[name] = fn(name, *args)
                bar.update(1)
                bar.set_postfix(last=name)
        else:
            with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
                futures: dict[Future, str] = {pool.submit(fn, n, *args): n for n in tasks}
                for future in as_completed(futures):
                    rows[futures[future]] = future.result()
                    bar.update(1)
                    bar.set_postfix(last=futures[future])
    finally:
        bar.close()
    return [rows[n] for n in tasks]


def measure_experts(
    tasks: Sequence[str] | None = None,
    *,
    episodes: int = 50,
    jobs: int = 2,
    out: Path | None = None,
    doc: Path | None = None,
    machine: str | None = None,
    date: str | None = None,
    command: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """The expert on every task (default: all of :func:`metaworld_env_names`), ``episodes``
    each, ``jobs`` processes; JSON to ``out`` and the table to ``doc`` when given.

    Returns ``{"rows": [...], "episodes", "jobs", "wall_seconds", "machine", "date",
    "metaworld", "command"}``.
    """
    names = list(tasks) if tasks else list(metaworld_env_names())
    for name in names:
        check_metaworld_env_name(name)
    stage(f"expert on {len(names)} Meta-World tasks, {episodes} episodes each, {jobs} processes")
    wall = time.perf_counter()
    rows = _run_pool(_measure_in_worker, names, (episodes,), jobs, "experts", progress)
    result = {
        "rows": rows,
        "episodes": episodes,
        "jobs": jobs,
        "wall_seconds": time.perf_counter() - wall,
        "machine": machine or machine_note(),
        "date": date or _today(),
        "metaworld": _metaworld_version(),
        "command": command,
    }
    if out is not None:
        write_json_atomic(Path(out), result)
    if doc is not None:
        write_doc_section(Path(doc), EXPERT_MARKER, expert_table(result, json_path=out))
    return result


def hardest_tasks(rows: Sequence[dict[str, Any]], k: int) -> list[str]:
    """The ``k`` tasks with the longest mean expert episode (ties: lower success first)."""
    ranked = sorted(rows, key=lambda r: (-r["mean_length"], r["success_rate"], r["env_name"]))
    return [r["env_name"] for r in ranked[:k]]


def expert_table(result: dict[str, Any], json_path: Path | None = None) -> str:
    """The Markdown table (and its provenance lines) of a :func:`measure_experts` result."""
    rows = sorted(result["rows"], key=lambda r: r["env_name"])
    total = sum(r["successes"] for r in rows)
    episodes = sum(r["episodes"] for r in rows)
    cpu = sum(r["cpu_seconds"] for r in rows)
    lines = [
        f"Measured {result['date']} on a {result['machine']}, metaworld "
        f"{result.get('metaworld')}: {len(rows)} tasks x {result['episodes']} episodes (reset "
        f"seeds 0..{result['episodes'] - 1}, env seed 0), {result['jobs']} processes, "
        f"{result['wall_seconds'] / 60:.1f} min wall, {cpu / 60:.1f} CPU-min in the episodes.",
    ]
    if result.get("command"):
        lines.append(f"Command: `{result['command']}`" + (f" (JSON: `{json_path}`)." if json_path
                                                          else "."))  # fmt: skip
    lines += [
        "",
        "Success: `info[\"success\"]` at any step of 500 (Wilson 95% interval); *at step 500*: "
        "after the last step; *mean length*: steps until the first success (a failed episode "
        "counts 500; the MT1 envs themselves never stop early); *seconds*: wall time of the "
        "task's episodes in its process (CPU seconds in brackets; the cores were shared).",
        "",
        "| task | success | 95% CI | at step 500 | mean length | seconds |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| `{r['env_name']}` | {r['successes']}/{r['episodes']} | "
            f"{_fmt_ci(r['success_ci95'])} | {r['final_step_success_rate']:.2f} | "
            f"{r['mean_length']:.0f} | {r['seconds']:.0f} ({r['cpu_seconds']:.0f}) |"
        )
    below = ", ".join(f"`{r['env_name']}` ({r['success_rate']:.2f})" for r in rows
                      if r["success_rate"] < 0.9)  # fmt: skip
    hardest = ", ".join(f"`{n}`" for n in hardest_tasks(rows, 10))
    lines += [
        "",
        f"All tasks: {total}/{episodes} ({total / max(episodes, 1):.3f}). "
        f"Below 0.90: {below or 'none'}.",
        f"The ten hardest by mean length: {hardest}.",
    ]
    return "\n".join(lines)


# -- the default recipe on a list of tasks -----------------------------------------------------


def resolve_tasks(spec: Sequence[str], expert_json: Path | None) -> list[str]:
    """Task names from ``spec``: names, ``all`` (every registered task) or ``hardest:<k>``
    (needs ``expert_json``: the ``k`` longest expert episodes)."""
    out: list[str] = []
    for item in spec:
        if item == "all":
            out += list(metaworld_env_names())
        elif item.startswith("hardest:"):
            if expert_json is None:
                raise ValueError(f"{item} needs the expert measurement (--expert <json>)")
            rows = json.loads(Path(expert_json).read_text())["rows"]
            out += hardest_tasks(rows, int(item.split(":", 1)[1]))
        else:
            out.append(check_metaworld_env_name(item))
    return list(dict.fromkeys(out))


def _sci_diffusion(*args: str) -> list[str]:
    return [sys.executable, "-m", "sci_diffusion", *args]


def _run_logged(cmd: list[str], log: Path, env: dict[str, str]) -> float:
    """Run ``cmd`` with its output appended to ``log``; its wall seconds (raises on failure)."""
    t0 = time.perf_counter()
    with open(log, "a", encoding="utf-8") as f:
        f.write(f"$ {shlex.join(cmd)}\n")
        f.flush()
        proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{shlex.join(cmd[2:])} exited {proc.returncode}; see {log}")
    return time.perf_counter() - t0


def _budget(run_dir: Path) -> dict[str, Any]:
    """The training budget and recipe of a run, read from its saved config."""
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(run_dir / "config.yaml")
    t, tr = cfg.task, cfg.trainer
    return {
        "max_steps": int(tr.max_steps),
        "max_minutes": tr.get("max_minutes"),
        "batch_size": int(tr.batch_size),
        "lr": float(tr.lr),
        "demo_episodes": int(t.data.episodes),
        "action_noise": float(t.data.get("action_noise", 0.0)),
        "model": str(cfg.model.get("name", "?")),
        "horizon": int(t.horizon),
        "n_obs_steps": int(t.n_obs_steps),
        "n_action_steps": int(t.n_action_steps),
        "sampler": f"{cfg.sampler.get('name', '?')} {cfg.sampler.get('steps', '?')}",
        "eval_episodes": int(t.eval.episodes),
    }


_EXPERT_LOCK = threading.Lock()
"""Serializes in-process expert runs of the train+eval threads: building an MT1 env draws its
50 setups from numpy's *global* generator, so two threads building envs at once interleave
the draws (metaworld then fails: "Only generated 38 unique goals, not 50")."""


def _expert_on_eval_episodes(env_name: str, run_dir: Path) -> dict[str, Any]:
    """The expert on exactly the episodes the run was evaluated on (the saved config's
    ``task.eval`` seeds, env seed and env count)."""
    from omegaconf import OmegaConf

    e = OmegaConf.load(run_dir / "config.yaml").task.eval
    with _EXPERT_LOCK:
        row = measure_expert(env_name, int(e.episodes), seed=int(e.seed), env_seed=int(e.seed),
                             n_envs=int(e.n_envs))  # fmt: skip
    keys = ("episodes", "successes", "success_rate", "success_ci95", "mean_length", "seeds",
            "env_seed", "n_envs", "failed_seeds")  # fmt: skip
    return {k: row[k] for k in keys}


def _train_eval_one(env_name: str, runs_dir: Path, results_dir: Path,
                    train_overrides: Sequence[str], eval_overrides: Sequence[str],
                    env: dict[str, str]) -> dict[str, Any]:  # fmt: skip
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d_%H-%M-%S")
    run_dir = runs_dir / f"{env_name}_{stamp}"
    runs_dir.mkdir(parents=True, exist_ok=True)
    log = runs_dir / f"{env_name}_{stamp}.log"
    train_cmd = _sci_diffusion("train", "task=metaworld", f"task.env_name={env_name}",
                               f"hydra.run.dir={run_dir}", *train_overrides)  # fmt: skip
    train_seconds = _run_logged(train_cmd, log, env)
    eval_cmd = _sci_diffusion("eval", f"run={run_dir}", *eval_overrides)
    eval_seconds = _run_logged(eval_cmd, log, env)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    row = {
        "env_name": env_name,
        "successes": int(metrics["successes"]),
        "episodes": int(metrics["episodes"]),
        "success_rate": float(metrics["success_rate"]),
        "success_ci95": list(metrics["success_ci95"]),
        "mean_return": metrics.get("mean_return"),
        "step": metrics.get("step"),
        "checkpoint": metrics.get("checkpoint"),
        "videos": metrics.get("videos", []),
        "budget": _budget(run_dir),
        "expert_same_episodes": _expert_on_eval_episodes(env_name, run_dir),
        "train_seconds": train_seconds,
        "eval_seconds": eval_seconds,
        "run_dir": str(run_dir),
        "log": str(log),
        "train_command": shlex.join(["sci-diffusion", *train_cmd[3:]]),
        "eval_command": shlex.join(["sci-diffusion", *eval_cmd[3:]]),
        "train_overrides": list(train_overrides),
        "eval_overrides": list(eval_overrides),
        "date": _today(),
    }
    write_json_atomic(results_dir / f"{env_name}.json", row)
    return row


def _reevaluate_one(env_name: str, runs_dir: Path, results_dir: Path,
                    train_overrides: Sequence[str], eval_overrides: Sequence[str],
                    env: dict[str, str]) -> dict[str, Any]:  # fmt: skip
    """Evaluate the run of an existing result again (``sci-diffusion eval``) and update the
    row; the earlier figures stay under ``previous``."""
    path = results_dir / f"{env_name}.json"
    row = json.loads(path.read_text())
    run_dir, log = Path(row["run_dir"]), Path(row["log"])
    eval_cmd = _sci_diffusion("eval", f"run={run_dir}", *eval_overrides)
    eval_seconds = _run_logged(eval_cmd, log, env)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    keys = ("successes", "episodes", "success_rate", "success_ci95", "mean_return",
            "eval_seconds", "eval_command", "eval_overrides", "expert_same_episodes",
            "date")  # fmt: skip
    previous = [*row.get("previous", []), {k: row.get(k) for k in keys}]
    row.update({
        "successes": int(metrics["successes"]),
        "episodes": int(metrics["episodes"]),
        "success_rate": float(metrics["success_rate"]),
        "success_ci95": list(metrics["success_ci95"]),
        "mean_return": metrics.get("mean_return"),
        "videos": metrics.get("videos", []),
        "eval_seconds": eval_seconds,
        "eval_command": shlex.join(["sci-diffusion", *eval_cmd[3:]]),
        "eval_overrides": list(eval_overrides),
        "expert_same_episodes": _expert_on_eval_episodes(env_name, run_dir),
        "date": _today(),
        "previous": previous,
    })  # fmt: skip
    write_json_atomic(path, row)
    return row


def train_eval(
    tasks: Sequence[str],
    *,
    jobs: int = 1,
    runs_dir: Path = Path("runs/mt50"),
    results_dir: Path = Path("docs/results/mt50_policy"),
    expert_json: Path | None = None,
    doc: Path | None = None,
    train_overrides: Sequence[str] = (),
    eval_overrides: Sequence[str] = (),
    force: bool = False,
    reevaluate: bool = False,
    machine: str | None = None,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Train and evaluate the default ``task=metaworld`` recipe on ``tasks`` (names of
    Meta-World's registry), ``jobs`` train+eval pipelines at a time.

    Tasks with a result in ``results_dir`` are skipped unless ``force``. Extra
    ``train_overrides`` / ``eval_overrides`` (``key=value``) change the recipe (the table
    shows the budget each run had). ``reevaluate``: only evaluate the runs of tasks that
    have a result again (after a change to the environment or the evaluation), keeping the
    earlier figures in the JSON under ``previous``. A failed task is reported and the others
    go on. The table of all results in ``results_dir`` goes to ``doc`` (with the expert's
    success from ``expert_json``) when given. Returns the rows of this call's finished tasks.
    """
    names = [check_metaworld_env_name(n) for n in tasks]
    have = [n for n in names if (Path(results_dir) / f"{n}.json").exists()]
    if reevaluate:
        todo, skipped, work = have, [n for n in names if n not in have], _reevaluate_one
        if skipped:
            stage(f"no result to evaluate again: {', '.join(skipped)}")
    else:
        todo = [n for n in names if force or n not in have]
        skipped, work = [n for n in names if n not in todo], _train_eval_one
        if skipped:
            stage(f"already measured (skipped; force=True to redo): {', '.join(skipped)}")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SCI_DIFFUSION_PROGRESS": "lines"}
    what = "evaluating again" if reevaluate else "default metaworld recipe on"
    stage(f"{what} {len(todo)} tasks, {jobs} at a time; logs in "
          f"{runs_dir}")  # fmt: skip
    Path(results_dir).mkdir(parents=True, exist_ok=True)
    rows, failed = [], []

    def write_doc() -> None:
        if doc is not None:
            write_doc_section(Path(doc), POLICY_MARKER,
                              policy_table(Path(results_dir), expert_json, machine=machine))

    bar = Progress(len(todo), "train+eval", unit="task", enabled=progress)
    try:
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            futures = {pool.submit(work, n, Path(runs_dir), Path(results_dir),
                                   train_overrides, eval_overrides, env): n
                       for n in todo}  # fmt: skip
            for future in as_completed(futures):
                name = futures[future]
                try:
                    row = future.result()
                except Exception as err:  # one task's failure must not stop the others
                    failed.append(name)
                    stage(f"{name} failed: {type(err).__name__}: {err}")
                else:
                    rows.append(row)
                    bar.set_postfix(last=f"{name} {row['successes']}/{row['episodes']}")
                    write_doc()  # after every task: a stopped run leaves its table
                bar.update(1)
    finally:
        bar.close()
    write_doc()
    if failed:
        raise RuntimeError(f"train+eval failed for {', '.join(failed)} (logs in {runs_dir})")
    return rows


def _below_aim(ratio: float) -> bool:
    """``ratio < RATIO_AIM`` on the counts' exact value: 36/50 over 40/50 is 0.9, not below
    (in floating point it is 0.8999999999999999)."""
    return round(ratio, 9) < RATIO_AIM


def policy_table(results_dir: Path, expert_json: Path | None = None,
                 machine: str | None = None) -> str:  # fmt: skip
    """The Markdown table of every per-task result in ``results_dir``, beside the expert."""
    results = [json.loads(p.read_text()) for p in sorted(Path(results_dir).glob("*.json"))]
    experts: dict[str, dict[str, Any]] = {}
    if expert_json is not None and Path(expert_json).exists():
        experts = {r["env_name"]: r for r in json.loads(Path(expert_json).read_text())["rows"]}
    budgets = {json.dumps(r["budget"], sort_keys=True) for r in results}
    lines = []
    if len(budgets) == 1:
        b = results[0]["budget"]
        lines.append(
            f"Recipe and budget (every row): {b['model']} denoiser, H={b['horizon']}, "
            f"To={b['n_obs_steps']}, {b['n_action_steps']} action(s) per plan, "
            f"{b['demo_episodes']} expert demonstrations with DART noise "
            f"σ={b['action_noise']:g}, {b['max_steps']:,} steps at batch {b['batch_size']}, lr "
            f"{b['lr']:g}, max {b['max_minutes']} min; evaluation {b['eval_episodes']} "
            f"episodes, {b['sampler']} steps, success at any step of 500."
        )
    if machine:
        lines.append(f"Machine: {machine}.")
    lines += [
        "",
        "| task | expert mean length | policy success | 95% CI (Wilson) | expert, same "
        "episodes | expert, MT50 table | expert 95% CI | policy / expert | steps | "
        "training (s) | eval (s) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    order = sorted(results, key=lambda r: -experts.get(r["env_name"], {}).get("mean_length", 0))
    for r in order:
        e, same = experts.get(r["env_name"]), r.get("expert_same_episodes")
        # The ratio's reference: the expert on the policy's own evaluation episodes if known.
        ref = same or e
        ratio = r["success_rate"] / ref["success_rate"] if ref and ref["success_rate"] else None
        cells = [f"`{r['env_name']}`", f"{e['mean_length']:.0f}" if e else "—",
                 f"{r['successes']}/{r['episodes']}", _fmt_ci(r["success_ci95"]),
                 f"{same['successes']}/{same['episodes']} {_fmt_ci(same['success_ci95'])}"
                 if same else "—",
                 f"{e['successes']}/{e['episodes']}" if e else "—",
                 _fmt_ci(e["success_ci95"]) if e else "—",
                 "—" if ratio is None else f"{ratio:.2f}" + (" **below 0.9**"
                                                             if _below_aim(ratio) else ""),
                 str(r["step"]) if len(budgets) == 1 else f"{r['step']} ({r['budget']})",
                 f"{r['train_seconds']:.0f}", f"{r['eval_seconds']:.0f}"]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    commands = {(" ".join(["sci-diffusion", "train", "task=metaworld", "task.env_name=<name>",
                           *map(shlex.quote, r.get("train_overrides", []))]),
                 " ".join(["sci-diffusion", "eval", "run=<run>",
                           *map(shlex.quote, r.get("eval_overrides", []))]))
                for r in results}  # fmt: skip
    for train_cmd, eval_cmd in sorted(commands):
        lines += ["", f"Per task: `{train_cmd}`, then `{eval_cmd}`."]
    if results:
        lines.append("*Expert, same episodes*: the scripted expert on exactly the policy's "
                     "evaluation episodes (its seeds, env seed and env count), the reference "
                     "of *policy / expert* when present; *expert, MT50 table*: its measurement "
                     "in docs/robotics.md (reset seeds 0..49).")
        lines.append(f"Training seconds include collecting the demonstrations; one JSON per "
                     f"task (with the run directory and its log) in `{results_dir}`.")
    return "\n".join(lines)


# -- command line ------------------------------------------------------------------------------


SUBCOMMANDS = ("experts", "train", "table")
PROG = "sci-diffusion bench metaworld"
"""How the command is spelled; ``python -m sci_diffusion.bench.metaworld`` is the same."""


class _Parser(argparse.ArgumentParser):
    """argparse that raises :class:`UserInputError` (exit 2, one line) instead of exiting."""

    def error(self, message: str) -> NoReturn:
        raise UserInputError(f"{self.prog}: {message} (see --help)")


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    """The ``experts | train | table`` subcommands and their options."""
    parser = _Parser(prog=prog, description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    ex = sub.add_parser("experts", help="the scripted expert on every task")
    ex.add_argument("--tasks", nargs="+", default=None, help="task names (default: all 50)")
    ex.add_argument("--episodes", type=int, default=50)
    ex.add_argument("--jobs", type=int, default=2, help="worker processes")
    ex.add_argument("--out", type=Path, default=None, help="JSON file")
    ex.add_argument("--doc", type=Path, default=None, help="Markdown file for the table")
    ex.add_argument("--machine", default=None, help="machine description for the table")
    ex.add_argument("--date", default=None, help="date for the table (default: today, UTC)")
    tr = sub.add_parser("train", help="train and evaluate the default recipe on tasks")
    tr.add_argument("--tasks", nargs="+", required=True,
                    help="task names, 'all' or 'hardest:<k>' (needs --expert)")
    tr.add_argument("--expert", type=Path, default=None, help="JSON of `experts --out`")
    tr.add_argument("--jobs", type=int, default=1)
    tr.add_argument("--runs", type=Path, default=Path("runs/mt50"))
    tr.add_argument("--results", type=Path, default=Path("docs/results/mt50_policy"))
    tr.add_argument("--doc", type=Path, default=None)
    tr.add_argument("--machine", default=None)
    tr.add_argument("--force", action="store_true", help="redo tasks that have a result")
    tr.add_argument("--reeval", action="store_true",
                    help="only evaluate the runs of tasks that have a result again")
    tr.add_argument("--train", nargs="*", default=[], help="extra train overrides key=value")
    tr.add_argument("--eval", nargs="*", default=[], help="extra eval overrides key=value")
    tb = sub.add_parser("table", help="rebuild the policy table from a results folder")
    tb.add_argument("--expert", type=Path, default=None)
    tb.add_argument("--results", type=Path, default=Path("docs/results/mt50_policy"))
    tb.add_argument("--doc", type=Path, default=None)
    tb.add_argument("--machine", default=None)
    return parser


def parse_args(argv: Sequence[str], prog: str = PROG) -> argparse.Namespace:
    """Checks ``argv`` without running anything; raises :class:`UserInputError` on an error."""
    args = build_parser(prog).parse_args(list(argv))
    args.argv = list(argv)
    return args


def run(args: argparse.Namespace) -> int:
    """Runs what :func:`parse_args` returned; 0 on success, 2 on a bad input, 1 on a failure."""
    try:
        if args.command == "table":
            text = policy_table(args.results, args.expert, machine=args.machine)
            if args.doc is not None:
                write_doc_section(args.doc, POLICY_MARKER, text)
            print(text)
        elif args.command == "experts":
            command = shlex.join([*PROG.split(), *args.argv])
            result = measure_experts(args.tasks, episodes=args.episodes, jobs=args.jobs,
                                     out=args.out, doc=args.doc, machine=args.machine,
                                     date=args.date, command=command)  # fmt: skip
            print(expert_table(result, json_path=args.out))
        else:
            tasks = resolve_tasks(args.tasks, args.expert)
            train_eval(tasks, jobs=args.jobs, runs_dir=args.runs, results_dir=args.results,
                       expert_json=args.expert, doc=args.doc, train_overrides=args.train,
                       eval_overrides=args.eval, force=args.force, reevaluate=args.reeval,
                       machine=args.machine)  # fmt: skip
            print(policy_table(args.results, args.expert, machine=args.machine))
    except (ValueError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2 if isinstance(err, ValueError) else 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m sci_diffusion.bench.metaworld experts|train|table ...`` (see ``--help``)."""
    try:
        args = parse_args(sys.argv[1:] if argv is None else argv)
    except UserInputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return run(args)


if __name__ == "__main__":
    raise SystemExit(main())
