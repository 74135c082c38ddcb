"""Sampler benchmark: sample quality against NFE, and wall time against diffusers.

* **quality** — every continuous sampler draws ``n = 10000`` samples of a 2D Gaussian mixture
  with its *exact* denoiser (:meth:`GaussianMixture.denoiser`), so the only error left is the
  sampler's discretisation. The distance is the sliced Wasserstein-1 distance
  (:func:`~sci_diffusion.core.metrics.sliced_wasserstein`) to an independent exact sample of the
  same size. Its threshold is the noise floor: 1.5 x the 95th percentile, over 20 seeded
  replicates, of the same distance between two independent exact samples of that size
  (:func:`~sci_diffusion.core.metrics.noise_floor`). Below it, the sampler cannot be told apart
  from exact sampling at this sample size.
* **speed** — 10 steps of ``ddim`` / ``dpm_solver_pp_2m`` with a small epsilon-prediction MLP,
  against diffusers' ``DDIMScheduler`` / ``DPMSolverMultistepScheduler`` loops driving the same
  network, at batch 1 and 256, interleaved repeats, median wall time.

Run with ``run_sampler_benchmark(path)``; ``main_table(result)`` formats the result.
"""

from __future__ import annotations

import datetime
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..core.analytic import GaussianMixture
from ..core.metrics import noise_floor, sliced_wasserstein
from ..core.parameterization import Denoiser
from ..core.samplers import function_evaluations, sample
from ..core.schedules import CosineSchedule, Schedule, make_schedule
from ..core.spaces import EuclideanSpace
from ..io.files import write_json_atomic
from ..io.progress import stage

MEANS = ((-2.0, 0.0), (2.0, 1.0), (0.0, -2.5))
STDS = (0.3, 0.5, 0.4)
WEIGHTS = (0.5, 0.3, 0.2)

QUALITY_COMBOS: tuple[tuple[str, str], ...] = (
    ("ddpm", "cosine"),
    ("ddim", "cosine"),
    ("dpm_solver_pp_2m", "cosine"),
    ("euler", "cosine"),
    ("heun", "cosine"),
    ("flow_euler", "cosine"),
    ("flow_euler", "rectified_flow"),
    ("flow_heun", "cosine"),
    ("flow_heun", "rectified_flow"),
    ("euler_maruyama", "cosine"),
    ("ddim", "karras"),
    ("dpm_solver_pp_2m", "karras"),
    ("heun", "karras"),
)
"""(sampler, schedule) pairs of the quality table; pairs that raise ``ValueError`` are skipped."""

NFE_TARGETS = (4, 8, 16, 32, 64, 128)
QUICK_NFE_TARGETS = (8, 32)
SAMPLES = 10_000
PROJECTIONS = 256
FLOOR_REPLICATES = 20
FLOOR_QUANTILE = 0.95
THRESHOLD_FACTOR = 1.5

SPEED_PAIRS = (("ddim", "DDIMScheduler"), ("dpm_solver_pp_2m", "DPMSolverMultistepScheduler"))
SPEED_STEPS = 10
SPEED_BATCHES = (1, 256)
TRAIN_STEPS = 1000
DEFAULT_THREADS = 2
QUALITY_THREADS = 1
"""The quality part is not timed and its result does not depend on threads; one thread keeps it
fast when other processes compete for the cores (two spinning OpenMP threads on a busy 2-core
machine made it 5x slower)."""


def gaussian_mixture() -> GaussianMixture:
    """The benchmark's target: three isotropic 2D components."""
    return GaussianMixture(torch.tensor(MEANS), torch.tensor(STDS), torch.tensor(WEIGHTS))


def steps_for_nfe(name: str, nfe: int) -> int:
    """The most steps of sampler ``name`` whose NFE does not exceed ``nfe`` (at least 1)."""
    steps = 1
    while function_evaluations(name, steps + 1) <= nfe:
        steps += 1
    return steps


def quality_records(
    nfe_targets: Sequence[int] = NFE_TARGETS, n: int = SAMPLES, seed: int = 0
) -> tuple[list[dict[str, Any]], float, list[dict[str, str]]]:
    """Distance to the exact mixture against NFE for every pair in :data:`QUALITY_COMBOS`.

    States and time grids are float64 so that the distance measures discretisation, not
    rounding. Records
    carry ``nfe`` (:func:`function_evaluations`) and ``denoiser_calls`` (counted). Returns
    ``(records, threshold, skipped)``; ``skipped`` lists pairs that raised ``ValueError``.
    """
    gmm = gaussian_mixture()
    threshold = THRESHOLD_FACTOR * noise_floor(
        gmm.sample, n, replicates=FLOOR_REPLICATES, quantile=FLOOR_QUANTILE, seed=seed
    )
    reference = gmm.sample(n, torch.Generator().manual_seed(seed + 1))
    records: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    for name, schedule_name in QUALITY_COMBOS:
        stage(f"bench sampler: quality of {name} ({schedule_name}) at NFE {list(nfe_targets)}")
        schedule = make_schedule(schedule_name)
        space = EuclideanSpace(schedule)
        exact = gmm.denoiser(schedule)
        calls = [0]

        def denoise(x: Tensor, t: Tensor, exact: Callable = exact, calls: list = calls) -> Tensor:
            calls[0] += 1
            return exact(x, t)

        for target in nfe_targets:
            steps = steps_for_nfe(name, target)
            generator = torch.Generator().manual_seed(seed + 2)
            x = space.prior((n, 2), generator=generator, dtype=torch.float64)
            calls[0] = 0
            times = schedule.time_grid(steps, dtype=torch.float64)
            try:
                out = sample(name, denoise, x, times, space=space, generator=generator)
            except ValueError as error:
                skipped.append({"sampler": name, "schedule": schedule_name, "reason": str(error)})
                break
            finite = bool(torch.isfinite(out).all())
            distance = sliced_wasserstein(out, reference, PROJECTIONS, seed) if finite else None
            records.append(
                {
                    "sampler": name,
                    "schedule": schedule_name,
                    "steps": steps,
                    "nfe": function_evaluations(name, steps),
                    "denoiser_calls": calls[0],
                    "distance": distance,
                    "threshold": threshold,
                }
            )
    return records, threshold, skipped


class TimeMLP(nn.Module):
    """``net(x, t)`` for 2D points: ``[x, sinusoidal(t)]`` through 3 linear layers (hidden 256).

    ``x`` is (B, 2) and ``t`` (B,) continuous time in [0, 1]; the output is shaped like ``x``.
    """

    def __init__(self, dim: int = 2, embed: int = 32, hidden: int = 256) -> None:
        super().__init__()
        half = embed // 2
        freqs = torch.exp(-math.log(10_000.0) * torch.arange(half) / half)
        self.register_buffer("freqs", freqs, persistent=False)
        self.layers = nn.Sequential(
            nn.Linear(dim + 2 * half, hidden),
            nn.SiLU(),
            nn.Linear(hidden, hidden),
            nn.SiLU(),
            nn.Linear(hidden, dim),
        )

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        angles = (TRAIN_STEPS * t)[:, None] * self.freqs[None]
        return self.layers(torch.cat([x, angles.sin(), angles.cos()], dim=-1))


def _import_diffusers() -> Any:
    try:
        import diffusers
    except ImportError as error:
        raise ImportError(
            "the sampler speed benchmark compares against diffusers, which is not installed; "
            "install the benchmark extras with: pip install 'sci-diffusion[bench]'"
        ) from error
    return diffusers


def diffusers_betas(schedule: Schedule, train_steps: int = TRAIN_STEPS) -> Tensor:
    """``trained_betas`` of the discrete DDPM chain of ``schedule``, (train_steps,), float64."""
    abar = schedule.discrete_alphas_cumprod(train_steps)
    previous = torch.cat([torch.ones(1, dtype=abar.dtype), abar[:-1]])
    return (1.0 - abar / previous).clamp(0.0, 0.999)


def _time_side_by_side(
    fns: dict[str, Callable[[], object]], repeats: int, min_time: float, warmup: int = 2
) -> dict[str, tuple[float, float]]:
    """Median ``(wall, thread CPU)`` seconds per call of each function.

    Repeats interleave the functions (rotating the order); each repeat times ``number``
    back-to-back calls, calibrated so that the slowest function's repeat lasts ``min_time``.
    """
    for fn in fns.values():  # warm-up (allocator, oneDNN kernel choice)
        for _ in range(warmup):
            fn()
    slowest = 0.0
    for fn in fns.values():
        start = time.perf_counter()
        fn()
        slowest = max(slowest, time.perf_counter() - start)
    number = max(1, math.ceil(min_time / max(slowest, 1e-9)))
    wall: dict[str, list[float]] = {key: [] for key in fns}
    cpu: dict[str, list[float]] = {key: [] for key in fns}
    keys = list(fns)
    for r in range(repeats):
        for key in keys[r % len(keys) :] + keys[: r % len(keys)]:
            fn = fns[key]
            start, start_cpu = time.perf_counter(), time.thread_time()
            for _ in range(number):
                fn()
            cpu[key].append((time.thread_time() - start_cpu) / number)
            wall[key].append((time.perf_counter() - start) / number)
    return {key: (statistics.median(wall[key]), statistics.median(cpu[key])) for key in fns}


def _time_interleaved(
    fns: dict[str, Callable[[], object]], repeats: int, min_time: float
) -> dict[str, float]:
    """Median wall seconds per call of each function (:func:`_time_side_by_side`)."""
    return {key: wall for key, (wall, _) in _time_side_by_side(fns, repeats, min_time).items()}


def speed_records(
    repeats: int = 15, min_time: float = 0.05, seed: int = 0, device: str = "cpu"
) -> list[dict[str, Any]]:
    """Wall time of :data:`SPEED_STEPS` steps, ours against diffusers, at each batch size,
    on ``device`` (CUDA timings synchronise the device at the end of every call).

    ``network_s`` is the time of the network calls alone; ``overhead_fraction`` is
    ``(ours_s - network_s) / network_s`` and ``ratio`` is ``ours_s / diffusers_s``.
    """
    diffusers = _import_diffusers()
    torch.manual_seed(seed)
    schedule = CosineSchedule()
    net = TimeMLP().eval().to(device)

    def sync() -> None:
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize(device)

    denoiser = Denoiser(net, schedule, prediction="epsilon")
    space = EuclideanSpace(schedule)
    betas = diffusers_betas(schedule).numpy()
    common = {"trained_betas": betas, "prediction_type": "epsilon", "timestep_spacing": "trailing"}
    schedulers = {
        "DDIMScheduler": diffusers.DDIMScheduler(**common, clip_sample=False),
        "DPMSolverMultistepScheduler": diffusers.DPMSolverMultistepScheduler(**common),
    }
    records: list[dict[str, Any]] = []
    for batch in SPEED_BATCHES:
        stage(f"bench sampler: speed against diffusers at batch {batch}")
        x = torch.randn(batch, 2, generator=torch.Generator().manual_seed(seed)).to(device)
        grid = schedule.time_grid(SPEED_STEPS, device=device)
        net_times = [t.expand(batch) for t in grid[:-1]]
        for name, scheduler_name in SPEED_PAIRS:
            scheduler = schedulers[scheduler_name]

            def ours(name: str = name, x: Tensor = x) -> Tensor:
                times = schedule.time_grid(SPEED_STEPS, device=device)
                out = sample(name, denoiser, x, times, space=space)
                sync()
                return out

            def theirs(scheduler: Any = scheduler, x: Tensor = x, batch: int = batch) -> Tensor:
                scheduler.set_timesteps(SPEED_STEPS, device=device)
                y = x
                for step in scheduler.timesteps:
                    output = net(y, (step / TRAIN_STEPS).expand(batch))
                    y = scheduler.step(output, step, y).prev_sample
                sync()
                return y

            def network(x: Tensor = x, net_times: list[Tensor] = net_times) -> None:
                for t in net_times:
                    net(x, t)
                sync()

            with torch.inference_mode():
                timing = _time_interleaved(
                    {"ours": ours, "diffusers": theirs, "network": network}, repeats, min_time
                )
            records.append(
                {
                    "sampler": name,
                    "diffusers_scheduler": scheduler_name,
                    "batch": batch,
                    "steps": SPEED_STEPS,
                    "ours_s": timing["ours"],
                    "diffusers_s": timing["diffusers"],
                    "network_s": timing["network"],
                    "ratio": timing["ours"] / timing["diffusers"],
                    "overhead_fraction": (timing["ours"] - timing["network"]) / timing["network"],
                }
            )
    return records


def machine_info() -> dict[str, Any]:
    """Platform, Python/torch/diffusers versions, torch threads, the 1/5/15-minute load average
    (other processes competing for the cores distort the timings) and the UTC date."""
    try:
        import diffusers

        diffusers_version: str | None = diffusers.__version__
    except ImportError:
        diffusers_version = None
    try:
        load: list[float] | None = [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        load = None
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "diffusers": diffusers_version,
        "threads": torch.get_num_threads(),
        "load_average": load,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def run_sampler_benchmark(out: str | None, quick: bool = False) -> dict[str, Any]:
    """Run the quality and speed benchmarks; write the JSON result to ``out`` unless ``None``.

    ``quick`` uses NFE in :data:`QUICK_NFE_TARGETS` and fewer, shorter timing repeats (under a
    minute on two cores). The timings run on 2 torch threads unless ``OMP_NUM_THREADS`` or
    ``MKL_NUM_THREADS`` is set (then on the current setting), the untimed quality part on
    :data:`QUALITY_THREADS`; the previous setting is restored afterwards. The threshold of
    the quality records is the noise floor (1.5 x the 95th percentile of the distance between
    two exact samples; see the module docstring).
    """
    _import_diffusers()  # fail before the long part
    start = time.perf_counter()
    previous_threads = torch.get_num_threads()
    env_threads = any(v in os.environ for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"))
    threads = previous_threads if env_threads else DEFAULT_THREADS
    try:
        torch.set_num_threads(QUALITY_THREADS)
        with torch.inference_mode():
            quality, threshold, skipped = quality_records(
                QUICK_NFE_TARGETS if quick else NFE_TARGETS
            )
        torch.set_num_threads(threads)
        speed = speed_records(repeats=7 if quick else 21, min_time=0.01 if quick else 0.05)
        machine = machine_info()
    finally:
        torch.set_num_threads(previous_threads)
    result: dict[str, Any] = {
        "benchmark": "sampler",
        "quick": quick,
        "machine": machine,
        "config": {
            "mixture": {"means": MEANS, "stds": STDS, "weights": WEIGHTS},
            "samples": SAMPLES,
            "projections": PROJECTIONS,
            "noise_floor": {
                "replicates": FLOOR_REPLICATES,
                "quantile": FLOOR_QUANTILE,
                "factor": THRESHOLD_FACTOR,
            },
            "threshold": threshold,
            "speed_steps": SPEED_STEPS,
            "speed_batches": list(SPEED_BATCHES),
        },
        "quality": quality,
        "skipped": skipped,
        "speed": speed,
        "wall_s": time.perf_counter() - start,
    }
    if out is not None:
        write_json_atomic(Path(out), result, allow_nan=False)
    return result


def _nfe_column(nfe: int) -> int:
    return 1 << max(0, math.ceil(math.log2(nfe)))


def main_table(result: dict[str, Any]) -> str:
    """The benchmark result as two plain-text tables (quality against NFE, then speed)."""
    threshold = result["config"]["threshold"]
    rows: dict[tuple[str, str], dict[int, str]] = {}
    for r in result["quality"]:
        d = r["distance"]
        cell = "nan" if d is None else f"{d:.4f}{'*' if d < r['threshold'] else ' '}"
        rows.setdefault((r["sampler"], r["schedule"]), {})[_nfe_column(r["nfe"])] = cell
    columns = sorted({c for cells in rows.values() for c in cells})
    label = max([len(f"{s} ({c})") for s, c in rows] + [16])
    lines = [
        f"Sliced W1 to the exact 2D mixture (n={result['config']['samples']}); "
        f"* = below the noise-floor threshold {threshold:.4f}",
        f"{'sampler (schedule)':<{label}}" + "".join(f"{'NFE ' + str(c):>10}" for c in columns),
    ]
    for (sampler, schedule), cells in rows.items():
        row = f"{f'{sampler} ({schedule})':<{label}}"
        lines.append(row + "".join(f"{cells.get(c, '-'):>10}" for c in columns))
    lines.append("(heun / flow_heun use 2N-1 evaluations: their NFE is one below the column's)")
    for s in result.get("skipped", []):
        lines.append(f"skipped {s['sampler']} ({s['schedule']}): {s['reason']}")
    m = result["machine"]
    lines += [
        "",
        f"{result['config']['speed_steps']} steps, ms per sample call (median), "
        f"torch {m['torch']}, {m['threads']} threads, {m['platform']}",
        f"{'sampler':<18}{'batch':>6}{'ours':>10}{'diffusers':>11}{'network':>10}"
        f"{'ours/diff':>11}{'overhead':>10}",
    ]
    for r in result["speed"]:
        lines.append(
            f"{r['sampler']:<18}{r['batch']:>6}{1e3 * r['ours_s']:>10.3f}"
            f"{1e3 * r['diffusers_s']:>11.3f}{1e3 * r['network_s']:>10.3f}"
            f"{r['ratio']:>11.2f}{100 * r['overhead_fraction']:>9.0f}%"
        )
    return "\n".join(lines)
