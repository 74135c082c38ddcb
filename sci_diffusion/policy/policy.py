"""The runtime policy: raw observation history in, a clipped action chunk out."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from sci_diffusion.core import Denoiser
from sci_diffusion.envs.cameras import check_frames
from sci_diffusion.envs.episodes import STATE_KEY

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
    def predict_chunk(self, obs_history: Any, generator: torch.Generator) -> np.ndarray:
        """Plan the next chunk for a batch of environments.

        Args:
            obs_history: (B, To, Do) raw state observations, oldest first; for a pixel policy
                a dict ``{"state": (B, To, Do), camera: uint8 (B, To, H, W, 3), ...}``
                (:func:`stack_observations` builds either from per-step observations).
            generator: seeds the sampler's prior and noise (on the policy's device).

        Returns:
            (B, H, Da) float32 actions in environment units, clipped to the action bounds.
            Rows containing NaN/inf are returned as NaN so that the caller can apply the
            failure procedure (end that episode as a failure; never step the env with them).
        """
        state, frames = _split(obs_history)
        obs = torch.as_tensor(np.asarray(state, dtype=np.float32), device=self.device)
        obs_dim = int(self.net.obs_normalizer.low.shape[0])
        if obs.ndim != 3 or obs.shape[1] != self.n_obs_steps or obs.shape[2] != obs_dim:
            raise ValueError(f"obs_history must be (B, {self.n_obs_steps}, {obs_dim}), got "
                             f"{tuple(obs.shape)}")  # fmt: skip
        images = None
        if frames:
            expected = getattr(self.net.encoder, "image_shapes", None) or {}
            check_frames(frames, expected)
            for name, batch in frames.items():
                if tuple(np.shape(batch)[:2]) != tuple(obs.shape[:2]):
                    raise ValueError(f"camera {name!r}: frames {np.shape(batch)}, expected "
                                     f"(B, To) = {tuple(obs.shape[:2])} first")  # fmt: skip
            images = {k: torch.as_tensor(np.asarray(v), device=self.device)
                      for k, v in frames.items()}  # fmt: skip
        assert isinstance(self.method, PolicyMethod)
        features = self.net.encode(self.net.obs_normalizer.normalize(obs), images)
        chunk = self.method.predict(self, features, generator)
        actions = self.net.action_normalizer.unnormalize(chunk.float()).cpu().numpy()
        bad = ~np.isfinite(actions).all(axis=(1, 2))
        actions = np.clip(actions, self.action_low, self.action_high).astype(np.float32)
        actions[bad] = np.nan
        return actions


def _split(obs_history: Any) -> tuple[Any, dict[str, Any]]:
    """(state, {camera: frames}) of a state array or a dict observation history."""
    if isinstance(obs_history, dict):
        if STATE_KEY not in obs_history:
            raise ValueError(f"a dict observation needs its {STATE_KEY!r} entry, got keys "
                             f"{sorted(obs_history)}")  # fmt: skip
        frames = {k: v for k, v in obs_history.items() if k != STATE_KEY}
        return obs_history[STATE_KEY], frames
    return obs_history, {}


def stack_observations(histories: Sequence[Sequence[Any]]) -> Any:
    """Per-slot observation histories (each ``To`` observations, oldest first) -> the batch
    :meth:`Policy.predict_chunk` takes: float32 (B, To, Do), or for dict observations
    ``{"state": float32 (B, To, Do), camera: uint8 (B, To, H, W, 3)}``."""
    first = histories[0][0]
    if isinstance(first, dict):
        return {k: np.stack([np.stack([o[k] for o in h]) for h in histories])
                for k in first}  # fmt: skip
    return np.stack([np.stack([np.asarray(o, dtype=np.float32) for o in h]) for h in histories])


def __getattr__(name: str) -> Any:
    if name == "KINDS":
        warnings.warn("sci_diffusion.policy.policy.KINDS is deprecated; use "
                      "sci_diffusion.policy.methods.method_names()", DeprecationWarning,
                      stacklevel=2)  # fmt: skip
        return tuple(method_names())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
