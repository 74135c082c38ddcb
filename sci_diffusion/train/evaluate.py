"""Load a trained run (EMA weights) and evaluate or sample it with any configured sampler."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from sci_diffusion.cards import update_model_card
from sci_diffusion.core import Denoiser
from sci_diffusion.tasks import build_task
from sci_diffusion.tasks.base import Task

from .checkpoint import latest_checkpoint, load_checkpoint
from .distributed import init_distributed, resolve_device, shutdown_distributed
from .rundir import CHECKPOINT_DIR, METRICS_FILE, write_json_atomic
from .sampling import sampler_settings


@dataclass
class LoadedRun:
    cfg: DictConfig
    task: Task
    denoiser: Denoiser
    checkpoint: Path
    step: int
    device: torch.device


def load_run(run_dir: Path, device: str = "auto", local_rank: int = 0) -> LoadedRun:
    """The latest verified checkpoint of ``run_dir``, its config, task and EMA denoiser."""
    if not run_dir.is_dir():
        raise ValueError(f"run directory {run_dir} does not exist; pass run=<a train run dir>")
    path = latest_checkpoint(run_dir / CHECKPOINT_DIR)
    if path is None:
        raise ValueError(f"no valid checkpoint in {run_dir / CHECKPOINT_DIR}; train first")
    tensors, meta = load_checkpoint(path)
    cfg = OmegaConf.create(meta["config"])
    task = build_task(cfg)
    net = task.build_network()
    prefix = "ema."
    net.load_state_dict({k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)})
    dev = resolve_device(device, local_rank)
    net = net.to(dev).eval()
    return LoadedRun(cfg, task, task.denoiser(net), path, int(meta["step"]), dev)


def apply_eval_overrides(cfg: DictConfig, cli_cfg: DictConfig, overrides: list[str]) -> DictConfig:
    """The run's own config with the sampler and evaluation settings the user asked for."""
    cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    keys = [o.split("=", 1)[0].lstrip("+~") for o in overrides]
    if any(k == "sampler" or k.startswith("sampler.") for k in keys):
        cfg.sampler = cli_cfg.sampler
    if cli_cfg.get("steps") is not None:
        cfg.sampler.steps = int(cli_cfg.steps)
    if cli_cfg.get("n") is not None:
        cfg.task.eval.n_samples = int(cli_cfg.n)
    if cli_cfg.get("episodes") is not None:
        if "episodes" not in cfg.task.eval:
            raise ValueError(f"episodes= applies to policy tasks; {cfg.task.name} has none")
        cfg.task.eval.episodes = int(cli_cfg.episodes)
    for key in keys:
        if key.startswith("task.eval."):
            OmegaConf.update(cfg, key, OmegaConf.select(cli_cfg, key), merge=False)
    sampler_settings(cfg.sampler)
    return cfg


def shard_sizes(n: int, world: int) -> list[int]:
    """How many of ``n`` samples each of ``world`` ranks draws (the first ``n % world`` get one
    more)."""
    return [n // world + (1 if r < n % world else 0) for r in range(world)]


def gather_samples(
    samples: dict[str, Tensor], sizes: list[int], device: torch.device
) -> dict[str, Tensor]:
    """All-gather every rank's samples (CPU tensors) and concatenate them in rank order."""
    longest = max(sizes)
    merged = {}
    for key in sorted(samples):
        local = samples[key].to(device)
        padded = torch.zeros((longest, *local.shape[1:]), dtype=local.dtype, device=device)
        padded[: local.shape[0]] = local
        parts = [torch.empty_like(padded) for _ in sizes]
        dist.all_gather(parts, padded)
        merged[key] = torch.cat([p[:size] for p, size in zip(parts, sizes, strict=True)]).cpu()
    return merged


def evaluate_run(
    run_dir: Path, cli_cfg: DictConfig, overrides: list[str], out_dir: Path | None = None
) -> dict[str, Any] | None:
    """Evaluate the run's EMA model; write ``metrics.json`` and the model card's evaluation.

    Under ``torchrun`` with ``trainer.distributed=true`` sampling is sharded: each rank draws
    its share of ``task.eval.n_samples`` from its own seed stream (``seed + rank``), rank 0
    gathers, scores and writes. Other ranks return ``None``.
    """
    hint = resolve_device(str(cli_cfg.trainer.device))
    info = init_distributed(bool(cli_cfg.trainer.distributed), hint)
    try:
        loaded = load_run(run_dir, str(cli_cfg.trainer.device), info.local_rank)
        cfg = apply_eval_overrides(loaded.cfg, cli_cfg, overrides)
        loaded.task.cfg = cfg
        label = loaded.task.evaluation_label()
        out_dir = out_dir or run_dir / "eval" / label.replace(", ", "_").replace(" steps", "")
        seed = int(cfg.task.eval.get("seed", 0)) + 1_000_003 * info.rank  # disjoint streams
        generator = torch.Generator(device=loaded.device).manual_seed(seed)
        if info.enabled and not loaded.task.sharded_evaluation:
            raise ValueError(f"{cfg.task.name} evaluation runs on one process; run it without "
                             "torchrun / trainer.distributed")
        if not info.enabled:
            metrics = loaded.task.evaluate(loaded.denoiser, out_dir, generator, loaded.device)
        else:
            sizes = shard_sizes(int(cfg.task.eval.n_samples), info.world_size)
            local = loaded.task.generate(
                loaded.denoiser, sizes[info.rank], generator, loaded.device
            )
            comm = loaded.device if dist.get_backend() == "nccl" else torch.device("cpu")
            merged = gather_samples(local, sizes, comm)
            if not info.is_main:
                return None
            metrics = loaded.task.score(merged, out_dir)
            metrics["sampling_ranks"] = info.world_size
        metrics = {"checkpoint": loaded.checkpoint.name, "step": loaded.step, **metrics}
        write_json_atomic(out_dir / METRICS_FILE, metrics)
        write_json_atomic(run_dir / METRICS_FILE, metrics)
        update_model_card(run_dir, "evaluation", metrics, entry=label)
        return metrics
    finally:
        shutdown_distributed()
