"""Guidance: wrappers around a denoise function (and, for inpainting, a state constraint).

* :func:`classifier_free` — ``D = D_u + w (D_c - D_u)`` (Ho & Salimans 2022) in x0 space;
  ``w = 0`` is the unconditional model, ``w = 1`` the conditional one.
* :class:`ClassifierFreeGuidance` — the same on a :class:`~.parameterization.Denoiser`, for
  any space (categorical components guided in logit space), both branches in one batch.
* :func:`drop_condition` — the training-time condition dropout that CFG needs.
* :func:`gradient_guidance` — steer with any differentiable ``log p(y | x_0)``-like function
  (classifier log-probability, negative energy, negative constraint violation).
* :func:`reconstruction_guidance` — steer the free part of a sample towards agreement with
  known values through the denoiser's Jacobian, with a normalized, clipped step that skips
  (and warns about) non-finite gradients.
* :class:`Inpainting` — known values (fixed first states of a trajectory, a fixed molecular
  substructure; continuous or categorical components) held exactly in the final sample;
  :meth:`Inpainting.sample` adds RePaint's resampling and/or reconstruction guidance so the
  free part follows the fixed one.

Every wrapper returns ``denoise(x, t, mask=None)`` and passes ``mask`` on to the wrapped
function when that one takes it (decided once, when the wrapper is built).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from ._checks import accepts_keyword
from .parameterization import edm_coefficients, expand_like
from .samplers import sample as _sample
from .schedules import Schedule
from .spaces import ProductSpace, SpaceProtocol, State

ConditionalDenoise = Callable[[Tensor, Tensor, Any], Tensor]
_NO_CATEGORICAL_GUIDANCE = (
    "reconstruction guidance needs a known continuous component: a categorical one-hot state "
    "has no gradient; hold categorical values with replacement and resample=r instead"
)


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
    takes_mask = accepts_keyword(denoise, "mask")

    def call(x: Tensor, t: Tensor, c: Any, mask: Any) -> Tensor:
        return denoise(x, t, c, mask=mask) if takes_mask else denoise(x, t, c)

    if scale == 0.0:
        return lambda x, t, mask=None: call(x, t, null_cond, mask)
    if scale == 1.0:
        return lambda x, t, mask=None: call(x, t, cond, mask)

    def guided(x: Tensor, t: Tensor, mask: Any = None) -> Tensor:
        if isinstance(cond, Tensor) and isinstance(null_cond, Tensor):
            tt = t if t.ndim == 0 else torch.cat([t, t])
            mm = mask if not isinstance(mask, Tensor) else torch.cat([mask, mask])
            both = call(torch.cat([x, x]), tt, torch.cat([cond, null_cond]), mm)
            conditional, unconditional = both.chunk(2)
        else:
            conditional, unconditional = call(x, t, cond, mask), call(x, t, null_cond, mask)
        return unconditional + scale * (conditional - unconditional)

    return guided


def _twice(value: Any) -> Any:
    """``value`` stacked with itself along the batch (tensors, dicts of them, or None)."""
    if isinstance(value, Tensor):
        return torch.cat([value, value])
    if isinstance(value, dict):
        return {k: _twice(v) for k, v in value.items()}
    return value


def _halves(value: Any) -> tuple[Any, Any]:
    if isinstance(value, Tensor):
        first, second = value.chunk(2)
        return first, second
    pairs = {k: _halves(v) for k, v in value.items()}
    return {k: p[0] for k, p in pairs.items()}, {k: p[1] for k, p in pairs.items()}


class ClassifierFreeGuidance:
    """Classifier-free guidance on a :class:`~.parameterization.Denoiser` whose network takes
    conditioning keywords; any space, product spaces included.

    The two branches are combined on the *network output*, ``o = o_u + w (o_c - o_u)``: for a
    continuous component that is the same as combining the x0 estimates (x0 is affine in the
    output at fixed ``x_t``: Ho & Salimans 2022); for a categorical component it combines
    logits, i.e. ``p ∝ p_u^(1-w) p_c^w`` — the form that stays a distribution for every
    ``w`` (a linear mix of probabilities goes negative for ``w > 1``). ``w = 0`` is the
    unconditional model, ``w = 1`` the conditional one; both halves run as one batch of 2B.

    Args:
        denoiser: the wrapped denoiser.
        cond: the conditioning keywords, e.g. ``{"properties": (B, P)}``.
        null_cond: the same keywords in their "no condition" form (same shapes).
        scale: the guidance weight ``w``.

    Returns ``denoise(x, t, mask=None) -> x0`` like any denoiser (and ``denoise_at``).
    """

    def __init__(
        self, denoiser: Any, cond: dict[str, Tensor], null_cond: dict[str, Tensor], scale: float
    ) -> None:
        if sorted(cond) != sorted(null_cond):
            raise ValueError(
                f"cond and null_cond must name the same keywords: {sorted(cond)} vs "
                f"{sorted(null_cond)}"
            )
        if not isinstance(scale, (int, float)) or scale != scale:
            raise ValueError(f"guidance scale must be a finite number, got {scale!r}")
        self.denoiser, self.cond, self.null_cond, self.scale = (
            denoiser,
            cond,
            null_cond,
            float(scale),
        )

    def network_output(self, x_t: Any, t: Tensor, *, mask: Any = None) -> Any:
        """The guided network output (what :meth:`Denoiser.to_x0` turns into x0)."""
        den = self.denoiser
        if self.scale == 0.0:
            return den.network_output(x_t, t, mask=mask, **self.null_cond)
        if self.scale == 1.0:
            return den.network_output(x_t, t, mask=mask, **self.cond)
        both_cond = {k: torch.cat([self.cond[k], self.null_cond[k]]) for k in self.cond}
        both = den.network_output(_twice(x_t), t if t.ndim == 0 else torch.cat([t, t]),
                                  mask=_twice(mask), **both_cond)  # fmt: skip
        conditional, unconditional = _halves(both)
        w = self.scale
        if isinstance(conditional, Tensor):
            return unconditional + w * (conditional - unconditional)
        return {k: unconditional[k] + w * (conditional[k] - unconditional[k]) for k in conditional}

    def __call__(self, x_t: Any, t: Tensor, mask: Any = None) -> Any:
        return self.denoiser.to_x0(self.network_output(x_t, t, mask=mask), x_t, t)

    def denoise_at(
        self, x_t: Any, t: Tensor, alpha: Tensor, sigma: Tensor, mask: Any = None
    ) -> Any:
        return self(x_t, t, mask=mask)


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


def _with_mask(denoise: Callable[..., Any]) -> Callable[[Any, Tensor, Any], Any]:
    """``call(x, t, mask)`` that passes ``mask`` only to a function that takes it."""
    if accepts_keyword(denoise, "mask"):
        return lambda x, t, mask: denoise(x, t, mask=mask)
    return lambda x, t, mask: denoise(x, t)


def _per_sample_norm(values: list[Tensor]) -> Tensor:
    """Euclidean norm over everything but the batch dimension, summed over ``values``."""
    return sum(v.reshape(v.shape[0], -1).pow(2).sum(1) for v in values).sqrt()  # type: ignore[union-attr]


def skip_non_finite_steps(step: list[Tensor], what: str, t: Tensor, advice: str) -> list[Tensor]:
    """Zero the guidance step of every sample whose step is not finite, and warn once per call.

    ``step``: tensors ``(B, ...)`` with a shared batch dimension (one per state component);
    a sample is skipped when any of its entries in any tensor is NaN/inf. ``what`` names the
    guidance in the warning, ``t`` ``(B,)`` or scalar is the time it reports, ``advice`` the
    fix it suggests. Returns the tensors, same shapes. Reads one value on the host per call
    (guidance already runs a backward pass through the network, so this costs nothing
    extra worth avoiding)."""
    finite = torch.stack([v.reshape(v.shape[0], -1).isfinite().all(1) for v in step]).all(0)
    bad = int((~finite).sum())
    if bad:
        tt = float(t.reshape(-1)[0]) if t.numel() else float("nan")
        warnings.warn(
            f"{what}: non-finite guidance step for {bad} of {finite.numel()} samples at "
            f"t={tt:.3g}; their step was skipped (the state is not touched by it). {advice}",
            RuntimeWarning,
            stacklevel=3,
        )
        step = [torch.where(expand_like(finite, v), v, torch.zeros_like(v)) for v in step]
    return step


def _clip(step: list[Tensor], max_norm: float | None) -> list[Tensor]:
    if max_norm is None:
        return step
    norm = _per_sample_norm(step)
    factor = (max_norm / norm.clamp_min(1e-30)).clamp_max(1.0)
    return [v * expand_like(factor, v) for v in step]


def gradient_guidance(
    denoise: Callable[..., Tensor],
    log_prob: Callable[[Tensor, Tensor], Tensor],
    schedule: Schedule,
    scale: float = 1.0,
    *,
    through_denoiser: bool = True,
    min_alpha: float = 1e-2,
    sigma_data: float = 1.0,
    max_norm: float | None = None,
) -> Callable[..., Tensor]:
    """Add ``scale * grad log p(y | x_t)`` to the score, expressed on x0.

    ``log_prob(x0, t)`` returns one value per sample (B,). With ``through_denoiser`` the
    gradient flows through the network (DPS, Chung et al. 2023:
    ``grad_x log p(y | x_t) ~ grad_x log_prob(D(x_t))``); otherwise it is taken at ``x0 = D``
    and mapped by the Jacobian ``d x0 / d x_t`` of Gaussian data with standard deviation
    ``sigma_data``, EDM's ``c_skip = alpha sigma_d^2 / (sigma^2 + alpha^2 sigma_d^2)`` (cheaper,
    no backward through the network; -> 1/alpha at low noise, -> 0 at high noise).
    The score shift becomes ``D' = D + scale (sigma^2 / alpha) grad``; ``alpha`` is floored
    at ``min_alpha`` so guidance stays finite at the start of sampling.

    **Scale.** ``sigma^2 / alpha`` reaches ``1 / min_alpha = 100`` near ``t = 1``, so with a
    sharp ``log_prob`` (large gradients) or a trained network's rough Jacobian the shift can
    exceed the data's scale by orders of magnitude and the samples diverge. Start with
    ``scale`` well below 1 and raise it while the samples stay in range; ``max_norm`` caps the
    shift's norm per sample (in data units, e.g. the data's typical norm). To make a sample
    agree with known values, prefer :func:`reconstruction_guidance` (normalized step) or
    :class:`Inpainting` with resampling. A non-finite shift is skipped for that sample, with a
    ``RuntimeWarning``.
    Must not run under ``torch.inference_mode`` (use ``torch.no_grad`` around sampling).
    """
    call = _with_mask(denoise)
    advice = (
        "Lower `scale`, set `max_norm`, sample in float64, or use reconstruction_guidance / "
        "Inpainting(...).sample(resample=...) for known values."
    )

    def guided(x: Tensor, t: Tensor, mask: Any = None) -> Tensor:
        alpha_raw, sigma = schedule.alpha_sigma(expand_like(t, x))
        alpha = alpha_raw.clamp_min(min_alpha)
        with torch.enable_grad():
            if through_denoiser:
                x_in = x.detach().requires_grad_(True)
                x0 = call(x_in, t, mask)
                (grad,) = torch.autograd.grad(log_prob(x0, t).sum(), x_in)
                x0 = x0.detach()
            else:
                x0 = call(x, t, mask).detach().requires_grad_(True)
                (grad,) = torch.autograd.grad(log_prob(x0, t).sum(), x0)
                grad = grad * edm_coefficients(alpha_raw, sigma, sigma_data)[0]
        (shift,) = skip_non_finite_steps(
            [scale * (sigma**2 / alpha) * grad], "gradient_guidance", t, advice
        )
        (shift,) = _clip([shift], max_norm)
        return x0.detach() + shift

    return guided


def _as_dict(value: Any) -> dict[str, Any]:
    return {"x": value} if isinstance(value, Tensor) else dict(value)


def reconstruction_guidance(
    denoise: Callable[..., State],
    known: State,
    known_mask: Tensor | dict[str, Tensor],
    scale: float = 4.0,
    *,
    max_norm: float | None = None,
) -> Callable[..., State]:
    """Reconstruction guidance (Ho et al. 2022, "Video diffusion models", eq. 7) with a
    normalized, clipped step: the x0 estimate moves along ``g = J^T M (y - D(x_t))`` (``J`` the
    denoiser's Jacobian ``dD/dx_t``, ``M`` the known mask, ``y`` the known values), the
    direction in which changing the state makes the prediction agree with ``y``::

        D'(x_t) = D(x_t) + scale * ||M (y - D)|| * g / ||M g||      (per sample)

    * **normalized** — the step's length on the known entries is ``scale`` times the current
      disagreement ``||M (y - D)||``, whatever the Jacobian's size or the noise level
      (DPS-style step size ``zeta / ||y - A x0||``, Chung et al. 2023), so a sharp network
      cannot blow it up the way ``sigma^2 / alpha`` factors do. ``scale = 1`` is one step of
      Gaussian conditioning (the free part moves by its regression on the known part's
      disagreement); a multimodal posterior needs more: 4 is the default (98.6% right mode
      on the test mixture, docs/core.md), tune between 2 and 16;
    * **clipped** — ``max_norm`` caps the step's norm per sample (data units), for data
      whose disagreement can be large early in sampling;
    * **non-finite** gradients (an overflowing Jacobian) skip that sample's step, with a
      ``RuntimeWarning`` saying what to change.

    Use with :class:`Inpainting` (its ``wrap`` then writes the known values exactly); for
    dict states ``known`` names the (continuous) components to agree with. The gradient flows
    through the network: run under ``torch.no_grad`` (not ``inference_mode``). Cost: one
    backward pass per evaluation.
    """
    if not scale >= 0:
        raise ValueError(f"scale must be >= 0; got {scale!r}")
    if max_norm is not None and not max_norm > 0:
        raise ValueError(f"max_norm must be > 0 or None; got {max_norm!r}")
    values = _as_dict(known)
    masks = _as_dict(known_mask)
    for k, v in values.items():
        m = masks.get(k)
        if m is None or m.dtype != torch.bool or m.shape != v.shape:
            raise ValueError(
                f"known_mask for {k!r} must be a bool tensor shaped like the known values "
                f"{tuple(v.shape)}"
            )
    single = isinstance(known, Tensor)
    call = _with_mask(denoise)
    advice = (
        "The denoiser's Jacobian overflowed: lower `scale`, set `max_norm`, sample in "
        "float64, or use Inpainting(...).sample(resample=r), which needs no gradients."
    )

    def guided(x: State, t: Tensor, mask: Any = None) -> State:
        state = _as_dict(x)
        with torch.enable_grad():
            inputs = {k: v.detach().requires_grad_(k in values) for k, v in state.items()}
            x0 = _as_dict(call(inputs["x"] if single else inputs, t, mask))
            residual = {
                k: torch.where(masks[k], values[k].to(x0[k].dtype) - x0[k], torch.zeros_like(x0[k]))
                for k in values
            }
            loss = 0.5 * sum(r.pow(2).sum() for r in residual.values())
            wrt = [inputs[k] for k in values]
            grads = torch.autograd.grad(loss, wrt, allow_unused=True)  # = -J^T M r
        direction = [
            torch.zeros_like(v) if g is None else -g for g, v in zip(grads, wrt, strict=True)
        ]
        residual_norm = _per_sample_norm([r.detach() for r in residual.values()])
        on_known = [
            torch.where(masks[k], d, torch.zeros_like(d))
            for k, d in zip(values, direction, strict=True)
        ]
        gain = scale * residual_norm / _per_sample_norm(on_known).clamp_min(1e-30)
        step = [d * expand_like(gain, d) for d in direction]
        step = _clip(skip_non_finite_steps(step, "reconstruction_guidance", t, advice), max_norm)
        out = {k: v.detach() for k, v in x0.items()}
        for k, d in zip(values, step, strict=True):
            out[k] = out[k] + d.to(out[k].dtype)
        return out["x"] if single else out

    return guided


class Inpainting:
    """Hold known values fixed: ``known`` where ``known_mask`` is true, sampled elsewhere.

    The simplest use is :meth:`sample`, which wires everything. By hand, use both halves:
    ``denoise=inpaint.wrap(denoise)`` replaces the x0 estimate on known entries and
    ``constraint=inpaint.constraint`` re-noises the known values to the sampler's current time
    after every step (replacement, as in RePaint / Diffusion Policy). At ``s = 0`` the state
    equals ``known`` exactly on the mask (bitwise, on every schedule with ``sigma(0) = 0``).
    Works for a tensor state or a dict of them (only the components present in ``known`` are
    constrained).

    **Forward processes.** ``schedules`` says how each known component is re-noised: a
    :class:`~.schedules.Schedule` (or a continuous space) re-noises it with Gaussian noise,
    ``alpha_s known + sigma_s eps``; a :class:`~.categorical.CategoricalSpace` (one-hot
    states, e.g. atom or bond types) draws it from that space's own forward process
    ``q(x_s | x_0 = known)`` (:meth:`~.categorical.CategoricalSpace.sample_xt`: kept with
    probability ``a(s)``, otherwise drawn from the limit distribution; symmetric edge
    components get symmetric noise). Pass a dict of them, or the sampling
    :class:`~.spaces.ProductSpace` itself (each known component then uses its own space).
    A categorical known value is a one-hot row per entry and its mask must cover whole rows
    (all K classes or none). Where ``a(s) = 1`` (``s = 0`` on every built-in schedule) the
    known one-hot rows are written as they are, so they are exact in the output.

    Replacement alone keeps the known entries but the free part follows them only weakly (on
    a 4-mode mixture whose known ends pin the mode it picks the right one 44-48% of the
    time; docs/core.md). Add ``resample=r`` (RePaint's resampling; for categorical
    components the jump back is the space's ``q(x_t | x_s)``) and/or reconstruction
    guidance (``guidance=scale``, continuous components only) — see :meth:`sample`.
    """

    def __init__(
        self,
        known: State,
        known_mask: Tensor | dict[str, Tensor],
        schedules: Any,
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
        if isinstance(schedules, ProductSpace):
            schedules = dict(schedules.components())
        self.schedules = {"x": schedules} if self.single else dict(schedules)  # type: ignore[arg-type]
        #: the known components re-noised by a categorical forward process, with their space
        self.categorical: dict[str, Any] = {}
        for k in self.known:
            process = self.schedules.get(k)
            if process is None:
                raise ValueError(f"no schedule or space for the known component {k!r}")
            if getattr(process, "is_categorical", False):
                self._check_categorical(k, process)
                self.categorical[k] = process
            elif not hasattr(process, "alpha_sigma"):  # a continuous space: its schedule
                self.schedules[k] = process.schedule
        self.generator = generator

    def _check_categorical(self, key: str, space: Any) -> None:
        value, mask = self.known[key], self.masks[key]
        if value.shape[-1] != space.num_classes:
            raise ValueError(
                f"known values of the categorical component {key!r} must be one-hot with last "
                f"dim K={space.num_classes}; got shape {tuple(value.shape)}"
            )
        if not torch.equal(mask.all(-1), mask.any(-1)):
            raise ValueError(
                f"known_mask for the categorical component {key!r} must cover whole one-hot "
                "rows (all K classes of an entry, or none)"
            )

    def _replace(self, state: State, values: dict[str, Tensor]) -> State:
        d = {"x": state} if self.single else dict(state)  # type: ignore[arg-type]
        for k, v in values.items():
            d[k] = torch.where(self.masks[k], v, d[k])
        return d["x"] if self.single else d

    def wrap(self, denoise: Callable[..., State]) -> Callable[..., State]:
        """``denoise`` with its x0 estimate replaced by the known values on the mask (for a
        categorical component: the probabilities ``p(x_0 | x_t)`` become the known one-hot
        rows)."""
        call = _with_mask(denoise)
        return lambda x, t, mask=None: self._replace(call(x, t, mask), self.known)

    def constraint(self, state: State, s: Tensor) -> State:
        noised = {}
        for k, value in self.known.items():
            space = self.categorical.get(k)
            if space is not None:
                noised[k] = self._categorical_noise(space, value, s)
                continue
            alpha, sigma = self.schedules[k].alpha_sigma(expand_like(s, value))
            eps = torch.randn(
                value.shape, generator=self.generator, device=value.device, dtype=value.dtype
            )
            noised[k] = alpha * value + sigma * eps
        return self._replace(state, noised)

    def _categorical_noise(self, space: Any, value: Tensor, s: Tensor) -> Tensor:
        """A draw from ``q(x_s | x_0 = value)``; exactly ``value`` where ``a(s) = 1`` (the
        inverse-CDF draw is not guaranteed to return a point mass's class for ``u = 0``)."""
        s = s.to(value.dtype)
        draw = space.sample_xt(value, s, generator=self.generator)
        exact = expand_like(space.keep_probability(s) >= 1.0, value)
        return torch.where(exact, value, draw.to(value.dtype))

    def guide(
        self, denoise: Callable[..., State], scale: float = 4.0, *, max_norm: float | None = None
    ) -> Callable[..., State]:
        """:func:`reconstruction_guidance` towards this object's known continuous values
        (categorical components have no gradient with respect to their one-hot state)."""
        if self.single:
            if self.categorical:
                raise ValueError(_NO_CATEGORICAL_GUIDANCE)
            return reconstruction_guidance(
                denoise, self.known["x"], self.masks["x"], scale, max_norm=max_norm
            )
        continuous = [k for k in self.known if k not in self.categorical]
        if not continuous:
            raise ValueError(_NO_CATEGORICAL_GUIDANCE)
        known = {k: self.known[k] for k in continuous}
        masks = {k: self.masks[k] for k in continuous}
        return reconstruction_guidance(denoise, known, masks, scale, max_norm=max_norm)

    def sample(
        self,
        name: str,
        denoise: Callable[..., State],
        x: State,
        times: Tensor,
        *,
        space: SpaceProtocol,
        resample: int = 0,
        guidance: float = 0.0,
        max_norm: float | None = None,
        **options: Any,
    ) -> State:
        """Sample with the known values held and the free part made to follow them.

        ``resample=r`` — RePaint's resampling: every step is redone ``r`` extra times after
        re-noising back (``(1 + r)`` x the NFE, no gradients; categorical components jump
        back with their own ``q(x_t | x_s)``). ``guidance=scale`` —
        :func:`reconstruction_guidance` on the known continuous components (one backward pass
        per evaluation; a ``ValueError`` when every known component is categorical). Both at 0
        is plain replacement. Which to use, and measured rates: docs/core.md, "Conditioning on a
        known part". Other options go to the sampler (``generator=``, ``mask=``, ``eta=``, ...).
        """
        if guidance:
            denoise = self.guide(denoise, guidance, max_norm=max_norm)
        return _sample(
            name, self.wrap(denoise), x, times, space=space, constraint=self.constraint,
            resample=resample, **options,
        )  # fmt: skip
