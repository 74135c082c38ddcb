"""The trained object of a policy task: a backbone plus its normalization statistics."""

from __future__ import annotations

import warnings
from typing import Any

from torch import Tensor, nn

from .normalize import LimitsNormalizer


class PolicyNetwork(nn.Module):
    """A denoiser backbone ``net(x, t, obs)`` with the limits normalizers of its data, and for
    pixel policies the observation encoder trained end to end with it.

    The normalizers are buffers, so ``state_dict`` — hence every checkpoint, and the EMA copy —
    carries them. ``forward`` works in normalized units on both sides.

    Args:
        backbone: ``backbone(x (B, H, Da), t (B,), cond (B, To, F)) -> (B, H, Da)``, with F =
            Do for state policies and ``encoder.out_dim`` for pixel policies.
        obs_dim: Do, the state vector's size (normalized here; a pixel policy's encoder picks
            its proprioceptive dimensions from it). action_dim: Da.
        encoder: ``encoder(state (B, To, Do), images {camera: uint8 (B, To, H, W, 3)}) ->
            (B, To, F)`` (:class:`sci_diffusion.nets.vision.ObservationEncoder`); None for
            state policies.
    """

    def __init__(self, backbone: nn.Module, obs_dim: int, action_dim: int,
                 encoder: nn.Module | None = None) -> None:  # fmt: skip
        super().__init__()
        self.backbone = backbone
        self.obs_normalizer = LimitsNormalizer(obs_dim)
        self.action_normalizer = LimitsNormalizer(action_dim)
        self.encoder = encoder

    def encode(self, obs: Tensor, images: dict[str, Tensor] | None = None) -> Tensor:
        """The backbone's conditioning (B, To, F) from the normalized state ``obs`` (B, To, Do)
        and, for pixel policies, the camera frames. A chunk is planned by encoding once and
        then calling :meth:`forward` without ``images`` at every denoising step."""
        if self.encoder is None:
            if images:
                raise ValueError("this policy was trained on state observations; it takes "
                                 "no images (train with task.obs=pixels for one)")  # fmt: skip
            return obs
        if not images:
            raise ValueError("this policy was trained on images (task.obs="
                             "pixels/pixels+proprio): pass the camera frames")  # fmt: skip
        return self.encoder(obs, images)

    def forward(self, x: Tensor, t: Tensor, obs: Tensor,
                images: dict[str, Tensor] | None = None) -> Tensor:  # fmt: skip
        """x: (B, H, Da) noisy normalized chunk; t: (B,); obs: (B, To, Do) normalized state, or
        the already encoded conditioning (B, To, F) when ``images`` is None; images: camera ->
        uint8 (B, To, H, W, 3) (training: encoded here, so the encoder learns with the
        denoiser)."""
        return self.backbone(x, t, obs if images is None else self.encode(obs, images))

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
