"""Captured sampling loop on a GPU: DDIM 10 at batch 1, eager against CUDA-graph replay.

For each network — the sampler benchmark's ``TimeMLP`` (the network of the 2.06 ms / 1.09 ms /
3.53 ms H100 figures in docs/benchmarks.md) and the policy backbones at a policy task's sizes —
it times side by side, interleaved, medians of repeats, every call ending with a device
synchronisation:

* ``eager`` — ``sample("ddim", ...)`` as a user calls it (fresh grid, default input checks);
* ``captured`` — :class:`~sci_diffusion.core.capture.CapturedSampler` replaying the whole
  loop (inputs copied in, output copied out): bitwise the eager arithmetic;
* ``captured_fused`` — the same with ``fuse=True`` (two kernels per step);
* ``network`` — the NFE network calls alone, eager;
* ``forward_captured`` — one network forward captured as a graph, replayed NFE times;
* ``diffusers`` — diffusers' ``DDIMScheduler`` loop on the same network (when installed).

The goal (issue 14): ``captured <= 1.2 x NFE x one captured forward``
(``ratio_to_forwards``), with the ratio to diffusers from the same run.
Run on a CUDA machine: ``python -m sci_diffusion.bench.capture OUT_DIR`` (also step 6 of
``scripts/gpu_check.py``). ``graph=False`` runs the same functions eagerly (structure tests on
a CPU).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..core import (
    CapturedSampler,
    CaptureUnavailableError,
    CosineSchedule,
    Denoiser,
    EuclideanSpace,
    function_evaluations,
    sample,
)
from .policy_loop import _config, task_settings
from .sampler import TRAIN_STEPS, TimeMLP, _time_interleaved, diffusers_betas, machine_info

STEPS = 10
CASES: tuple[tuple[str, str | None], ...] = (
    ("time_mlp", None),
    ("mlp", "reacher"),
    ("unet1d", "multimodal"),
    ("transformer", "multimodal"),
)
"""(network, policy task whose sizes it takes); ``time_mlp`` is 2-D points, no conditioning."""


def _case(name: str, task: str | None, device: str, seed: int) -> dict[str, Any]:
    """The network, its denoiser, batch-1 inputs and the diffusers prediction type."""
    torch.manual_seed(seed)
    schedule = CosineSchedule()
    generator = torch.Generator().manual_seed(seed)
    if task is None:
        net: nn.Module = TimeMLP()
        prediction, cond = "epsilon", {}
        x = torch.randn(1, 2, generator=generator)
    else:
        from ..policy.backbones import build_backbone

        s = task_settings(task)
        net = build_backbone(_config("model", name), action_dim=s["action_dim"],
                             obs_dim=s["obs_dim"], n_obs_steps=s["n_obs_steps"],
                             horizon=s["horizon"])  # fmt: skip
        prediction = s["prediction"]
        cond = {"obs": torch.randn(1, s["n_obs_steps"], s["obs_dim"], generator=generator)}
        x = torch.randn(1, s["horizon"], s["action_dim"], generator=generator)
    return {
        "net": net.eval().to(device),
        "schedule": schedule,
        "prediction": prediction,
        "cond": {k: v.to(device) for k, v in cond.items()},
        "x": x.to(device),
    }


def _functions(
    case: dict[str, Any], device: str, graph: bool, steps: int
) -> dict[str, Callable[[], object]]:
    net, schedule, x, cond = case["net"], case["schedule"], case["x"], case["cond"]
    space = EuclideanSpace(schedule)
    denoiser = Denoiser(net, space, prediction=case["prediction"])
    bound = denoiser.bind(**cond)
    nfe = function_evaluations("ddim", steps)
    times = schedule.time_grid(steps, device=device)
    cuda = torch.device(device).type == "cuda"

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize(device)

    captured = CapturedSampler("ddim", denoiser, x, times, space=space, cond=cond, graph=graph)
    fused = CapturedSampler("ddim", denoiser, x, times, space=space, cond=cond, graph=graph,
                            fuse=True)  # fmt: skip
    t_batch = [t.expand(x.shape[0]).contiguous() for t in times[:nfe]]
    static_x, static_t = x.clone(), t_batch[0].clone()
    forward: Callable[[], object]
    if graph:
        stream = torch.cuda.Stream(device=device)
        stream.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(stream), torch.no_grad():
            for _ in range(3):
                net(static_x, static_t, **cond)
        torch.cuda.current_stream(device).wait_stream(stream)
        one = torch.cuda.CUDAGraph()
        with torch.no_grad(), torch.cuda.graph(one):
            net(static_x, static_t, **cond)
        forward = one.replay
    else:

        def forward() -> object:
            return net(static_x, static_t, **cond)

    def eager() -> Tensor:
        out = sample("ddim", bound, x, schedule.time_grid(steps, device=device), space=space)
        sync()
        return out

    def replay() -> Tensor:
        out = captured(x)
        sync()
        return out

    def replay_fused() -> Tensor:
        out = fused(x)
        sync()
        return out

    def network() -> None:
        for t in t_batch:
            net(x, t, **cond)
        sync()

    def forwards() -> None:
        for _ in range(nfe):
            forward()
        sync()

    fns: dict[str, Callable[[], object]] = {
        "eager": eager, "captured": replay, "captured_fused": replay_fused,
        "network": network, "forward_captured": forwards,
    }  # fmt: skip
    theirs = _diffusers(net, x, cond, case["prediction"], schedule, steps, device, sync)
    if theirs is not None:
        fns["diffusers"] = theirs
    return fns


def _diffusers(
    net: nn.Module, x: Tensor, cond: dict[str, Tensor], prediction: str, schedule: Any,
    steps: int, device: str, sync: Callable[[], None],
) -> Callable[[], Tensor] | None:  # fmt: skip
    try:
        import diffusers
    except ImportError:
        return None
    scheduler = diffusers.DDIMScheduler(
        trained_betas=diffusers_betas(schedule).numpy(), clip_sample=False,
        prediction_type={"epsilon": "epsilon", "v": "v_prediction", "x0": "sample"}[prediction],
        timestep_spacing="trailing",
    )  # fmt: skip

    def loop() -> Tensor:
        scheduler.set_timesteps(steps, device=device)
        y = x
        for step in scheduler.timesteps:
            out = net(y, (step / TRAIN_STEPS).expand(x.shape[0]).float(), **cond)
            y = scheduler.step(out, step, y).prev_sample
        sync()
        return y

    return loop


def capture_records(
    device: str = "cuda", *, steps: int = STEPS, repeats: int = 21, min_time: float = 0.05,
    seed: int = 0, graph: bool = True, cases: tuple[tuple[str, str | None], ...] = CASES,
) -> list[dict[str, Any]]:  # fmt: skip
    """Median ms of each function (module doc) per network, and the ratios:
    ``ratio_to_forwards = captured / forward_captured`` (the goal: <= 1.2),
    ``fused_ratio_to_forwards``, ``eager_over_captured``, ``captured_over_diffusers``,
    ``eager_over_diffusers`` (``None`` without diffusers).

    Raises :class:`~sci_diffusion.core.capture.CaptureUnavailableError` with ``graph=True``
    where CUDA is missing."""
    if graph and not torch.cuda.is_available():
        raise CaptureUnavailableError(
            "bench capture replays CUDA graphs and needs a CUDA device (none here); "
            "graph=False times the same loop eagerly"
        )
    records = []
    for name, task in cases:
        case = _case(name, task, device, seed)
        with torch.no_grad():
            timing = _time_interleaved(_functions(case, device, graph, steps), repeats, min_time)
        ms = {k: 1e3 * v for k, v in timing.items()}
        theirs = ms.get("diffusers")
        records.append({
            "net": name, "task": task, "device": device, "graph": graph, "batch": 1,
            "sampler": "ddim", "steps": steps, "nfe": function_evaluations("ddim", steps),
            "prediction": case["prediction"],
            "params": sum(p.numel() for p in case["net"].parameters()),
            **{f"{k}_ms": v for k, v in ms.items()},
            "ratio_to_forwards": ms["captured"] / ms["forward_captured"],
            "fused_ratio_to_forwards": ms["captured_fused"] / ms["forward_captured"],
            "eager_over_captured": ms["eager"] / ms["captured"],
            "captured_over_diffusers": None if theirs is None else ms["captured"] / theirs,
            "fused_over_diffusers": None if theirs is None else ms["captured_fused"] / theirs,
            "eager_over_diffusers": None if theirs is None else ms["eager"] / theirs,
        })  # fmt: skip
    return records


def table(records: list[dict[str, Any]]) -> str:
    """A Markdown table of :func:`capture_records`."""

    def cell(value: float | None, fmt: str = ".3f") -> str:
        return "-" if value is None else format(value, fmt)

    lines = [
        "| network (task) | eager ms | captured ms | fused ms | network ms | NFE x captured "
        "forward ms | captured / forwards | fused / forwards | diffusers ms "
        "| captured / diffusers |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in records:
        lines.append(
            f"| {r['net']} ({r['task'] or '2-D points'}) | {r['eager_ms']:.3f} "
            f"| {r['captured_ms']:.3f} | {r['captured_fused_ms']:.3f} | {r['network_ms']:.3f} "
            f"| {r['forward_captured_ms']:.3f} | {r['ratio_to_forwards']:.2f} "
            f"| {r['fused_ratio_to_forwards']:.2f} | {cell(r.get('diffusers_ms'))} "
            f"| {cell(r['captured_over_diffusers'], '.2f')} |"
        )
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    """``python -m sci_diffusion.bench.capture OUT_DIR``: writes ``capture_cuda.json``."""
    out = Path(argv[0]) if argv else Path(".")
    out.mkdir(parents=True, exist_ok=True)
    records = capture_records()
    result = {"machine": machine_info(), "records": records}
    if torch.cuda.is_available():
        result["gpu"] = torch.cuda.get_device_name(0)
    (out / "capture_cuda.json").write_text(json.dumps(result, indent=2, default=str))
    print(table(records))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
