"""Policy-network benchmark: parameter counts and the wall time of one forward pass.

Each policy denoiser (:class:`~sci_diffusion.nets.unet1d.ConditionalUnet1D`,
:class:`~sci_diffusion.nets.policy_transformer.PolicyTransformer`,
:class:`~sci_diffusion.nets.policy_mlp.PolicyMLP`) is built at its default size for a few
(action, observation) sizes of our tasks, horizon 16 and two observation steps (Chi et al.
2023's setting), and timed at batch 1 — the latency that bounds a closed-loop policy (one
action chunk costs ``NFE x`` this). Optionally a U-Net at Chi et al.'s reference size
(down dims 256/512/1024, time embedding 256, Push-T's 20 observation features) is timed
beside them, to put our numbers next to ANCHORS.md's 31 ms for their network.

Repeats are interleaved over the networks (one forward of each per round) so that load from
other processes spreads over all of them alike; the median wall time is reported. Beside it,
the median CPU time of the calling thread (``time.thread_time``): with ``threads=1`` it is
the forward's compute cost without the time the thread spent descheduled, which keeps it
meaningful on a machine shared with other work (memory-bandwidth and cache contention still
count); with more threads it misses the worker threads' share.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from ..nets.policy_mlp import PolicyMLP
from ..nets.policy_transformer import PolicyTransformer
from ..nets.unet1d import ConditionalUnet1D

HORIZON = 16
N_OBS_STEPS = 2
TASK_SIZES: tuple[tuple[str, int, int], ...] = (
    ("Reacher-v5", 2, 10),
    ("Push-T (state)", 2, 20),
    ("Pusher-v5", 7, 23),
)
"""(label, action_dim, obs_dim) of the timed problems."""

NETS: dict[str, Callable[..., nn.Module]] = {
    "unet1d": ConditionalUnet1D,
    "transformer": PolicyTransformer,
    "mlp": PolicyMLP,
}
REFERENCE_NAME = "unet1d (Chi et al. size)"
REFERENCE_TASK = ("Push-T (state)", 2, 20)
"""The reference-size U-Net is timed on Push-T's sizes (20 observation features), as in
ANCHORS.md."""


def count_parameters(net: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad)


def _reference_unet(action_dim: int, obs_dim: int, n_obs_steps: int, horizon: int) -> nn.Module:
    return ConditionalUnet1D(
        action_dim=action_dim,
        obs_dim=obs_dim,
        n_obs_steps=n_obs_steps,
        horizon=horizon,
        down_dims=(256, 512, 1024),
        time_embed_dim=256,
    )


def _cases(
    task_sizes: Sequence[tuple[str, int, int]], horizon: int, n_obs_steps: int, reference: bool
) -> list[dict[str, Any]]:
    """One entry per (network, task size): its metadata, the module and batch-1 inputs."""
    cases = []
    builders = [(name, task) for task in task_sizes for name in NETS]
    if reference:
        builders.append(("reference", REFERENCE_TASK))
    for name, (label, action_dim, obs_dim) in builders:
        build = _reference_unet if name == "reference" else NETS[name]
        torch.manual_seed(0)
        net = build(
            action_dim=action_dim, obs_dim=obs_dim, n_obs_steps=n_obs_steps, horizon=horizon
        ).eval()
        args = (
            torch.randn(1, horizon, action_dim),
            torch.rand(1),
            torch.randn(1, n_obs_steps, obs_dim),
        )
        cases.append(
            {
                "net": REFERENCE_NAME if name == "reference" else name,
                "task": label,
                "action_dim": action_dim,
                "obs_dim": obs_dim,
                "params": count_parameters(net),
                "module": net,
                "args": args,
                "times": [],
                "cpu_times": [],
            }
        )
    return cases


def time_policy_nets(
    task_sizes: Sequence[tuple[str, int, int]] = TASK_SIZES,
    *,
    horizon: int = HORIZON,
    n_obs_steps: int = N_OBS_STEPS,
    repeats: int = 50,
    warmup: int = 5,
    threads: int = 2,
    reference: bool = True,
) -> dict[str, Any]:
    """Time one batch-1 forward of each policy network at its default size.

    Parameters
    ----------
    task_sizes : sequence of (label, action_dim, obs_dim)
        Problems to build the networks for.
    horizon, n_obs_steps : int
        ``T`` and ``To`` of every problem.
    repeats : int
        Timed forwards per network (interleaved across networks); the median is reported.
    warmup : int
        Untimed forwards per network first (allocator, oneDNN kernel selection).
    threads : int
        ``torch.set_num_threads`` during the measurement (restored afterwards).
    reference : bool
        Also time the U-Net at Chi et al.'s size on Push-T's sizes.

    Returns
    -------
    dict
        ``settings`` (the arguments, torch version, threads) and ``results``: one dict per
        (network, task) with ``net``, ``task``, ``action_dim``, ``obs_dim``, ``params``,
        ``forward_ms_median``, ``forward_ms_min``, ``forward_ms_p90`` (wall time) and
        ``thread_cpu_ms_median`` (CPU time of the calling thread; see the module docstring).
    """
    cases = _cases(task_sizes, horizon, n_obs_steps, reference)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.inference_mode():
            for case in cases:
                for _ in range(warmup):
                    case["module"](*case["args"])
            for _ in range(repeats):
                for case in cases:
                    start, start_cpu = time.perf_counter(), time.thread_time()
                    case["module"](*case["args"])
                    case["times"].append(time.perf_counter() - start)
                    case["cpu_times"].append(time.thread_time() - start_cpu)
    finally:
        torch.set_num_threads(before)
    return {
        "settings": {
            "horizon": horizon,
            "n_obs_steps": n_obs_steps,
            "batch": 1,
            "repeats": repeats,
            "warmup": warmup,
            "threads": threads,
            "torch": torch.__version__,
        },
        "results": [_summary(case) for case in cases],
    }


def _summary(case: dict[str, Any]) -> dict[str, Any]:
    ms = sorted(1e3 * s for s in case["times"])
    keep = ("net", "task", "action_dim", "obs_dim", "params")
    return {
        **{k: case[k] for k in keep},
        "forward_ms_median": statistics.median(ms),
        "forward_ms_min": ms[0],
        "forward_ms_p90": ms[min(len(ms) - 1, int(0.9 * len(ms)))],
        "thread_cpu_ms_median": 1e3 * statistics.median(case["cpu_times"]),
    }


def policy_table(result: dict[str, Any]) -> str:
    """A Markdown table of :func:`time_policy_nets`'s result."""
    lines = [
        "| network | task (Da, Do) | parameters | forward ms (median) | min | p90 "
        "| thread CPU ms (median) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in result["results"]:
        lines.append(
            f"| {r['net']} | {r['task']} ({r['action_dim']}, {r['obs_dim']}) "
            f"| {r['params'] / 1e6:.2f}M | {r['forward_ms_median']:.2f} "
            f"| {r['forward_ms_min']:.2f} | {r['forward_ms_p90']:.2f} "
            f"| {r['thread_cpu_ms_median']:.2f} |"
        )
    return "\n".join(lines)
