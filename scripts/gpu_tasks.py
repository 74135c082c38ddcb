"""Every task's GPU path, and what explicit-hydrogen QM9 (``qm9_3d_h``) costs on a GPU.

Run on a lent CUDA machine by ``scripts/gpu_check.sh`` after ``gpu_check.py`` (docs/benchmarks.md,
"Every task on the GPU"). One hard time budget (``--budget``, seconds of this script's wall
clock) is shared by two sections, each with its own share; a part whose share is spent is
skipped with a note, a part that fails is recorded and the others still run. Every heavy part
runs in a child process (killed with its process group when its time is up):

1. ``tasks``: for each task of ``configs/task/*.yaml``, ``sci-diffusion train`` on the device
   (bf16 autocast) for a few hundred steps, the same training for a few steps on this
   machine's CPU (``--cpu-threads`` threads) for the ratio, ``sci-diffusion eval`` on the device
   with a few samples or episodes, and the trained run's sampling throughput on the device and
   on the CPU (points, action chunks or molecules per second; env steps/s for policy tasks).
2. ``qm9_3d_h``: side by side on the same machine, the task's EGNN (128 x 4) and the same
   network at EDM's QM9 size (256 x 9, Hoogeboom et al. 2022): training molecules/s at batch
   64 on the device and on the CPU, sampling molecules/s at 100 steps. Then the task trains on
   the device as long as the section's share allows (the trainer's ``max_minutes`` stops it with
   a checkpoint), samples molecules at <= 100 steps and reports EDM's atom and molecule
   stability (the goal: molecule stability above EDM's 82.0%); last, what a longer GPU run
   would take (hours per 100 / 1,000 / 3,000 epochs, minutes per 10,000 samples).

Training rates are read while the child runs: each ``train_log.jsonl`` line is time-stamped
as it appears (every ``log_every`` steps), and the steady rate leaves out the first logged
interval (start-up, first kernels, allocator). Sampling rates time ``task.generate`` after a
warm-up call; on the CPU a few sampler steps are timed and scaled to the configured count
(marked ``extrapolated``).

Results: ``OUT_DIR/gpu_tasks.json`` (written atomically after every part) and stage lines plus
a summary table on stdout. ``--quick`` shrinks every part to a handful of steps and 2-4
samples, so ``--device cpu --quick`` exercises every section without a GPU (the tests do).

The molecule tasks read QM9 from ``qm9pack`` and MOSES from ``molsets`` (104 MB and 52 MB
wheels; a device call carries at most 64 MiB). ``python scripts/gpu_tasks.py pack`` writes
``.whl/gpu_data.tar.xz`` (~8 MiB): both packages' data trimmed to what a device run reads
(every QM9 row for the split and the SMILES, coordinates for the first 20,000 training
molecules; the first 20,000 MOSES training rows). Where that file exists, the run unpacks it
in front of ``PYTHONPATH`` for its children, with a fresh data cache (``--pack none``: never).

Usage::

    python scripts/gpu_tasks.py OUT_DIR [RUNS_DIR] [--budget 300] [--device cuda]
        [--tasks toy2d,reacher] [--sections tasks,qm9_3d_h] [--cpu-threads 16] [--quick]
    python scripts/gpu_tasks.py OUT_DIR --device cpu --quick --tasks toy2d --sections tasks
    python scripts/gpu_tasks.py pack [--out .whl/gpu_data.tar.xz]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import math
import os
import platform
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_PACK = REPO / ".whl" / "gpu_data.tar.xz"
RESULT_FILE = "gpu_tasks.json"
RATE_TAG = "GPU_TASKS_RATE "
TASK_ORDER = ("toy2d", "multimodal", "multimodal_pixels", "reacher", "pusher", "metaworld",
              "qm9_graph", "qm9_3d", "qm9_3d_h", "moses_graph")  # fmt: skip
POLICY_TASKS = ("multimodal", "multimodal_pixels", "reacher", "pusher", "metaworld")
VARIANTS = {"multimodal_pixels": ("multimodal", ("task.obs=pixels",))}
"""Parts named after a task with overrides: the pixel policy (camera frames rendered with
EGL on the device machine, the image encoder trained on CUDA)."""
MOLECULE_TASKS = ("qm9_graph", "qm9_3d", "qm9_3d_h", "moses_graph")
SECTIONS = ("tasks", "qm9_3d_h")
SHARES = {"tasks": 0.45, "qm9_3d_h": 0.55}
"""Each section's share of the budget when both run (time a section leaves flows on)."""
COMMON_MODULES = ("torch", "hydra", "omegaconf", "sci_diffusion")
NEEDS: dict[str, tuple[str, ...]] = {
    **{t: ("gymnasium", "mujoco", "h5py") for t in POLICY_TASKS},
    "metaworld": ("gymnasium", "mujoco", "h5py", "metaworld"),
    **{t: ("rdkit", "pandas", "qm9pack") for t in ("qm9_graph", "qm9_3d", "qm9_3d_h")},
    "moses_graph": ("rdkit", "pandas", "moses"),
}
"""Modules (found with importlib.util.find_spec, not imported) each task needs beyond the
common ones; ``qm9pack`` and ``moses`` are the data packages (molsets installs ``moses``)."""
EDM_MOL_STABILITY = 0.820
"""EDM's QM9 molecule stability with hydrogens (Hoogeboom et al. 2022, 1,000 steps)."""
EDM_SIZE = ("model.hidden=256", "model.n_layers=9")
"""EDM's QM9 EGNN: 256 features x 9 layers (configs/model/egnn.yaml is 128 x 4)."""
QM9_TRAIN = 100_000
EPOCH_PLAN = (100, 1000, 3000)
MIN_SPAN_S = 0.25
"""A steady rate needs log lines seen at least this far apart (else: None)."""
MIN_PART_S = 4.0
"""A part with less time than this left is skipped (a child needs seconds to start)."""


@dataclass(frozen=True)
class Sizes:
    """How much each part does (device run, or ``--quick``)."""

    steps: int = 200  # device training steps per task
    cpu_steps: int = 20  # the same training on the CPU, for the ratio
    demo_episodes: int = 10  # expert episodes a policy task collects to train on
    eval_episodes: int = 4  # policy eval episodes (as many environments in lockstep)
    eval_n: int = 32  # eval samples of the generative tasks (toy2d: x32)
    data_limit: int = 5000  # molecule tasks: first k training molecules
    rate_n: int = 64  # molecules (toy2d: x64 points, policy: x4 chunks) per timed batch
    rate_cpu_steps: int = 5  # sampler steps timed on the CPU, scaled to the configured count
    probe_steps: int = 60  # qm9_3d_h side by side: device steps of EDM's size
    probe_cpu_steps: int = 4  # ... and CPU steps
    probe_batch: int = 64  # EDM's batch size
    qm9h_limit: int = 10000  # qm9_3d_h: first k training molecules (the pack has 20,000)
    qm9h_max_steps: int = 400_000  # the long run's planned length (its cosine schedule)
    qm9h_eval_n: int = 256
    qm9h_eval_steps: int = 100
    qm9h_rate_n: tuple[int, ...] = (64, 512)  # device batches timed (the CPU: the first)
    eval_reserve_s: float = 50.0  # qm9_3d_h: kept from the long run for the evaluation
    rate_reserve_s: float = 30.0  # ... and for the sampling rates
    start_s: float = 10.0  # a training child's start-up and data loading (max_minutes excl.)
    prepare_s: float = 10.0  # ... and a first run's demonstrations or molecule data set


QUICK = Sizes(steps=3, cpu_steps=2, demo_episodes=2, eval_episodes=1, eval_n=4, data_limit=64,
              rate_n=2, rate_cpu_steps=2, probe_steps=2, probe_cpu_steps=2, qm9h_limit=64,
              qm9h_max_steps=3, qm9h_eval_n=2, qm9h_eval_steps=2, qm9h_rate_n=(2,),
              eval_reserve_s=0.0, rate_reserve_s=0.0, start_s=0.0, prepare_s=0.0)  # fmt: skip


# -- small helpers ------------------------------------------------------------------------------


def say(text: str) -> None:
    """A stage line on stdout."""
    print(f"[gpu_tasks {time.strftime('%H:%M:%S')}] {text}", flush=True)


def task_args(task: str) -> list[str]:
    """``task=<name>`` and a variant's overrides (:data:`VARIANTS`)."""
    base, extra = VARIANTS.get(task, (task, ()))
    return [f"task={base}", *extra]


def kind_of(task: str) -> str:
    if task in POLICY_TASKS:
        return "policy"
    if task in MOLECULE_TASKS:
        return "molecule"
    return task  # toy2d (and any task this script does not know: treated like it)


def unit_of(task: str) -> str:
    return {"policy": "action chunks", "molecule": "molecules"}.get(kind_of(task), "samples")


def steady_rate(points: Sequence[tuple[float, int]]) -> float | None:
    """Steps/s from (time seen, step) log points, leaving out the first logged interval (it
    holds start-up: first kernels, allocator, autotuning); None with too few points."""
    if len(points) < 2:
        return None
    (t0, s0), (t1, s1) = (points[1] if len(points) >= 3 else points[0]), points[-1]
    # Lines are seen at polls (every 10 ms): shorter spans would measure the polling.
    return (s1 - s0) / (t1 - t0) if t1 - t0 >= MIN_SPAN_S and s1 > s0 else None


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return f"{value:.{digits}g}"
    return str(value)


class Budget:
    """The overall hard budget, and deadlines of its parts (time.monotonic seconds)."""

    def __init__(self, total_s: float) -> None:
        self.total_s = float(total_s)
        self.start = time.monotonic()

    @property
    def end(self) -> float:
        return self.start + self.total_s

    def left(self, deadline: float | None = None) -> float:
        return min(self.end, deadline if deadline is not None else self.end) - time.monotonic()

    def spent(self) -> float:
        return time.monotonic() - self.start


def _skipped_when_spent(left: float) -> dict[str, Any] | None:
    """The record of a part that cannot start with ``left`` seconds (< MIN_PART_S), else None."""
    if left < MIN_PART_S:
        return {"status": "skipped", "note": f"budget spent ({left:.0f} s left)"}
    return None


# -- child processes ------------------------------------------------------------------------------


@dataclass
class ChildResult:
    rc: int | None  # None: killed at its time limit
    wall_s: float
    log: Path
    points: list[tuple[float, int]]

    @property
    def ok(self) -> bool:
        return self.rc == 0

    def tail(self, chars: int = 1500) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


class LogWatcher:
    """Reads a growing ``train_log.jsonl`` and time-stamps each step line as it appears."""

    def __init__(self, path: Path) -> None:
        self.path, self.offset, self.partial = path, 0, ""
        self.points: list[tuple[float, int]] = []

    def poll(self) -> None:
        try:
            with self.path.open("r") as f:
                f.seek(self.offset)
                text = f.read()
                self.offset = f.tell()
        except OSError:
            return
        now = time.monotonic()
        lines = (self.partial + text).split("\n")
        self.partial = lines.pop()
        for line in lines:
            with contextlib.suppress(ValueError, KeyError, TypeError):
                self.points.append((now, int(json.loads(line)["step"])))


def run_child(
    cmd: Sequence[str], env: dict[str, str], timeout_s: float, log: Path,
    watch: Path | None = None,
) -> ChildResult:  # fmt: skip
    """Run ``cmd`` (output into ``log``) in its own process group; kill the group when
    ``timeout_s`` is up. With ``watch``, time-stamp that train log's lines while it runs."""
    log.parent.mkdir(parents=True, exist_ok=True)
    watcher = LogWatcher(watch) if watch is not None else None
    start = time.monotonic()
    with log.open("w") as out:
        out.write("$ " + " ".join(map(str, cmd)) + "\n")
        out.flush()
        proc = subprocess.Popen(list(map(str, cmd)), stdout=out, stderr=subprocess.STDOUT,
                                env=env, start_new_session=True)  # fmt: skip
        rc: int | None = None
        try:
            while True:
                rc = proc.poll()
                if watcher is not None:
                    watcher.poll()
                if rc is not None:
                    break
                if time.monotonic() - start > timeout_s:
                    _kill_group(proc)
                    rc = None
                    break
                time.sleep(0.01 if watcher is not None else 0.05)
        except BaseException:
            _kill_group(proc)
            raise
    if watcher is not None:
        watcher.poll()
    return ChildResult(rc, time.monotonic() - start, log, watcher.points if watcher else [])


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the child's own process group (it and the workers it started), then reap it."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(Exception):
        proc.wait(timeout=10)


# -- the run's context -------------------------------------------------------------------------


@dataclass
class Context:
    out: Path
    runs: Path
    device: str
    cpu_threads: int
    sizes: Sizes
    budget: Budget
    env: dict[str, str]
    report: dict[str, Any]

    def save(self) -> None:
        from sci_diffusion.io.files import write_json_atomic

        self.report["spent_s"] = round(self.budget.spent(), 1)
        write_json_atomic(self.out / RESULT_FILE, self.report)

    @property
    def cli(self) -> list[str]:
        return [sys.executable, "-m", "sci_diffusion"]

    def child_env(self, where: str) -> dict[str, str]:
        env = dict(self.env)
        if where == "cpu":
            env.update(OMP_NUM_THREADS=str(self.cpu_threads), MKL_NUM_THREADS=str(self.cpu_threads))
            if self.device != "cpu":
                env["CUDA_VISIBLE_DEVICES"] = ""  # the CPU figures must not touch the GPU
        return env

    def on(self, where: str) -> str:
        """The trainer.device of a part: ``device`` (the accelerator) or ``cpu``."""
        return self.device if where == "device" else "cpu"


def train_part(
    ctx: Context, name: str, task: str, where: str, steps: int, extra: Sequence[str],
    deadline: float, *, max_minutes: float | None = None, checkpoint_every: int | None = None,
    prepare_s: float = 0.0,
) -> dict[str, Any]:  # fmt: skip
    """``sci-diffusion train`` on ``where`` (device or cpu) into ``runs/name``; its rates."""
    left = ctx.budget.left(deadline)
    if (skipped := _skipped_when_spent(left)) is not None:
        return skipped
    run_dir = ctx.runs / name
    device = ctx.on(where)
    log_every = max(1, min(steps // 20, 50))  # enough time-stamped lines for a steady rate
    if max_minutes is None:  # the trainer stops (and checkpoints) before the part is killed
        max_minutes = max(left - ctx.sizes.start_s - prepare_s, 0.4 * left) / 60
    cmd = [*ctx.cli, "train", *task_args(task), f"trainer.device={device}",
           f"trainer.max_steps={steps}", "trainer.progress=false", f"trainer.log_every={log_every}",
           f"trainer.checkpoint_every={checkpoint_every or steps}",
           f"trainer.precision={'fp32' if device == 'cpu' else 'bf16'}",
           f"hydra.run.dir={run_dir}", *extra]  # fmt: skip
    if max_minutes is not None:
        cmd.append(f"trainer.max_minutes={max_minutes:.4f}")
    say(f"{name}: train on {device}, {steps} steps max" + (
        f", {max_minutes * 60:.0f} s of training" if max_minutes is not None else "") +
        f" (part budget {left:.0f} s)")  # fmt: skip
    child = run_child(cmd, ctx.child_env(where), left, ctx.runs / f"{name}.log",
                      watch=run_dir / "train_log.jsonl")  # fmt: skip
    record: dict[str, Any] = {"device": device, "run_dir": str(run_dir), "rc": child.rc,
                              "process_wall_s": round(child.wall_s, 2),
                              "command": cmd[2:]}  # fmt: skip
    card = _read_json(run_dir / "card.json").get("training", {})  # written when training ends
    steady = steady_rate(child.points)
    record["steady_steps_per_s"] = steady
    record["log_points"] = len(child.points)
    if card:
        batch = card.get("batch_size_per_process")
        overall = card["steps"] / card["wall_time_s"] if card.get("wall_time_s") else None
        record.update({
            "steps": card.get("steps"), "stop_reason": card.get("stop_reason"),
            "train_wall_s": card.get("wall_time_s"), "precision": card.get("precision"),
            "batch_size": batch, "final_loss": card.get("final_loss"), "steps_per_s": overall,
        })  # fmt: skip
    elif child.points:
        record["steps_logged"] = child.points[-1][1]
    # The rate used below: steady where the log allows it, else the card's (start-up included).
    rate = steady or record.get("steps_per_s")
    record["rate_steps_per_s"] = rate
    record["rate_from"] = "train log (steady)" if steady else (
        "card (whole loop, first steps included)" if rate else None)  # fmt: skip
    batch = record.get("batch_size")
    record["examples_per_s"] = rate * batch if rate and batch else None
    record["status"] = "ok" if child.ok else ("timeout" if child.rc is None else "failed")
    if not child.ok:
        record["tail"] = child.tail()
    say(f"{name}: {record['status']} rc={child.rc} {child.wall_s:.1f} s, steps "
        f"{record.get('steps')}, {fmt(rate)} steps/s ({record['rate_from']}), "
        f"{fmt(record['examples_per_s'])} examples/s")  # fmt: skip
    return record


def eval_part(
    ctx: Context, name: str, run_dir: str, extra: Sequence[str], deadline: float
) -> dict[str, Any]:
    """``sci-diffusion eval`` of a run on the device; the metrics that matter here."""
    left = ctx.budget.left(deadline)
    if (skipped := _skipped_when_spent(left)) is not None:
        return skipped
    cmd = [*ctx.cli, "eval", f"run={run_dir}", f"trainer.device={ctx.device}", *extra]
    say(f"{name}: eval on {ctx.device} {' '.join(extra)} (part budget {left:.0f} s)")
    child = run_child(cmd, ctx.child_env("device"), left, ctx.runs / f"{name}.log")
    record: dict[str, Any] = {"rc": child.rc, "process_wall_s": round(child.wall_s, 2),
                              "command": cmd[2:]}  # fmt: skip
    record["status"] = "ok" if child.ok else ("timeout" if child.rc is None else "failed")
    if child.ok:
        record["metrics"] = key_metrics(_read_json(Path(run_dir) / "metrics.json"))
    else:
        record["tail"] = child.tail()
    say(f"{name}: {record['status']} rc={child.rc} {child.wall_s:.1f} s "
        f"{json.dumps(record.get('metrics', {}), default=str)[:300]}")  # fmt: skip
    return record


KEY_METRICS = ("sampler", "steps", "n_samples", "matches_data", "sliced_wasserstein",
               "off_mode_share", "episodes", "success_rate", "mean_episode_length",
               "chunk_latency_ms", "validity", "validity_strict", "uniqueness", "atom_stability",
               "mol_stability", "gate_seconds")  # fmt: skip


def key_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """The metrics this report shows (the whole file stays in the run directory)."""
    picked = {k: metrics[k] for k in KEY_METRICS if k in metrics}
    for method, values in (metrics.get("from_coordinates") or {}).items():
        picked[f"from_coordinates.{method}"] = {
            k: values.get(k) for k in ("validity", "atom_stability", "mol_stability")
        }
    return picked


def _tagged_record(child: ChildResult, scan_chars: int) -> dict[str, Any]:
    """A child's record: rc, wall time, the last ``RATE_TAG`` JSON line of its output (in the
    last ``scan_chars`` characters) merged in, status, and its output's tail unless ok."""
    record: dict[str, Any] = {"rc": child.rc, "process_wall_s": round(child.wall_s, 2)}
    found = [line for line in child.tail(scan_chars).splitlines() if line.startswith(RATE_TAG)]
    if found:
        record.update(json.loads(found[-1][len(RATE_TAG) :]))
    record["status"] = "ok" if child.ok and found else (
        "timeout" if child.rc is None else "failed")  # fmt: skip
    if record["status"] != "ok":
        record["tail"] = child.tail()
    return record


def rate_part(
    ctx: Context, name: str, run_dir: str, batches: Sequence[int], deadline: float,
    episodes: int = 0, cpu: bool = True,
) -> dict[str, Any]:  # fmt: skip
    """Sampling throughput of a trained run on the device and the CPU (a child process)."""
    left = ctx.budget.left(deadline)
    if (skipped := _skipped_when_spent(left)) is not None:
        return skipped
    cmd = [sys.executable, str(Path(__file__).resolve()), "_rate", "--run", run_dir,
           "--device", ctx.device, "--cpu-threads", str(ctx.cpu_threads),
           "--n", ",".join(map(str, batches)), "--cpu-steps", str(ctx.sizes.rate_cpu_steps),
           "--episodes", str(episodes)] + ([] if cpu else ["--no-cpu"])  # fmt: skip
    say(f"{name}: sampling rates on {ctx.device}" + (" and cpu" if cpu else "") +
        f", batches {list(batches)} (part budget {left:.0f} s)")  # fmt: skip
    child = run_child(cmd, ctx.child_env("device"), left, ctx.runs / f"{name}.log")
    record = _tagged_record(child, scan_chars=200_000)
    for where in ("device", "cpu"):
        for row in record.get(where, []):
            say(f"{name}: {where} batch {row['n']}: {fmt(row['per_s'])} {row['unit']}/s at "
                f"{row['steps_configured']} steps" + (" (extrapolated from "
                f"{row['steps_timed']})" if row["extrapolated"] else "") + (
                f"; env {fmt(row.get('env_steps_per_s'))} steps/s" if "env_steps_per_s" in row
                else ""))  # fmt: skip
    return record


def data_part(
    ctx: Context, name: str, task: str, overrides: Sequence[str], deadline: float
) -> dict[str, Any]:
    """Build a task's training data (into the data cache) in a child; how long it took."""
    left = ctx.budget.left(deadline)
    if (skipped := _skipped_when_spent(left)) is not None:
        return skipped
    cmd = [sys.executable, str(Path(__file__).resolve()), "_data", *task_args(task), *overrides]
    say(f"{name}: build {task}'s data {' '.join(overrides)} (part budget {left:.0f} s)")
    child = run_child(cmd, ctx.child_env("cpu"), left, ctx.runs / f"{name}.log")
    record = _tagged_record(child, scan_chars=20_000)
    say(f"{name}: {record['status']} {child.wall_s:.1f} s, {record.get('examples')} examples "
        f"in {fmt(record.get('seconds'))} s")  # fmt: skip
    return record


def data_main(argv: Sequence[str]) -> int:
    """``_data task=<name> [overrides]``: build (and cache) the task's training data."""
    from sci_diffusion.config import compose
    from sci_diffusion.tasks import build_task

    cfg, _ = compose(list(argv))
    task = build_task(cfg)
    start = time.perf_counter()
    data = task.data()
    seconds = time.perf_counter() - start
    print(RATE_TAG + json.dumps({"examples": len(data), "seconds": seconds}), flush=True)
    return 0


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _first(record: dict[str, Any], where: str) -> dict[str, Any]:
    rows = record.get(where) or []
    return rows[0] if rows else {}


# -- section 1: every task ----------------------------------------------------------------------


def task_overrides(task: str, s: Sizes) -> tuple[list[str], list[str]]:
    """(train overrides, eval overrides) that keep a task's parts small."""
    kind = kind_of(task)
    if kind == "policy":
        train = [f"task.data.episodes={s.demo_episodes}", "task.data.progress=false"]
        return train, [f"episodes={s.eval_episodes}", f"task.eval.n_envs={s.eval_episodes}",
                       "task.eval.videos=0", "task.eval.latency_repeats=3"]  # fmt: skip
    if kind == "molecule":
        return [f"task.data.limit={s.data_limit}"], [f"n={s.eval_n}"]
    return [], [f"n={s.eval_n * 32}"]


def missing_modules(names: Sequence[str]) -> list[str]:
    missing = []
    for name in names:
        try:
            if importlib.util.find_spec(name) is None:
                missing.append(name)
        except (ImportError, ValueError):
            missing.append(name)
    return missing


def one_task(ctx: Context, task: str, deadline: float) -> dict[str, Any]:
    s = ctx.sizes
    start = time.monotonic()
    record: dict[str, Any] = {"kind": kind_of(task), "unit": unit_of(task),
                              "budget_s": round(ctx.budget.left(deadline), 1)}  # fmt: skip

    def by(fraction: float) -> float:  # the end of a part: a fraction of the task's time
        return start + fraction * (deadline - start)

    train, evaluate = task_overrides(task, s)
    prepare = s.prepare_s if kind_of(task) in ("policy", "molecule") else 0.0
    record["train_device"] = train_part(ctx, f"{task}_device", task, "device", s.steps, train,
                                        by(0.55), prepare_s=prepare)  # fmt: skip
    record["train_cpu"] = train_part(ctx, f"{task}_cpu", task, "cpu", s.cpu_steps, train, by(0.7))
    run_dir = record["train_device"].get("run_dir")
    if not record["train_device"].get("steps"):
        record["eval"] = {"status": "skipped", "note": "no device-trained checkpoint"}
        record["rate"] = {"status": "skipped", "note": "no device-trained checkpoint"}
    else:
        if task == "moses_graph":  # novelty canonicalizes every MOSES training SMILES first
            record["eval"] = {"status": "skipped", "note": "by design: CLI eval scoring "
                              "canonicalizes all 1.58M MOSES training SMILES (CPU minutes, no "
                              "GPU path); the sampling (rate) is the GPU path"}  # fmt: skip
        else:
            record["eval"] = eval_part(ctx, f"{task}_eval", run_dir, evaluate, by(0.85))
        batch = s.rate_n * {"toy2d": 64, "policy": 4}.get(kind_of(task), 1)
        episodes = s.eval_episodes if kind_of(task) == "policy" else 0
        record["rate"] = rate_part(ctx, f"{task}_rate", run_dir, [batch], deadline, episodes)
    device_rate = record["train_device"].get("rate_steps_per_s")
    cpu_rate = record["train_cpu"].get("rate_steps_per_s")
    record["train_speedup_vs_cpu"] = ratio(device_rate, cpu_rate)
    record["sample_speedup_vs_cpu"] = ratio(_first(record["rate"], "device").get("per_s"),
                                            _first(record["rate"], "cpu").get("per_s"))  # fmt: skip
    parts = ("train_device", "train_cpu", "eval", "rate")
    failed = [k for k in parts if record[k]["status"] in ("failed", "timeout")]
    skipped = [k for k in parts if record[k]["status"] == "skipped"
               and not record[k].get("note", "").startswith("by design")]  # fmt: skip
    record["status"] = "failed" if failed else ("partial" if skipped else "ok")
    if failed or skipped:
        record["note"] = ", ".join([*(f"{k} {record[k]['status']}" for k in failed),
                                    *(f"{k} skipped" for k in skipped)])  # fmt: skip
    record["spent_s"] = round(time.monotonic() - start, 1)
    return record


def tasks_section(ctx: Context, tasks: Sequence[str], deadline: float) -> dict[str, Any]:
    section: dict[str, Any] = {"budget_s": round(ctx.budget.left(deadline), 1), "tasks": {}}
    ctx.report["sections"]["tasks"] = section
    runnable = []
    for task in tasks:  # tasks that cannot run here are skipped now: their time goes to others
        missing = missing_modules(NEEDS.get(task, ()))
        if missing:
            note = (f"missing modules {missing}: carry their wheels (and the data pack, "
                    "scripts/gpu_tasks.py pack) to the device")  # fmt: skip
            section["tasks"][task] = {"kind": kind_of(task), "status": "skipped", "note": note}
            say(f"tasks/{task}: skipped, {note}")
        else:
            runnable.append(task)
    for i, task in enumerate(runnable):
        share = ctx.budget.left(deadline) / (len(runnable) - i)
        say(f"tasks/{task}: {share:.0f} s")
        try:
            section["tasks"][task] = one_task(ctx, task, time.monotonic() + share)
        except Exception as err:  # record it; the next task still runs
            section["tasks"][task] = {"status": "failed", "note": repr(err),
                                      "traceback": traceback.format_exc()[-2000:]}  # fmt: skip
        ctx.save()
    section["tasks"] = {t: section["tasks"][t] for t in tasks}  # the configs' order
    statuses = [r["status"] for r in section["tasks"].values()]
    section["status"] = "failed" if "failed" in statuses else (
        "ok" if all(x == "ok" for x in statuses) else "partial")  # fmt: skip
    return section


# -- section 2: qm9_3d_h against the CPU and EDM's model size ---------------------------------


def qm9h_section(ctx: Context, deadline: float) -> dict[str, Any]:
    s = ctx.sizes
    start = time.monotonic()
    rec: dict[str, Any] = {"budget_s": round(ctx.budget.left(deadline), 1),
                           "goal": "molecule stability above EDM's 82.0% at <= 100 steps",
                           "data_limit": s.qm9h_limit}  # fmt: skip
    ctx.report["sections"]["qm9_3d_h"] = rec
    missing = missing_modules(NEEDS["qm9_3d_h"])
    if missing:
        rec.update(status="skipped", note=f"missing modules {missing}")
        say(f"qm9_3d_h: skipped, {rec['note']}")
        return rec
    data = [f"task.data.limit={s.qm9h_limit}"]
    models = {"ours_128x4": (), "edm_256x9": EDM_SIZE}
    # 0. the data set (aligning QM9 structures with hydrogens), once, into the cache.
    rec["data"] = data_part(ctx, "qm9h_data", "qm9_3d_h", data, start + 0.2 * (deadline - start))
    ctx.save()
    # 1. side by side at EDM's batch of 64: EDM's size on the device and the CPU, ours on the
    # CPU (short runs); ours on the device is the long run below.
    probes: dict[str, Any] = {}
    rec["probes"] = probes
    probe_end = time.monotonic() + 0.3 * (deadline - time.monotonic())
    legs = [("edm_256x9", "device"), ("edm_256x9", "cpu"), ("ours_128x4", "cpu")]
    for i, (model, where) in enumerate(legs):
        steps = s.probe_steps if where == "device" else s.probe_cpu_steps
        probes[f"{model}/{where}"] = train_part(
            ctx,
            f"qm9h_probe_{model}_{where}",
            "qm9_3d_h",
            where,
            steps,
            [*data, f"trainer.batch_size={s.probe_batch}", *models[model]],
            time.monotonic() + (probe_end - time.monotonic()) / (len(legs) - i),
        )
        ctx.save()
    # 2. the long run (ours, device, batch 64, the task's recipe otherwise): all the time not
    # kept for the evaluation and the rates; max_minutes stops it with a checkpoint.
    train_end = deadline - s.eval_reserve_s - s.rate_reserve_s
    # At least 15 s of training (taken from the reserves): evaluation and rates need the run.
    seconds = max(train_end - time.monotonic() - s.start_s, 15.0 if s.start_s else 1.0)
    rec["train"] = train_part(
        ctx,
        "qm9h_train",
        "qm9_3d_h",
        "device",
        s.qm9h_max_steps,
        [*data, f"trainer.batch_size={s.probe_batch}"],
        time.monotonic() + seconds + s.start_s + 20,
        max_minutes=seconds / 60,
        checkpoint_every=1000,
    )
    probes["ours_128x4/device"] = rec["train"]
    ctx.save()
    run_dir = rec["train"].get("run_dir") if rec["train"].get("steps") else None
    rec["evaluated_run_dir"] = run_dir
    # 3. molecules at <= 100 steps, EDM's stability.
    if run_dir:
        rec["eval"] = eval_part(ctx, "qm9h_eval", run_dir,
                                [f"n={s.qm9h_eval_n}", f"steps={s.qm9h_eval_steps}"],
                                deadline - s.rate_reserve_s)  # fmt: skip
        rec["stability"] = stability(rec["eval"].get("metrics", {}))
    else:
        rec["eval"] = {"status": "skipped", "note": "no trained run"}
    ctx.save()
    # 4. sampling molecules/s, device and CPU, ours and EDM's size.
    rates: dict[str, Any] = {}
    rec["rates"] = rates
    targets = {"ours_128x4": run_dir,
               "edm_256x9": probes["edm_256x9/device"].get("run_dir")
               if probes["edm_256x9/device"].get("steps") else None}  # fmt: skip
    for i, (model, target) in enumerate(targets.items()):
        if target is None:
            rates[model] = {"status": "skipped", "note": "no trained run"}
            continue
        batches = s.qm9h_rate_n if model == "ours_128x4" else s.qm9h_rate_n[:1]
        left = ctx.budget.left(deadline)
        rates[model] = rate_part(ctx, f"qm9h_rate_{model}", target, batches,
                                 time.monotonic() + left / (len(targets) - i))  # fmt: skip
        ctx.save()
    rec["side_by_side"] = side_by_side(probes, rates, s.probe_batch)
    rec["plan"] = plan(rec, s)
    for line in rec["plan"]["lines"]:
        say(f"qm9_3d_h plan: {line}")
    parts = [rec["data"], rec["eval"], *probes.values(), rec["train"], *rates.values()]
    bad = [p.get("status") for p in parts if p.get("status") in ("failed", "timeout")]
    rec["status"] = "failed" if bad else ("ok" if rec["eval"].get("status") == "ok" else "partial")
    rec["spent_s"] = round(time.monotonic() - start, 1)
    return rec


def stability(metrics: dict[str, Any]) -> dict[str, Any]:
    """EDM's atom / molecule stability of the evaluated samples, by where the bonds came from.
    ``edm_distance_table`` (bonds from coordinates with EDM's table) is how EDM reports its
    82.0%; ``generated_bonds`` applies the same valence check to the model's own bonds."""
    rows = {"generated_bonds": {k: metrics.get(k) for k in
                                ("atom_stability", "mol_stability", "validity")}}  # fmt: skip
    for name, key in (
        ("edm_distance_table", "from_coordinates.edm_distances"),
        ("rdkit_determine_bonds", "from_coordinates.rdkit_determine_bonds"),
    ):
        rows[name] = metrics.get(key)
    edm = (rows.get("edm_distance_table") or {}).get("mol_stability")
    return {**rows, "samples": metrics.get("n_samples"), "sampler": metrics.get("sampler"),
            "steps": metrics.get("steps"), "target_mol_stability": EDM_MOL_STABILITY,
            "target_met": None if edm is None else edm > EDM_MOL_STABILITY}  # fmt: skip


def side_by_side(probes: dict[str, Any], rates: dict[str, Any], batch: int) -> list[dict]:
    """Rows (model, where): training molecules/s and ms/step at batch 64, sampling
    molecules/s at 100 steps (batch 64), and the device/CPU ratios."""
    rows = []
    for model in ("ours_128x4", "edm_256x9"):
        for where in ("device", "cpu"):
            probe = probes.get(f"{model}/{where}", {})
            rate = _first(rates.get(model, {}), where)
            steady = probe.get("rate_steps_per_s")
            rows.append({
                "model": model, "where": where, "device": probe.get("device"),
                "batch": batch, "train_steps_per_s": steady,
                "train_ms_per_step": 1000 / steady if steady else None,
                "train_molecules_per_s": steady * batch if steady else None,
                "sample_molecules_per_s": rate.get("per_s"),
                "sample_batch": rate.get("n"), "sample_steps": rate.get("steps_configured"),
                "sample_extrapolated": rate.get("extrapolated"),
            })  # fmt: skip
    by = {(r["model"], r["where"]): r for r in rows}
    for r in rows:
        if r["where"] == "device":
            cpu = by[(r["model"], "cpu")]
            r["train_speedup_vs_cpu"] = ratio(r["train_molecules_per_s"],
                                              cpu["train_molecules_per_s"])  # fmt: skip
            r["sample_speedup_vs_cpu"] = ratio(r["sample_molecules_per_s"],
                                               cpu["sample_molecules_per_s"])  # fmt: skip
        if r["model"] == "ours_128x4":
            edm = by[("edm_256x9", r["where"])]
            r["train_cost_edm_over_ours"] = ratio(r["train_molecules_per_s"],
                                                  edm["train_molecules_per_s"])  # fmt: skip
            r["sample_cost_edm_over_ours"] = ratio(r["sample_molecules_per_s"],
                                                   edm["sample_molecules_per_s"])  # fmt: skip
    return rows


def plan(rec: dict[str, Any], s: Sizes) -> dict[str, Any]:
    """What a longer GPU run would take, from the measured device rates."""
    lines, out = [], {}
    train = rec.get("train", {})
    sources = [("ours_128x4 (the long run)", train.get("rate_steps_per_s"), s.probe_batch),
               ("edm_256x9", rec["probes"].get("edm_256x9/device", {}).get("rate_steps_per_s"),
                s.probe_batch)]  # fmt: skip
    for label, rate, batch in sources:
        if not rate or not batch:
            continue
        epoch_steps = QM9_TRAIN / batch
        hours = {e: e * epoch_steps / rate / 3600 for e in EPOCH_PLAN}
        out[label] = {"steps_per_s": rate, "batch": batch, "steps_per_epoch": epoch_steps,
                      "hours_per_epochs": hours, "steps_in_10_min": rate * 600}  # fmt: skip
        lines.append(f"{label}: {rate:.3g} steps/s at batch {batch} = {rate * batch:.3g} "
                     "molecules/s; "
                     f"one epoch ({QM9_TRAIN:,} molecules) {epoch_steps / rate / 60:.1f} min; "
                     + ", ".join(f"{e} epochs {h:.1f} h" for e, h in hours.items())
                     + f"; 10 device-minutes = {rate * 600:,.0f} steps")  # fmt: skip
    for model, record in rec.get("rates", {}).items():
        rows = record.get("device") or []
        if rows:
            best = max(rows, key=lambda r: r["per_s"] or 0)
            if best["per_s"]:
                minutes = 10_000 / best["per_s"] / 60
                out[f"sample_{model}"] = {"molecules_per_s": best["per_s"], "batch": best["n"],
                                          "minutes_per_10000": minutes}  # fmt: skip
                lines.append(f"sampling {model}: {best['per_s']:.3g} molecules/s at batch "
                             f"{best['n']}, {best['steps_configured']} steps: 10,000 molecules "
                             f"(EDM's evaluation size) in {minutes:.1f} min")  # fmt: skip
    st = rec.get("stability") or {}
    edm = (st.get("edm_distance_table") or {}).get("mol_stability")
    gen = (st.get("generated_bonds") or {}).get("mol_stability")
    lines.append(f"reached: {train.get('steps') or 0} steps of the long run; molecule stability "
                 f"{fmt(edm)} (EDM distance table), {fmt(gen)} (generated bonds) on "
                 f"{st.get('samples') or 0} samples at {st.get('steps') or '-'} steps; goal > "
                 f"{EDM_MOL_STABILITY:.3f} (EDM trains 1,000-3,000 epochs)")  # fmt: skip
    return {"lines": lines, **out}


# -- the sampling-rate child ---------------------------------------------------------------------


def rate_main(argv: Sequence[str]) -> int:
    """``_rate``: time ``task.generate`` of a run on the device and the CPU; one JSON line."""
    p = argparse.ArgumentParser(prog="gpu_tasks.py _rate")
    p.add_argument("--run", required=True)
    p.add_argument("--device", default="cuda")
    p.add_argument("--cpu-threads", type=int, default=1)
    p.add_argument("--n", default="64")
    p.add_argument("--cpu-steps", type=int, default=5)
    p.add_argument("--episodes", type=int, default=0)
    p.add_argument("--no-cpu", action="store_true")
    args = p.parse_args(argv)
    import torch

    from sci_diffusion.train.evaluate import load_run

    batches = [int(b) for b in args.n.split(",")]
    legs = [("device", args.device, None, batches)]
    if not args.no_cpu:
        legs.append(("cpu", "cpu", args.cpu_steps, batches[:1]))
    result: dict[str, Any] = {}
    for label, device, steps, sizes in legs:
        if device == "cpu":
            torch.set_num_threads(args.cpu_threads)
        try:
            loaded = load_run(Path(args.run), device)
            result[label] = [time_generate(loaded, n, steps, args.episodes if i == 0 else 0)
                             for i, n in enumerate(sizes)]  # fmt: skip
        except Exception as err:  # the other leg still runs
            result[f"{label}_error"] = repr(err)
            traceback.print_exc()
    print(RATE_TAG + json.dumps(result, default=str), flush=True)
    return 0 if not any(k.endswith("_error") for k in result) else 1


def time_generate(loaded: Any, n: int, steps: int | None, episodes: int) -> dict[str, Any]:
    """Samples per second of ``loaded``'s task at its configured sampler steps (timed at
    ``steps`` when given and fewer, then scaled); with ``episodes``, env steps/s too."""
    import torch

    task, denoiser, device = loaded.task, loaded.denoiser, loaded.device
    sampler = task.cfg.sampler
    configured = int(sampler.steps)
    timed = min(steps, configured) if steps else configured

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    generator = torch.Generator(device=device).manual_seed(0)
    sampler.steps = min(2, timed)  # warm-up: kernels, allocator, lazy data
    task.generate(denoiser, min(n, 8), generator, device)
    sampler.steps = timed
    sync()
    start = time.perf_counter()
    out = task.generate(denoiser, n, generator, device)
    sync()
    seconds = time.perf_counter() - start
    sampler.steps = configured
    produced = int(next(iter(out.values())).shape[0])
    per_step = seconds / timed
    row: dict[str, Any] = {
        "device": str(device), "threads": torch.get_num_threads(), "n": produced,
        "unit": unit_of(str(task.cfg.task.name)), "sampler": str(sampler.name),
        "steps_timed": timed, "steps_configured": configured, "seconds": seconds,
        "ms_per_step": 1000 * per_step, "extrapolated": timed < configured,
        "per_s": produced / (per_step * configured),
    }  # fmt: skip
    if task.cfg.task.name == "toy2d":
        row["note"] = "toy2d's generate draws the learned and the exact-denoiser samples"
    if episodes and hasattr(task, "env_task"):
        from sci_diffusion.policy.rollout import run_episodes

        e = task.cfg.task.eval
        seeds = [int(e.seed) + i for i in range(episodes)]
        start = time.perf_counter()
        played = run_episodes(task.policy(denoiser), task.env_task, seeds, generator,
                              n_envs=episodes, env_name=task.env_name, env_seed=int(e.seed),
                              record=0, progress=False,
                              pixels=getattr(task, "pixels", None))  # fmt: skip
        seconds = time.perf_counter() - start
        env_steps = sum(ep.length for ep in played)
        row.update(episodes=len(played), env_steps=env_steps, env_seconds=seconds,
                   env_steps_per_s=env_steps / seconds if seconds > 0 else None,
                   successes=sum(bool(ep.success) for ep in played))  # fmt: skip
    return row


# -- the data pack --------------------------------------------------------------------------------


def pack_main(argv: Sequence[str]) -> int:
    """``pack``: QM9 and MOSES data trimmed for a device call (see the module docstring)."""
    p = argparse.ArgumentParser(prog="gpu_tasks.py pack")
    p.add_argument("--out", default=str(DEFAULT_PACK))
    p.add_argument(
        "--qm9-coordinates",
        type=int,
        default=20_000,
        help="keep coordinates of this many first training molecules",
    )
    p.add_argument(
        "--moses-rows",
        type=int,
        default=100_000,
        help="MOSES training rows (100,000: moses_graph's task.data.limit, so a device run "
        "trains on what the embedded CPU model saw; ~0.7 MB compressed)",
    )
    args = p.parse_args(argv)
    import pandas as pd

    from sci_diffusion.chem.data import moses_source_file, qm9_source_files, qm9_split

    out = Path(args.out)
    keep = set(qm9_split().train[: args.qm9_coordinates])
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        qm9 = root / "qm9pack"
        (qm9 / "data").mkdir(parents=True)
        (qm9 / "__init__.py").write_text(
            '"""qm9pack\'s QM9 files trimmed by scripts/gpu_tasks.py pack: every row\'s ids, '
            f"SMILES and InChI; Elements and XYZ_Ang for the first {args.qm9_coordinates} "
            'training molecules only ("[]" elsewhere)."""\n'
        )
        columns = ["XYZ_file", "Index", "SMILES", "InChi", "Elements", "XYZ_Ang"]
        for path in qm9_source_files():
            say(f"pack: {path.name}")
            frame = pd.read_csv(path, usecols=columns)
            drop = ~frame["Index"].isin(keep)
            frame.loc[drop, ["Elements", "XYZ_Ang"]] = "[]"
            frame.to_csv(qm9 / "data" / path.name, index=False)
        moses = root / "moses" / "dataset" / "data"
        moses.mkdir(parents=True)
        (root / "moses" / "__init__.py").write_text(
            f'"""molsets\' MOSES train file, its first {args.moses_rows} rows '
            '(scripts/gpu_tasks.py pack)."""\n'
        )
        source = moses_source_file("train")
        pd.read_csv(source, nrows=args.moses_rows).to_csv(moses / source.name, index=False,
                                                           compression="gzip")  # fmt: skip
        out.parent.mkdir(parents=True, exist_ok=True)
        partial = out.with_name(out.name + ".partial")
        say(f"pack: compressing into {out}")
        with tarfile.open(partial, "w:xz", preset=6) as tar:
            for name in ("qm9pack", "moses"):
                tar.add(root / name, arcname=name)
        partial.replace(out)
    say(f"pack: {out} {out.stat().st_size / 2**20:.1f} MiB")
    return 0


def unpack(pack: Path, dest: Path) -> dict[str, Any]:
    """Unpack the data pack into ``dest`` (put in front of the children's PYTHONPATH)."""
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(pack, "r:xz") as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(dest, filter="data")
        else:  # Python without extraction filters: our own file, names checked anyway
            names = [m.name for m in tar.getmembers()]
            if any(n.startswith(("/", "..")) or "/../" in n for n in names):
                raise ValueError(f"unsafe member names in {pack}")
            tar.extractall(dest)
    return {"file": str(pack), "bytes": pack.stat().st_size, "unpacked_to": str(dest)}


# -- main ----------------------------------------------------------------------------------------


def parse(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", help="results folder (gpu_tasks.json)")
    p.add_argument("runs", nargs="?", default="/tmp/gpu_runs", help="run directories go here")
    p.add_argument("--budget", type=float, default=300.0, help="hard overall budget, seconds")
    p.add_argument("--device", default="cuda", help="the accelerator (cpu: a test run)")
    p.add_argument("--cpu-threads", type=int, default=min(16, os.cpu_count() or 1))
    p.add_argument("--tasks", default="all", help="comma-separated task names, or all")
    p.add_argument("--sections", default=",".join(SECTIONS))
    p.add_argument("--quick", action="store_true", help="a handful of steps, 2-4 samples")
    p.add_argument(
        "--pack",
        default="auto",
        help=f"data pack to unpack (auto: {DEFAULT_PACK} where present; none)",
    )
    return p.parse_args(argv)


def all_tasks() -> list[str]:
    """configs/task/*.yaml of the installed package, in TASK_ORDER then any others."""
    spec = importlib.util.find_spec("sci_diffusion.configs")
    folder = Path(next(iter(spec.submodule_search_locations))) / "task" if spec else None
    found = sorted(p.stem for p in folder.glob("*.yaml")) if folder else list(TASK_ORDER)
    return [t for t in TASK_ORDER if t in found] + [t for t in found if t not in TASK_ORDER]


def environment(ctx: Context, pack: dict[str, Any] | None) -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {
        "python": platform.python_version(), "torch": torch.__version__,
        "cuda_available": torch.cuda.is_available(), "cpu_count": os.cpu_count(),
        "cpu_threads": ctx.cpu_threads, "pack": pack,
    }  # fmt: skip
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["gpu_memory_gib"] = round(torch.cuda.get_device_properties(0).total_memory / 2**30)
    names = sorted({*COMMON_MODULES, *(m for needs in NEEDS.values() for m in needs)})
    gone = set(missing_modules(names))
    info["modules"] = {name: name not in gone for name in names}
    return info


def summary(report: dict[str, Any]) -> list[str]:
    lines = []
    tasks = report["sections"].get("tasks", {}).get("tasks", {})
    if tasks:
        lines.append(f"{'task':<12}{'status':<9}{'train/s dev':>12}{'cpu':>8}{'x':>7}"
                     f"{'sample/s dev':>14}{'cpu':>9}{'x':>7}  unit / eval")  # fmt: skip
        for name, r in tasks.items():
            dev, cpu = r.get("train_device", {}), r.get("train_cpu", {})
            rate = r.get("rate", {})
            sd, sc = _first(rate, "device"), _first(rate, "cpu")
            ev = r.get("eval", {})
            lines.append(
                f"{name:<12}{r.get('status', '?'):<9}{fmt(dev.get('rate_steps_per_s')):>12}"
                f"{fmt(cpu.get('rate_steps_per_s')):>8}{fmt(r.get('train_speedup_vs_cpu')):>7}"
                f"{fmt(sd.get('per_s')):>14}{fmt(sc.get('per_s')):>9}"
                f"{fmt(r.get('sample_speedup_vs_cpu')):>7}  {r.get('unit', '')} / "
                f"{ev.get('status', '-')}" + (f" ({r['note']})" if r.get("note") else "")
            )
    q = report["sections"].get("qm9_3d_h")
    if q:
        lines.append(f"qm9_3d_h: {q.get('status')}" + (f" ({q['note']})" if q.get("note") else ""))
        for row in q.get("side_by_side", []):
            lines.append(
                f"  {row['model']:<11}{row['where']:<7} train {fmt(row['train_molecules_per_s'])} "
                f"mol/s ({fmt(row['train_ms_per_step'])} ms/step at batch {row['batch']}), "
                f"sample {fmt(row['sample_molecules_per_s'])} mol/s"
                + (" (extrapolated)" if row.get("sample_extrapolated") else "")
                + (f"; vs cpu: train x{fmt(row.get('train_speedup_vs_cpu'))}, sample "
                   f"x{fmt(row.get('sample_speedup_vs_cpu'))}" if row["where"] == "device" else "")
                + (f"; EDM size costs x{fmt(row.get('train_cost_edm_over_ours'))} (train), "
                   f"x{fmt(row.get('sample_cost_edm_over_ours'))} (sample)"
                   if row["model"] == "ours_128x4" else "")
            )  # fmt: skip
        lines += [f"  {line}" for line in (q.get("plan") or {}).get("lines", [])]
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["_rate"]:
        return rate_main(argv[1:])
    if argv[:1] == ["_data"]:
        return data_main(argv[1:])
    if argv[:1] == ["pack"]:
        return pack_main(argv[1:])
    args = parse(argv)
    budget = Budget(args.budget)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs = Path(args.runs) / f"gpu_tasks_{time.strftime('%Y%m%d-%H%M%S')}_{os.getpid()}"
    runs.mkdir(parents=True)
    sizes = QUICK if args.quick else Sizes()
    sections = [s for s in args.sections.split(",") if s]
    unknown = [s for s in sections if s not in SECTIONS]
    if unknown:
        raise SystemExit(f"unknown sections {unknown}; choose from {list(SECTIONS)}")
    tasks = all_tasks() if args.tasks == "all" else [t for t in args.tasks.split(",") if t]
    drop = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(PYTHONUNBUFFERED="1", SCI_DIFFUSION_PROGRESS="lines")
    report: dict[str, Any] = {
        "script": "scripts/gpu_tasks.py", "argv": argv,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "settings": {"budget_s": args.budget, "device": args.device, "quick": args.quick,
                     "cpu_threads": args.cpu_threads, "tasks": tasks, "sections": sections,
                     "shares": SHARES, "sizes": asdict(sizes), "runs": str(runs)},
        "sections": {},
    }  # fmt: skip
    ctx = Context(out, runs, args.device, args.cpu_threads, sizes, budget, env, report)
    pack_file = DEFAULT_PACK if args.pack == "auto" else (
        None if args.pack == "none" else Path(args.pack))  # fmt: skip
    pack = None
    if pack_file is not None and pack_file.exists():
        try:
            pack = unpack(pack_file, runs / "pack")
            sys.path.insert(0, str(runs / "pack"))
            importlib.invalidate_caches()
            env["PYTHONPATH"] = os.pathsep.join(
                [str(runs / "pack"), *filter(None, [env.get("PYTHONPATH")])])  # fmt: skip
            env["SCI_DIFFUSION_CACHE"] = str(runs / "cache")  # caches of the trimmed data apart
        except Exception as err:
            pack = {"file": str(pack_file), "error": repr(err)}
    try:
        report["environment"] = environment(ctx, pack)
    except Exception as err:
        report["environment"] = {"error": repr(err)}
    say(f"start: budget {args.budget:.0f} s, device {args.device}, sections {sections}, "
        f"{len(tasks)} tasks; {json.dumps(report['environment'], default=str)[:600]}")  # fmt: skip
    ctx.save()
    if args.device != "cpu" and not report["environment"].get("cuda_available"):
        report["fatal"] = f"--device {args.device} but CUDA is not available"
        say(report["fatal"])
        ctx.save()
        return 1
    runners: dict[str, Callable[[float], Any]] = {
        "tasks": lambda deadline: tasks_section(ctx, tasks, deadline),
        "qm9_3d_h": lambda deadline: qm9h_section(ctx, deadline),
    }
    shares = {s: SHARES[s] for s in sections}
    for i, name in enumerate(sections):
        left = budget.left()
        share = shares[name] / sum(list(shares.values())[i:])
        deadline = time.monotonic() + share * left
        say(f"section {name}: {share * left:.0f} s of {left:.0f} s left")
        try:
            runners[name](deadline)
        except Exception as err:  # record it; the next section still runs
            report["sections"].setdefault(name, {}).update(
                status="failed", note=repr(err), traceback=traceback.format_exc()[-2000:]
            )
        ctx.save()
    report["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    report["summary"] = summary(report)
    ctx.save()
    print("\n".join(["", f"gpu_tasks summary ({budget.spent():.0f} s of {args.budget:.0f} s):",
                     *report["summary"]]), flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
