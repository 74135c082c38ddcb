"""Prediction types: targets and their inversion to x0, EDM coefficients, error scales.

All round trips run in float64. The conversions divide by at most ``alpha`` or
``alpha sigma' - sigma alpha'``, which on t in [0.02, 0.98] amplify rounding by < 1e3, so an
absolute/relative tolerance of 1e-9 is six orders above the float64 error it absorbs.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sci_diffusion.core import (
    PREDICTIONS,
    SCHEDULES,
    Denoiser,
    EuclideanSpace,
    edm_coefficients,
    make_schedule,
    target,
    to_x0,
    x0_error_scale,
)

NAMES = sorted(SCHEDULES)
HYPOTHESIS = settings(max_examples=25, deadline=None, derandomize=True)
TOL = {"rtol": 1e-9, "atol": 1e-9}


def _draw(seed: int, shape=(4, 3, 2)) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(shape, generator=g, dtype=torch.float64)
    eps = torch.randn(shape, generator=g, dtype=torch.float64)
    return x0, eps


def test_predictions_registry():
    assert PREDICTIONS == ("epsilon", "x0", "v", "velocity", "edm")


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("prediction", PREDICTIONS)
@HYPOTHESIS
@given(t=st.floats(0.02, 0.98), seed=st.integers(0, 2**31 - 1), per_sample=st.booleans())
def test_to_x0_inverts_target(name, prediction, t, seed, per_sample):
    schedule = make_schedule(name)
    x0, eps = _draw(seed)
    if per_sample:  # (B,) times, each sample its own t
        tt = torch.linspace(0.02, t, x0.shape[0], dtype=torch.float64)
    else:
        tt = torch.tensor(t, dtype=torch.float64)
    alpha, sigma = schedule.alpha_sigma(tt.reshape(tt.shape + (1,) * (x0.ndim - tt.ndim)))
    x_t = alpha * x0 + sigma * eps
    out = target(prediction, x0, eps, tt, schedule)
    assert out.shape == x0.shape
    torch.testing.assert_close(to_x0(prediction, out, x_t, tt, schedule), x0, **TOL)


@pytest.mark.parametrize("sigma_data", [0.5, 1.0])
def test_edm_coefficients_finite_at_both_ends(sigma_data):
    one, zero = torch.ones(()), torch.zeros(())
    # alpha = 0 (rectified flow at t = 1): nothing may divide by alpha.
    c_skip, c_out, c_in, c_noise = edm_coefficients(zero, one, sigma_data)
    for c in (c_skip, c_out, c_in, c_noise):
        assert torch.isfinite(c)
    assert float(c_skip) == 0.0 and float(c_out) == pytest.approx(sigma_data)
    assert float(c_noise) == 20.0  # log(sigma/alpha)/4 = +inf, clamped
    # sigma = 0 (data end): output is all skip connection.
    c_skip, c_out, c_in, c_noise = edm_coefficients(one, zero, sigma_data)
    for c in (c_skip, c_out, c_in, c_noise):
        assert torch.isfinite(c)
    assert float(c_skip) == pytest.approx(1.0) and float(c_out) == 0.0
    assert float(c_noise) == -20.0


@pytest.mark.parametrize("sigma", [0.002, 0.3, 1.0, 80.0])
def test_edm_coefficients_match_karras_table_1_for_alpha_one(sigma):
    sd = 0.5
    s = torch.tensor(sigma, dtype=torch.float64)
    c_skip, c_out, c_in, c_noise = edm_coefficients(torch.ones_like(s), s, sd)
    # Karras et al. (2022), table 1 (VE, alpha = 1); closed forms, so float64 rounding only.
    expected = (
        sd**2 / (sigma**2 + sd**2),
        sigma * sd / math.sqrt(sigma**2 + sd**2),
        1.0 / math.sqrt(sigma**2 + sd**2),
        math.log(sigma) / 4.0,
    )
    for got, want in zip((c_skip, c_out, c_in, c_noise), expected, strict=True):
        assert float(got) == pytest.approx(want, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("prediction", PREDICTIONS)
@pytest.mark.parametrize("t", [0.05, 0.3, 0.7, 0.95])
def test_x0_error_scale_is_squared_jacobian(name, prediction, t):
    """``(d target / d x0)^2`` at fixed ``x_t``, i.e. with ``eps = (x_t - alpha x0) / sigma``."""
    schedule = make_schedule(name)
    tt = torch.tensor(t, dtype=torch.float64)
    alpha, sigma = schedule.alpha_sigma(tt)
    x0_ref, eps_ref = _draw(7, shape=(5,))
    x_t = alpha * x0_ref + sigma * eps_ref

    def prediction_of(x0: torch.Tensor) -> torch.Tensor:
        eps = (x_t - alpha * x0) / sigma
        return target(prediction, x0, eps, tt, schedule)

    jac = torch.autograd.functional.jacobian(prediction_of, x0_ref)
    # Element-wise map: the Jacobian is diagonal with one common entry.
    torch.testing.assert_close(jac - torch.diag(torch.diagonal(jac)), torch.zeros_like(jac))
    scale = x0_error_scale(prediction, tt, schedule)
    assert scale.shape == tt.shape
    # Autograd is exact up to rounding; scales reach ~1e5 (Karras epsilon at t = 0.05), so
    # relative 1e-9 is the meaningful tolerance.
    torch.testing.assert_close(torch.diagonal(jac) ** 2, scale.expand(5), rtol=1e-9, atol=1e-12)


def _net(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return torch.sin(x) * (1.0 + t.reshape(-1, *(1,) * (x.ndim - 1)))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("prediction", PREDICTIONS)
@pytest.mark.parametrize("use_space", [False, True])
def test_denoiser_reproduces_to_x0(name, prediction, use_space):
    schedule = make_schedule(name)
    bound = EuclideanSpace(schedule) if use_space else schedule
    denoiser = Denoiser(_net, bound, prediction=prediction, sigma_data=0.5)
    x_t, _ = _draw(3)
    t = torch.tensor([0.1, 0.4, 0.6, 0.9], dtype=torch.float64)
    if prediction == "edm":  # the net sees EDM's preconditioned input and noise level
        alpha, sigma = schedule.alpha_sigma(t[:, None, None])
        _, _, c_in, c_noise = edm_coefficients(alpha, sigma, 0.5)
        raw = _net(c_in * x_t, c_noise.reshape(-1))
    else:
        raw = _net(x_t, t)
    torch.testing.assert_close(denoiser.network_output(x_t, t), raw, rtol=0, atol=0)
    expected = to_x0(prediction, raw, x_t, t, schedule, 0.5)
    torch.testing.assert_close(denoiser(x_t, t), expected, **TOL)


@pytest.mark.parametrize("prediction", PREDICTIONS)
def test_denoiser_broadcasts_scalar_time(prediction):
    schedule = make_schedule("cosine")
    seen = []

    def net(x, t):
        seen.append(t.shape)
        return torch.zeros_like(x)

    x_t, _ = _draw(5)
    Denoiser(net, schedule, prediction=prediction)(x_t, torch.tensor(0.5, dtype=torch.float64))
    assert seen == [(x_t.shape[0],)]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("prediction", PREDICTIONS)
def test_denoiser_of_perfect_network_returns_x0(name, prediction):
    schedule = make_schedule(name)
    x0, eps = _draw(11)
    t = torch.tensor([0.05, 0.3, 0.6, 0.95], dtype=torch.float64)
    alpha, sigma = schedule.alpha_sigma(t[:, None, None])
    x_t = alpha * x0 + sigma * eps
    perfect = target(prediction, x0, eps, t, schedule)
    denoiser = Denoiser(lambda x, tt: perfect, schedule, prediction=prediction)
    torch.testing.assert_close(denoiser(x_t, t), x0, **TOL)


def test_unknown_prediction_names_accepted_values():
    schedule = make_schedule("cosine")
    x, t = torch.zeros(2, 3), torch.full((2,), 0.5)
    calls = [
        lambda: to_x0("noise", x, x, t, schedule),
        lambda: target("noise", x, x, t, schedule),
        lambda: x0_error_scale("noise", t, schedule),
        lambda: Denoiser(lambda a, b: a, schedule, prediction="noise"),
    ]
    for call in calls:
        with pytest.raises(ValueError, match="unknown prediction 'noise'") as info:
            call()
        for accepted in PREDICTIONS:
            assert accepted in str(info.value)


def test_bound_denoiser_passes_conditioning_on_both_paths():
    """``Denoiser.bind(obs=...)`` is the two-argument callable the samplers want: the plain call
    and the ``denoise_at`` fast path both see the conditioning and agree."""
    from sci_diffusion.core import CosineSchedule, Denoiser

    class Net(torch.nn.Module):
        def forward(self, x, t, obs):
            return x * 0.5 + obs.mean(-1, keepdim=True).unsqueeze(-1) + t.reshape(-1, 1, 1)

    schedule = CosineSchedule()
    denoiser = Denoiser(Net(), schedule, prediction="v")
    obs = torch.randn(3, 4)
    x, t = torch.randn(3, 5, 2), torch.full((3,), 0.4)
    bound = denoiser.bind(obs=obs)
    alpha, sigma = schedule.alpha_sigma(t.reshape(-1, 1, 1))
    expected = denoiser(x, t, obs=obs)
    torch.testing.assert_close(bound(x, t), expected)
    torch.testing.assert_close(bound.denoise_at(x, t, alpha, sigma), expected)
    assert not torch.allclose(denoiser.bind(obs=obs + 1)(x, t), expected)
