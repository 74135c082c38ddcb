"""Noise schedules: continuous time ``t`` in [0, 1] mapped to ``(alpha, sigma)``.

Every schedule describes the Gaussian path ``x_t = alpha(t) * x_0 + sigma(t) * eps`` with
``t = 0`` the data and ``t = 1`` (almost) pure noise. Samplers only ever need ``alpha``,
``sigma``, their time derivatives and the inverse of the log signal-to-noise ratio, so one
sampler serves every schedule. Discrete grids (for samplers, or for interop with
discrete-time libraries) are derived from the continuous schedule, never the other way round.

All methods take a float tensor ``t`` of any shape and return tensors of that shape.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import torch
from torch import Tensor

from ._checks import choose


class Schedule(ABC):
    """Maps time to ``(alpha, sigma)``. Subclasses implement the four abstract methods."""

    name: str = "schedule"

    @abstractmethod
    def alpha_sigma(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """Signal and noise scales at time ``t`` (same shape as ``t``)."""

    @abstractmethod
    def d_alpha_sigma(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """Time derivatives ``(d alpha / dt, d sigma / dt)`` at ``t``."""

    @abstractmethod
    def t_from_log_snr(self, log_snr: Tensor) -> Tensor:
        """Inverse of :meth:`log_snr`, clamped to [0, 1]."""

    def log_snr(self, t: Tensor) -> Tensor:
        """``log(alpha^2 / sigma^2)``; ``+inf`` where sigma is 0."""
        alpha, sigma = self.alpha_sigma(t)
        return 2.0 * (torch.log(alpha) - torch.log(sigma))

    def time_grid(
        self,
        steps: int,
        *,
        t_start: float = 1.0,
        t_end: float = 0.0,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> Tensor:
        """Decreasing grid of ``steps + 1`` times from ``t_start`` to ``t_end``, (steps+1,)."""
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        if not 0.0 <= t_end < t_start <= 1.0:
            raise ValueError(
                f"need 0 <= t_end < t_start <= 1, got t_start={t_start}, t_end={t_end}"
            )
        return torch.linspace(t_start, t_end, steps + 1, device=device, dtype=dtype)

    def discrete_alphas_cumprod(
        self, num_train_steps: int = 1000, min_alpha_bar: float = 1e-5
    ) -> Tensor:
        """``alpha(t_i)^2 / (alpha(t_i)^2 + sigma(t_i)^2)`` at ``t_i = i / N``, i = 1..N.

        The variance-preserving view of this schedule as a discrete DDPM chain, for interop with
        discrete-time libraries (e.g. ``diffusers``' ``trained_betas``). Shape (N,), float64;
        floored at ``min_alpha_bar`` so that no discrete beta reaches 1 (rectified flow).
        """
        t = torch.arange(1, num_train_steps + 1, dtype=torch.float64) / num_train_steps
        alpha, sigma = self.alpha_sigma(t)
        return (alpha**2 / (alpha**2 + sigma**2)).clamp_min(min_alpha_bar)

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"


class _VariancePreserving(Schedule):
    """A schedule given by ``abar(t) = alpha(t)^2`` with ``sigma^2 = 1 - abar``."""

    @abstractmethod
    def alpha_bar(self, t: Tensor) -> Tensor: ...

    @abstractmethod
    def d_alpha_bar(self, t: Tensor) -> Tensor: ...

    @abstractmethod
    def t_from_alpha_bar(self, abar: Tensor) -> Tensor: ...

    def alpha_sigma(self, t: Tensor) -> tuple[Tensor, Tensor]:
        abar = self.alpha_bar(t)
        return abar.sqrt(), (1.0 - abar).clamp_min(0.0).sqrt()

    def d_alpha_sigma(self, t: Tensor) -> tuple[Tensor, Tensor]:
        alpha, sigma = self.alpha_sigma(t)
        dabar = self.d_alpha_bar(t)
        return dabar / (2.0 * alpha), -dabar / (2.0 * sigma)

    def t_from_log_snr(self, log_snr: Tensor) -> Tensor:
        return self.t_from_alpha_bar(torch.sigmoid(log_snr)).clamp(0.0, 1.0)


class CosineSchedule(_VariancePreserving):
    """Nichol & Dhariwal (2021) cosine schedule, ``abar(t) = f(t)/f(0)``, ``f = cos^2``.

    ``abar`` is floored at ``min_alpha_bar`` so that ``alpha(1) > 0`` (the paper clips betas
    at 0.999 for the same reason).
    """

    name = "cosine"

    def __init__(self, s: float = 0.008, min_alpha_bar: float = 1e-5) -> None:
        self.s = s
        self.min_alpha_bar = min_alpha_bar

    def _u(self, t: Tensor) -> Tensor:
        return (t + self.s) / (1.0 + self.s) * (math.pi / 2.0)

    def _f0(self) -> float:
        return math.cos(self.s / (1.0 + self.s) * math.pi / 2.0) ** 2

    def alpha_bar(self, t: Tensor) -> Tensor:
        # cos^2(u)/f0 rounds to 1 - 6e-8 at t = 0 in float32; t = 0 must be the data exactly.
        abar = (torch.cos(self._u(t)) ** 2 / self._f0()).clamp(self.min_alpha_bar, 1.0)
        return torch.where(t <= 0, torch.ones_like(abar), abar)

    def d_alpha_bar(self, t: Tensor) -> Tensor:
        u = self._u(t)
        d = -torch.sin(2.0 * u) * (math.pi / 2.0) / (1.0 + self.s) / self._f0()
        return torch.where(self.alpha_bar(t) > self.min_alpha_bar, d, torch.zeros_like(d))

    def t_from_alpha_bar(self, abar: Tensor) -> Tensor:
        u = torch.arccos((abar * self._f0()).clamp(0.0, 1.0).sqrt())
        return u * 2.0 / math.pi * (1.0 + self.s) - self.s


class LinearSchedule(_VariancePreserving):
    """DDPM's linear betas (Ho et al. 2020) in continuous time: the VP-SDE of Song et al. (2021).

    ``abar(t) = exp(-(beta_min t + (beta_max - beta_min) t^2 / 2))``; the defaults match DDPM's
    1e-4..0.02 over 1000 steps.
    """

    name = "linear"

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0) -> None:
        self.beta_min = beta_min
        self.beta_max = beta_max

    def alpha_bar(self, t: Tensor) -> Tensor:
        return torch.exp(-(self.beta_min * t + 0.5 * (self.beta_max - self.beta_min) * t**2))

    def d_alpha_bar(self, t: Tensor) -> Tensor:
        return -(self.beta_min + (self.beta_max - self.beta_min) * t) * self.alpha_bar(t)

    def t_from_alpha_bar(self, abar: Tensor) -> Tensor:
        db = self.beta_max - self.beta_min
        log_abar = torch.log(abar.clamp_min(1e-38))
        return (-self.beta_min + torch.sqrt(self.beta_min**2 - 2.0 * db * log_abar)) / db


class PolynomialSchedule(_VariancePreserving):
    """EDM-for-molecules (Hoogeboom et al. 2022) schedule ``abar = (1-2s)(1 - t^p)^2 + s``.

    ``p = 2`` and ``s = 1e-5`` are the paper's defaults. The paper additionally clips the
    per-step ratio of its 1000-step discretization; in continuous time that clip is not applied.
    """

    name = "polynomial"

    def __init__(self, power: float = 2.0, precision: float = 1e-5) -> None:
        self.power = power
        self.precision = precision

    def alpha_bar(self, t: Tensor) -> Tensor:
        s = self.precision
        return (1.0 - 2.0 * s) * (1.0 - t**self.power) ** 2 + s

    def d_alpha_bar(self, t: Tensor) -> Tensor:
        s, p = self.precision, self.power
        return (1.0 - 2.0 * s) * 2.0 * (1.0 - t**p) * (-p * t.clamp_min(0.0) ** (p - 1.0))

    def t_from_alpha_bar(self, abar: Tensor) -> Tensor:
        s = self.precision
        inner = ((abar - s) / (1.0 - 2.0 * s)).clamp(0.0, 1.0).sqrt()
        return (1.0 - inner).clamp_min(0.0) ** (1.0 / self.power)


class KarrasSchedule(Schedule):
    """EDM (Karras et al. 2022) variance-exploding sigmas, ``alpha = 1``.

    ``sigma(t) = (sigma_min^(1/rho) + t (sigma_max^(1/rho) - sigma_min^(1/rho)))^rho`` for
    ``t > 0`` and ``sigma(0) = 0``, so a uniform time grid ending at 0 is EDM's discretization
    (eq. 5) with the final step to the data.
    """

    name = "karras"

    def __init__(self, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0) -> None:
        if not 0.0 < sigma_min < sigma_max:
            raise ValueError(f"need 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
        self.sigma_min = sigma_min
        self.sigma_max = sigma_max
        self.rho = rho

    def _ends(self) -> tuple[float, float]:
        return self.sigma_min ** (1.0 / self.rho), self.sigma_max ** (1.0 / self.rho)

    def alpha_sigma(self, t: Tensor) -> tuple[Tensor, Tensor]:
        lo, hi = self._ends()
        sigma = (lo + t * (hi - lo)) ** self.rho
        return torch.ones_like(t), torch.where(t > 0, sigma, torch.zeros_like(sigma))

    def d_alpha_sigma(self, t: Tensor) -> tuple[Tensor, Tensor]:
        lo, hi = self._ends()
        return torch.zeros_like(t), self.rho * (lo + t * (hi - lo)) ** (self.rho - 1.0) * (hi - lo)

    def t_from_log_snr(self, log_snr: Tensor) -> Tensor:
        lo, hi = self._ends()
        sigma = torch.exp(-0.5 * log_snr)
        return ((sigma ** (1.0 / self.rho) - lo) / (hi - lo)).clamp(0.0, 1.0)


class RectifiedFlowSchedule(Schedule):
    """The straight line of rectified flow / flow matching (Liu et al. 2022; Lipman et al. 2023).

    ``alpha = 1 - t``, ``sigma = t``. ``alpha(1) = 0``: samplers that divide by ``alpha`` at the
    start (EDM Heun) refuse it; use the flow or DDIM samplers instead.
    """

    name = "rectified_flow"

    def alpha_sigma(self, t: Tensor) -> tuple[Tensor, Tensor]:
        return 1.0 - t, t

    def d_alpha_sigma(self, t: Tensor) -> tuple[Tensor, Tensor]:
        return -torch.ones_like(t), torch.ones_like(t)

    def t_from_log_snr(self, log_snr: Tensor) -> Tensor:
        return torch.sigmoid(-0.5 * log_snr)


SCHEDULES: dict[str, type[Schedule]] = {
    "cosine": CosineSchedule,
    "linear": LinearSchedule,
    "polynomial": PolynomialSchedule,
    "karras": KarrasSchedule,
    "rectified_flow": RectifiedFlowSchedule,
}


def make_schedule(name: str, **kwargs: float) -> Schedule:
    """Build a schedule by name (``cosine``, ``linear``, ``polynomial``, ``karras``,
    ``rectified_flow``) with keyword arguments for its constructor."""
    return choose("schedule", name, SCHEDULES)(**kwargs)
