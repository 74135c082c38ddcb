"""Run a configured sampler: the bridge between a ``sampler`` config node and the samplers.

``sampler_cfg`` is any mapping-like object with ``name``, ``steps`` and optional ``options``
and ``t_start`` (an OmegaConf node, or a ``types.SimpleNamespace``/dict wrapper of your own);
nothing here imports a config library.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import torch
from torch import Tensor

from .errors import InvalidValueError
from .polish import polish, polish_settings
from .samplers import function_evaluations, get_sampler
from .time_spacing import spaced_time_grid, time_spacing

__all__ = [
    "SamplerSettings",
    "describe_sampler",
    "run_sampler",
    "sampler_settings",
    "start_time",
]

_FIELDS = ("name", "steps", "t_start", "options")


@dataclass(frozen=True)
class SamplerSettings:
    """A ``cfg.sampler`` node read and checked once (:meth:`from_config`).

    It stands in for the node wherever one is taken (``run_sampler``, ``sampler_settings``,
    ``start_time``, ``describe_sampler``; ``get(key, default)`` and attribute reads as on
    the node, every other key of the node kept in ``extra``), and costs nothing to read: a
    config library's node costs tens of microseconds per read, which a policy paid on every
    action chunk (a few per cent of a small network's time at batch 1). Frozen: to change a
    setting, build new settings from the changed node.
    """

    name: str
    steps: int
    t_start: float = 1.0
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    extra: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def from_config(cls, sampler_cfg: Any) -> SamplerSettings:
        """Read ``sampler_cfg`` (checked like :func:`sampler_settings` and
        :func:`start_time`); settings are returned as they are."""
        if isinstance(sampler_cfg, SamplerSettings):
            return sampler_cfg
        name, steps, options = sampler_settings(sampler_cfg)
        keys = list(sampler_cfg.keys()) if callable(getattr(sampler_cfg, "keys", None)) else []
        extra = {str(k): sampler_cfg.get(k) for k in keys if k not in _FIELDS}
        return cls(name, steps, start_time(sampler_cfg), MappingProxyType(options),
                   MappingProxyType(extra))  # fmt: skip

    def get(self, key: str, default: Any = None) -> Any:
        """A setting by name, as ``node.get`` (``options`` as a plain dict)."""
        if key == "options":
            return dict(self.options)
        if key in _FIELDS:
            return getattr(self, key)
        return self.extra.get(key, default)

    def keys(self) -> list[str]:
        return [*_FIELDS, *self.extra]

    def __getattr__(self, key: str) -> Any:  # the node's other keys, as attributes
        extra = self.__dict__.get("extra", {})
        if key in extra:
            return extra[key]
        raise AttributeError(f"{type(self).__name__} has no setting {key!r}")


def sampler_settings(sampler_cfg: Any) -> tuple[str, int, dict[str, Any]]:
    """``(name, steps, options)`` from a ``cfg.sampler`` node (name, steps, options)."""
    if isinstance(sampler_cfg, SamplerSettings):
        return sampler_cfg.name, sampler_cfg.steps, dict(sampler_cfg.options)
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
    if isinstance(sampler_cfg, SamplerSettings):
        return sampler_cfg.t_start
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
    """Sample from the prior draw ``x`` with the sampler described by ``sampler_cfg`` (a
    config node, or :class:`SamplerSettings` read from one: then nothing is parsed per call)."""
    name, steps, options = sampler_settings(sampler_cfg)
    first = x if isinstance(x, Tensor) else next(iter(x.values()))
    schedule = next(iter(s for _, s in space.components())).schedule
    times = spaced_time_grid(schedule, steps, t_start=start_time(sampler_cfg),
                             spacing=time_spacing(sampler_cfg), device=first.device)  # fmt: skip
    with torch.no_grad():
        out = get_sampler(name)(
            denoise, x, times, space=space, generator=generator, **options, **kwargs
        )
    return polish(denoise, space, out, polish_settings(sampler_cfg), mask=kwargs.get("mask"))


def describe_sampler(sampler_cfg: Any) -> dict[str, Any]:
    name, steps, options = sampler_settings(sampler_cfg)
    return {
        "sampler": name,
        "steps": steps,
        "nfe": function_evaluations(name, steps),
        "t_start": start_time(sampler_cfg),
        **options,
        **sampler_extras(sampler_cfg),
    }


def sampler_extras(sampler_cfg: Any) -> dict[str, Any]:
    """The settings of :mod:`.time_spacing` and :mod:`.polish` that differ from their
    defaults (linear grid, no polishing), for the record of a run; ``{}`` for the defaults.
    With polishing, ``nfe`` counts its evaluations too."""
    extras: dict[str, Any] = {}
    spacing = time_spacing(sampler_cfg)
    if spacing != "linear":
        extras["time_spacing"] = spacing
    levels = polish_settings(sampler_cfg)
    if levels:
        name, steps, _ = sampler_settings(sampler_cfg)
        extras.update(polish_steps=len(levels), polish_t=levels[0], polish_t_min=levels[-1],
                      nfe=function_evaluations(name, steps) + len(levels))  # fmt: skip
    return extras
