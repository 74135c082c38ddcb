"""Policy benchmark: action-chunk latency at batch 1 against the number of sampling steps.

For the default policy backbone (the task's ``model``, random weights: timing does not depend
on training) it times, interleaved and as medians of repeats:

* ``ours`` — one chunk with our sampler (``ddim``, ``dpm_solver_pp_2m``, ``ddpm``) through a
  :class:`~sci_diffusion.core.Denoiser` bound to the observation history;
* ``diffusers`` — the same number of steps with diffusers' matching scheduler
  (``DDIMScheduler``, ``DPMSolverMultistepScheduler``, ``DDPMScheduler``) driving the same
  network on the same discretised schedule;
* ``network`` — the network calls alone (the floor both loops pay).

The ``pixels`` part (:mod:`.policy_pixels`) times whole pixel-policy chunks (encoder + sampler)
next to Diffusion Policy's ResNet-18 + 65.8M U-Net and next to our state policy.

``sampler overhead = ours - network``; ``ratio = ours / diffusers``. The ``loop`` part
(:mod:`.policy_loop`) times the sampler loop against its network calls for every backbone on
every policy task's sizes, with the tasks' default sampler settings. ANCHORS.md gives the
reference point: Diffusion Policy's 65.8M-parameter U-Net takes 31 ms per forward on 2 CPU
threads, 3.2 s per chunk with DDPM-100 and 0.31 s with DDIM-10.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from sci_diffusion.core import CosineSchedule, Denoiser, EuclideanSpace, sample
from sci_diffusion.io.files import write_json_atomic

from .policy_loop import LOOP_MODELS, LOOP_TASKS, QUICK_LOOP_TASKS, loop_records, loop_table
from .policy_nets import policy_table, time_policy_nets
from .policy_pixels import PIXEL_STEPS, pixel_latency_records, pixel_table
from .sampler import (
    DEFAULT_THREADS,
    TRAIN_STEPS,
    _import_diffusers,
    _time_interleaved,
    diffusers_betas,
    machine_info,
)

PAIRS = (
    ("ddim", "DDIMScheduler"),
    ("dpm_solver_pp_2m", "DPMSolverMultistepScheduler"),
    ("ddpm", "DDPMScheduler"),
)
STEPS = (1, 2, 4, 10, 16, 32, 100)
QUICK_STEPS = (1, 4, 10)
SHAPE = {"horizon": 16, "n_obs_steps": 2, "obs_dim": 10, "action_dim": 2}
"""Chunk and observation sizes timed (multimodal-like: 16 actions of 2-D, 2 observations)."""


def _backbone(model: str) -> torch.nn.Module:
    from importlib import resources

    from omegaconf import OmegaConf

    from sci_diffusion.policy.backbones import build_backbone

    cfg = OmegaConf.load(resources.files("sci_diffusion.configs") / "model" / f"{model}.yaml")
    return build_backbone(cfg, **SHAPE).eval()


def latency_records(
    model: str = "unet1d", steps: tuple[int, ...] = STEPS, repeats: int = 15,
    min_time: float = 0.05, seed: int = 0,
) -> list[dict[str, Any]]:  # fmt: skip
    """Batch-1 chunk latency for every (sampler, steps) pair: ours, diffusers, network only."""
    diffusers = _import_diffusers()
    torch.manual_seed(seed)
    net = _backbone(model)
    schedule = CosineSchedule()
    space = EuclideanSpace(schedule)
    h, a = SHAPE["horizon"], SHAPE["action_dim"]
    obs = torch.randn(1, SHAPE["n_obs_steps"], SHAPE["obs_dim"])
    x = torch.randn(1, h, a, generator=torch.Generator().manual_seed(seed))
    bound = Denoiser(net, schedule, prediction="epsilon").bind(obs=obs)
    common = {"trained_betas": diffusers_betas(schedule).numpy(), "prediction_type": "epsilon",
              "timestep_spacing": "trailing"}  # fmt: skip
    schedulers = {
        "DDIMScheduler": diffusers.DDIMScheduler(**common, clip_sample=False),
        "DPMSolverMultistepScheduler": diffusers.DPMSolverMultistepScheduler(**common),
        "DDPMScheduler": diffusers.DDPMScheduler(**common, clip_sample=False),
    }
    records = []
    for n in steps:
        net_times = [torch.full((1,), float(t)) for t in schedule.time_grid(n)[:-1]]
        for name, scheduler_name in PAIRS:
            scheduler = schedulers[scheduler_name]

            def ours(name: str = name, n: int = n) -> Tensor:
                return sample(name, bound, x, schedule.time_grid(n), space=space,
                              generator=torch.Generator().manual_seed(seed))  # fmt: skip

            def theirs(scheduler: Any = scheduler, n: int = n) -> Tensor:
                scheduler.set_timesteps(n)
                y = x
                for step in scheduler.timesteps:
                    out = net(y, (step / TRAIN_STEPS).reshape(1).float(), obs)
                    y = scheduler.step(out, step, y).prev_sample
                return y

            def network(net_times: list[Tensor] = net_times) -> None:
                for t in net_times:
                    net(x, t, obs)

            with torch.inference_mode():
                timing = _time_interleaved(
                    {"ours": ours, "diffusers": theirs, "network": network}, repeats, min_time
                )
            records.append({
                "sampler": name, "diffusers_scheduler": scheduler_name, "steps": n,
                "ours_ms": 1e3 * timing["ours"], "diffusers_ms": 1e3 * timing["diffusers"],
                "network_ms": 1e3 * timing["network"],
                "sampler_overhead_ms": 1e3 * (timing["ours"] - timing["network"]),
                "ratio": timing["ours"] / timing["diffusers"],
            })  # fmt: skip
    return records


PARTS = ("latency", "loop", "pixels")
"""``latency``: chunk latency against steps, ours and diffusers, and the network table;
``loop``: the sampler loop's overhead over its network calls for every backbone and task;
``pixels``: pixel policies (image encoder + sampler) against Diffusion Policy's reference size
(:mod:`.policy_pixels`)."""


def run_policy_benchmark(
    out: str | None, quick: bool = False, model: str = "unet1d", part: str | None = None
) -> dict[str, Any]:
    """Run the benchmark's parts (both unless ``part`` names one, see :data:`PARTS`) on 2
    threads (or the ``OMP_NUM_THREADS`` setting); write the JSON to ``out`` unless ``None``.

    The ``latency`` part needs diffusers; the ``loop`` part compares with diffusers only when
    it is installed."""
    import os

    if part is not None and part not in PARTS:
        raise ValueError(f"part must be one of {', '.join(PARTS)}, got {part!r}")
    parts = PARTS if part is None else (part,)
    if "latency" in parts:
        _import_diffusers()
    start = time.perf_counter()
    previous = torch.get_num_threads()
    env_threads = any(v in os.environ for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"))
    torch.set_num_threads(previous if env_threads else DEFAULT_THREADS)
    result: dict[str, Any] = {"benchmark": "policy", "quick": quick}
    try:
        if "latency" in parts:
            steps = QUICK_STEPS if quick else STEPS
            result["latency"] = latency_records(
                model, steps, repeats=5 if quick else 15, min_time=0.01 if quick else 0.05
            )
            result["networks"] = time_policy_nets(
                repeats=5 if quick else 50, threads=torch.get_num_threads(), reference=not quick
            )
        if "loop" in parts:
            result["loop"] = loop_records(
                LOOP_MODELS, QUICK_LOOP_TASKS if quick else LOOP_TASKS,
                repeats=5 if quick else 21, min_time=0.01 if quick else 0.05,
            )  # fmt: skip
        if "pixels" in parts:
            result["pixels"] = pixel_latency_records(
                repeats=3 if quick else 15, min_time=0.01 if quick else 0.05, quick=quick
            )
        machine = machine_info()
    finally:
        torch.set_num_threads(previous)
    net = _backbone(model)
    result = {
        "benchmark": "policy",
        "quick": quick,
        "machine": machine,
        "config": {
            "model": model,
            **SHAPE,
            "batch": 1,
            "parameters": sum(p.numel() for p in net.parameters()),
            "parts": list(parts),
        },
        **{k: v for k, v in result.items() if k not in ("benchmark", "quick")},
        "reference": "Diffusion Policy U-Net (65.8M parameters), 2 CPU threads: 31 ms per "
        "forward, 3.2 s per chunk with DDPM-100, 0.31 s with DDIM-10 (ANCHORS.md)",
        "wall_s": time.perf_counter() - start,
    }
    if out is not None:
        write_json_atomic(Path(out), result, allow_nan=False)
    return result


def latency_table(result: dict[str, Any]) -> str:
    """Plain-text tables of :func:`run_policy_benchmark`'s result (the parts it ran)."""
    c, m = result["config"], result["machine"]
    blocks = []
    if "latency" in result:
        lines = [
            f"policy chunk latency, batch 1, {c['model']} ({c['parameters']:,} parameters), "
            f"H={c['horizon']} Da={c['action_dim']} To={c['n_obs_steps']} Do={c['obs_dim']}, "
            f"torch {m['torch']}, {m['threads']} threads (medians, ms)",
            f"{'sampler':<18}{'steps':>6}{'ours':>10}{'diffusers':>11}{'network':>10}"
            f"{'overhead':>10}{'ours/diff':>11}",
        ]
        for r in result["latency"]:
            lines.append(f"{r['sampler']:<18}{r['steps']:>6}{r['ours_ms']:>10.2f}"
                         f"{r['diffusers_ms']:>11.2f}{r['network_ms']:>10.2f}"
                         f"{r['sampler_overhead_ms']:>10.2f}{r['ratio']:>11.2f}")  # fmt: skip
        blocks += ["\n".join(lines), policy_table(result["networks"])]
    if "loop" in result:
        blocks.append(
            f"sampler loop against its network calls, batch 1, torch {m['torch']}, "
            f"{m['threads']} threads (medians; overhead = loop / network - 1)\n"
            + loop_table(result["loop"])
        )
    if "pixels" in result:
        blocks.append(
            f"pixel policy chunk latency, batch 1, DDIM {PIXEL_STEPS} steps, torch {m['torch']}, "
            f"{m['threads']} threads (medians; / ref: over Diffusion Policy's reference size)\n"
            + pixel_table(result["pixels"])
        )
    return "\n\n".join(blocks)
