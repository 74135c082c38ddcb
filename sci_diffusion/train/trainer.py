"""One trainer for every task: AdamW + warmup/cosine, clipping, EMA, bf16 on GPU, DDP,
seeded batches, JSONL/TensorBoard logs, atomic verified checkpoints and exact resume.

Determinism: the batch and the noise of step ``k`` come from generators seeded by
``(trainer.seed, k, rank)``, and the global torch RNG is re-seeded the same way, so a run
resumed from a checkpoint replays exactly the steps an uninterrupted run would have taken.
"""

from __future__ import annotations

import contextlib
import gc
import math
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

import sci_diffusion
from sci_diffusion.cards import update_model_card
from sci_diffusion.core import EMA
from sci_diffusion.io.checkpoint import (
    checkpoint_path,
    latest_checkpoint,
    load_checkpoint,
    optimizer_from_tensors,
    optimizer_to_tensors,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from sci_diffusion.io.errors import UserInputError
from sci_diffusion.io.progress import Progress
from sci_diffusion.io.rundir import CHECKPOINT_DIR, RunLogger, git_commit, save_config
from sci_diffusion.tasks import build_task
from sci_diffusion.tasks.base import Task

from .distributed import DistInfo, init_distributed, resolve_device, shutdown_distributed


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    stop_reason: str
    last_loss: float
    wall_seconds: float
    checkpoint: Path | None


class StopRequest:
    """Set by SIGINT/SIGTERM while a single-process run trains: the loop stops between steps,
    checkpoints and writes the card (``stop_reason="interrupted"``), so ``kill <pid>`` or one
    Ctrl-C loses no step. A second signal aborts at once (a KeyboardInterrupt, as before)."""

    def __init__(self) -> None:
        self.signal: str | None = None

    def __bool__(self) -> bool:
        return self.signal is not None

    @contextlib.contextmanager
    def installed(self) -> Iterator[StopRequest]:
        """Handle SIGINT and SIGTERM inside the block (main thread only: signal handlers can
        be set nowhere else, so elsewhere nothing changes)."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        names = {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM"}
        previous = {sig: signal.getsignal(sig) for sig in names}

        def request(signum: int, frame: Any) -> None:
            if self.signal is not None:  # the second one: stop now, without a checkpoint
                raise KeyboardInterrupt
            self.signal = names[signal.Signals(signum)]
            print(f"{self.signal}: stopping after this step and saving a checkpoint "
                  "(send it again to abort without one)", file=sys.stderr, flush=True)  # fmt: skip

        try:
            for sig in names:
                signal.signal(sig, request)
            yield self
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def step_seed(seed: int, step: int, rank: int = 0) -> int:
    """Seed of step ``step`` on ``rank``: distinct, reproducible, independent of resumption."""
    return (seed * 1_000_003 + step * 7919 + rank * 104_729) % (2**63 - 1)


def lr_factor(step: int, warmup: int, total: int) -> float:
    """Linear warmup over ``warmup`` steps, then cosine decay to 0 at ``total``."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def _count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def _uses_bf16(device: torch.device, precision: str) -> bool:
    return precision == "bf16" or (precision == "auto" and device.type == "cuda")


def _autocast(device: torch.device, precision: str) -> Any:
    if _uses_bf16(device, precision):
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return torch.autocast(device_type=device.type, enabled=False)


class Trainer:
    """Trains ``cfg.task`` into ``run_dir``. Use :func:`train` for the whole procedure."""

    def __init__(self, cfg: DictConfig, run_dir: Path) -> None:
        self.cfg = cfg
        self.tc = cfg.trainer
        self.run_dir = run_dir
        self.dist: DistInfo = init_distributed(bool(self.tc.distributed), self._device_hint())
        self.device = resolve_device(str(self.tc.device), self.dist.local_rank)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        torch.manual_seed(int(self.tc.seed))
        self.task: Task = build_task(cfg)
        self.net = self.task.build_network()
        self.task.prepare_network(self.net)
        self.init_weights = None
        if self.tc.get("init_from"):
            from .init_weights import load_initial_weights

            self.init_weights = load_initial_weights(self.net, str(self.tc.init_from))
        self.net = self.net.to(self.device)
        self.model: nn.Module = self.net
        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model = nn.parallel.DistributedDataParallel(self.net, device_ids=ids)
        self.objective = self.task.objective(self.task.denoiser(self.model))
        self.optimizer = torch.optim.AdamW(
            self.net.parameters(),
            lr=float(self.tc.lr),
            weight_decay=float(self.tc.weight_decay),
            betas=tuple(self.tc.betas),
            foreach=True,  # one kernel per update for all tensors; same values as the loop
        )
        self.ema = EMA(self.net, max_decay=float(self.tc.ema_decay), power=float(self.tc.ema_power))
        self.step = 0
        self.wall_before = 0.0
        self.data_info = self.task.data_info()

    def _device_hint(self) -> torch.device:
        return resolve_device(str(self.tc.device))

    # -- checkpoints ---------------------------------------------------------------------
    def save(self, last_loss: float, wall: float) -> Path | None:
        if not self.dist.is_main:
            return None
        tensors = {f"model.{k}": v for k, v in self.net.state_dict().items()}
        tensors.update({f"ema.{k}": v for k, v in self.ema.state_dict().items()})
        opt_tensors, opt_meta = optimizer_to_tensors(self.optimizer)
        tensors.update(opt_tensors)
        metadata = {
            "config": OmegaConf.to_container(self.cfg, resolve=True),
            "step": self.step,
            "ema_step": self.ema.step,
            "optimizer": opt_meta,
            "rng": rng_state(),
            "data": asdict(self.data_info),
            "last_loss": last_loss,
            "wall_seconds": wall,
            "package_version": sci_diffusion.__version__,
            "torch_version": torch.__version__,
            "git_commit": git_commit(),
        }
        path = checkpoint_path(self.run_dir / CHECKPOINT_DIR, self.step)
        return save_checkpoint(path, tensors, metadata)

    def restore(self, path: Path) -> None:
        tensors, meta = load_checkpoint(path, device=self.device)
        self.net.load_state_dict(_strip(tensors, "model."))
        self.ema.load_state_dict(_strip(tensors, "ema."), int(meta["ema_step"]))
        optimizer_from_tensors(self.optimizer, tensors, meta["optimizer"])
        set_rng_state(meta["rng"])
        self.step = int(meta["step"])
        self.wall_before = float(meta.get("wall_seconds", 0.0))

    # -- the loop ------------------------------------------------------------------------
    def fit(self) -> TrainResult:
        tc = self.tc
        max_steps = int(tc.max_steps)
        budget = float(tc.max_minutes) * 60.0 if tc.max_minutes is not None else math.inf
        logger = RunLogger(self.run_dir) if self.dist.is_main else None
        progress = None
        if self.dist.is_main and bool(tc.progress):
            progress = Progress(max_steps, f"train {self.cfg.task.name}", unit="steps",
                                initial=self.step)  # fmt: skip
        start = time.monotonic()
        last_loss, stop_reason, saved = float("nan"), "max_steps", None
        self.model.train()
        stop = StopRequest()
        with contextlib.ExitStack() as cleanup:
            if logger is not None:
                cleanup.callback(logger.close)
            if progress is not None:  # closed first (callbacks run last-in, first-out)
                cleanup.callback(progress.close)
            # Under DDP every rank must stop at the same step: signals keep their default there.
            if not self.dist.enabled:
                cleanup.enter_context(stop.installed())
            while self.step < max_steps:
                if stop:
                    stop_reason = "interrupted"
                    break
                # The budget is the run's total training time, resumed parts included.
                if self.wall_before + time.monotonic() - start > budget:
                    stop_reason = "max_minutes"
                    break
                loss = self._train_step(max_steps)
                if self.dist.enabled:  # one verdict for all ranks: a NaN anywhere stops all
                    loss = loss.detach().float().clone()
                    torch.distributed.all_reduce(loss)
                    loss /= self.dist.world_size
                last_loss = float(loss)  # one sync per step: logging and the NaN guard need it
                if not math.isfinite(last_loss):
                    raise TrainingDiverged(
                        f"loss became {last_loss} at step {self.step + 1}; stopped. The last good "
                        f"checkpoint in {self.run_dir / CHECKPOINT_DIR} is kept: lower "
                        "trainer.lr or check the data for NaN/inf, then resume from it"
                    )
                self.step += 1
                if progress is not None:
                    progress.update(1)
                    progress.set_postfix(loss=f"{last_loss:.4f}")
                if logger is not None and (self.step % int(tc.log_every) == 0 or self.step == 1):
                    lr = self.optimizer.param_groups[0]["lr"]
                    logger.log(self.step, {"loss": last_loss, "lr": lr,
                                           "ema_decay": self.ema.decay()})  # fmt: skip
                if self.step % int(tc.checkpoint_every) == 0:
                    saved = self.save(last_loss, self.wall_before + time.monotonic() - start)
            wall = self.wall_before + time.monotonic() - start
            if saved is None or not saved.name.endswith(f"{self.step:08d}.safetensors"):
                saved = self.save(last_loss, wall)
        return TrainResult(self.run_dir, self.step, stop_reason, last_loss, wall, saved)

    def _train_step(self, max_steps: int) -> torch.Tensor:
        tc = self.tc
        seed = step_seed(int(tc.seed), self.step, self.dist.rank)
        # What torch.manual_seed does for the devices we use, without its per-call overhead
        # (~1 ms in deep call stacks: it probes every backend's lazy seeding).
        torch.default_generator.manual_seed(seed)
        if self.device.type == "cuda":
            torch.cuda.manual_seed_all(seed)
        data_gen = torch.Generator().manual_seed(seed)
        noise_gen = torch.Generator(device=self.device).manual_seed(seed + 1)
        batch = self.task.sample_batch(int(tc.batch_size), data_gen).to(self.device)
        for group in self.optimizer.param_groups:
            group["lr"] = float(tc.lr) * lr_factor(self.step, int(tc.warmup_steps), max_steps)
        with _autocast(self.device, str(tc.precision)):
            out = self.objective(batch.x0, mask=batch.mask, generator=noise_gen, **batch.cond)
        self.optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        if float(tc.grad_clip) > 0:
            torch.nn.utils.clip_grad_norm_(self.net.parameters(), float(tc.grad_clip))
        self.optimizer.step()
        self.ema.update(self.net)
        return out.loss.detach()


def _strip(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}


def train(cfg: DictConfig, run_dir: Path, resume: bool = False) -> TrainResult:
    """Train ``cfg`` into ``run_dir`` (continuing from its latest good checkpoint if ``resume``),
    then write the model card. Raises :class:`TrainingDiverged` on a NaN/inf loss."""
    trainer = Trainer(cfg, run_dir)
    try:
        if resume:
            path = latest_checkpoint(run_dir / CHECKPOINT_DIR)
            if path is None:
                raise UserInputError(
                    f"nothing to resume: no valid checkpoint in {run_dir / CHECKPOINT_DIR}; "
                    "pass resume=<a train run dir that has checkpoints>"
                )
            trainer.restore(path)
            if trainer.step >= int(cfg.trainer.max_steps):
                raise UserInputError(
                    f"trainer.max_steps={cfg.trainer.max_steps} is not beyond step {trainer.step} "
                    f"of {path.name}; pass a larger trainer.max_steps to continue training"
                )
        if trainer.dist.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
            save_config(run_dir, cfg)
        result = trainer.fit()
        if trainer.dist.is_main:
            _write_training_card(trainer, result)
        return result
    finally:
        # Drop the DDP wrapper before the process group goes: a DDP module alive at
        # interpreter exit after destroy_process_group can abort the process.
        trainer.objective = None  # type: ignore[assignment]
        trainer.model = trainer.net
        gc.collect()
        shutdown_distributed()


def _write_training_card(trainer: Trainer, result: TrainResult) -> None:
    cfg, task = trainer.cfg, trainer.task
    d = cfg.task.diffusion
    objective = (f"denoising regression, weighting={d.get('weighting', 'uniform')}, "
                 f"time distribution={d.get('time_distribution', 'uniform')}")  # fmt: skip
    method = getattr(task, "method", None)  # policy tasks: the method says what is trained
    if getattr(method, "summary", "") and getattr(method, "name", "diffusion") != "diffusion":
        objective = method.summary
    update_model_card(result.run_dir, "model", {
        "task": cfg.task.name,
        "objective": objective,
        "schedule": d.schedule,
        "parameterization": d.get("prediction", "x0 class probabilities (categorical)"),
        "architecture": f"{type(trainer.net).__name__} "
                        f"({', '.join(f'{k}={v}' for k, v in cfg.model.items())})",
        "parameters": _count_parameters(trainer.net),
        "conditioning": task.conditioning,
    })  # fmt: skip
    update_model_card(result.run_dir, "data", asdict(trainer.data_info))
    for section, fields in task.card_sections().items():
        update_model_card(result.run_dir, section, fields)
    update_model_card(result.run_dir, "training", {
        "steps": result.step,
        "stop_reason": result.stop_reason,
        "wall_time_s": round(result.wall_seconds, 3),  # ms: a short run still has a rate
        "device": str(trainer.device),
        "processes": trainer.dist.world_size,
        "precision": "bf16 autocast"
                     if _uses_bf16(trainer.device, str(cfg.trainer.precision)) else "fp32",
        "batch_size_per_process": cfg.trainer.batch_size,
        "optimizer": f"AdamW lr={cfg.trainer.lr} wd={cfg.trainer.weight_decay}, "
                     f"{cfg.trainer.warmup_steps} warmup steps + cosine",
        "ema": f"max decay {cfg.trainer.ema_decay}, power {cfg.trainer.ema_power} "
               "(evaluation and sampling use EMA weights)",
        "seed": cfg.trainer.seed,
        "final_loss": result.last_loss,
        **({"initialized_from": trainer.init_weights.describe()} if trainer.init_weights else {}),
    })  # fmt: skip
    update_model_card(result.run_dir, "use", {
        "intended_use": task.intended_use,
        "limitations": list(task.limitations),
        "validation_status": task.validation_status,
    })  # fmt: skip
    update_model_card(result.run_dir, "provenance", {
        "package_version": sci_diffusion.__version__,
        "torch_version": torch.__version__,
        "git_commit": git_commit() or "not a git checkout",
        "checkpoint": str(result.checkpoint.name) if result.checkpoint else "none",
    })  # fmt: skip
