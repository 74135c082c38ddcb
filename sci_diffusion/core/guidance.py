"""Guidance: wrappers around a denoise function (and, for inpainting, a state constraint).

* :func:`classifier_free` — ``D = D_u + w (D_c - D_u)`` (Ho & Salimans 2022) in x0 space;
  ``w = 0`` is the unconditional model, ``w = 1`` the conditional one.
* :func:`drop_condition` — the training-time condition dropout that CFG needs.
* :func:`gradient_guidance` — steer with any differentiable ``log p(y | x_0)``-like function
  (classifier log-probability, negative energy, negative constraint violation).
* :class:`Inpainting` — known values (fixed first states of a trajectory, a fixed
  substructure) held exactly in the final sample.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from .parameterization import edm_coefficients, expand_like
from .schedules import Schedule
from .spaces import State

ConditionalDenoise = Callable[[Tensor, Tensor, Any], Tensor]


def classifier_free(
    denoise: ConditionalDenoise,
    cond: Any,
    null_cond: Any,
    scale: float,
) -> Callable[[Tensor, Tensor], Tensor]:
    """Classifier-free guidance. ``denoise(x, t, c) -> x0``; returns ``denoise(x, t)``.

    When ``cond`` and ``null_cond`` are tensors the two branches run as one batch of 2B.
    Scale 0 and 1 call only the branch they need.
    """
    if scale == 0.0:
        return lambda x, t: denoise(x, t, null_cond)
    if scale == 1.0:
        return lambda x, t: denoise(x, t, cond)

    def guided(x: Tensor, t: Tensor) -> Tensor:
        if isinstance(cond, Tensor) and isinstance(null_cond, Tensor):
            tt = t if t.ndim == 0 else torch.cat([t, t])
            both = denoise(torch.cat([x, x]), tt, torch.cat([cond, null_cond]))
            conditional, unconditional = both.chunk(2)
        else:
            conditional, unconditional = denoise(x, t, cond), denoise(x, t, null_cond)
        return unconditional + scale * (conditional - unconditional)

    return guided


def drop_condition(
    cond: Tensor,
    null_cond: Tensor,
    p: float,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Replace each row of ``cond`` (B, ...) by ``null_cond`` (...) with probability ``p``.

    Returns the new conditions and the boolean keep-mask (B,).
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability must be in [0, 1], got {p}")
    keep = torch.rand(cond.shape[0], generator=generator, device=cond.device) >= p
    null = null_cond.to(cond.dtype).expand_as(cond)
    return torch.where(expand_like(keep, cond), cond, null), keep


def gradient_guidance(
    denoise: Callable[[Tensor, Tensor], Tensor],
    log_prob: Callable[[Tensor, Tensor], Tensor],
    schedule: Schedule,
    scale: float = 1.0,
    *,
    through_denoiser: bool = True,
    min_alpha: float = 1e-2,
    sigma_data: float = 1.0,
) -> Callable[[Tensor, Tensor], Tensor]:
    """Add ``scale * grad log p(y | x_t)`` to the score, expressed on x0.

    ``log_prob(x0, t)`` returns one value per sample (B,). With ``through_denoiser`` the
    gradient flows through the network (DPS, Chung et al. 2023:
    ``grad_x log p(y | x_t) ~ grad_x log_prob(D(x_t))``); otherwise it is taken at ``x0 = D``
    and mapped by the Jacobian ``d x0 / d x_t`` of Gaussian data with standard deviation
    ``sigma_data``, EDM's ``c_skip = alpha sigma_d^2 / (sigma^2 + alpha^2 sigma_d^2)`` (cheaper,
    no backward through the network; -> 1/alpha at low noise, -> 0 at high noise).
    The score shift becomes ``D' = D + scale (sigma^2 / alpha) grad``; ``alpha`` is floored
    at ``min_alpha`` so guidance stays finite at the start of sampling.
    Must not run under ``torch.inference_mode`` (use ``torch.no_grad`` around sampling).
    """

    def guided(x: Tensor, t: Tensor) -> Tensor:
        alpha_raw, sigma = schedule.alpha_sigma(expand_like(t, x))
        alpha = alpha_raw.clamp_min(min_alpha)
        with torch.enable_grad():
            if through_denoiser:
                x_in = x.detach().requires_grad_(True)
                x0 = denoise(x_in, t)
                (grad,) = torch.autograd.grad(log_prob(x0, t).sum(), x_in)
                x0 = x0.detach()
            else:
                x0 = denoise(x, t).detach().requires_grad_(True)
                (grad,) = torch.autograd.grad(log_prob(x0, t).sum(), x0)
                grad = grad * edm_coefficients(alpha_raw, sigma, sigma_data)[0]
        return x0 + scale * (sigma**2 / alpha) * grad

    return guided


class Inpainting:
    """Hold known values fixed: ``known`` where ``known_mask`` is true, sampled elsewhere.

    Use both halves: ``denoise=inpaint.wrap(denoise)`` replaces the x0 estimate on known
    entries (so the rest of the sample is generated consistently with them) and
    ``constraint=inpaint.constraint`` re-noises the known values to the sampler's current time
    after every step (replacement, as in RePaint / Diffusion Policy). At ``s = 0`` the state
    equals ``known`` exactly on the mask. Works for a tensor state or a dict of them (only
    the components present in ``known`` are constrained).
    """

    def __init__(
        self,
        known: State,
        known_mask: Tensor | dict[str, Tensor],
        schedules: Schedule | dict[str, Schedule],
        generator: torch.Generator | None = None,
    ) -> None:
        self.single = isinstance(known, Tensor)
        self.known = {"x": known} if self.single else dict(known)
        masks = {"x": known_mask} if self.single else dict(known_mask)  # type: ignore[arg-type]
        for k, value in self.known.items():
            m = masks.get(k)
            if m is None or m.dtype != torch.bool or m.shape != value.shape:
                raise ValueError(
                    f"known_mask for {k!r} must be a bool tensor shaped like the known values "
                    f"{tuple(value.shape)}"
                )
        self.masks = masks
        self.schedules = {"x": schedules} if self.single else dict(schedules)  # type: ignore[arg-type]
        self.generator = generator

    def _replace(self, state: State, values: dict[str, Tensor]) -> State:
        d = {"x": state} if self.single else dict(state)  # type: ignore[arg-type]
        for k, v in values.items():
            d[k] = torch.where(self.masks[k], v, d[k])
        return d["x"] if self.single else d

    def wrap(self, denoise: Callable[[State, Tensor], State]) -> Callable[[State, Tensor], State]:
        return lambda x, t: self._replace(denoise(x, t), self.known)

    def constraint(self, state: State, s: Tensor) -> State:
        noised = {}
        for k, value in self.known.items():
            alpha, sigma = self.schedules[k].alpha_sigma(expand_like(s, value))
            eps = torch.randn(
                value.shape, generator=self.generator, device=value.device, dtype=value.dtype
            )
            noised[k] = alpha * value + sigma * eps
        return self._replace(state, noised)
