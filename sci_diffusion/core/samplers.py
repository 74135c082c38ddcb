"""Samplers: stateless functions with one signature.

    sample_X(denoise, x, times, *, space, mask=None, generator=None, callback=None,
             constraint=None, **options) -> x_0 sample

* ``denoise(x_t, t) -> x_0`` estimate, the data-prediction convention (wrap a network with
  :class:`~sci_diffusion.core.parameterization.Denoiser`); for categorical components it
  returns probabilities ``p(x_0 | x_t)`` of shape (B, ..., K).
* ``x`` — the state at ``times[0]`` (from ``space.prior``): a tensor, or a dict of tensors for
  a :class:`~sci_diffusion.core.spaces.ProductSpace`, whose components are updated jointly
  (categorical ones by their exact ancestral step, whatever the continuous rule).
* ``times`` — a decreasing grid of shape (N+1,), (N+1, B) for per-sample times or
  (N+1, B, ...) for per-element times (single-tensor states), in [0, 1].
* ``callback(step)`` — called after every step with a :class:`SamplerStep`.
* ``constraint(x, s)`` — applied to the state after every step (e.g. inpainting).

The loop body never reads a tensor value on the host (no ``.item()``, no data-dependent
``if``): endpoint cases are resolved with ``torch.where``. Input checks run once, before it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ._checks import check_times, choose
from .parameterization import expand_like
from .spaces import ProductSpace, State

Denoise = Callable[[State, Tensor], State]
Callback = Callable[["SamplerStep"], None]
Constraint = Callable[[State, Tensor], State]


@dataclass(frozen=True)
class SamplerStep:
    """What a callback sees after step ``i`` (from time ``t`` to ``s``)."""

    i: int
    t: Tensor
    s: Tensor
    x: State
    x0: State


class _Problem:
    """Uniform dict view of single-tensor and product-space sampling problems."""

    def __init__(
        self,
        denoise: Denoise,
        x: State,
        times: Tensor,
        space: Any,
        mask: Any = None,
        constraint: Constraint | None = None,
        generator: torch.Generator | None = None,
        callback: Callback | None = None,
        check_inputs: bool = True,
    ) -> None:
        self.times = times
        self.generator = generator
        self.callback = callback
        self.single = not isinstance(space, ProductSpace)
        if self.single:
            if not isinstance(x, Tensor):
                raise ValueError("a single space needs a tensor state; use ProductSpace for dicts")
            self.spaces = {"x": space}
            self.masks = {"x": mask}
        else:
            if not isinstance(x, dict) or set(x) != set(space.spaces):
                keys = sorted(space.spaces)
                raise ValueError(f"a ProductSpace state must be a dict with keys {keys}")
            self.spaces = dict(space.spaces)
            masks = mask or {}
            self.masks = {k: masks.get(k) for k in self.spaces}
        if times.ndim < 1 or times.shape[0] < 2:
            raise ValueError(
                f"times must have shape (N+1, ...) with N >= 1; got {tuple(times.shape)}"
            )
        self.x = self.wrap(x)
        if check_inputs:  # these checks read tensor values: once, before the loop
            check_times(times, "times")
            if bool((times[1:] > times[:-1]).any()):
                raise ValueError("times must be non-increasing (from noise at times[0] to data)")
            for key, sub in self.spaces.items():
                sub.validate(self.x[key], self.masks[key])
        self.check_inputs = check_inputs
        self._grids: dict[str, tuple[Tensor, Tensor, tuple[Tensor, ...], tuple[Tensor, ...]]] = {}
        self._denoise = denoise
        self._constraint = constraint

    def wrap(self, x: State) -> dict[str, Tensor]:
        return {"x": x} if self.single else dict(x)  # type: ignore[arg-type]

    def unwrap(self, x: dict[str, Tensor]) -> State:
        return x["x"] if self.single else x

    def continuous(self) -> list[str]:
        return [k for k, s in self.spaces.items() if not s.is_categorical]

    def categorical(self) -> list[str]:
        return [k for k, s in self.spaces.items() if s.is_categorical]

    def grid(self, key: str) -> tuple[Tensor, Tensor]:
        """``(alpha, sigma)`` on the whole grid, shape (N+1, ...) broadcastable per step against
        component ``key``. Evaluated once, so the loop does no schedule arithmetic."""
        if key not in self._grids:
            alpha, sigma = self.spaces[key].schedule.alpha_sigma(self.times)
            shape = alpha.shape + (1,) * (self.x[key].ndim - self.times.ndim + 1)
            alpha, sigma = alpha.reshape(shape), sigma.reshape(shape)
            self._grids[key] = (alpha, sigma, alpha.unbind(0), sigma.unbind(0))
        return self._grids[key][0], self._grids[key][1]

    def at(self, key: str, i: int) -> tuple[Tensor, Tensor]:
        """``(alpha, sigma)`` at ``times[i]`` for component ``key`` (a view; no tensor ops)."""
        self.grid(key)
        _, _, alphas, sigmas = self._grids[key]
        return alphas[i], sigmas[i]

    def denoise(self, x: dict[str, Tensor], t: Tensor, i: int | None = None) -> dict[str, Tensor]:
        """The x0 estimate at ``t`` (``= times[i]`` when ``i`` is given: a :class:`Denoiser`
        then reuses the grid's coefficients instead of re-evaluating the schedule)."""
        denoise_at = getattr(self._denoise, "denoise_at", None)
        if self.single and i is not None and denoise_at is not None:
            out = {"x": denoise_at(x["x"], t, *self.at("x", i))}
        else:
            out = self.wrap(self._denoise(self.unwrap(x), t))
        return {k: self.spaces[k].project(v, self.masks[k]) for k, v in out.items()}

    def finish_step(self, x: dict[str, Tensor], s: Tensor) -> dict[str, Tensor]:
        x = {k: self.spaces[k].project(v, self.masks[k]) for k, v in x.items()}
        if self._constraint is not None:
            x = self.wrap(self._constraint(self.unwrap(x), s))
        return x

    def alpha_sigma(self, key: str, t: Tensor) -> tuple[Tensor, Tensor]:
        return self.spaces[key].schedule.alpha_sigma(expand_like(t, self.x[key]))

    def step_categorical(
        self, x: dict[str, Tensor], x0: dict[str, Tensor], t: Tensor, s: Tensor
    ) -> None:
        for k in self.categorical():
            x[k] = self.spaces[k].step(x[k], x0[k], t, s, self.masks[k], self.generator)

    def noise(self, key: str, like: Tensor) -> Tensor:
        return self.spaces[key].noise(like, self.masks[key], self.generator)

    def report(self, i: int, t: Tensor, s: Tensor, x: dict, x0: dict) -> None:
        if self.callback is not None:
            self.callback(SamplerStep(i, t, s, self.unwrap(x), self.unwrap(x0)))

    def ends_at_data(self) -> bool:
        """Whether the grid ends at sigma = 0 for every continuous component. Read once,
        before the loop; without input checks (sync-free mode) assume it does not."""
        if not self.check_inputs:
            return False
        last = self.times.shape[0] - 1
        return all(bool((self.at(k, last)[1] == 0).all()) for k in self.continuous())

    def require_positive_alpha(self, t0: Tensor, sampler: str) -> None:
        if not self.check_inputs:
            return
        for k in self.continuous():
            alpha, _ = self.alpha_sigma(k, t0)
            if bool((alpha <= 0).any()):
                raise ValueError(
                    f"{sampler} divides by alpha, which is 0 at times[0] for the "
                    f"{type(self.spaces[k].schedule).__name__}; start below t=1 or use "
                    "'flow_heun' / 'ddim'"
                )


def _eps(x: Tensor, x0: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
    return (x - alpha * x0) / sigma


# An update fills the continuous components of ``new`` (categorical ones already stepped).
Update = Callable[[_Problem, dict, dict, dict, int, Tensor, Tensor], None]


def _run(problem: _Problem, update: Update, name: str, needs_positive_alpha: bool = False) -> State:
    """The loop shared by single-evaluation samplers."""
    if needs_positive_alpha:
        problem.require_positive_alpha(problem.times[0], name)
    times, state = problem.times, problem.x
    for i in range(times.shape[0] - 1):
        t, s = times[i], times[i + 1]
        x0 = problem.denoise(state, t, i)
        new = dict(state)
        problem.step_categorical(new, x0, t, s)
        update(problem, state, x0, new, i, t, s)
        state = problem.finish_step(new, s)
        problem.report(i, t, s, state, x0)
    return problem.unwrap(state)


def sample_ddpm(
    denoise: Denoise,
    x: State,
    times: Tensor,
    *,
    space: Any,
    mask: Any = None,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
    constraint: Constraint | None = None,
    check_inputs: bool = True,
) -> State:
    """DDPM ancestral sampling (Ho et al. 2020): draw ``x_s ~ q(x_s | x_t, x_0 = D(x_t))``.

    For a general Gaussian path ``alpha_{t|s} = alpha_t / alpha_s``,
    ``sigma_{t|s}^2 = sigma_t^2 - alpha_{t|s}^2 sigma_s^2`` and the posterior has mean
    ``(alpha_{t|s} sigma_s^2 x_t + alpha_s sigma_{t|s}^2 x_0) / sigma_t^2`` and variance
    ``sigma_{t|s}^2 sigma_s^2 / sigma_t^2``. Categorical components use their exact posterior,
    so this is also the categorical ancestral sampler.
    """

    def update(p: _Problem, x: dict, x0: dict, new: dict, i: int, t: Tensor, s: Tensor) -> None:
        for k in p.continuous():
            a_t, s_t = p.at(k, i)
            a_s, s_s = p.at(k, i + 1)
            a_ts = a_t / a_s
            var_ts = (s_t**2 - a_ts**2 * s_s**2).clamp_min(0.0)
            mean = (a_ts * s_s**2 * x[k] + a_s * var_ts * x0[k]) / s_t**2
            std = (var_ts * s_s**2 / s_t**2).sqrt()
            new[k] = mean + std * p.noise(k, x[k])

    problem = _Problem(
        denoise, x, times, space, mask, constraint, generator, callback, check_inputs
    )
    return _run(problem, update, "ddpm")


def sample_ddim(
    denoise: Denoise,
    x: State,
    times: Tensor,
    *,
    space: Any,
    mask: Any = None,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
    constraint: Constraint | None = None,
    check_inputs: bool = True,
    eta: float = 0.0,
) -> State:
    """DDIM (Song et al. 2021, eq. 12): ``x_s = alpha_s x_0 + sqrt(sigma_s^2 - c^2) eps + c z``.

    ``c = eta * sqrt(posterior variance)``; ``eta = 0`` is the deterministic probability-flow
    discretisation (identical to EDM's Euler step in ``sigma/alpha``), ``eta = 1`` matches DDPM.
    """

    coefficients: dict[str, tuple[tuple[Tensor, ...], tuple[Tensor, ...]]] = {}

    def update(p: _Problem, x: dict, x0: dict, new: dict, i: int, t: Tensor, s: Tensor) -> None:
        for k in p.continuous():
            if eta == 0:  # x_s = c1 x_t + c2 x0, with both coefficients computed on the grid
                if k not in coefficients:
                    alpha, sigma = p.grid(k)
                    c1 = sigma[1:] / sigma[:-1]
                    coefficients[k] = (c1.unbind(0), (alpha[1:] - c1 * alpha[:-1]).unbind(0))
                c1s, c2s = coefficients[k]
                new[k] = torch.addcmul(c1s[i] * x[k], c2s[i], x0[k])
                continue
            a_t, s_t = p.at(k, i)
            a_s, s_s = p.at(k, i + 1)
            eps = _eps(x[k], x0[k], a_t, s_t)
            out = a_s * x0[k]
            if eta > 0:
                var_ts = (s_t**2 - (a_t / a_s) ** 2 * s_s**2).clamp_min(0.0)
                c = eta * (var_ts * s_s**2 / s_t**2).sqrt()
                out = out + (s_s**2 - c**2).clamp_min(0.0).sqrt() * eps
                new[k] = out + c * p.noise(k, x[k])

    problem = _Problem(
        denoise, x, times, space, mask, constraint, generator, callback, check_inputs
    )
    return _run(problem, update, "ddim")


def sample_dpm_solver_pp_2m(
    denoise: Denoise,
    x: State,
    times: Tensor,
    *,
    space: Any,
    mask: Any = None,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
    constraint: Constraint | None = None,
    check_inputs: bool = True,
) -> State:
    """DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2): second-order multistep in
    ``lambda = log(alpha / sigma)`` with data prediction. The first step and the final step
    to ``sigma = 0`` are first order (the latter lands exactly on ``x_0``)."""
    coefficients: dict[str, tuple[tuple[Tensor, ...], ...]] = {}
    previous: dict[str, Tensor] = {}

    def prepare(p: _Problem, k: str) -> tuple[tuple[Tensor, ...], ...]:
        """Per step: ``x_s = c1 x_t + c2 D'`` with ``D' = D + w (D - D_prev)``."""
        alpha, sigma = p.grid(k)
        lam = torch.log(alpha) - torch.log(sigma)
        h = lam[1:] - lam[:-1]
        c1 = sigma[1:] / sigma[:-1]
        c2 = -alpha[1:] * torch.expm1(-h)
        ratio = torch.cat([torch.zeros_like(h[:1]), h[:-1] / h[1:]])  # r_i = h_{i-1} / h_i
        second_order = torch.isfinite(h) & (ratio > 0)  # not the first step, not into sigma=0
        w = torch.where(second_order, 0.5 / ratio.clamp_min(1e-30), torch.zeros_like(h))
        return c1.unbind(0), c2.unbind(0), w.unbind(0)

    def update(p: _Problem, x: dict, x0: dict, new: dict, i: int, t: Tensor, s: Tensor) -> None:
        for k in p.continuous():
            if k not in coefficients:
                coefficients[k] = prepare(p, k)
            c1, c2, w = (c[i] for c in coefficients[k])
            d = x0[k] if i == 0 else x0[k] + w * (x0[k] - previous[k])
            previous[k] = x0[k]
            new[k] = torch.addcmul(c1 * x[k], c2, d)

    problem = _Problem(
        denoise, x, times, space, mask, constraint, generator, callback, check_inputs
    )
    return _run(problem, update, "dpm_solver_pp_2m")


def _churn(
    p: _Problem,
    x: dict,
    t: Tensor,
    steps: int,
    churn: float,
    s_tmin: float,
    s_tmax: float,
    s_noise: float,
) -> tuple[dict, Tensor]:
    """EDM's stochastic churn (Karras et al. 2022, Alg. 2 lines 5-7) in any schedule.

    Raises the noise level ``sigma/alpha`` by ``1 + gamma`` by moving to an earlier-in-noise
    time ``t_hat`` and adding exactly the forward-process noise between ``t`` and ``t_hat``.
    Returns the churned state and ``t_hat``. Churn needs a single schedule over components.
    """
    if churn <= 0:
        return x, t
    gamma_max = min(churn / steps, math.sqrt(2.0) - 1.0)
    key = p.continuous()[0]
    schedule = p.spaces[key].schedule
    a_t, s_t = schedule.alpha_sigma(t)
    noise_level = s_t / a_t
    active = (noise_level >= s_tmin) & (noise_level <= s_tmax)
    gamma = torch.where(active, torch.full_like(t, gamma_max), torch.zeros_like(t))
    t_hat = schedule.t_from_log_snr(schedule.log_snr(t) - 2.0 * torch.log1p(gamma))
    t_hat = torch.where(gamma > 0, torch.maximum(t_hat, t), t)
    out = dict(x)
    for k in p.continuous():
        a_i, s_i = p.alpha_sigma(k, t)
        a_h, s_h = p.alpha_sigma(k, t_hat)
        ratio = torch.where(expand_like(gamma, x[k]) > 0, a_h / a_i, torch.ones_like(a_i))
        std = (s_h**2 - ratio**2 * s_i**2).clamp_min(0.0).sqrt()
        out[k] = ratio * x[k] + s_noise * std * p.noise(k, x[k])
    return out, t_hat


def _edm(
    problem: _Problem,
    name: str,
    second_order: bool,
    churn: float,
    s_tmin: float,
    s_tmax: float,
    s_noise: float,
) -> State:
    times = problem.times
    if second_order or churn > 0:
        problem.require_positive_alpha(times[0], name)
    state = problem.x
    steps = times.shape[0] - 1
    last_corrected = steps - 2 if problem.ends_at_data() else steps - 1
    for i in range(steps):
        t, s = times[i], times[i + 1]
        state, t_hat = _churn(problem, state, t, steps, churn, s_tmin, s_tmax, s_noise)
        x0 = problem.denoise(state, t_hat, i if churn <= 0 else None)
        new = dict(state)
        problem.step_categorical(new, x0, t_hat, s)
        eps = {}
        for k in problem.continuous():
            a_h, s_h = problem.at(k, i) if churn <= 0 else problem.alpha_sigma(k, t_hat)
            a_s, s_s = problem.at(k, i + 1)
            eps[k] = _eps(state[k], x0[k], a_h, s_h)
            new[k] = a_s * x0[k] + s_s * eps[k]  # Euler step in sigma/alpha (= DDIM)
        if second_order and i <= last_corrected:
            predicted = problem.finish_step(new, s)
            x0_next = problem.denoise(predicted, s, i + 1)
            for k in problem.continuous():
                a_h, s_h = problem.at(k, i) if churn <= 0 else problem.alpha_sigma(k, t_hat)
                a_s, s_s = problem.at(k, i + 1)
                eps_next = _eps(predicted[k], x0_next[k], a_s, s_s)
                # Heun in x/alpha: x~_s = x~_hat + (sigma~_s - sigma~_hat) (d + d') / 2, d = eps
                heun = (
                    a_s * x0[k]
                    + a_s * (s_h / a_h) * (eps[k] - eps_next) / 2.0
                    + s_s * (eps[k] + eps_next) / 2.0
                )
                new[k] = torch.where(s_s > 0, heun, new[k])
        state = problem.finish_step(new, s)
        problem.report(i, t, s, state, x0)
    return problem.unwrap(state)


def sample_euler(
    denoise: Denoise,
    x: State,
    times: Tensor,
    *,
    space: Any,
    mask: Any = None,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
    constraint: Constraint | None = None,
    check_inputs: bool = True,
    churn: float = 0.0,
    s_tmin: float = 0.0,
    s_tmax: float = float("inf"),
    s_noise: float = 1.0,
) -> State:
    """EDM Euler (Karras et al. 2022, Alg. 2 without the correction) with optional churn.

    Steps the probability-flow ODE in the noise level ``sigma/alpha``; ``churn`` (EDM's
    ``S_churn``) adds noise within ``[s_tmin, s_tmax]`` (noise-level units) before each step.
    """
    problem = _Problem(
        denoise, x, times, space, mask, constraint, generator, callback, check_inputs
    )
    return _edm(problem, "euler", False, churn, s_tmin, s_tmax, s_noise)


def sample_heun(
    denoise: Denoise,
    x: State,
    times: Tensor,
    *,
    space: Any,
    mask: Any = None,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
    constraint: Constraint | None = None,
    check_inputs: bool = True,
    churn: float = 0.0,
    s_tmin: float = 0.0,
    s_tmax: float = float("inf"),
    s_noise: float = 1.0,
) -> State:
    """EDM Heun (Karras et al. 2022, Alg. 2): Euler plus a trapezoidal correction, skipped on
    the final step to ``sigma = 0``; ``2N - 1`` network evaluations for N steps. Needs
    ``alpha(times[0]) > 0`` (use ``flow_heun`` for rectified-flow schedules started at 1)."""
    problem = _Problem(
        denoise, x, times, space, mask, constraint, generator, callback, check_inputs
    )
    return _edm(problem, "heun", True, churn, s_tmin, s_tmax, s_noise)


def _velocity(p: _Problem, k: str, x: Tensor, x0: Tensor, t: Tensor, i: int) -> Tensor:
    """Probability-flow velocity ``alpha'(t) x_0 + sigma'(t) eps`` of any schedule at
    ``t = times[i]``."""
    alpha, sigma = p.at(k, i)
    d_alpha, d_sigma = p.spaces[k].schedule.d_alpha_sigma(expand_like(t, x))
    return d_alpha * x0 + d_sigma * _eps(x, x0, alpha, sigma)


def _flow(problem: _Problem, second_order: bool) -> State:
    times, state = problem.times, problem.x
    steps = times.shape[0] - 1
    last_corrected = steps - 2 if problem.ends_at_data() else steps - 1
    for i in range(steps):
        t, s = times[i], times[i + 1]
        x0 = problem.denoise(state, t, i)
        new = dict(state)
        problem.step_categorical(new, x0, t, s)
        velocity = {}
        for k in problem.continuous():
            velocity[k] = _velocity(problem, k, state[k], x0[k], t, i)
            new[k] = state[k] + expand_like(s - t, state[k]) * velocity[k]
        if second_order and i <= last_corrected:
            predicted = problem.finish_step(new, s)
            x0_next = problem.denoise(predicted, s, i + 1)
            for k in problem.continuous():
                v_next = _velocity(problem, k, predicted[k], x0_next[k], s, i + 1)
                dt = expand_like(s - t, state[k])
                heun = state[k] + dt * (velocity[k] + v_next) / 2.0
                _, s_s = problem.at(k, i + 1)
                new[k] = torch.where(s_s > 0, heun, new[k])
        state = problem.finish_step(new, s)
        problem.report(i, t, s, state, x0)
    return problem.unwrap(state)


def sample_flow_euler(
    denoise: Denoise,
    x: State,
    times: Tensor,
    *,
    space: Any,
    mask: Any = None,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
    constraint: Constraint | None = None,
    check_inputs: bool = True,
) -> State:
    """Euler on the flow ODE ``dx/dt = alpha'(t) x_0 + sigma'(t) eps`` in schedule time
    (flow matching's sampler; Lipman et al. 2023). Works from ``t = 1`` on every schedule."""
    problem = _Problem(
        denoise, x, times, space, mask, constraint, generator, callback, check_inputs
    )
    return _flow(problem, False)


def sample_flow_heun(
    denoise: Denoise,
    x: State,
    times: Tensor,
    *,
    space: Any,
    mask: Any = None,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
    constraint: Constraint | None = None,
    check_inputs: bool = True,
) -> State:
    """Heun (trapezoidal) on the flow ODE in schedule time; the final step to ``sigma = 0``
    is Euler, so N steps cost ``2N - 1`` evaluations."""
    problem = _Problem(
        denoise, x, times, space, mask, constraint, generator, callback, check_inputs
    )
    return _flow(problem, True)


def sample_euler_maruyama(
    denoise: Denoise,
    x: State,
    times: Tensor,
    *,
    space: Any,
    mask: Any = None,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
    constraint: Constraint | None = None,
    check_inputs: bool = True,
) -> State:
    """Euler–Maruyama on the reverse-time SDE (Song et al. 2021, eq. 6).

    With drift ``f = alpha'/alpha`` and diffusion ``g^2 = 2 sigma^2 (sigma'/sigma - f)`` of the
    forward SDE and score ``-eps/sigma``:
    ``x_s = x_t + (f x_t + g^2 eps / sigma)(s - t) + g sqrt(t - s) z``. The last step adds no
    noise (the usual "denoised final step"). Needs ``alpha(times[0]) > 0``.
    """

    def update(p: _Problem, x: dict, x0: dict, new: dict, i: int, t: Tensor, s: Tensor) -> None:
        last = p.times.shape[0] - 2
        for k in p.continuous():
            tt = expand_like(t, x[k])
            alpha, sigma = p.at(k, i)
            d_alpha, d_sigma = p.spaces[k].schedule.d_alpha_sigma(tt)
            f = d_alpha / alpha
            g2 = (2.0 * sigma * (d_sigma - f * sigma)).clamp_min(0.0)
            eps = _eps(x[k], x0[k], alpha, sigma)
            dt = expand_like(s - t, x[k])
            out = x[k] + (f * x[k] + g2 * eps / sigma) * dt
            if i < last:
                out = out + (g2 * -dt).sqrt() * p.noise(k, x[k])
            new[k] = out

    problem = _Problem(
        denoise, x, times, space, mask, constraint, generator, callback, check_inputs
    )
    return _run(problem, update, "euler_maruyama", needs_positive_alpha=True)


SAMPLERS: dict[str, Callable[..., State]] = {
    "ddpm": sample_ddpm,
    "ddim": sample_ddim,
    "dpm_solver_pp_2m": sample_dpm_solver_pp_2m,
    "euler": sample_euler,
    "heun": sample_heun,
    "flow_euler": sample_flow_euler,
    "flow_heun": sample_flow_heun,
    "euler_maruyama": sample_euler_maruyama,
    "categorical": sample_ddpm,
}
"""Every sampler by name. ``categorical`` is DDPM's loop, whose categorical rule is exact."""

_TWO_EVALUATIONS = {"heun", "flow_heun"}


def get_sampler(name: str) -> Callable[..., State]:
    """Look a sampler up by name; unknown names raise ``ValueError`` listing the accepted ones."""
    return choose("sampler", name, SAMPLERS)


def function_evaluations(name: str, steps: int) -> int:
    """Network evaluations (NFE) a sampler spends on ``steps`` steps."""
    get_sampler(name)
    return 2 * steps - 1 if name in _TWO_EVALUATIONS else steps


def sample(
    name: str,
    denoise: Denoise,
    x: State,
    times: Tensor,
    *,
    space: Any,
    **options: Any,
) -> State:
    """Run the sampler called ``name`` (see :data:`SAMPLERS`) with the common signature."""
    return get_sampler(name)(denoise, x, times, space=space, **options)
