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

from ._checks import accepts_keyword, choose
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
    """Wrap a network into the samplers' convention ``denoise(x_t, t, *, mask=None, **cond)
    -> x_0``.

    **What the network receives** (the same for every space)::

        net(x_t, t, mask=..., **cond) -> output

    * ``x_t`` — the noisy state: a tensor for a single space, a dict for a
      :class:`~sci_diffusion.core.spaces.ProductSpace` (categorical components as one-hot
      floats, padded entries zero);
    * ``t`` — times of shape (B,) (scalar times are broadcast); with ``prediction="edm"``
      (single spaces) the network gets EDM's ``(c_in * x_t, c_noise)`` instead;
    * ``mask`` — the space's mask, structured like the state (a tensor or ``None``; for a
      product, a dict with every component's key, ``None`` where unmasked). It is passed only
      to networks that take it: when the signature of ``net`` (its ``forward`` for modules)
      names a parameter ``mask``, checked once here. ``mask_keyword="node_mask"`` passes it
      under another name (always, without inspecting), ``mask_keyword=False`` never;
    * ``**cond`` — conditioning keywords given to the call (or fixed by :meth:`bind`).

    The output is shaped like ``x_t``; categorical components output *logits* (B, ..., K),
    turned into probabilities ``p(x_0 | x_t)`` here. Continuous outputs are projected onto
    their space (padding zeroed; zero centre of mass on a ``CoMFreeSpace``), so the training
    loss never counts the components the space does not have.

    Args:
        net: the network.
        space: the space trained on (any :class:`~.spaces.SpaceProtocol`), or for a single
            unmasked tensor just its schedule.
        prediction: ``epsilon`` (the default), ``x0``, ``v``, ``velocity`` or ``edm`` for the
            continuous components; a dict per continuous component for product spaces.
            Categorical components take none (they always output logits of ``x_0``): a
            prediction for them raises ``ValueError``.
        sigma_data: data standard deviation used by ``edm`` preconditioning.
        mask_keyword: ``None`` (detect ``mask`` in the signature), a keyword name, or
            ``False``.
    """

    def __init__(
        self,
        net: Network,
        space: Any,
        prediction: str | dict[str, str] | None = None,
        sigma_data: float = 0.5,
        *,
        mask_keyword: str | bool | None = None,
    ) -> None:
        self.net = net
        if isinstance(space, Schedule):
            self.components: dict[str, Any] = {"x": _ScheduleOnly(space)}
        elif callable(getattr(space, "components", None)):
            self.components = {("x" if k is None else k): sub for k, sub in space.components()}
        else:
            raise ValueError(
                "space must be a space (EuclideanSpace, CoMFreeSpace, CategoricalSpace, "
                f"ProductSpace) or a Schedule; got {type(space).__name__}"
            )
        continuous = [k for k, s in self.components.items() if not s.is_categorical]
        categorical = [k for k, s in self.components.items() if s.is_categorical]
        self.single = (
            "x" in self.components
            and len(self.components) == 1
            and not isinstance(prediction, dict)
        )
        if prediction is None:
            prediction = {k: "epsilon" for k in continuous}
        elif isinstance(prediction, str):
            check_prediction(prediction)
            if not continuous:
                raise ValueError(
                    f"prediction={prediction!r} applies to continuous components, and this "
                    "space is categorical only: its network outputs logits of x_0 (the "
                    "Denoiser applies the softmax). Drop prediction=."
                )
            prediction = {k: prediction for k in continuous}
        else:
            on_categorical = sorted(k for k in prediction if k in categorical)
            if on_categorical:
                raise ValueError(
                    f"prediction given for categorical components {on_categorical}: they "
                    "always output logits of x_0; name only continuous components "
                    f"{sorted(continuous)}"
                )
            unknown = sorted(set(prediction) - set(self.components))
            if unknown:
                raise ValueError(
                    f"prediction names unknown components {unknown}; the space has "
                    f"{sorted(self.components)}"
                )
        missing = [k for k in continuous if k not in prediction]
        if missing:
            raise ValueError(f"prediction missing for continuous components {missing}")
        self.prediction = {k: check_prediction(v) for k, v in prediction.items()}
        if "edm" in self.prediction.values() and len(self.components) > 1:
            raise ValueError("prediction='edm' is supported for single spaces only")
        self.sigma_data = sigma_data
        if mask_keyword is None:
            self.mask_keyword: str | None = "mask" if accepts_keyword(net, "mask") else None
        elif mask_keyword is False:
            self.mask_keyword = None
        elif isinstance(mask_keyword, str) and mask_keyword.isidentifier():
            self.mask_keyword = mask_keyword
        else:
            raise ValueError(
                f"mask_keyword must be None (detect 'mask'), a keyword name or False; "
                f"got {mask_keyword!r}"
            )
        x_space = self.components.get("x")
        self._fast_path = (
            x_space is not None
            and len(self.components) == 1
            and not x_space.is_categorical
            and self.prediction.get("x") in _FROM_ALPHA_SIGMA
        )

    @property
    def schedule(self) -> Schedule:
        """The schedule of a single-space denoiser."""
        return next(iter(self.components.values())).schedule

    def network_output(self, x_t: Any, t: Tensor, *, mask: Any = None, **cond: Any) -> Any:
        """The network output for ``(x_t, t)`` projected onto the space (what the training
        loss regresses)."""
        first = x_t if isinstance(x_t, Tensor) else next(iter(x_t.values()))
        t_batch = t.expand(first.shape[0]) if t.ndim == 0 else t
        if self.mask_keyword is not None:
            cond[self.mask_keyword] = mask
        if self.prediction.get("x") == "edm":
            alpha, sigma = self.schedule.alpha_sigma(expand_like(t_batch, x_t))
            _, _, c_in, c_noise = edm_coefficients(alpha, sigma, self.sigma_data)
            c_noise_batch = c_noise.reshape(c_noise.shape[0], -1)[:, 0]
            output = self.net(c_in * x_t, c_noise_batch, **cond)
        else:
            output = self.net(x_t, t_batch, **cond)
        return self._project(output, mask)

    def _project(self, output: Any, mask: Any) -> Any:
        if isinstance(output, Tensor):
            space = self.components.get("x")
            if space is None or space.is_categorical or isinstance(mask, dict):
                return output
            return space.project(output, mask)
        masks = mask if isinstance(mask, dict) else {}
        return {
            k: v
            if k not in self.components or self.components[k].is_categorical
            else self.components[k].project(v, masks.get(k))
            for k, v in output.items()
        }

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

    def __call__(self, x_t: Any, t: Tensor, *, mask: Any = None, **cond: Any) -> Any:
        return self.to_x0(self.network_output(x_t, t, mask=mask, **cond), x_t, t)

    def denoise_at(
        self, x_t: Tensor, t: Tensor, alpha: Tensor, sigma: Tensor, *, mask: Any = None,
        **cond: Any,
    ) -> Any:  # fmt: skip
        """Same as calling, with ``(alpha, sigma)`` at ``t`` supplied by the caller (a sampler's
        precomputed grid), which saves re-evaluating the schedule every step. Categorical and
        product denoisers take the ordinary path."""
        if not self._fast_path or not isinstance(x_t, Tensor):
            return self(x_t, t, mask=mask, **cond)
        output = self.network_output(x_t, t, mask=mask, **cond)
        return x0_from_alpha_sigma(self.prediction["x"], output, x_t, alpha, sigma)

    def bind(self, **cond: Any) -> BoundDenoiser:
        """This denoiser with fixed conditioning (e.g. ``obs=...``), in the samplers'
        convention ``denoise(x_t, t, mask=None)``, keeping the :meth:`denoise_at` fast path."""
        return BoundDenoiser(self, cond)


class BoundDenoiser:
    """A :class:`Denoiser` with its conditioning keyword arguments fixed (see
    :meth:`Denoiser.bind`). A ``mask`` given to the call (by a sampler) overrides a bound one."""

    def __init__(self, denoiser: Denoiser, cond: dict[str, Any]) -> None:
        self.denoiser = denoiser
        self.cond = cond

    def _cond(self, mask: Any) -> dict[str, Any]:
        return self.cond if mask is None else {**self.cond, "mask": mask}

    def __call__(self, x_t: Any, t: Tensor, mask: Any = None) -> Any:
        return self.denoiser(x_t, t, **self._cond(mask))

    def denoise_at(
        self, x_t: Tensor, t: Tensor, alpha: Tensor, sigma: Tensor, mask: Any = None
    ) -> Any:
        return self.denoiser.denoise_at(x_t, t, alpha, sigma, **self._cond(mask))


class _ScheduleOnly:
    """Adapter so a bare schedule can stand in for an unmasked Euclidean space in
    :class:`Denoiser`."""

    is_categorical = False

    def __init__(self, schedule: Schedule) -> None:
        self.schedule = schedule

    def project(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        if mask is None:
            return x
        return x * mask.reshape(mask.shape + (1,) * (x.ndim - mask.ndim)).to(x.dtype)
