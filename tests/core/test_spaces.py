"""Spaces: masked noise, centre-of-mass projection, masked means and input validation."""

from __future__ import annotations

import pytest
import torch

from sci_diffusion.core import (
    CoMFreeSpace,
    CosineSchedule,
    EuclideanSpace,
    LinearSchedule,
    masked_mean,
)
from sci_diffusion.core._checks import check_mask

SCHEDULE = CosineSchedule()
B, N = 4, 7
N_VALID = torch.tensor([7, 5, 2, 1])


def _mask(n_valid: torch.Tensor = N_VALID, n: int = N) -> torch.Tensor:
    return torch.arange(n)[None, :] < n_valid[:, None]


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_comfree_noise_has_zero_centre_of_mass_and_zero_padding():
    space = CoMFreeSpace(SCHEDULE)
    mask = _mask()
    like = torch.empty(B, N, 3, dtype=torch.float64)
    eps = space.noise(like, mask, _gen())
    assert eps.shape == like.shape and eps.dtype == torch.float64
    m = mask[..., None].to(eps.dtype)
    # Sum over <= 7 valid standard normals: float64 rounding is ~1e-15, so 1e-12 is safe.
    centre = (eps * m).sum(1) / m.sum(1)
    torch.testing.assert_close(centre, torch.zeros(B, 3, dtype=torch.float64), rtol=0, atol=1e-12)
    assert torch.equal(eps[~mask], torch.zeros_like(eps[~mask]))  # exactly zero, not small
    several = mask & (N_VALID[:, None] > 1)
    assert (eps[several].abs() > 0).all()
    # A one-node cloud is its own centre of mass: zero degrees of freedom, zero noise.
    assert float(eps[N_VALID == 1].abs().max()) == 0.0


def test_comfree_noise_without_mask_is_centred():
    eps = CoMFreeSpace(SCHEDULE).noise(torch.empty(3, N, 3, dtype=torch.float64), None, _gen(1))
    torch.testing.assert_close(
        eps.mean(1), torch.zeros(3, 3, dtype=torch.float64), rtol=0, atol=1e-12
    )


def test_comfree_noise_is_standard_on_the_subspace():
    """An orthogonal projection of N(0, I) is N(0, I) on the subspace: E||eps||^2 = dof."""
    space = CoMFreeSpace(SCHEDULE)
    samples = 20000
    mask = _mask(torch.tensor([5]), n=7).expand(samples, 7)
    eps = space.noise(torch.empty(samples, 7, 3, dtype=torch.float64), mask, _gen(2))
    dof = (5 - 1) * 3
    ratio = (eps**2).sum((1, 2)).mean() / dof
    # ||eps||^2 ~ chi2(12): relative std of the mean is sqrt(2 / (12 * 20000)) = 0.0029;
    # 0.015 is five standard errors.
    assert abs(float(ratio) - 1.0) < 0.015


def test_comfree_projection_is_idempotent_and_zeroes_padding():
    space = CoMFreeSpace(SCHEDULE)
    mask = _mask()
    x = 3.0 + torch.randn(B, N, 3, generator=_gen(3), dtype=torch.float64)
    once = space.project(x, mask)
    twice = space.project(once, mask)
    # A second projection only removes a float64-rounding residual centre (~1e-15).
    torch.testing.assert_close(twice, once, rtol=0, atol=1e-12)
    assert torch.equal(once[~mask], torch.zeros_like(once[~mask]))
    # The projection leaves valid relative positions unchanged.
    for b, n in enumerate(N_VALID.tolist()):
        rel_in = x[b, :n] - x[b, :1]
        rel_out = once[b, :n] - once[b, :1]
        torch.testing.assert_close(rel_out, rel_in, rtol=0, atol=1e-12)


def test_comfree_degrees_of_freedom():
    space = CoMFreeSpace(SCHEDULE)
    x = torch.zeros(B, N, 3)
    dof = space.degrees_of_freedom(x, _mask())
    assert dof.tolist() == ((N_VALID - 1) * 3).tolist()
    assert space.degrees_of_freedom(x).tolist() == [(N - 1) * 3] * B


def test_euclidean_masked_noise_prior_and_dof():
    space = EuclideanSpace(LinearSchedule())
    mask = _mask()
    eps = space.noise(torch.empty(B, N, 2), mask, _gen(4))
    assert torch.equal(eps[~mask], torch.zeros_like(eps[~mask]))
    assert (eps[mask] != 0).all()
    prior = space.prior((B, N, 2), mask, generator=_gen(5))
    assert prior.shape == (B, N, 2) and torch.equal(prior[~mask], torch.zeros_like(prior[~mask]))
    assert space.degrees_of_freedom(eps, mask).tolist() == (N_VALID * 2).tolist()
    assert space.degrees_of_freedom(eps).tolist() == [N * 2] * B
    # add_noise is alpha x0 + sigma eps with per-sample times
    x0 = torch.randn(B, N, 2, generator=_gen(6))
    t = torch.tensor([0.1, 0.4, 0.7, 0.9])
    alpha, sigma = space.schedule.alpha_sigma(t)
    expected = alpha[:, None, None] * x0 + sigma[:, None, None] * eps
    torch.testing.assert_close(space.add_noise(x0, t, eps), expected)


def test_masked_mean_ignores_padding():
    g = _gen(7)
    values = torch.randn(B, N, 3, generator=g, dtype=torch.float64)
    mask = _mask()
    reference = torch.cat([values[b, :n].reshape(-1) for b, n in enumerate(N_VALID.tolist())])
    got = masked_mean(values, mask)
    # Different summation orders only: float64 rounding ~1e-16 relative.
    torch.testing.assert_close(got, reference.mean(), rtol=1e-12, atol=0)
    # More padding filled with garbage changes nothing.
    garbage = 1e6 * torch.randn(B, 5, 3, generator=g, dtype=torch.float64)
    padded = torch.cat([values.masked_fill(~mask[..., None], 123.0), garbage], dim=1)
    padded_mask = torch.cat([mask, torch.zeros(B, 5, dtype=torch.bool)], dim=1)
    torch.testing.assert_close(masked_mean(padded, padded_mask), got, rtol=1e-12, atol=0)
    assert torch.equal(masked_mean(values), values.mean())


def test_masked_mean_of_everything_padded_is_zero():
    values = torch.randn(2, 3)
    assert float(masked_mean(values, torch.zeros(2, 3, dtype=torch.bool))) == 0.0


def test_check_mask_rejects_wrong_dtype():
    x = torch.zeros(B, N, 3)
    with pytest.raises(ValueError, match=r"must be a bool tensor, got dtype torch\.float32"):
        check_mask(_mask().float(), x)
    with pytest.raises(ValueError, match="bool"):
        masked_mean(x, _mask().long())


def test_check_mask_rejects_wrong_shape_and_names_shapes():
    x = torch.zeros(B, N, 3)
    with pytest.raises(ValueError) as info:
        check_mask(torch.ones(B, N + 1, dtype=torch.bool), x)
    message = str(info.value)
    assert f"{(B, N + 1)}" in message and f"{(B, N, 3)}" in message and f"{(B, N)}" in message
    with pytest.raises(ValueError, match="more dimensions"):
        check_mask(torch.ones(B, N, 3, 1, dtype=torch.bool), x)


def test_space_validate():
    space = CoMFreeSpace(SCHEDULE)
    space.validate(torch.zeros(B, N, 3), _mask())
    with pytest.raises(ValueError, match=r"\(B, N, 3\).*\(4, 7, 2\)"):
        space.validate(torch.zeros(B, N, 2))
    with pytest.raises(ValueError, match=r"\(B, N, 3\)"):
        space.validate(torch.zeros(B, N * 3))
    with pytest.raises(ValueError, match="float"):
        space.validate(torch.zeros(B, N, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="node mask"):
        space.validate(torch.zeros(B, N, 3), torch.ones(B, N, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="bool"):
        EuclideanSpace(SCHEDULE).validate(torch.zeros(B, N, 2), _mask().float())
