"""Time embeddings."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class SinusoidalTimeEmbedding(nn.Module):
    """Transformer-style sinusoidal features of a scalar time (Vaswani et al. 2017).

    ``t`` in [0, 1] (or EDM's ``c_noise``) is scaled by ``scale`` before the features are
    taken, so that the lowest frequency spans the range of interest.
    """

    def __init__(self, dim: int, scale: float = 1000.0, max_period: float = 10000.0) -> None:
        super().__init__()
        if dim % 2:
            raise ValueError(f"embedding dim must be even, got {dim}")
        half = dim // 2
        freqs = torch.exp(-math.log(max_period) * torch.arange(half) / half)
        self.register_buffer("freqs", freqs, persistent=False)
        self.scale = scale

    def forward(self, t: Tensor) -> Tensor:
        """``t`` (B,) -> features (B, dim)."""
        angles = (t.float() * self.scale)[:, None] * self.freqs[None]
        return torch.cat([angles.sin(), angles.cos()], dim=-1)
