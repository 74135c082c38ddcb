"""Min/max ("limits") normalization to [-1, 1], as in Diffusion Policy (Chi et al. 2023).

The statistics are buffers of a module, so they live in the network's ``state_dict`` and
travel inside every checkpoint: a policy can never be evaluated with statistics other than
the ones it was trained with.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

MIN_RANGE = 1e-4
"""Dimensions whose demonstrated range is below this are only centred, not scaled: a constant
dimension (a fixed goal, an unused actuator) would otherwise be divided by ~0."""


class LimitsNormalizer(nn.Module):
    """Maps each dimension's demonstrated range ``[low, high]`` affinely onto ``[-1, 1]``.

    Args:
        dim: number of features D (the last axis of every input).
    """

    low: Tensor
    high: Tensor

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("low", -torch.ones(dim))
        self.register_buffer("high", torch.ones(dim))

    @torch.no_grad()
    def fit(self, data: Tensor) -> LimitsNormalizer:
        """Set the limits to the per-dimension min and max of ``data`` (..., D); returns self."""
        if data.shape[-1] != self.low.shape[0]:
            raise ValueError(
                f"normalizer expects {self.low.shape[0]} features, data has {data.shape[-1]}"
            )
        flat = data.reshape(-1, data.shape[-1]).to(self.low)
        if not torch.isfinite(flat).all():
            raise ValueError("cannot fit normalization: the data contain NaN or inf values")
        self.low.copy_(flat.min(0).values)
        self.high.copy_(flat.max(0).values)
        return self

    def _scale_offset(self) -> tuple[Tensor, Tensor]:
        span = self.high - self.low
        wide = span > MIN_RANGE
        scale = torch.where(wide, 2.0 / span.clamp_min(MIN_RANGE), torch.ones_like(span))
        centre = (self.high + self.low) / 2
        return scale, centre

    def normalize(self, x: Tensor) -> Tensor:
        """``x`` (..., D) in data units -> (..., D), the demonstrated range onto [-1, 1]."""
        scale, centre = self._scale_offset()
        return (x - centre) * scale

    def unnormalize(self, y: Tensor) -> Tensor:
        """Inverse of :meth:`normalize`: (..., D) normalized -> data units."""
        scale, centre = self._scale_offset()
        return y / scale + centre
