"""Sample-based distances between distributions, for evaluating samplers against known targets.

Torch only. Distances are computed in float64 on the CPU/device of the inputs. (On the CPU the
sorts of :func:`sliced_wasserstein` go through numpy — torch's own dependency, already loaded
by ``import torch`` — when it is importable: about 8x faster than ``torch.sort`` there, and the
sorted values, hence the distance, are identical.)
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

SampleFn = Callable[[int, torch.Generator], Tensor]
"""``sample_fn(n, generator) -> (n, ...)`` samples, e.g. ``GaussianMixture.sample``."""


def _flatten(x: Tensor, what: str) -> Tensor:
    if x.ndim < 1 or x.shape[0] < 1:
        raise ValueError(f"{what} must have shape (n, ...) with n >= 1; got {tuple(x.shape)}")
    if torch.is_complex(x):
        raise ValueError(f"{what} must be a real tensor, got dtype {x.dtype}")
    return x.reshape(x.shape[0], -1).double()


def _sorted_rows(x: Tensor) -> Tensor:
    """``torch.sort(x, dim=1).values``; on the CPU by numpy's vectorised sort when numpy is
    importable (a sort's output is determined by its input, so the values are the same)."""
    if x.device.type == "cpu":
        try:
            import numpy as np
        except ImportError:  # pragma: no cover - numpy ships with torch's wheels
            pass
        else:
            return torch.from_numpy(np.sort(x.detach().numpy(), axis=1))
    return torch.sort(x, dim=1).values


def sliced_wasserstein(
    a: Tensor,
    b: Tensor,
    projections: int = 256,
    seed: int = 0,
) -> float:
    """Sliced Wasserstein-1 distance between two equally sized samples.

    Both samples are flattened to (n, d) (trailing dims joined). For each of ``projections``
    random unit directions (drawn from a generator seeded with ``seed``, so two calls with the
    same seed use the same directions) both samples are projected to 1D and the 1D
    Wasserstein-1 distance between the empirical distributions — the mean absolute difference
    of the sorted projections — is taken; the result is the mean over directions.

    Args:
        a: (n, ...) samples.
        b: (n, ...) samples, same n and same number of trailing elements as ``a``.
        projections: number of random directions (>= 1).
        seed: seed of the directions.

    Returns:
        The distance, a Python float (0 for identical samples, in the units of the data).
    """
    fa, fb = _flatten(a, "a"), _flatten(b, "b").to(a.device)
    if fa.shape != fb.shape:
        raise ValueError(
            f"samples must have the same shape after flattening to (n, d); got "
            f"{tuple(fa.shape)} and {tuple(fb.shape)}"
        )
    if projections < 1:
        raise ValueError(f"projections must be >= 1, got {projections}")
    generator = torch.Generator().manual_seed(seed)
    directions = torch.randn(projections, fa.shape[1], generator=generator, dtype=torch.float64)
    directions = (directions / directions.norm(dim=1, keepdim=True)).to(fa.device)
    total = 0.0
    chunk = max(1, (1 << 22) // max(fa.shape[0], 1))  # ~32 MiB of float64 per operand
    for start in range(0, projections, chunk):
        d = directions[start : start + chunk]  # (chunk, d)
        pa = _sorted_rows(d @ fa.T)  # (chunk, n), sorted along the contiguous dim
        pb = _sorted_rows(d @ fb.T)
        total += float((pa - pb).abs().mean(dim=1).sum())
    return total / projections


def noise_floor(
    sample_fn: SampleFn,
    n: int,
    replicates: int = 20,
    quantile: float = 0.95,
    seed: int = 0,
) -> float:
    """The sliced-Wasserstein distance two *exact* samples of size ``n`` reach by chance.

    Draws ``replicates`` pairs of independent samples from ``sample_fn`` (one generator seeded
    with ``seed``) and returns the ``quantile`` of :func:`sliced_wasserstein` between the two
    members of each pair (projections seeded with ``seed`` as well, so they match a call of
    :func:`sliced_wasserstein` with the same seed). A sampler whose distance to an independent
    exact sample of the same size is below this value is indistinguishable from exact at this
    sample size; callers usually compare against a multiple of it (the sampler benchmark uses
    1.5 x the 95th percentile).

    Args:
        sample_fn: ``sample_fn(n, generator) -> (n, ...)`` exact samples.
        n: sample size of each member of a pair.
        replicates: number of pairs (>= 1).
        quantile: in [0, 1].
        seed: seed of the samples and of the projections.
    """
    if replicates < 1:
        raise ValueError(f"replicates must be >= 1, got {replicates}")
    if not 0.0 <= quantile <= 1.0:
        raise ValueError(f"quantile must lie in [0, 1], got {quantile}")
    generator = torch.Generator().manual_seed(seed)
    distances = [
        sliced_wasserstein(sample_fn(n, generator), sample_fn(n, generator), seed=seed)
        for _ in range(replicates)
    ]
    return float(torch.quantile(torch.tensor(distances, dtype=torch.float64), quantile))
