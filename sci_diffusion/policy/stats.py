"""Binomial confidence intervals for success rates."""

from __future__ import annotations

import math

Z95 = 1.959963984540054
"""Standard normal quantile for a two-sided 95% interval."""


def wilson_interval(successes: int, trials: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval (Wilson 1927; Brown, Cai & DasGupta 2001, eq. 4) for a binomial
    proportion. Unlike the normal ("Wald") interval it stays inside [0, 1] and keeps close to
    its nominal coverage at 0 or all successes, where policy evaluations often land."""
    if trials <= 0:
        raise ValueError(f"trials must be positive, got {trials}")
    if not 0 <= successes <= trials:
        raise ValueError(f"successes must be in [0, {trials}], got {successes}")
    p = successes / trials
    denom = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denom
    low = 0.0 if successes == 0 else max(0.0, centre - half)  # exact ends, no rounding dust
    high = 1.0 if successes == trials else min(1.0, centre + half)
    return low, high
