"""Sampler-loop overhead of the policy networks at batch 1 (``bench policy``'s ``loop`` part).

For every policy backbone (``unet1d``, ``transformer``, ``mlp`` at their default sizes,
``configs/model/<name>.yaml``) on every policy task's chunk and observation sizes
(``configs/task/<task>.yaml``: horizon, observation steps, schedule, prediction, sampler
steps; the environment's action and observation sizes from :data:`TASK_DIMS`), with random
weights (timing does not depend on training), it times side by side, interleaved, as medians
of repeats:

* ``loop`` — one chunk as a policy plans it (``policy.methods.diffusion``, from a given prior
  draw): the task's default sampler settings (``configs/sampler/ddim.yaml`` with the task's
  ``sampler.steps``: DDIM 10, ``eta = 0``, ``t_start = 1``) read once into
  :class:`~sci_diffusion.core.sampler_config.SamplerSettings`, as ``tasks/policy.py`` hands
  them to the policy, and the policy's chunk plan built from them once (the grid, and
  deterministic DDIM prepared for the chunk's shape), called with the observation history;
* ``config`` — the same chunk through
  :func:`~sci_diffusion.core.sampler_config.run_sampler` on the denoiser bound to the
  observation history, everything derived from the settings again per chunk (how the policy
  planned before the chunk plan; bitwise the same chunk);
* ``core`` — the same chunk through :func:`~sci_diffusion.core.sample` on a precomputed grid
  (``run_sampler`` without the config parsing);
* ``network`` — the same NFE network calls alone, on the grid's times;
* ``empty`` — ``loop`` around a network that costs nothing (returns a fixed tensor): the
  sampler's own work, with its code warm in the processor's caches (between real network
  calls it runs cold, so ``loop - network`` is larger on a busy machine);
* ``hand`` — DDIM written out by hand (default settings only): the network and the same
  tensor operations per step on coefficients computed beforehand, nothing else — the floor of
  any loop with these results;
* ``fused`` — the prepared DDIM loop with the fused step ``x_s = A x + B out`` (two tensor
  operations per step; equal to the others up to float rounding, ~1e-6): what fusing would
  still save (policies do not fuse);
* ``diffusers`` — diffusers' ``DDIMScheduler`` loop driving the same network (when installed).

``overhead = loop / network - 1``. Wall time (``perf_counter``) and the calling thread's CPU
time (``thread_time``) are both recorded: with one thread (``OMP_NUM_THREADS=1``) the CPU time
leaves out the time the thread spent descheduled, which keeps the ratio meaningful on a
machine shared with other work.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from importlib import resources
from typing import Any

import torch
from torch import Tensor, nn

from ..configs.schema import SamplerConfig
from ..core import Denoiser, EuclideanSpace, function_evaluations, make_schedule, sample
from ..core.sampler_config import SamplerSettings, run_sampler, sampler_settings, start_time
from ..core.samplers import _prepare_ddim
from ..io.progress import stage
from ..policy.methods.diffusion import _ChunkPlan
from .sampler import TRAIN_STEPS, _time_side_by_side, diffusers_betas

LOOP_MODELS = ("unet1d", "transformer", "mlp")
"""The policy backbones timed (``sci_diffusion.policy.backbones``)."""
LOOP_TASKS = ("multimodal", "reacher", "pusher", "metaworld")
"""The policy tasks whose sizes and sampler settings are timed."""
TASK_DIMS: dict[str, tuple[int, int]] = {
    "multimodal": (2, 6),
    "reacher": (2, 10),
    "pusher": (7, 23),
    "metaworld": (4, 39),
}
"""``(action_dim, obs_dim)`` of each policy task's environment (Meta-World: MT1 state
observations, the same for every task name)."""
QUICK_LOOP_TASKS = ("multimodal", "reacher")


def _config(*parts: str) -> Any:
    """``configs/<parts>.yaml`` of the installed package, e.g. ``_config("task", "reacher")``."""
    from omegaconf import OmegaConf

    path = resources.files("sci_diffusion.configs").joinpath(*parts[:-1], f"{parts[-1]}.yaml")
    return OmegaConf.load(path)


def _default(defaults: Any, key: str) -> str | None:
    """The option a Hydra defaults list picks for ``key`` (``- key: option``), or ``None``."""
    for entry in defaults or []:
        if not isinstance(entry, str) and key in entry:
            return str(entry[key])
    return None


def task_settings(task: str) -> dict[str, Any]:
    """Sizes and sampler settings of a policy task from its config (no environment built).

    Returns ``horizon``, ``n_obs_steps``, ``action_dim``, ``obs_dim``, ``schedule``,
    ``prediction``, ``model`` (the task's default backbone) and ``sampler``: an OmegaConf node
    typed like the run config's ``sampler`` (the default ``ddim`` group with the task's
    overrides), which is what a policy hands to ``run_sampler``.
    """
    from omegaconf import OmegaConf

    cfg = _config("task", task)
    default_sampler = _default(_config("config").defaults, "sampler") or "ddim"
    model = _default(cfg.get("defaults"), "override /model")
    sampler = OmegaConf.merge(
        OmegaConf.structured(SamplerConfig),
        _config("sampler", default_sampler),
        cfg.get("sampler") or {},
    )
    action_dim, obs_dim = TASK_DIMS[task]
    return {
        "horizon": int(cfg.task.horizon),
        "n_obs_steps": int(cfg.task.n_obs_steps),
        "action_dim": action_dim,
        "obs_dim": obs_dim,
        "schedule": str(cfg.task.diffusion.schedule),
        "prediction": str(cfg.task.diffusion.prediction),
        "model": model,
        "sampler": sampler,
    }


def _diffusers_loop(
    net: nn.Module, x: Tensor, obs: Tensor, settings: dict[str, Any], steps: int
) -> Callable[[], Tensor] | None:
    """diffusers' ``DDIMScheduler`` loop on the same network and discretised schedule, or
    ``None`` when diffusers is not installed or the settings have no diffusers equivalent."""
    try:
        import diffusers
    except ImportError:
        return None
    prediction = {"epsilon": "epsilon", "v": "v_prediction", "x0": "sample"}.get(
        settings["prediction"]
    )
    if prediction is None or settings["schedule"] == "rectified_flow":
        return None
    scheduler = diffusers.DDIMScheduler(
        trained_betas=diffusers_betas(make_schedule(settings["schedule"])).numpy(),
        prediction_type=prediction, timestep_spacing="trailing", clip_sample=False,
    )  # fmt: skip

    def loop() -> Tensor:
        scheduler.set_timesteps(steps)
        y = x
        for step in scheduler.timesteps:
            out = net(y, (step / TRAIN_STEPS).reshape(1).float(), obs)
            y = scheduler.step(out, step, y).prev_sample
        return y

    return loop


def _case(
    denoiser: Denoiser, net: nn.Module, space: Any, x: Tensor, obs: Tensor, grid: Tensor,
    nfe: int, sampler_cfg: Any, generator: torch.Generator,
) -> dict[str, Callable[[], object]]:  # fmt: skip
    """The timed functions of one (task, backbone) pair: ``loop``, ``config``, ``core``,
    ``network``, ``empty`` and (DDIM, eta 0) ``hand``."""
    name, _, options = sampler_settings(sampler_cfg)
    net_times = [torch.full((1,), float(t)) for t in grid[:nfe]]

    plan = _ChunkPlan(denoiser, sampler_cfg, x.device)

    def loop() -> Tensor:  # as a policy plans a chunk (policy.methods.diffusion)
        return plan.sample(x, obs, generator)

    def config() -> Tensor:  # the sampler run from the settings on every chunk
        return run_sampler(denoiser.bind(obs=obs), space, x, sampler_cfg, generator)

    def core() -> Tensor:
        return sample(name, denoiser.bind(obs=obs), x, grid, space=space, generator=generator,
                      **options)  # fmt: skip

    def network() -> None:
        for t in net_times:
            net(x, t, obs)

    constant = net(x, net_times[0], obs)
    no_op = Denoiser(lambda x, t, obs: constant, denoiser.components["x"],
                     prediction=denoiser.prediction["x"])  # fmt: skip

    no_op_plan = _ChunkPlan(no_op, sampler_cfg, x.device)

    def empty() -> Tensor:  # the policy's loop around a network that costs nothing
        return no_op_plan.sample(x, obs, generator)

    fns = {"loop": loop, "config": config, "core": core, "network": network, "empty": empty}
    hand = _hand_written(net, obs, x, grid, nfe, name, options, denoiser)
    if hand is not None:
        fns["hand"] = hand
    fused = _prepare_ddim(denoiser, x, grid, space=space, fuse=True) if hand is not None else None
    if fused is not None:
        cond = {"obs": obs}
        fns["fused"] = lambda: fused(x, cond)
    return fns


def _hand_written(
    net: nn.Module, obs: Tensor, x: Tensor, grid: Tensor, nfe: int, name: str,
    options: dict[str, Any], denoiser: Denoiser,
) -> Callable[[], Tensor] | None:  # fmt: skip
    """DDIM (eta 0) written out by hand: per step the network, the prediction's conversion
    to x0 and ``addcmul(c1 x, c2, x0)`` on coefficients computed beforehand — the tensor work
    any sampler with these results does, without its bookkeeping. ``None`` for other
    samplers and predictions."""
    prediction = denoiser.prediction["x"]
    if name != "ddim" or options.get("eta", 0.0) != 0 or prediction not in ("epsilon", "x0", "v"):
        return None
    alpha, sigma = denoiser.schedule.alpha_sigma(grid)
    alpha, sigma = alpha.reshape(-1, *[1] * x.ndim), sigma.reshape(-1, *[1] * x.ndim)
    c1 = sigma[1:] / sigma[:-1]
    c2 = alpha[1:] - c1 * alpha[:-1]
    a, s, d = alpha.unbind(0), sigma.unbind(0), (alpha**2 + sigma**2).unbind(0)
    c1s, c2s, ts = c1.unbind(0), c2.unbind(0), [t.expand(x.shape[0]) for t in grid]

    def hand() -> Tensor:
        y = x
        for i in range(nfe):
            out = net(y, ts[i], obs)
            if prediction == "v":
                x0 = (a[i] * y - s[i] * out) / d[i]
            elif prediction == "epsilon":
                x0 = (y - s[i] * out) / a[i]
            else:
                x0 = out
            y = torch.addcmul(c1s[i] * y, c2s[i], x0)
        return y

    return hand


def loop_records(
    models: Sequence[str] = LOOP_MODELS,
    tasks: Sequence[str] = LOOP_TASKS,
    *,
    repeats: int = 21,
    min_time: float = 0.05,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Batch-1 sampler loop against its network calls for every (task, backbone) pair.

    Each record: ``task``, ``model``, ``params``, the task's ``sampler``, ``steps``, ``nfe``,
    ``eta`` (when the sampler has it), ``t_start``, ``schedule``, ``prediction``; median wall
    times ``loop_ms``, ``config_ms``, ``core_ms``, ``network_ms``, ``empty_loop_ms``,
    ``diffusers_ms`` (``None`` without diffusers) and the thread-CPU medians ``*_cpu_ms``;
    ``overhead = loop / network - 1``, ``core_overhead``, ``overhead_cpu``,
    ``config_overhead_cpu``, ``hand_overhead_cpu`` and ``fused_overhead_cpu`` alike,
    ``ratio_diffusers = loop / diffusers``.
    """
    from ..policy.backbones import build_backbone

    records = []
    for task in tasks:
        settings = task_settings(task)
        name, steps, options = sampler_settings(settings["sampler"])
        t_start = start_time(settings["sampler"])
        nfe = function_evaluations(name, steps)
        schedule = make_schedule(settings["schedule"])
        space = EuclideanSpace(schedule)
        grid = schedule.time_grid(steps, t_start=t_start)
        h, da = settings["horizon"], settings["action_dim"]
        to, do = settings["n_obs_steps"], settings["obs_dim"]
        for model in models:
            stage(f"bench policy: {name} {steps} loop against the network, {task}, {model}")
            torch.manual_seed(seed)
            net = build_backbone(_config("model", model), action_dim=da, obs_dim=do,
                                 n_obs_steps=to, horizon=h).eval()  # fmt: skip
            denoiser = Denoiser(net, space, prediction=settings["prediction"])
            generator = torch.Generator().manual_seed(seed)
            obs = torch.randn(1, to, do, generator=generator)
            x = space.prior((1, h, da), t=t_start, generator=generator)
            policy_sampler = SamplerSettings.from_config(settings["sampler"])  # as tasks/policy.py
            fns = _case(denoiser, net, space, x, obs, grid, nfe, policy_sampler, generator)
            theirs = _diffusers_loop(net, x, obs, settings, steps) if name == "ddim" else None
            if theirs is not None:
                fns["diffusers"] = theirs
            with torch.inference_mode():
                timing = _time_side_by_side(fns, repeats, min_time, warmup=3)
            ms = {k: 1e3 * v[0] for k, v in timing.items()}
            cpu_ms = {k: 1e3 * v[1] for k, v in timing.items()}
            records.append({
                "task": task, "model": model, "params": sum(p.numel() for p in net.parameters()),
                "sampler": name, "steps": steps, "nfe": nfe, **options, "t_start": t_start,
                "schedule": settings["schedule"], "prediction": settings["prediction"],
                "horizon": h, "action_dim": da, "n_obs_steps": to, "obs_dim": do,
                "loop_ms": ms["loop"], "core_ms": ms["core"], "network_ms": ms["network"],
                "config_ms": ms["config"], "config_cpu_ms": cpu_ms["config"],
                "config_overhead_cpu": cpu_ms["config"] / cpu_ms["network"] - 1.0,
                "empty_loop_ms": ms["empty"], "empty_loop_cpu_ms": cpu_ms["empty"],
                "hand_ms": ms.get("hand"), "hand_cpu_ms": cpu_ms.get("hand"),
                "hand_overhead_cpu": (cpu_ms["hand"] / cpu_ms["network"] - 1.0
                                      if "hand" in cpu_ms else None),
                "fused_cpu_ms": cpu_ms.get("fused"),
                "fused_overhead_cpu": (cpu_ms["fused"] / cpu_ms["network"] - 1.0
                                       if "fused" in cpu_ms else None),
                "diffusers_ms": ms.get("diffusers"),
                "loop_cpu_ms": cpu_ms["loop"], "core_cpu_ms": cpu_ms["core"],
                "network_cpu_ms": cpu_ms["network"], "diffusers_cpu_ms": cpu_ms.get("diffusers"),
                "overhead": ms["loop"] / ms["network"] - 1.0,
                "core_overhead": ms["core"] / ms["network"] - 1.0,
                "overhead_cpu": cpu_ms["loop"] / cpu_ms["network"] - 1.0,
                "ratio_diffusers": ms["loop"] / ms["diffusers"] if "diffusers" in ms else None,
            })  # fmt: skip
    return records


def loop_table(records: Sequence[dict[str, Any]]) -> str:
    """A Markdown table of :func:`loop_records`."""
    lines = [
        "| task (H, To, Da, Do) | network | parameters | sampler | network ms | loop ms "
        "| overhead | overhead (CPU time) | run_sampler overhead (CPU time) | core overhead "
        "| no-op network loop ms | diffusers ms | loop/diffusers |",
        "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in records:
        diffusers = "-" if r["diffusers_ms"] is None else f"{r['diffusers_ms']:.3f}"
        ratio = "-" if r["ratio_diffusers"] is None else f"{r['ratio_diffusers']:.2f}"
        lines.append(
            f"| {r['task']} ({r['horizon']}, {r['n_obs_steps']}, {r['action_dim']}, "
            f"{r['obs_dim']}) | {r['model']} | {r['params'] / 1e6:.2f}M "
            f"| {r['sampler']} {r['steps']} | {r['network_ms']:.3f} | {r['loop_ms']:.3f} "
            f"| {100 * r['overhead']:+.1f}% | {100 * r['overhead_cpu']:+.1f}% "
            f"| {100 * r['config_overhead_cpu']:+.1f}% | {100 * r['core_overhead']:+.1f}% "
            f"| {r['empty_loop_ms']:.3f} | {diffusers} "
            f"| {ratio} |"
        )
    return "\n".join(lines)
