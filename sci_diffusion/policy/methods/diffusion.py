"""``policy=diffusion``: denoising training of the chunk, sampled with the configured sampler.

Training is the core's :class:`~sci_diffusion.core.DiffusionObjective` on the task's space,
prediction and weighting (``task.diffusion``). A chunk is planned by drawing the prior at
``sampler.t_start`` and running ``sampler`` with ``steps`` on the denoiser bound to the
observation history (Diffusion Policy, Chi et al. 2023).

When the policy's sampler settings are read once
(:class:`~sci_diffusion.core.sampler_config.SamplerSettings`, as ``tasks/policy.py`` builds
them), what a chunk derives from them alone — the time grid, the sampler, its options, the
polish levels and, for deterministic DDIM on an unmasked Euclidean space, the whole prepared
loop (``core.samplers._prepare_ddim``) — is kept with the policy and reused by every chunk
of the same shape: bitwise what ``run_sampler`` returns, with a fraction of its Python per
chunk (at batch 1 a small network's forward is a few tenths of a millisecond, so the
sampler's own work between calls counts). A config node (mutable) is read on every chunk,
through ``run_sampler``, as before.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from sci_diffusion.core import Denoiser, DiffusionObjective
from sci_diffusion.core.polish import polish, polish_settings
from sci_diffusion.core.sampler_config import (
    SamplerSettings,
    describe_sampler,
    run_sampler,
    sampler_settings,
    start_time,
)
from sci_diffusion.core.samplers import _prepare_ddim, get_sampler
from sci_diffusion.core.time_spacing import spaced_time_grid, time_spacing

from . import PolicyMethod

if TYPE_CHECKING:
    from ..policy import Policy

__all__ = ["METHOD", "DiffusionMethod"]

_PLAN_ATTRIBUTE = "_diffusion_chunk_plan"
"""Where a policy keeps its :class:`_ChunkPlan` (not a dataclass field: not compared,
not copied by ``dataclasses.replace``)."""


class DiffusionMethod(PolicyMethod):
    name = "diffusion"
    summary = ("diffusion: the backbone denoises noised demonstration chunks; a chunk is sampled "
               "with the configured sampler from the observation history")  # fmt: skip

    def objective(self, denoiser: Denoiser, diffusion: Any) -> DiffusionObjective:
        return DiffusionObjective(denoiser, diffusion.weighting,
                                  time_distribution=diffusion.get("time_distribution", "uniform"),
                                  min_snr_gamma=diffusion.get("min_snr_gamma", 5.0))  # fmt: skip

    def predict(self, policy: Policy, obs: Tensor, generator: torch.Generator) -> Tensor:
        denoiser = policy.denoiser
        if denoiser is None:
            raise ValueError("policy=diffusion needs the denoiser to sample with")
        shape = (obs.shape[0], policy.horizon, policy.action_dim)
        space = denoiser.components["x"]
        sampler_cfg = policy.sampler_cfg
        if not isinstance(sampler_cfg, SamplerSettings):  # a node may change: read it now
            x = space.prior(shape, t=start_time(sampler_cfg), generator=generator,
                            device=obs.device)  # fmt: skip
            return run_sampler(denoiser.bind(obs=obs), space, x, sampler_cfg, generator)
        plan = _plan(policy, denoiser, sampler_cfg, obs.device)
        x = space.prior(shape, t=plan.t_start, generator=generator, device=obs.device)
        return plan.sample(x, obs, generator)

    def describe(self, sampler_cfg: Any) -> dict[str, Any]:
        return {"policy": self.name, **describe_sampler(sampler_cfg)}


def _plan(
    policy: Policy, denoiser: Denoiser, settings: SamplerSettings, device: torch.device
) -> _ChunkPlan:
    """The policy's chunk plan for its current denoiser, settings and device (rebuilt when
    any of them is replaced)."""
    plan = policy.__dict__.get(_PLAN_ATTRIBUTE)
    if plan is None or not plan.matches(denoiser, settings, device):
        plan = _ChunkPlan(denoiser, settings, device)
        setattr(policy, _PLAN_ATTRIBUTE, plan)
    return plan


_UNSEEN = object()


class _ChunkPlan:
    """``run_sampler(denoiser.bind(obs=obs), space, x, settings, generator)`` with what it
    derives from the (frozen) settings alone done once: the grid, the sampler and its
    options, the polish levels; and deterministic DDIM prepared per state shape
    (:func:`~sci_diffusion.core.samplers._prepare_ddim`, bitwise the sampler's result).
    Other samplers, spaces and denoisers run the sampler itself on the kept grid."""

    def __init__(self, denoiser: Denoiser, settings: SamplerSettings, device: Any) -> None:
        name, steps, options = sampler_settings(settings)
        self.denoiser, self.settings, self.device = denoiser, settings, torch.device(device)
        self.net = denoiser.net
        self.space = denoiser.components["x"]
        self.t_start = start_time(settings)
        schedule = next(iter(s for _, s in self.space.components())).schedule
        self.times = spaced_time_grid(schedule, steps, t_start=self.t_start,
                                      spacing=time_spacing(settings), device=device)  # fmt: skip
        self.sampler = get_sampler(name)
        self.options = options
        self.levels = polish_settings(settings)
        self._ddim = name == "ddim" and set(options) <= {"eta"} and options.get("eta", 0.0) == 0
        self._prepared: dict[tuple, Any] = {}

    def matches(self, denoiser: Denoiser, settings: SamplerSettings, device: Any) -> bool:
        return (
            denoiser is self.denoiser
            and denoiser.net is self.net
            and settings is self.settings
            and torch.device(device) == self.device
        )

    def sample(self, x: Tensor, obs: Tensor, generator: torch.Generator | None) -> Tensor:
        """The chunk from the prior draw ``x`` given the (normalised) observation history."""
        out = None
        if self._ddim:
            key = (x.shape, x.dtype, x.device)
            prepared = self._prepared.get(key, _UNSEEN)
            if prepared is _UNSEEN or (prepared is not None and not prepared.usable(x)):
                with torch.no_grad():  # None: the sampler itself serves this shape
                    prepared = _prepare_ddim(self.denoiser, x, self.times, space=self.space)
                self._prepared[key] = prepared
            if prepared is not None:
                with torch.no_grad():
                    out = prepared(x, {"obs": obs})
        if out is None:
            with torch.no_grad():
                out = self.sampler(self.denoiser.bind(obs=obs), x, self.times, space=self.space,
                                   generator=generator, **self.options)  # fmt: skip
        if self.levels:
            bound = self.denoiser.bind(obs=obs)
            return polish(bound, self.space, out, self.levels)  # type: ignore[no-any-return]
        return out


METHOD = DiffusionMethod
