"""``policy=diffusion``: denoising training of the chunk, sampled with the configured sampler.

Training is the core's :class:`~sci_diffusion.core.DiffusionObjective` on the task's space,
prediction and weighting (``task.diffusion``). A chunk is planned by drawing the prior at
``sampler.t_start`` and running ``sampler`` with ``steps`` on the denoiser bound to the
observation history (Diffusion Policy, Chi et al. 2023).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from torch import Tensor

from sci_diffusion.core import Denoiser, DiffusionObjective
from sci_diffusion.core.sampler_config import describe_sampler, run_sampler, start_time

from . import PolicyMethod

if TYPE_CHECKING:
    import torch

    from ..policy import Policy

__all__ = ["METHOD", "DiffusionMethod"]


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
        x = space.prior(shape, t=start_time(policy.sampler_cfg), generator=generator,
                        device=obs.device)  # fmt: skip
        return run_sampler(denoiser.bind(obs=obs), space, x, policy.sampler_cfg, generator)

    def describe(self, sampler_cfg: Any) -> dict[str, Any]:
        return {"policy": self.name, **describe_sampler(sampler_cfg)}


METHOD = DiffusionMethod
