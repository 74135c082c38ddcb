"""Run a configured sampler: the bridge between a ``sampler`` config node and the samplers.

``sampler_cfg`` is any mapping-like object with ``name``, ``steps`` and optional ``options``
and ``t_start`` (an OmegaConf node, or a ``types.SimpleNamespace``/dict wrapper of your own);
nothing here imports a config library.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .errors import InvalidValueError
from .samplers import function_evaluations, get_sampler

__all__ = ["describe_sampler", "run_sampler", "sampler_settings", "start_time"]


def sampler_settings(sampler_cfg: Any) -> tuple[str, int, dict[str, Any]]:
    """``(name, steps, options)`` from a ``cfg.sampler`` node (name, steps, options)."""
    name = str(sampler_cfg.name)
    get_sampler(name)  # unknown names fail here with the list of accepted ones
    steps = int(sampler_cfg.steps)
    if steps < 1:
        raise InvalidValueError(f"sampler.steps must be >= 1, got {steps}")
    options = dict(sampler_cfg.get("options") or {})
    return name, steps, options


def start_time(sampler_cfg: Any) -> float:
    """``sampler.t_start`` (default 1.0): where sampling starts. Epsilon-prediction models
    are ill-conditioned where alpha ~ 0 (x0 = (x - sigma eps) / alpha amplifies their error),
    so sample them from t_start < 1 or train with v / x0 / velocity prediction."""
    t_start = float(sampler_cfg.get("t_start", 1.0))
    if not 0.0 < t_start <= 1.0:
        raise InvalidValueError(f"sampler.t_start must be in (0, 1], got {t_start}")
    return t_start


def run_sampler(
    denoise: Any,
    space: Any,
    x: Any,
    sampler_cfg: Any,
    generator: torch.Generator | None = None,
    **kwargs: Any,
) -> Any:
    """Sample from the prior draw ``x`` with the sampler described by ``sampler_cfg``."""
    name, steps, options = sampler_settings(sampler_cfg)
    first = x if isinstance(x, Tensor) else next(iter(x.values()))
    schedule = next(iter(s for _, s in space.components())).schedule
    times = schedule.time_grid(steps, t_start=start_time(sampler_cfg), device=first.device)
    with torch.no_grad():
        return get_sampler(name)(
            denoise, x, times, space=space, generator=generator, **options, **kwargs
        )


def describe_sampler(sampler_cfg: Any) -> dict[str, Any]:
    name, steps, options = sampler_settings(sampler_cfg)
    return {
        "sampler": name,
        "steps": steps,
        "nfe": function_evaluations(name, steps),
        "t_start": start_time(sampler_cfg),
        **options,
    }
