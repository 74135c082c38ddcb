"""Sliced Wasserstein distance and its noise floor."""

from __future__ import annotations

import math
import sys

import pytest
import torch

from sci_diffusion.core.metrics import noise_floor, sliced_wasserstein


def _normal_2d(n: int, generator: torch.Generator) -> torch.Tensor:
    return torch.randn(n, 2, generator=generator)


def test_distance_of_a_sample_to_itself_is_zero() -> None:
    x = torch.randn(500, 3, generator=torch.Generator().manual_seed(0))
    assert sliced_wasserstein(x, x) == 0.0
    assert sliced_wasserstein(x, x[torch.randperm(500)]) == pytest.approx(0.0, abs=1e-12)


def test_unit_shift_in_one_dimension_is_one() -> None:
    g = torch.Generator().manual_seed(1)
    a = torch.randn(20_000, generator=g)
    b = torch.randn(20_000, generator=g) + 1.0
    assert sliced_wasserstein(a, b) == pytest.approx(1.0, abs=0.05)


def test_shift_in_two_dimensions_averages_the_projections() -> None:
    g = torch.Generator().manual_seed(2)
    a = torch.randn(10_000, 2, generator=g)
    b = torch.randn(10_000, 2, generator=g) + torch.tensor([1.0, 0.0])
    # W1 along direction u of a shift d is |<u, d>|; E|cos| over the circle is 2/pi.
    assert sliced_wasserstein(a, b, projections=512) == pytest.approx(2 / math.pi, abs=0.04)


def test_detects_a_shift_larger_than_the_noise_floor() -> None:
    n = 2000
    floor = noise_floor(_normal_2d, n)
    g = torch.Generator().manual_seed(3)
    same = sliced_wasserstein(_normal_2d(n, g), _normal_2d(n, g))
    shifted = sliced_wasserstein(_normal_2d(n, g), _normal_2d(n, g) + torch.tensor([0.3, 0.0]))
    assert 0.0 < floor < 0.1
    assert same < 1.5 * floor
    assert shifted > 3.0 * floor


def test_noise_floor_is_seeded_and_grows_with_the_quantile() -> None:
    assert noise_floor(_normal_2d, 500, replicates=5) == noise_floor(_normal_2d, 500, replicates=5)
    low = noise_floor(_normal_2d, 500, replicates=10, quantile=0.1)
    high = noise_floor(_normal_2d, 500, replicates=10, quantile=0.9)
    assert low < high


def test_trailing_dims_are_flattened_and_seed_fixes_the_directions() -> None:
    g = torch.Generator().manual_seed(4)
    a, b = torch.randn(300, 2, 3, generator=g), torch.randn(300, 2, 3, generator=g)
    flat = sliced_wasserstein(a.reshape(300, 6), b.reshape(300, 6), seed=7)
    assert sliced_wasserstein(a, b, seed=7) == flat
    assert sliced_wasserstein(a, b, seed=8) != flat


def test_bad_inputs_raise() -> None:
    a = torch.randn(10, 2)
    with pytest.raises(ValueError, match="same shape"):
        sliced_wasserstein(a, torch.randn(11, 2))
    with pytest.raises(ValueError, match="same shape"):
        sliced_wasserstein(a, torch.randn(10, 3))
    with pytest.raises(ValueError, match="projections"):
        sliced_wasserstein(a, a, projections=0)
    with pytest.raises(ValueError, match="replicates"):
        noise_floor(_normal_2d, 10, replicates=0)
    with pytest.raises(ValueError, match="quantile"):
        noise_floor(_normal_2d, 10, quantile=1.5)


def test_numpy_sort_path_gives_the_torch_sort_distance_exactly(monkeypatch) -> None:
    """On the CPU the sorts go through numpy (faster); the distance is bit-identical to the
    pure-torch path, taken here by hiding numpy."""
    g = torch.Generator().manual_seed(5)
    cases = [
        (torch.randn(3000, 2, generator=g), torch.randn(3000, 2, generator=g) * 1.3),
        (torch.randn(700, 8, 2, generator=g).double(), torch.randn(700, 8, 2, generator=g)),
        (torch.randint(0, 3, (500, 3), generator=g).float(), torch.zeros(500, 3)),  # many ties
    ]
    fast = [sliced_wasserstein(a, b, seed=3) for a, b in cases]
    monkeypatch.setitem(sys.modules, "numpy", None)  # `import numpy` now raises ImportError
    assert [sliced_wasserstein(a, b, seed=3) for a, b in cases] == fast
