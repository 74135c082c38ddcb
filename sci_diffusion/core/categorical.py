"""Categorical variables under discrete diffusion (Austin et al. 2021; DiGress, Vignac et al. 2023).

A state is one-hot, shape (B, ..., K), float; padded entries are all-zero rows. The forward
process keeps a variable with probability ``a(t) = alpha(t)^2`` (the schedule's
``alpha_bar``) and otherwise resamples it from a limit distribution ``m``:

    q(x_t | x_0) = a(t) x_0 + (1 - a(t)) m,      Q_{t|s} = (a_t/a_s) I + (1 - a_t/a_s) 1 m^T.

``m`` is uniform (``uniform``), the data marginals (``marginal``, as in DiGress) or a point
mass on an extra absorbing class, the last of the K classes (``absorbing``, as in D3PM/MDLM).
The denoiser returns probabilities ``p(x_0 | x_t)`` of shape (B, ..., K); the exact reverse step
:meth:`CategoricalSpace.posterior` marginalises the closed-form posterior over them.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

from ._checks import check_mask, choose
from .parameterization import expand_like
from .schedules import Schedule
from .spaces import _mask_like

TRANSITIONS = ("uniform", "marginal", "absorbing")


def sample_categorical(probs: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Draw one-hot samples from ``probs`` (..., K) by inverse CDF (no host sync)."""
    u = torch.rand((*probs.shape[:-1], 1), generator=generator, device=probs.device)
    cdf = probs.cumsum(-1)
    index = (cdf < u * cdf[..., -1:]).sum(-1).clamp_max(probs.shape[-1] - 1)
    return torch.nn.functional.one_hot(index, probs.shape[-1]).to(probs.dtype)


class CategoricalSpace:
    """K-class categorical variables of shape (B, ..., K) with a chosen transition.

    Args:
        num_classes: K, including the absorbing class when ``transition="absorbing"``.
        schedule: gives the keep probability ``a(t) = alpha(t)^2``.
        transition: ``uniform``, ``marginal`` or ``absorbing``.
        marginals: (K,) class frequencies for ``marginal`` (normalised here).
        symmetric: for edge variables (B, N, N, K): noise and samples are mirrored across
            the diagonal (undirected bonds).
    """

    is_categorical = True

    def __init__(
        self,
        num_classes: int,
        schedule: Schedule,
        transition: str = "uniform",
        marginals: Tensor | None = None,
        symmetric: bool = False,
    ) -> None:
        choose("transition", transition, {k: k for k in TRANSITIONS})
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        self.num_classes = num_classes
        self.schedule = schedule
        self.transition = transition
        self.symmetric = symmetric
        if transition == "uniform":
            limit = torch.full((num_classes,), 1.0 / num_classes)
        elif transition == "absorbing":
            limit = torch.nn.functional.one_hot(torch.tensor(num_classes - 1), num_classes).float()
        else:
            if marginals is None or marginals.shape != (num_classes,) or (marginals < 0).any():
                raise ValueError(
                    f"transition='marginal' needs marginals: a non-negative tensor of shape "
                    f"({num_classes},)"
                )
            limit = marginals.float() / marginals.float().sum()
        self.limit = limit

    def components(self) -> Iterator[tuple[str | None, CategoricalSpace]]:
        yield None, self

    # -- checks and projections ---------------------------------------------------------------
    def validate(self, x: Tensor, mask: Tensor | None = None) -> None:
        if x.shape[-1] != self.num_classes:
            raise ValueError(
                f"categorical state must be one-hot with last dim K={self.num_classes}; "
                f"got shape {tuple(x.shape)}"
            )
        if self.symmetric and (x.ndim != 4 or x.shape[1] != x.shape[2]):
            raise ValueError(f"symmetric edge states need shape (B, N, N, K); got {tuple(x.shape)}")
        if self.symmetric and mask is not None and mask.ndim != 3:
            # A (B, N) node mask would broadcast over rows only, leaving padded columns noisy.
            raise ValueError(
                f"symmetric edge states need a (B, N, N) pair mask, got {tuple(mask.shape)}; "
                "build it from a node mask m as m[:, :, None] & m[:, None, :]"
            )
        check_mask(mask, x)

    def project(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """Mirror the upper triangle for symmetric edges and zero padded rows."""
        if self.symmetric:
            upper = torch.triu(torch.ones(x.shape[1], x.shape[2], device=x.device), 1)
            upper = upper.to(torch.bool).unsqueeze(-1)
            x = torch.where(upper, x, x.transpose(1, 2))
        return x if mask is None else x * _mask_like(mask, x).to(x.dtype)

    def _limit(self, like: Tensor) -> Tensor:
        return self.limit.to(device=like.device, dtype=like.dtype)

    def keep_probability(self, t: Tensor) -> Tensor:
        alpha, _ = self.schedule.alpha_sigma(t)
        return alpha**2

    # -- forward process -------------------------------------------------------------------
    def marginal_probs(self, x0: Tensor, t: Tensor) -> Tensor:
        """``q(x_t | x_0)`` as probabilities (B, ..., K)."""
        a = expand_like(self.keep_probability(t), x0)
        return a * x0 + (1.0 - a) * self._limit(x0)

    def sample_xt(
        self,
        x0: Tensor,
        t: Tensor,
        mask: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """A one-hot draw from ``q(x_t | x_0)``."""
        return self.project(sample_categorical(self.marginal_probs(x0, t), generator), mask)

    def prior(
        self,
        shape: tuple[int, ...],
        mask: Tensor | None = None,
        *,
        t: float = 1.0,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> Tensor:
        """A draw from the limit distribution ``m`` (exact at t=1 up to ``a(1)``)."""
        if shape[-1] != self.num_classes:
            raise ValueError(f"prior shape must end in K={self.num_classes}; got {shape}")
        probs = self.limit.to(device=device, dtype=dtype).expand(shape)
        return self.project(sample_categorical(probs, generator), mask)

    def renoise(
        self,
        x_s: Tensor,
        s: Tensor,
        t: Tensor,
        mask: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """A one-hot draw from ``q(x_t | x_s) = (a_t/a_s) x_s + (1 - a_t/a_s) m`` for
        ``t >= s`` (RePaint's jump back, categorical form)."""
        a_ts = expand_like(self.keep_probability(t) / self.keep_probability(s), x_s)
        a_ts = a_ts.to(x_s.dtype)
        probs = a_ts * x_s + (1.0 - a_ts) * self._limit(x_s)
        return self.project(sample_categorical(probs, generator), mask)

    # -- reverse process --------------------------------------------------------------------
    def posterior(self, x_t: Tensor, probs_x0: Tensor, t: Tensor, s: Tensor) -> Tensor:
        """``p(x_s | x_t) = sum_k p(x_0=k | x_t) q(x_s | x_t, x_0=k)`` for ``s < t``, (B, ..., K).

        Classes ``k`` that cannot have produced ``x_t`` (``q(x_t | x_0=k) = 0``, e.g. an
        unmasked token under absorbing noise) get zero weight, as exact Bayes demands.
        """
        m = self._limit(x_t)
        a_t = expand_like(self.keep_probability(t), x_t)
        a_s = expand_like(self.keep_probability(s), x_t)
        a_ts = a_t / a_s
        m_at_xt = (x_t * m).sum(-1, keepdim=True)  # m_j for the observed class j
        forward = a_ts * x_t + (1.0 - a_ts) * m_at_xt  # q(x_t = j | x_s = i), over i
        likelihood = a_t * x_t + (1.0 - a_t) * m_at_xt  # q(x_t = j | x_0 = k), over k
        # A denoiser whose probabilities all fall on classes that cannot have produced x_t
        # (e.g. softmax underflow) says nothing: fall back to a flat guess over possible ones.
        possible = likelihood > 0
        supported = (probs_x0 * possible).sum(-1, keepdim=True) > 0
        probs_x0 = torch.where(supported, probs_x0, possible.to(probs_x0.dtype))
        weights = torch.where(
            likelihood > 0, probs_x0 / likelihood.clamp_min(1e-30), torch.zeros_like(probs_x0)
        )
        prior_s = a_s * weights + (1.0 - a_s) * m * weights.sum(-1, keepdim=True)
        unnormalised = forward * prior_s
        total = unnormalised.sum(-1, keepdim=True)
        return torch.where(total > 0, unnormalised / total.clamp_min(1e-30), m.expand_as(x_t))

    def step(
        self,
        x_t: Tensor,
        probs_x0: Tensor,
        t: Tensor,
        s: Tensor,
        mask: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """One ancestral step: a one-hot draw from :meth:`posterior`."""
        return self.project(
            sample_categorical(self.posterior(x_t, probs_x0, t, s), generator), mask
        )
