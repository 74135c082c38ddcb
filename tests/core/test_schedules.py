"""Schedules: ranges, monotonicity, inverses, derivatives, grids and the discrete view.

Numerical checks run in float64, where the schedules' closed forms are accurate to ~1e-15;
each tolerance below is a few orders of magnitude above the rounding error it has to absorb.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sci_diffusion.core import SCHEDULES, KarrasSchedule, make_schedule
from sci_diffusion.core.schedules import _VariancePreserving

NAMES = sorted(SCHEDULES)
VP_NAMES = [n for n in NAMES if issubclass(SCHEDULES[n], _VariancePreserving)]
# Schedules whose t = 0 is the data exactly. The polynomial schedule (Hoogeboom et al. 2022)
# keeps abar(0) = 1 - precision by definition, so sigma(0) = sqrt(1e-5) there on purpose.
EXACT_DATA_AT_ZERO = [n for n in NAMES if n != "polynomial"]

HYPOTHESIS = settings(max_examples=60, deadline=None, derandomize=True)


def _grid(lo: float = 0.0, hi: float = 1.0, n: int = 2001) -> torch.Tensor:
    return torch.linspace(lo, hi, n, dtype=torch.float64)


def test_registry_covers_the_five_schedules():
    assert set(NAMES) == {"cosine", "linear", "polynomial", "karras", "rectified_flow"}
    assert set(VP_NAMES) == {"cosine", "linear", "polynomial"}


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_alpha_sigma_in_range_and_shaped_like_t(name, dtype):
    schedule = make_schedule(name)
    t = torch.linspace(0.0, 1.0, 501, dtype=dtype).reshape(3, 167)
    alpha, sigma = schedule.alpha_sigma(t)
    assert alpha.shape == t.shape and sigma.shape == t.shape
    assert alpha.dtype == dtype and sigma.dtype == dtype
    assert torch.isfinite(alpha).all() and torch.isfinite(sigma).all()
    # alpha is a signal scale in [0, 1] for every schedule (VE keeps it at exactly 1).
    assert (alpha >= 0).all() and (alpha <= 1).all()
    sigma_max = schedule.sigma_max if isinstance(schedule, KarrasSchedule) else 1.0
    assert (sigma >= 0).all() and (sigma <= sigma_max * (1 + 1e-6)).all()


@pytest.mark.parametrize("name", EXACT_DATA_AT_ZERO)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_time_zero_is_the_data_exactly(name, dtype):
    """``t = 0`` is the data: sigma(0) = 0 and alpha(0) = 1 exactly, in the default float32.

    Samplers end on ``times[-1] = 0`` and Inpainting promises the known values *exactly* at
    s = 0, both of which need sigma(0) == 0 with no rounding slack.
    """
    alpha, sigma = make_schedule(name).alpha_sigma(torch.zeros((), dtype=dtype))
    assert float(sigma) == 0.0, f"{name} sigma(0) = {float(sigma):.3g} in {dtype}"
    assert float(alpha) == 1.0
    assert make_schedule(name).log_snr(torch.zeros((), dtype=dtype)) == float("inf")


@pytest.mark.parametrize("name", NAMES)
def test_log_snr_strictly_decreasing(name):
    schedule = make_schedule(name)
    # On [0.01, 0.99] every schedule is strictly decreasing (the cosine floor at
    # min_alpha_bar only bites above t ~ 0.998); on all of [0, 1] it is non-increasing.
    inner = schedule.log_snr(_grid(0.01, 0.99))
    assert (inner[1:] < inner[:-1]).all()
    full = schedule.log_snr(_grid())
    assert (full[1:] <= full[:-1]).all()


@pytest.mark.parametrize("name", NAMES)
@HYPOTHESIS
@given(t=st.floats(0.01, 0.99))
def test_t_from_log_snr_inverts_log_snr(name, t):
    schedule = make_schedule(name)
    tt = torch.tensor(t, dtype=torch.float64)
    back = schedule.t_from_log_snr(schedule.log_snr(tt))
    # The inverses (arccos, sqrt, log) amplify float64 rounding by at most ~1e3 on this
    # range (worst: polynomial near t = 0.01 where 1 - t^2 cancels), so 1e-9 is generous.
    torch.testing.assert_close(back, tt, rtol=0.0, atol=1e-9)


@pytest.mark.parametrize("name", NAMES)
def test_t_from_log_snr_clamps_to_unit_interval(name):
    schedule = make_schedule(name)
    extreme = torch.tensor([-1e3, -80.0, 80.0, 1e3], dtype=torch.float64)
    t = schedule.t_from_log_snr(extreme)
    assert torch.isfinite(t).all() and (t >= 0).all() and (t <= 1).all()


@pytest.mark.parametrize("name", NAMES)
@HYPOTHESIS
@given(t=st.floats(0.02, 0.98))
def test_d_alpha_sigma_matches_central_differences(name, t):
    schedule = make_schedule(name)
    h = 1e-6
    tt = torch.tensor([t - h, t, t + h], dtype=torch.float64)
    alpha, sigma = schedule.alpha_sigma(tt)
    d_alpha, d_sigma = schedule.d_alpha_sigma(tt[1:2])
    fd_alpha = (alpha[2] - alpha[0]) / (2 * h)
    fd_sigma = (sigma[2] - sigma[0]) / (2 * h)
    # Central differences: truncation ~h^2 f'''/6 and rounding ~eps |f| / h. With h = 1e-6
    # and |f| <= 80 (Karras sigma_max) rounding is <= 2e-8 and truncation <= 2e-9 (Karras'
    # f''' ~ 1e4), so rtol 1e-6 with atol 1e-7 leaves a 5x margin.
    torch.testing.assert_close(d_alpha[0], fd_alpha, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(d_sigma[0], fd_sigma, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", VP_NAMES)
def test_variance_preserving(name):
    alpha, sigma = make_schedule(name).alpha_sigma(_grid())
    # sigma = sqrt(1 - alpha^2) in closed form: the identity holds to float64 rounding.
    torch.testing.assert_close(alpha**2 + sigma**2, torch.ones_like(alpha), rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("steps", [1, 7, 50])
def test_time_grid_shape_and_endpoints(name, steps):
    schedule = make_schedule(name)
    grid = schedule.time_grid(steps)
    assert grid.shape == (steps + 1,) and grid.dtype == torch.float32
    assert float(grid[0]) == 1.0 and float(grid[-1]) == 0.0
    assert (grid[1:] < grid[:-1]).all()
    sub = schedule.time_grid(steps, t_start=0.8, t_end=0.1, dtype=torch.float64)
    assert sub.dtype == torch.float64 and sub.shape == (steps + 1,)
    assert float(sub[0]) == 0.8 and float(sub[-1]) == 0.1


@pytest.mark.parametrize("steps", [0, -3])
def test_time_grid_rejects_fewer_than_one_step(steps):
    with pytest.raises(ValueError, match="steps must be >= 1"):
        make_schedule("cosine").time_grid(steps)


@pytest.mark.parametrize(
    ("t_start", "t_end"), [(0.5, 0.5), (0.2, 0.6), (1.2, 0.0), (1.0, -0.1), (0.0, 0.0)]
)
def test_time_grid_rejects_bad_endpoints(t_start, t_end):
    with pytest.raises(ValueError, match="need 0 <= t_end < t_start <= 1"):
        make_schedule("linear").time_grid(10, t_start=t_start, t_end=t_end)


def test_make_schedule_unknown_name_lists_accepted():
    with pytest.raises(ValueError, match="unknown schedule 'nope'") as info:
        make_schedule("nope")
    for name in NAMES:
        assert name in str(info.value)


def test_make_schedule_passes_kwargs():
    schedule = make_schedule("karras", sigma_max=10.0)
    assert isinstance(schedule, KarrasSchedule) and schedule.sigma_max == 10.0
    _, sigma = schedule.alpha_sigma(torch.ones((), dtype=torch.float64))
    torch.testing.assert_close(float(sigma), 10.0, rtol=1e-12, atol=0)


@pytest.mark.parametrize("name", NAMES)
def test_discrete_alphas_cumprod_decreasing_in_unit_interval(name):
    """The DDPM view must be a valid ``alphas_cumprod``: in (0, 1], non-increasing.

    A value of exactly 0 means beta_N = 1 and ``1 / sqrt(alphas_cumprod)`` (every discrete
    epsilon->x0 conversion, e.g. diffusers' schedulers fed ``trained_betas``) is infinite.
    """
    schedule = make_schedule(name)
    ac = schedule.discrete_alphas_cumprod(1000)
    assert ac.shape == (1000,) and ac.dtype == torch.float64
    assert (ac <= 1).all()
    assert (ac[1:] <= ac[:-1]).all()
    # Strictly decreasing wherever the cosine floor min_alpha_bar does not hold it flat.
    above_floor = ac > 1.0001e-5
    assert (ac[1:][above_floor[1:]] < ac[:-1][above_floor[1:]]).all()
    assert (ac > 0).all(), f"{name}: alphas_cumprod reaches {float(ac.min())} (beta = 1)"
