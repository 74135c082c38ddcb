"""The runtime policy: raw observation history in, a clipped action chunk out."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from sci_diffusion.core import Denoiser

from .methods import PolicyMethod, build_method, method_names
from .network import PolicyNetwork


class NonFiniteAction(RuntimeError):
    """The network produced NaN/inf actions; see :meth:`Policy.predict_chunk`."""


@dataclass
class Policy:
    """Receding-horizon action-chunk policy.

    Attributes:
        net: the trained network with its normalizers (EMA weights for evaluation).
        denoiser: ``net`` wrapped with the task's space and prediction.
        method: how a chunk is planned (:mod:`sci_diffusion.policy.methods`); a registered
            name (``"diffusion"``, ``"mse_bc"``) is resolved to the method with its defaults.
        sampler_cfg: a ``cfg.sampler`` node: name, steps, t_start, options (for the methods
            that sample).
        n_obs_steps: To. horizon: H. n_action_steps: actions executed before replanning.
        action_low, action_high: (Da,) the environment's bounds; outputs are clipped to them.
    """

    net: PolicyNetwork
    denoiser: Denoiser | None
    method: PolicyMethod | str
    sampler_cfg: Any
    n_obs_steps: int
    horizon: int
    n_action_steps: int
    action_low: np.ndarray
    action_high: np.ndarray

    def __post_init__(self) -> None:
        if isinstance(self.method, str):
            self.method = build_method({"name": self.method})
        if not 1 <= self.n_action_steps <= self.horizon:
            raise ValueError(
                f"n_action_steps must be in [1, horizon={self.horizon}], got {self.n_action_steps}"
            )

    @property
    def kind(self) -> str:
        """The method's registered name (``diffusion``, ``mse_bc``, ...)."""
        assert isinstance(self.method, PolicyMethod)
        return self.method.name

    @property
    def device(self) -> torch.device:
        return self.net.action_normalizer.low.device

    @property
    def action_dim(self) -> int:
        return int(self.net.action_normalizer.low.shape[0])

    @torch.no_grad()
    def predict_chunk(self, obs_history: np.ndarray, generator: torch.Generator) -> np.ndarray:
        """Plan the next chunk for a batch of environments.

        Args:
            obs_history: (B, To, Do) raw observations, oldest first.
            generator: seeds the sampler's prior and noise (on the policy's device).

        Returns:
            (B, H, Da) float32 actions in environment units, clipped to the action bounds.
            Rows containing NaN/inf are returned as NaN so that the caller can apply the
            failure procedure (end that episode as a failure; never step the env with them).
        """
        obs = torch.as_tensor(np.asarray(obs_history, dtype=np.float32), device=self.device)
        if obs.ndim != 3 or obs.shape[1] != self.n_obs_steps:
            raise ValueError(
                f"obs_history must be (B, {self.n_obs_steps}, Do), got {tuple(obs.shape)}"
            )
        assert isinstance(self.method, PolicyMethod)
        chunk = self.method.predict(self, self.net.obs_normalizer.normalize(obs), generator)
        actions = self.net.action_normalizer.unnormalize(chunk.float()).cpu().numpy()
        bad = ~np.isfinite(actions).all(axis=(1, 2))
        actions = np.clip(actions, self.action_low, self.action_high).astype(np.float32)
        actions[bad] = np.nan
        return actions


def __getattr__(name: str) -> Any:
    if name == "KINDS":
        warnings.warn("sci_diffusion.policy.policy.KINDS is deprecated; use "
                      "sci_diffusion.policy.methods.method_names()", DeprecationWarning,
                      stacklevel=2)  # fmt: skip
        return tuple(method_names())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
