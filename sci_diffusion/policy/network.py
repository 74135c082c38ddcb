"""The trained object of a policy task: a backbone plus its normalization statistics."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from sci_diffusion.core.objectives import LossOutput

from .normalize import LimitsNormalizer


class PolicyNetwork(nn.Module):
    """A denoiser backbone ``net(x, t, obs)`` with the limits normalizers of its data.

    The normalizers are buffers, so ``state_dict`` — hence every checkpoint, and the EMA copy —
    carries them. ``forward`` works in normalized units on both sides.

    Args:
        backbone: ``backbone(x (B, H, Da), t (B,), obs (B, To, Do)) -> (B, H, Da)``.
        obs_dim: Do. action_dim: Da.
    """

    def __init__(self, backbone: nn.Module, obs_dim: int, action_dim: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.obs_normalizer = LimitsNormalizer(obs_dim)
        self.action_normalizer = LimitsNormalizer(action_dim)

    def forward(self, x: Tensor, t: Tensor, obs: Tensor) -> Tensor:
        """x: (B, H, Da) noisy normalized chunk; t: (B,); obs: (B, To, Do) normalized."""
        return self.backbone(x, t, obs)

    def regress(self, obs: Tensor, horizon: int) -> Tensor:
        """The ``mse_bc`` baseline's deterministic prediction: the backbone called on an all-zero
        chunk at t = 1, (B, To, Do) -> (B, H, Da) normalized actions."""
        x = torch.zeros(obs.shape[0], horizon, self.action_normalizer.low.shape[0],
                        device=obs.device, dtype=obs.dtype)  # fmt: skip
        return self.backbone(x, torch.ones(obs.shape[0], device=obs.device), obs)


def policy_network(model: nn.Module) -> PolicyNetwork:
    """The :class:`PolicyNetwork` inside ``model`` (which may be DDP-wrapped)."""
    inner = getattr(model, "module", model)
    if not isinstance(inner, PolicyNetwork):
        raise TypeError(f"expected a PolicyNetwork, got {type(inner).__name__}")
    return inner


class RegressionObjective:
    """The ``mse_bc`` baseline: the same backbone fitted by plain mean squared error between
    its deterministic prediction and the demonstrated chunk (no noise, no time)."""

    def __init__(self, model: nn.Module, horizon: int) -> None:
        self.model = model
        self.horizon = horizon

    def __call__(self, x0: Tensor, mask: Any = None, generator: Any = None, **cond: Any) -> Any:
        obs = cond["obs"]
        # Call through ``self.model`` (not .regress) so a DDP wrapper sees the forward pass.
        x = torch.zeros_like(x0)
        prediction = self.model(x, torch.ones(x0.shape[0], device=x0.device), obs)
        loss = ((prediction - x0) ** 2).mean()
        return LossOutput(loss=loss, components={"actions": loss})
