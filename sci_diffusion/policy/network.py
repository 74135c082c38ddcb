"""The trained object of a policy task: a backbone plus its normalization statistics."""

from __future__ import annotations

import warnings
from typing import Any

from torch import Tensor, nn

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
        """Deprecated: the ``mse_bc`` prediction is
        :func:`sci_diffusion.policy.methods.mse_bc.regress`."""
        from .methods.mse_bc import regress

        warnings.warn("PolicyNetwork.regress is deprecated; use "
                      "sci_diffusion.policy.methods.mse_bc.regress", DeprecationWarning,
                      stacklevel=2)  # fmt: skip
        shape = (obs.shape[0], horizon, self.action_normalizer.low.shape[0])
        return regress(self, obs, shape)


def policy_network(model: nn.Module) -> PolicyNetwork:
    """The :class:`PolicyNetwork` inside ``model`` (which may be DDP-wrapped)."""
    inner = getattr(model, "module", model)
    if not isinstance(inner, PolicyNetwork):
        raise TypeError(f"expected a PolicyNetwork, got {type(inner).__name__}")
    return inner


def __getattr__(name: str) -> Any:
    if name == "RegressionObjective":
        from .methods.mse_bc import RegressionObjective

        warnings.warn("sci_diffusion.policy.network.RegressionObjective moved to "
                      "sci_diffusion.policy.methods.mse_bc", DeprecationWarning,
                      stacklevel=2)  # fmt: skip
        return RegressionObjective
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
