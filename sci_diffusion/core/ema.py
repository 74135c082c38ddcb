"""Exponential moving average of model weights, with warmup."""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn


class EMA:
    """Keeps an averaged copy of a module's parameters and buffers.

    The decay warms up as ``1 - (1 + step / inv_gamma) ** -power`` clamped to
    ``[min_decay, max_decay]`` (the schedule of Diffusion Policy and diffusers' ``EMAModel``),
    so early averages are not dominated by the random initialisation.

    Args:
        model: the module being trained.
        max_decay: the decay reached after warmup (0.9999 for long runs, 0.999 for short).
        power, inv_gamma: warmup shape; ``power = 2/3`` reaches 0.999 after ~31.6k steps,
            ``power = 3/4`` after ~10k.
    """

    def __init__(
        self,
        model: nn.Module,
        max_decay: float = 0.9999,
        min_decay: float = 0.0,
        power: float = 0.75,
        inv_gamma: float = 1.0,
    ) -> None:
        if not 0.0 <= min_decay <= max_decay < 1.0:
            raise ValueError(f"need 0 <= min_decay <= max_decay < 1, got {min_decay}, {max_decay}")
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        self.max_decay = max_decay
        self.min_decay = min_decay
        self.power = power
        self.inv_gamma = inv_gamma
        self.step = 0

    def decay(self, step: int | None = None) -> float:
        step = self.step if step is None else step
        value = 1.0 - (1.0 + step / self.inv_gamma) ** -self.power
        return min(max(value, self.min_decay), self.max_decay) if step > 0 else 0.0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Fold the model's current weights into the average (call after each optimiser step)."""
        d = self.decay()
        averaged = list(self.module.parameters())
        current = [
            p.detach().to(a.dtype) for a, p in zip(averaged, model.parameters(), strict=True)
        ]
        if averaged:
            torch._foreach_lerp_(averaged, current, 1.0 - d)  # one call, not one per tensor
        for avg_buffer, buffer in zip(self.module.buffers(), model.buffers(), strict=True):
            avg_buffer.copy_(buffer)
        self.step += 1

    def state_dict(self) -> dict[str, Tensor]:
        return self.module.state_dict()

    def load_state_dict(self, state: dict[str, Tensor], step: int) -> None:
        self.module.load_state_dict(state)
        self.step = step
