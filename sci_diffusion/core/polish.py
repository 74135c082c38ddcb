"""Low-noise polishing: a few extra denoiser evaluations after sampling, continuous parts only.

``polish(denoise, space, x, levels)`` takes a finished sample ``x`` and, for each time ``t`` of
``levels`` in turn, replaces every continuous component by the model's clean estimate of it
read as a sample at noise level ``t``: ``x_c <- project(D(alpha_t x_c, t))`` (the categorical
components of a product stay as they are and are passed along unchanged). No noise is added:
with epsilon prediction the update is ``x_c - (sigma_t / alpha_t) eps(alpha_t x_c, t)``, a step
of size ``sigma_t^2 / alpha_t^2`` along the model's score, so the iteration climbs towards
the model's own denoised manifold (a mode-seeking correction; it is not a sampler of the
distribution). It uses the trained model alone; nothing is retrained and no force field is
involved.

Measured on the embedded ``qm9_3d`` checkpoint (``docs/benchmarks.md``, "qm9_3d geometry"),
40 levels from t = 0.05 down to 0.005 after DDPM sampling cut the share of molecules with a
bond outside QM9's bond-length range by about three quarters. :func:`polish_levels` makes
that ladder; :func:`~sci_diffusion.core.sampler_config.run_sampler` applies it when the sampler
config asks for it (``polish_steps``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ._checks import accepts_keyword
from .errors import InvalidValueError
from .spaces import ProductSpace

__all__ = ["polish", "polish_levels", "polish_settings"]


def polish_levels(steps: int, t_max: float = 0.05, t_min: float = 0.005) -> list[float]:
    """``steps`` times spaced geometrically from ``t_max`` down to ``t_min`` (one evaluation
    each; ``steps == 1`` gives ``[t_min]``).

    Raises
    ------
    InvalidValueError
        Unless ``steps >= 0`` and ``0 < t_min <= t_max < 1``.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise InvalidValueError(f"polish steps must be an integer >= 0, got {steps!r}")
    if not 0.0 < t_min <= t_max < 1.0:
        raise InvalidValueError(
            f"polish times need 0 < polish_t_min <= polish_t < 1, got polish_t={t_max}, "
            f"polish_t_min={t_min}"
        )
    if steps == 0:
        return []
    if steps == 1:
        return [float(t_min)]
    ratio = (t_min / t_max) ** (1.0 / (steps - 1))
    return [float(t_max * ratio**i) for i in range(steps - 1)] + [float(t_min)]


def polish_settings(sampler_cfg: Any) -> list[float]:
    """The polish levels a ``cfg.sampler`` node asks for: :func:`polish_levels` of its
    ``polish_steps`` (default 0: none), ``polish_t`` (0.05) and ``polish_t_min`` (0.005)."""
    getter = getattr(sampler_cfg, "get", None)
    if not callable(getter):
        return []
    steps = getter("polish_steps", 0)
    if not steps:  # None or 0: off, and nothing else is read
        return []
    t_max, t_min = getter("polish_t", 0.05), getter("polish_t_min", 0.005)
    for key, value in (("polish_t", t_max), ("polish_t_min", t_min)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidValueError(f"sampler.{key} must be a number, got {value!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise InvalidValueError(f"sampler.polish_steps must be an integer >= 0, got {steps!r}")
    return polish_levels(steps, float(t_max), float(t_min))


def polish(
    denoise: Any, space: Any, x: Any, levels: list[float], *, mask: Any = None
) -> Any:
    """Polish a finished sample ``x`` at the noise levels ``levels`` (module docstring).

    Parameters
    ----------
    denoise
        ``denoise(x_t, t) -> x_0`` as for the samplers (called with ``mask=`` when its signature
        names one, e.g. a :class:`~sci_diffusion.core.parameterization.Denoiser`).
    space
        The sample's space: a continuous space, or a :class:`ProductSpace` whose categorical
        components are held fixed.
    x
        The sample (a tensor, or a dict for a product), as returned by a sampler.
    levels
        Times in (0, 1), usually decreasing (:func:`polish_levels`); empty returns ``x``.
    mask
        As for the samplers.

    Returns
    -------
    The polished sample, same structure, dtypes and masks as ``x``.
    """
    if not levels:
        return x
    single = not isinstance(space, ProductSpace)
    spaces = {"x": space} if single else dict(space.spaces)
    state = {"x": x} if single else dict(x)
    masks = {"x": mask} if single else dict(mask or {})
    continuous = [k for k, s in spaces.items() if not s.is_categorical]
    kwargs = {"mask": mask} if accepts_keyword(denoise, "mask") else {}
    first = state[continuous[0]] if continuous else None
    for level in levels:
        if first is None:
            break
        t = torch.tensor(float(level), device=first.device, dtype=first.dtype)
        noisy = dict(state)
        for k in continuous:
            alpha, _ = spaces[k].schedule.alpha_sigma(t.to(state[k].dtype))
            noisy[k] = alpha * state[k]
        with torch.no_grad():
            out = denoise(noisy["x"] if single else noisy, t, **kwargs)
        out = {"x": out} if single else out
        for k in continuous:
            state[k] = spaces[k].project(_as(out[k], state[k]), masks.get(k))
    return state["x"] if single else state


def _as(value: Tensor, like: Tensor) -> Tensor:
    return value.to(like.dtype)
