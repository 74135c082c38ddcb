"""``policy=mse_bc``: the regression baseline with the same backbone.

The backbone is called on an all-zero chunk at ``t = 1`` and fitted by plain mean squared
error to the demonstrated chunk (no noise, no time); a plan is one deterministic prediction
(the sampler settings are ignored).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from sci_diffusion.core import Denoiser
from sci_diffusion.core.objectives import LossOutput

from . import PolicyMethod

if TYPE_CHECKING:
    from ..policy import Policy

__all__ = ["METHOD", "MSEBehaviourCloning", "RegressionObjective", "regress"]


def regress(model: nn.Module, obs: Tensor, shape: tuple[int, ...],
            images: dict[str, Tensor] | None = None) -> Tensor:  # fmt: skip
    """The baseline's prediction: ``model(zeros(shape), t = 1, obs)`` (normalized units).
    Training calls it through the (possibly DDP-wrapped) model with the camera ``images`` of
    pixel policies, planning through the network with the already encoded ``obs``."""
    x = torch.zeros(shape, device=obs.device, dtype=obs.dtype)
    t = torch.ones(shape[0], device=obs.device)
    return model(x, t, obs) if images is None else model(x, t, obs, images=images)


class RegressionObjective:
    """Mean squared error between :func:`regress`'s prediction and the demonstrated chunk."""

    def __init__(self, model: nn.Module, horizon: int | None = None) -> None:
        self.model = model
        self.horizon = horizon  # unused: the chunk's own shape is predicted (kept for callers)

    def __call__(self, x0: Tensor, mask: Any = None, generator: Any = None, **cond: Any) -> Any:
        prediction = regress(self.model, cond["obs"], tuple(x0.shape), cond.get("images"))
        loss = ((prediction - x0) ** 2).mean()
        return LossOutput(loss=loss, components={"actions": loss})


class MSEBehaviourCloning(PolicyMethod):
    name = "mse_bc"
    summary = ("mse_bc: the backbone regresses the demonstrated chunk from the observation "
               "history (all-zero chunk at t = 1, mean squared error); one deterministic "
               "prediction per plan")  # fmt: skip

    def objective(self, denoiser: Denoiser, diffusion: Any) -> RegressionObjective:
        return RegressionObjective(denoiser.net)

    def predict(self, policy: Policy, obs: Tensor, generator: torch.Generator) -> Tensor:
        return regress(policy.net, obs, (obs.shape[0], policy.horizon, policy.action_dim))

    def describe(self, sampler_cfg: Any) -> dict[str, Any]:
        return {"policy": self.name, "sampler": "none (regression)", "steps": 0}

    def evaluation_label(self, sampler_cfg: Any) -> str:
        return self.name


METHOD = MSEBehaviourCloning
