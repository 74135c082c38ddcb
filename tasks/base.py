"""The contract between a task and the trainer, the evaluator and the model card."""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from sci_diffusion.core import Denoiser, DiffusionObjective


@dataclass
class Batch:
    """One training batch: clean samples, optional masks and conditioning keyword arguments."""

    x0: Any
    mask: Any = None
    cond: dict[str, Tensor] = field(default_factory=dict)

    def to(self, device: torch.device) -> Batch:
        def move(v: Any) -> Any:
            if isinstance(v, Tensor):
                return v.to(device)
            if isinstance(v, dict):
                return {k: move(x) for k, x in v.items()}
            return v

        return Batch(move(self.x0), move(self.mask), move(self.cond))


@dataclass
class DataInfo:
    """What the model card says about the training data."""

    name: str
    size: int
    split: str
    fingerprint: str
    source: str


class Task(ABC):
    """A benchmark: data, the network, the objective and the evaluation.

    Subclasses receive the whole resolved config (``cfg.task``, ``cfg.model``, ...) and must
    be deterministic given ``cfg.trainer.seed``.
    """

    #: "simulation only", "in-silico only", "synthetic data only"...
    validation_status: str = "synthetic data only"
    intended_use: str = ""
    limitations: tuple[str, ...] = ()
    conditioning: str = "none"
    #: whether ``generate`` + ``score`` is this task's evaluation (so it can be sharded).
    sharded_evaluation: bool = True
    #: SHA-256 prefix of the evaluated weights, set when a checkpoint is loaded (provenance).
    model_fingerprint: str | None = None

    def __init__(self, cfg: Any) -> None:
        self.cfg = cfg

    @abstractmethod
    def build_network(self) -> nn.Module:
        """A freshly initialised network (seeded by the caller)."""

    def prepare_network(self, net: nn.Module) -> None:
        """Fit data-dependent state of a freshly built network before training (e.g. a
        policy's normalization statistics). Default: nothing."""
        return None

    def evaluation_label(self) -> str:
        """Names an evaluation: model-card entry ``"ddim, 10 steps"`` (folder ``ddim_10``);
        a start time other than 1 is part of it (``"heun, 10 steps, t_start 0.9"``, folder
        ``heun_10_t0.9``), so the two evaluations of one checkpoint never share a folder.
        Sampler options are not (each sampler config sets its own defaults, e.g. DDIM's eta).
        A time spacing other than linear and polishing are (``"ddpm, 100 steps, cubic,
        polish 40"``, folder ``ddpm_100_cubic_polish_40``), and so are property targets with the
        guidance method and scale, and a scaffold (by a hash of its string), so guided and
        scaffold evaluations never overwrite the plain one."""
        from sci_diffusion.core.polish import polish_settings
        from sci_diffusion.core.sampler_config import sampler_settings, start_time
        from sci_diffusion.core.time_spacing import time_spacing

        name, steps, _ = sampler_settings(self.cfg.sampler)
        t_start = start_time(self.cfg.sampler)
        label = f"{name}, {steps} steps" + (f", t_start {t_start:g}" if t_start != 1.0 else "")
        spacing = time_spacing(self.cfg.sampler)
        polish = polish_settings(self.cfg.sampler)
        if spacing != "linear":
            label += f", {spacing}"
        if polish:
            label += f", polish {len(polish)}"
        targets = dict(self.cfg.get("target") or {})
        if targets:
            label += ", target " + " ".join(f"{k}={v:g}" for k, v in targets.items())
            method = str(self.cfg.guidance.get("method", "cfg"))
            label += f", {method} {float(self.cfg.guidance.scale):g}"
        if self.cfg.get("scaffold"):  # hashed: a SMILES may hold "/" and brackets
            digest = hashlib.sha256(str(self.cfg.scaffold).encode()).hexdigest()[:8]
            label += f", scaffold {digest}"
        return label

    def card_sections(self) -> dict[str, dict[str, Any]]:
        """Extra model-card sections this task documents (section name -> fields)."""
        return {}

    @abstractmethod
    def denoiser(self, net: nn.Module) -> Denoiser:
        """Wrap ``net`` with this task's space, schedule and prediction."""

    def objective(self, denoiser: Denoiser) -> DiffusionObjective:
        d = self.cfg.task.diffusion
        return DiffusionObjective(
            denoiser,
            d.weighting,
            time_distribution=d.get("time_distribution", "uniform"),
            min_snr_gamma=d.get("min_snr_gamma", 5.0),
        )

    @abstractmethod
    def data_info(self) -> DataInfo: ...

    @abstractmethod
    def sample_batch(self, batch_size: int, generator: torch.Generator) -> Batch:
        """A training batch drawn with ``generator`` (CPU tensors)."""

    @abstractmethod
    def generate(
        self, denoiser: Denoiser, n: int, generator: torch.Generator, device: torch.device
    ) -> dict[str, Tensor]:
        """``n`` samples with the configured sampler: a dict of CPU tensors, each (n, ...).
        Sampling can be sharded: every rank generates its share with its own generator."""

    @abstractmethod
    def score(self, samples: dict[str, Tensor], out_dir: Path) -> dict[str, Any]:
        """Metrics of (merged) samples; writes artefacts into ``out_dir`` atomically."""

    def evaluate(
        self, denoiser: Denoiser, out_dir: Path, generator: torch.Generator, device: torch.device
    ) -> dict[str, Any]:
        """Generate ``task.eval.n_samples`` samples on one process and score them."""
        n = int(self.cfg.task.eval.n_samples)
        return self.score(self.generate(denoiser, n, generator, device), out_dir)
