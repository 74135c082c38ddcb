"""Distributions whose exact denoisers are known in closed form.

They let every sampler be tested with no training: sample with the exact ``E[x_0 | x_t]`` (or
exact ``p(x_0^d | x_t)`` for categorical variables) and compare with the true distribution.
Also useful to lab pipelines validating their own samplers.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import torch
from torch import Tensor

from .parameterization import expand_like
from .schedules import Schedule


class GaussianMixture:
    """Isotropic Gaussian mixture over events of shape ``event_shape``.

    Args:
        means: (K, *event_shape) component means.
        stds: (K,) component standard deviations (> 0).
        weights: (K,) mixture weights (normalised here).
        projection: optional linear projection applied to samples and means (e.g. removing the
            centre of mass); the mixture then lives on that subspace.
        dof: dimension of that subspace (defaults to the event size); enters the Gaussian
            normaliser of the responsibilities.
    """

    def __init__(
        self,
        means: Tensor,
        stds: Tensor,
        weights: Tensor | None = None,
        projection: Callable[[Tensor], Tensor] | None = None,
        dof: int | None = None,
    ) -> None:
        k = means.shape[0]
        if stds.shape != (k,) or bool((stds <= 0).any()):
            raise ValueError(f"stds must be a positive tensor of shape ({k},)")
        weights = torch.full((k,), 1.0 / k) if weights is None else weights
        if weights.shape != (k,):
            raise ValueError(f"weights must have shape ({k},)")
        self.projection = projection or (lambda x: x)
        self.means = self.projection(means.double())
        self.stds = stds.double()
        self.weights = weights.double() / weights.double().sum()
        self.event_shape = tuple(means.shape[1:])
        self.dof = dof if dof is not None else math.prod(self.event_shape)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` samples, shape (n, *event_shape), float64."""
        component = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        z = torch.randn((n, *self.event_shape), generator=generator, dtype=torch.float64)
        std = self.stds[component].reshape((n,) + (1,) * len(self.event_shape))
        return self.means[component] + std * self.projection(z)

    def denoiser(self, schedule: Schedule) -> Callable[[Tensor, Tensor], Tensor]:
        """The exact ``E[x_0 | x_t = x]`` under ``schedule``; (B, *event), t () or (B,)."""

        def denoise(x: Tensor, t: Tensor) -> Tensor:
            xd = x.double()
            batch = xd.shape[0]
            tt = t.double().expand(batch) if t.ndim == 0 else t.double()
            alpha, sigma = schedule.alpha_sigma(tt)
            a = alpha[:, None]  # (B, 1)
            stds, weights = self.stds.to(xd.device), self.weights.to(xd.device)
            var = a**2 * stds[None] ** 2 + sigma[:, None] ** 2  # (B, K)
            flat = xd.reshape(batch, 1, -1)
            mu = self.means.to(xd.device).reshape(1, self.means.shape[0], -1)
            sq = ((flat - a[..., None] * mu) ** 2).sum(-1)  # (B, K)
            logits = torch.log(weights)[None] - 0.5 * sq / var - 0.5 * self.dof * torch.log(var)
            resp = torch.softmax(logits, dim=-1)  # (B, K)
            gain = (a * stds[None] ** 2 / var)[..., None]  # (B, K, 1)
            posterior_means = mu + gain * (flat - a[..., None] * mu)  # (B, K, E)
            x0 = (resp[..., None] * posterior_means).sum(1).reshape(xd.shape)
            return x0.to(x.dtype)

        return denoise


class CategoricalJoint:
    """A joint distribution over V variables with K classes each, given as a (K,)*V table.

    The exact per-variable denoiser ``p(x_0^d | x_t)`` is computed by enumerating all K^V
    states, for the forward process of a :class:`~.categorical.CategoricalSpace`.
    """

    def __init__(self, table: Tensor) -> None:
        self.num_vars = table.ndim
        self.num_classes = table.shape[0]
        if any(s != self.num_classes for s in table.shape) or bool((table < 0).any()):
            raise ValueError("table must be a non-negative (K,)*V tensor")
        self.table = (table / table.sum()).double()
        states = itertools.product(range(self.num_classes), repeat=self.num_vars)
        self.states = torch.tensor(list(states))  # (K^V, V)
        self.state_probs = self.table.reshape(-1)  # same (row-major) order

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` one-hot samples, shape (n, V, K), float32."""
        index = torch.multinomial(self.state_probs, n, replacement=True, generator=generator)
        return torch.nn.functional.one_hot(self.states[index], self.num_classes).float()

    def histogram(self, samples: Tensor) -> Tensor:
        """Empirical probabilities of each joint state, (K^V,), from one-hot (n, V, K)."""
        index = samples.argmax(-1)
        strides = self.num_classes ** torch.arange(self.num_vars - 1, -1, -1)
        flat = (index * strides).sum(-1)
        return torch.bincount(flat, minlength=self.states.shape[0]).double() / samples.shape[0]

    def denoiser(self, space) -> Callable[[Tensor, Tensor], Tensor]:
        """Exact marginals ``p(x_0^d | x_t)`` (B, V, K) for a ``CategoricalSpace``'s noise."""
        num_states = self.states.shape[0]
        # (K^V, V*K): row s is the one-hot encoding of state s, flattened; the log-likelihood
        # of a state is then one matrix product (no (B, K^V, V) gather), and so are the marginals.
        one_hot = torch.nn.functional.one_hot(self.states, self.num_classes).double()
        one_hot = one_hot.reshape(num_states, -1)

        def denoise(x: Tensor, t: Tensor) -> Tensor:
            xd = x.double()
            a = expand_like(space.keep_probability(t.double()), xd)
            m = space.limit.double().to(xd.device)
            m_at_xt = (xd * m).sum(-1, keepdim=True)
            likelihood = a * xd + (1.0 - a) * m_at_xt  # (B, V, K): q(x_t^d | x_0^d = k)
            log_lik = torch.log(likelihood.clamp_min(1e-300))
            codes = one_hot.to(xd.device)
            per_state = log_lik.reshape(xd.shape[0], -1) @ codes.T  # (B, K^V)
            log_prior = torch.log(self.state_probs.to(xd.device).clamp_min(1e-300))
            post = torch.softmax(log_prior[None] + per_state, dim=-1)  # (B, K^V)
            marginals = (post @ codes).reshape(xd.shape)  # (B, V, K)
            return marginals.to(x.dtype)

        return denoise
