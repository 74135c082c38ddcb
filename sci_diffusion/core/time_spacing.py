"""Where a sampler's steps fall in time: ``linear`` (the default) or denser near the data.

``sampler.time_spacing`` picks the grid :func:`~sci_diffusion.core.sampler_config.run_sampler`
hands a sampler: ``linear`` is :meth:`Schedule.time_grid <sci_diffusion.core.schedules.
Schedule.time_grid>` unchanged (``steps + 1`` evenly spaced times from ``t_start`` to 0);
``quadratic`` and ``cubic`` map each of those times ``t`` to ``t_start (t / t_start)^p`` with
``p`` 2 or 3, so the same number of steps is spent more near ``t = 0``, where fine detail (for
molecules: bond lengths) is settled. Both ends stay where they were. ``sampler.polish_steps``
(:mod:`.polish`) adds evaluations after the grid instead.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from .errors import InvalidValueError

__all__ = ["TIME_SPACINGS", "spaced_time_grid", "time_spacing"]

TIME_SPACINGS: dict[str, int] = {"linear": 1, "quadratic": 2, "cubic": 3}
"""Accepted ``sampler.time_spacing`` values and their power."""


def time_spacing(sampler_cfg: Any) -> str:
    """``sampler.time_spacing`` (default ``linear``), checked.

    Raises
    ------
    InvalidValueError
        For a value not in :data:`TIME_SPACINGS` (the message lists them).
    """
    getter = getattr(sampler_cfg, "get", None)
    value = getter("time_spacing", "linear") if callable(getter) else "linear"
    value = "linear" if value is None else value
    if value not in TIME_SPACINGS:
        raise InvalidValueError(
            f"sampler.time_spacing must be one of {', '.join(TIME_SPACINGS)}, got {value!r}"
        )
    return str(value)


def spaced_time_grid(
    schedule: Any, steps: int, *, t_start: float = 1.0, spacing: str = "linear", device: Any = None
) -> Tensor:
    """The decreasing grid of ``steps + 1`` times from ``t_start`` to 0 with ``spacing``;
    ``linear`` returns ``schedule.time_grid(steps, t_start=t_start, device=device)`` itself."""
    grid = schedule.time_grid(steps, t_start=t_start, device=device)
    if spacing not in TIME_SPACINGS:
        raise InvalidValueError(
            f"time spacing must be one of {', '.join(TIME_SPACINGS)}, got {spacing!r}"
        )
    power = TIME_SPACINGS[spacing]
    if power == 1:
        return grid
    spaced = t_start * (grid.double() / t_start) ** power
    spaced[0], spaced[-1] = t_start, 0.0  # the ends exactly where the linear grid has them
    return spaced.to(grid.dtype)

