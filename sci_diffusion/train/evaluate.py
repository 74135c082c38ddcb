"""Load a trained run (EMA weights) and evaluate or sample it with any configured sampler."""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from sci_diffusion.cards import update_model_card
from sci_diffusion.core import Denoiser
from sci_diffusion.core.sampler_config import sampler_settings
from sci_diffusion.io.checkpoint import (
    CheckpointError,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
)
from sci_diffusion.io.errors import UserInputError
from sci_diffusion.io.files import write_json_atomic
from sci_diffusion.io.rundir import CHECKPOINT_DIR, METRICS_FILE
from sci_diffusion.tasks import build_task
from sci_diffusion.tasks.base import Task

from .distributed import init_distributed, resolve_device, shutdown_distributed
from .embedded import EMBEDDED_KEY, is_embedded_dir


@dataclass
class LoadedRun:
    cfg: DictConfig
    task: Task
    denoiser: Denoiser
    checkpoint: Path
    step: int
    device: torch.device
    embedded: dict[str, Any] | None = None
    """The export record of an embedded default checkpoint (``train.embedded``), else None."""


def _newest_verified(folder: Path) -> Path:
    """The newest checkpoint in ``folder`` that verifies. When none does, the newest file's own
    verification error is raised (instead of one skip warning per file and "train first")."""
    with warnings.catch_warnings(record=True) as skipped:
        warnings.simplefilter("always")
        path = latest_checkpoint(folder)
    if path is None:
        found = list_checkpoints(folder)
        if not found:
            raise UserInputError(
                f"no checkpoint in {folder}; train the run first "
                "(sci-diffusion train ...) or pass another run="
            )
        try:
            load_checkpoint(found[-1])
        except CheckpointError as err:
            raise CheckpointError(f"no checkpoint in {folder} passes verification: {err}") from None
    for w in skipped:  # older good checkpoint found: keep the warnings about the skipped ones
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return path


def load_run(
    run_dir: Path,
    device: str = "auto",
    local_rank: int = 0,
    configure: Callable[[DictConfig], DictConfig] | None = None,
) -> LoadedRun:
    """The latest verified checkpoint of ``run_dir``, its config, task and EMA denoiser.

    ``run_dir`` may be a train run directory or an embedded default
    (:mod:`sci_diffusion.train.embedded`: same layout, EMA weights only). ``configure`` maps
    the run's saved config to the final one (e.g. :func:`apply_eval_overrides`) before the task
    is built, so the task is built once, from the config it is evaluated with."""
    if not run_dir.is_dir():
        raise UserInputError(f"run directory {run_dir} does not exist; pass run=<a train run dir>")
    path = _newest_verified(run_dir / CHECKPOINT_DIR)
    tensors, meta = load_checkpoint(path)
    cfg = OmegaConf.create(meta["config"])
    if configure is not None:
        cfg = configure(cfg)
    task = build_task(cfg)
    net = task.build_network()
    prefix = "ema."
    weights = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
    net.load_state_dict(weights)
    task.model_fingerprint = weights_fingerprint(weights)
    dev = resolve_device(device, local_rank)
    net = net.to(dev).eval()
    embedded = meta.get(EMBEDDED_KEY)
    return LoadedRun(cfg, task, task.denoiser(net), path, int(meta["step"]), dev, embedded)


def evaluation_folder(label: str) -> str:
    """The folder name of an evaluation label: ``"heun, 10 steps, t_start 0.9"`` ->
    ``"heun_10_t0.9"``."""
    folder = label.replace(" steps", "").replace("t_start ", "t").replace(", ", "_")
    return folder.replace(" ", "_")


def weights_fingerprint(weights: dict[str, Tensor]) -> str:
    """SHA-256 (first 16 hex digits) of the evaluated weights, names and bytes in name order:
    the same model gives the same fingerprint in a full and in an exported checkpoint."""
    digest = hashlib.sha256()
    for name in sorted(weights):
        digest.update(name.encode())
        digest.update(weights[name].detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def _read_only_reason(run_dir: Path, loaded: LoadedRun) -> str | None:
    """Why evaluation must not write into ``run_dir`` (None when it may)."""
    if loaded.embedded is not None or is_embedded_dir(run_dir):
        return "is an embedded default checkpoint"
    if not os.access(run_dir, os.W_OK):
        return "is not writable"
    return None


def apply_eval_overrides(cfg: DictConfig, cli_cfg: DictConfig, overrides: list[str]) -> DictConfig:
    """The run's own config with the sampler and evaluation settings the user asked for
    (``sampler=``/``sampler.*``, ``steps=``, ``n=``, ``episodes=``, ``task.eval.*``); everything
    else — the task, its data, the model and the method — stays as the run was trained."""
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
            raise UserInputError(
                f"episodes= applies to policy tasks; {cfg.task.name} has no "
                "episodes: leave episodes= out (use n= for samples)"
            )
        cfg.task.eval.episodes = int(cli_cfg.episodes)
    for key in keys:
        if key.startswith("task.eval."):
            OmegaConf.update(cfg, key, OmegaConf.select(cli_cfg, key), merge=False)
    # What to sample for, never saved with the run: targets, guidance and a kept fragment.
    for key in ("target", "guidance", "scaffold"):
        if key in cli_cfg:
            cfg[key] = OmegaConf.select(cli_cfg, key)
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

    For an embedded default checkpoint or a run directory that is not writable, the metrics
    go to ``out_dir`` only (which is then required): the run directory is left untouched.

    Under ``torchrun`` with ``trainer.distributed=true`` sampling is sharded: each rank draws
    its share of ``task.eval.n_samples`` from its own seed stream (``seed + rank``), rank 0
    gathers, scores and writes. Other ranks return ``None``.
    """
    hint = resolve_device(str(cli_cfg.trainer.device))
    info = init_distributed(bool(cli_cfg.trainer.distributed), hint)
    try:
        loaded = load_run(
            run_dir,
            str(cli_cfg.trainer.device),
            info.local_rank,
            configure=lambda saved: apply_eval_overrides(saved, cli_cfg, overrides),
        )
        cfg = loaded.cfg
        label = loaded.task.evaluation_label()
        read_only = _read_only_reason(run_dir, loaded)
        if read_only and out_dir is None:
            raise UserInputError(f"{run_dir} {read_only}: nothing is written there; "
                             "pass out=<dir> (sci-diffusion sample ... out=<dir>)")  # fmt: skip
        out_dir = out_dir or run_dir / "eval" / evaluation_folder(label)
        seed = int(cfg.task.eval.get("seed", 0)) + 1_000_003 * info.rank  # disjoint streams
        generator = torch.Generator(device=loaded.device).manual_seed(seed)
        if info.enabled and not loaded.task.sharded_evaluation:
            raise UserInputError(
                f"{cfg.task.name} evaluation runs on one process; run it without "
                "torchrun / trainer.distributed"
            )
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
        head = {"checkpoint": loaded.checkpoint.name, "step": loaded.step}
        if loaded.embedded is not None:
            head["embedded_default"] = loaded.embedded
        metrics = {**head, **metrics}
        write_json_atomic(out_dir / METRICS_FILE, metrics)
        if read_only:
            print(f"{run_dir} {read_only}: metrics written to {out_dir} only (its metrics.json "
                  "and model card are left unchanged)")  # fmt: skip
        else:
            write_json_atomic(run_dir / METRICS_FILE, metrics)
            update_model_card(run_dir, "evaluation", metrics, entry=label)
        return metrics
    finally:
        shutdown_distributed()
