"""What a network predicts, and the one place where predictions are converted.

For ``x_t = alpha x_0 + sigma eps`` a network may predict

* ``epsilon`` — the noise ``eps`` (Ho et al. 2020);
* ``x0`` — the data ``x_0``;
* ``v`` — ``alpha eps - sigma x_0`` (Salimans & Ho 2022), defined for any schedule;
* ``velocity`` — the flow ``dx_t/dt = alpha' x_0 + sigma' eps`` (flow matching);
* ``edm`` — EDM's preconditioned output ``F`` (Karras et al. 2022, table 1):
  ``x_0 = c_skip x + c_out F(c_in x, c_noise)``, written in ``(alpha, sigma)`` so it holds for
  VP, VE and flow schedules alike.

Samplers speak one convention: a denoiser returns the data estimate ``x_0``. Any network whose
prediction converts to ``x_0`` works with every sampler.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from ._checks import choose
from .schedules import Schedule

PREDICTIONS = ("epsilon", "x0", "v", "velocity", "edm")


def expand_like(t: Tensor, x: Tensor) -> Tensor:
    """Append singleton dims so ``t`` ((), (B,) or (B, ...leading)) broadcasts against ``x``."""
    if t.ndim > x.ndim:
        raise ValueError(f"time of shape {tuple(t.shape)} has more dims than x {tuple(x.shape)}")
    return t.reshape(t.shape + (1,) * (x.ndim - t.ndim))


def check_prediction(prediction: str) -> str:
    return choose("prediction", prediction, {p: p for p in PREDICTIONS})


def edm_coefficients(
    alpha: Tensor, sigma: Tensor, sigma_data: float
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """EDM preconditioning ``(c_skip, c_out, c_in, c_noise)`` applied to ``x_t`` directly.

    EDM's table 1 in the variance-exploding coordinates ``x/alpha`` with ``sigma/alpha``,
    multiplied out so that nothing divides by ``alpha`` (finite at ``alpha = 0``).
    ``c_noise = log(sigma/alpha) / 4`` is clamped to [-20, 20] at the ends of time.
    """
    denom = sigma**2 + (alpha * sigma_data) ** 2
    c_skip = alpha * sigma_data**2 / denom
    c_out = sigma * sigma_data / denom.sqrt()
    c_in = 1.0 / denom.sqrt()
    c_noise = (0.25 * (torch.log(sigma) - torch.log(alpha))).clamp(-20.0, 20.0)
    return c_skip, c_out, c_in, c_noise


def to_x0(
    prediction: str,
    output: Tensor,
    x_t: Tensor,
    t: Tensor,
    schedule: Schedule,
    sigma_data: float = 0.5,
) -> Tensor:
    """Convert a network ``output`` of the given ``prediction`` type at ``(x_t, t)`` to ``x_0``.

    Shapes: ``output`` and ``x_t`` (B, ...); ``t`` broadcastable after :func:`expand_like`.
    """
    t = expand_like(t, x_t)
    alpha, sigma = schedule.alpha_sigma(t)
    if prediction in _FROM_ALPHA_SIGMA:
        return x0_from_alpha_sigma(prediction, output, x_t, alpha, sigma)
    if prediction == "velocity":
        d_alpha, d_sigma = schedule.d_alpha_sigma(t)
        return (d_sigma * x_t - sigma * output) / (alpha * d_sigma - sigma * d_alpha)
    if prediction == "edm":
        c_skip, c_out, _, _ = edm_coefficients(alpha, sigma, sigma_data)
        return c_skip * x_t + c_out * output
    raise ValueError(f"unknown prediction {prediction!r}; accepted: {', '.join(PREDICTIONS)}")


_FROM_ALPHA_SIGMA = ("epsilon", "x0", "v")


def x0_from_alpha_sigma(
    prediction: str, output: Tensor, x_t: Tensor, alpha: Tensor, sigma: Tensor
) -> Tensor:
    """:func:`to_x0` for ``epsilon``, ``x0`` and ``v`` given ``(alpha, sigma)`` directly
    (samplers pass values precomputed on their grid)."""
    if prediction == "x0":
        return output
    if prediction == "epsilon":
        return (x_t - sigma * output) / alpha
    if prediction == "v":
        return (alpha * x_t - sigma * output) / (alpha**2 + sigma**2)
    raise ValueError(f"x0_from_alpha_sigma handles {_FROM_ALPHA_SIGMA}, got {prediction!r}")


def target(
    prediction: str,
    x0: Tensor,
    eps: Tensor,
    t: Tensor,
    schedule: Schedule,
    sigma_data: float = 0.5,
) -> Tensor:
    """The regression target of a network of the given ``prediction`` type, shape of ``x0``."""
    t = expand_like(t, x0)
    alpha, sigma = schedule.alpha_sigma(t)
    if prediction == "x0":
        return x0
    if prediction == "epsilon":
        return eps
    if prediction == "v":
        return alpha * eps - sigma * x0
    if prediction == "velocity":
        d_alpha, d_sigma = schedule.d_alpha_sigma(t)
        return d_alpha * x0 + d_sigma * eps
    if prediction == "edm":
        c_skip, c_out, _, _ = edm_coefficients(alpha, sigma, sigma_data)
        return (x0 - c_skip * (alpha * x0 + sigma * eps)) / c_out
    raise ValueError(f"unknown prediction {prediction!r}; accepted: {', '.join(PREDICTIONS)}")


def x0_error_scale(
    prediction: str, t: Tensor, schedule: Schedule, sigma_data: float = 0.5
) -> Tensor:
    """``(d prediction / d x_0)^2`` at fixed ``x_t``: an error of ``e`` in ``x_0`` is an error of
    ``sqrt(scale) * e`` in the prediction. Used to express loss weightings in x0 units."""
    alpha, sigma = schedule.alpha_sigma(t)
    if prediction == "x0":
        return torch.ones_like(t)
    if prediction == "epsilon":
        return (alpha / sigma) ** 2
    if prediction == "v":
        return ((alpha**2 + sigma**2) / sigma) ** 2
    if prediction == "velocity":
        d_alpha, d_sigma = schedule.d_alpha_sigma(t)
        return (d_alpha - d_sigma * alpha / sigma) ** 2
    if prediction == "edm":
        _, c_out, _, _ = edm_coefficients(alpha, sigma, sigma_data)
        return 1.0 / c_out**2
    raise ValueError(f"unknown prediction {prediction!r}; accepted: {', '.join(PREDICTIONS)}")


Network = Callable[..., Any]


class Denoiser:
    """Wrap a network into the samplers' convention ``denoise(x_t, t, **cond) -> x_0``.

    Args:
        net: ``net(x, t, **cond) -> output``. For a single space, output is shaped like ``x``;
            for a :class:`~sci_diffusion.core.spaces.ProductSpace`, ``x`` and the output are
            dicts and categorical components output *logits* (B, ..., K). ``t`` arrives with
            shape (B,) (scalar times are broadcast). With ``prediction="edm"`` (single spaces
            only) the network is called as ``net(c_in * x, c_noise, **cond)``, EDM's
            preconditioning.
        space: the space (or, for a single tensor, just the schedule) trained on.
        prediction: ``epsilon``, ``x0``, ``v``, ``velocity`` or ``edm``; a dict per continuous
            component for product spaces.
        sigma_data: data standard deviation used by ``edm`` preconditioning.
    """

    def __init__(
        self,
        net: Network,
        space: Any,
        prediction: str | dict[str, str] = "epsilon",
        sigma_data: float = 0.5,
    ) -> None:
        self.net = net
        self.components: dict[str, Any] = (
            {"x": _ScheduleOnly(space)} if isinstance(space, Schedule) else {}
        )
        if not self.components:
            self.components = {("x" if k is None else k): sub for k, sub in space.components()}
        self.single = (
            "x" in self.components
            and len(self.components) == 1
            and not isinstance(prediction, dict)
        )
        if isinstance(prediction, str):
            check_prediction(prediction)
            prediction = {k: prediction for k in self.components}
        missing = [
            k for k, s in self.components.items() if not s.is_categorical and k not in prediction
        ]
        if missing:
            raise ValueError(f"prediction missing for continuous components {missing}")
        self.prediction = {k: check_prediction(v) for k, v in prediction.items()}
        if "edm" in self.prediction.values() and len(self.components) > 1:
            raise ValueError("prediction='edm' is supported for single spaces only")
        self.sigma_data = sigma_data

    @property
    def schedule(self) -> Schedule:
        """The schedule of a single-space denoiser."""
        return next(iter(self.components.values())).schedule

    def network_output(self, x_t: Any, t: Tensor, **cond: Any) -> Any:
        """The raw network output for ``(x_t, t)`` (what the training loss regresses)."""
        first = x_t if isinstance(x_t, Tensor) else next(iter(x_t.values()))
        t_batch = t.expand(first.shape[0]) if t.ndim == 0 else t
        if self.prediction.get("x") == "edm":
            alpha, sigma = self.schedule.alpha_sigma(expand_like(t_batch, x_t))
            _, _, c_in, c_noise = edm_coefficients(alpha, sigma, self.sigma_data)
            c_noise_batch = c_noise.reshape(c_noise.shape[0], -1)[:, 0]
            return self.net(c_in * x_t, c_noise_batch, **cond)
        return self.net(x_t, t_batch, **cond)

    def to_x0(self, output: Any, x_t: Any, t: Tensor) -> Any:
        """Convert a raw network output to the x_0 estimate (probabilities if categorical)."""
        if isinstance(x_t, Tensor):
            return self._component_x0("x", output, x_t, t)
        return {k: self._component_x0(k, output[k], x_t[k], t) for k in x_t}

    def _component_x0(self, key: str, output: Tensor, x_t: Tensor, t: Tensor) -> Tensor:
        space = self.components[key]
        if space.is_categorical:
            return torch.softmax(output, dim=-1)
        return to_x0(self.prediction[key], output, x_t, t, space.schedule, self.sigma_data)

    def __call__(self, x_t: Any, t: Tensor, **cond: Any) -> Any:
        return self.to_x0(self.network_output(x_t, t, **cond), x_t, t)

    def denoise_at(self, x_t: Tensor, t: Tensor, alpha: Tensor, sigma: Tensor, **cond: Any) -> Any:
        """Same as calling, with ``(alpha, sigma)`` at ``t`` supplied by the caller (a sampler's
        precomputed grid), which saves re-evaluating the schedule every step."""
        prediction = self.prediction.get("x")
        if not self.single or prediction not in _FROM_ALPHA_SIGMA:
            return self(x_t, t, **cond)
        output = self.network_output(x_t, t, **cond)
        return x0_from_alpha_sigma(prediction, output, x_t, alpha, sigma)


    def bind(self, **cond: Any) -> BoundDenoiser:
        """This denoiser with fixed conditioning (e.g. ``obs=...``), in the samplers'
        two-argument convention ``denoise(x_t, t)``, keeping the :meth:`denoise_at` fast path."""
        return BoundDenoiser(self, cond)


class BoundDenoiser:
    """A :class:`Denoiser` with its conditioning keyword arguments fixed (see
    :meth:`Denoiser.bind`)."""

    def __init__(self, denoiser: Denoiser, cond: dict[str, Any]) -> None:
        self.denoiser = denoiser
        self.cond = cond

    def __call__(self, x_t: Any, t: Tensor) -> Any:
        return self.denoiser(x_t, t, **self.cond)

    def denoise_at(self, x_t: Tensor, t: Tensor, alpha: Tensor, sigma: Tensor) -> Any:
        return self.denoiser.denoise_at(x_t, t, alpha, sigma, **self.cond)


class _ScheduleOnly:
    """Adapter so a bare schedule can stand in for a Euclidean space in :class:`Denoiser`."""

    is_categorical = False

    def __init__(self, schedule: Schedule) -> None:
        self.schedule = schedule
