"""Samplers reject bad input up front with a ValueError that says what is wrong, and spend the
number of network evaluations they advertise."""

from __future__ import annotations

import pytest
import torch

from sci_diffusion.core import (
    SAMPLERS,
    CategoricalSpace,
    CosineSchedule,
    EuclideanSpace,
    GaussianMixture,
    ProductSpace,
    RectifiedFlowSchedule,
    function_evaluations,
    get_sampler,
    sample,
)

NAMES = sorted(SAMPLERS)
SCHEDULE = CosineSchedule()
SPACE = EuclideanSpace(SCHEDULE)
MIXTURE = GaussianMixture(torch.tensor([[-1.0, 0.0], [1.0, 0.5]]), torch.tensor([0.3, 0.4]))
DENOISE = MIXTURE.denoiser(SCHEDULE)
X = torch.randn(4, 2, generator=torch.Generator().manual_seed(0))


def _run(name: str, times: torch.Tensor, **kwargs):
    options = {"space": SPACE, **kwargs}
    return sample(name, DENOISE, options.pop("x", X), times, **options)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(
    "times",
    [
        torch.tensor([1.5, 0.5, 0.0]),
        torch.tensor([1.0, 0.5, -0.1]),
        torch.tensor([[1.0] * 4, [0.5, 0.5, 2.0, 0.5], [0.0] * 4]),  # per-sample grid
    ],
)
def test_times_outside_unit_interval(name, times):
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        _run(name, times)


def test_nan_times_are_rejected():
    """NaN is not in [0, 1]; letting it through silently turns every sample into NaN.
    (One sampler suffices: all share the same check.)"""
    times = torch.tensor([1.0, float("nan"), 0.0])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        _run("ddim", times)


@pytest.mark.parametrize("name", NAMES)
def test_integer_times_are_rejected(name):
    with pytest.raises(ValueError, match="floating-point"):
        _run(name, torch.tensor([1, 0]))


@pytest.mark.parametrize("name", NAMES)
def test_increasing_times(name):
    with pytest.raises(ValueError, match="non-increasing"):
        _run(name, torch.tensor([0.2, 0.5, 0.0]))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("times", [torch.tensor([0.5]), torch.tensor(0.5)], ids=["(1,)", "()"])
def test_grid_without_a_step(name, times):
    with pytest.raises(ValueError, match=r"N >= 1") as info:
        _run(name, times)
    assert str(tuple(times.shape)) in str(info.value)


@pytest.mark.parametrize("name", NAMES)
def test_wrong_mask_dtype(name):
    x = torch.randn(3, 5, 2)
    with pytest.raises(ValueError, match=r"must be a bool tensor, got dtype torch\.float32"):
        _run(name, SCHEDULE.time_grid(3, t_start=0.9), x=x, mask=torch.ones(3, 5))


@pytest.mark.parametrize("name", NAMES)
def test_wrong_mask_shape(name):
    x = torch.randn(3, 5, 2)
    with pytest.raises(ValueError, match=r"\(3, 4\).*\(3, 5, 2\)"):
        _run(name, SCHEDULE.time_grid(3, t_start=0.9), x=x, mask=torch.ones(3, 4, dtype=bool))


@pytest.mark.parametrize("name", NAMES)
def test_product_state_with_missing_key(name):
    space = ProductSpace({"pos": SPACE, "atoms": CategoricalSpace(3, SCHEDULE)})
    with pytest.raises(ValueError, match=r"dict with keys \['atoms', 'pos'\]"):
        sample(name, DENOISE, {"pos": X}, SCHEDULE.time_grid(3, t_start=0.9), space=space)


@pytest.mark.parametrize("name", NAMES)
def test_dict_state_on_single_space(name):
    with pytest.raises(ValueError, match="ProductSpace"):
        _run(name, SCHEDULE.time_grid(3, t_start=0.9), x={"x": X})


def test_unknown_sampler_name():
    with pytest.raises(ValueError, match="unknown sampler 'euler_ancestral'") as info:
        get_sampler("euler_ancestral")
    for name in NAMES:
        assert name in str(info.value)
    with pytest.raises(ValueError, match="unknown sampler"):
        function_evaluations("euler_ancestral", 10)
    with pytest.raises(ValueError, match="unknown sampler"):
        sample("euler_ancestral", DENOISE, X, SCHEDULE.time_grid(3), space=SPACE)


@pytest.mark.parametrize("name", ["heun", "euler_maruyama"])
def test_alpha_dividing_samplers_refuse_rectified_flow_from_one(name):
    schedule = RectifiedFlowSchedule()
    space = EuclideanSpace(schedule)
    denoise = MIXTURE.denoiser(schedule)
    with pytest.raises(ValueError, match="flow_heun") as info:
        sample(name, denoise, X, schedule.time_grid(4), space=space)
    assert "alpha" in str(info.value) and "RectifiedFlowSchedule" in str(info.value)
    # Starting below t = 1 is fine.
    out = sample(name, denoise, X, schedule.time_grid(4, t_start=0.99), space=space)
    assert torch.isfinite(out).all()


def test_euler_churn_refuses_rectified_flow_from_one():
    schedule = RectifiedFlowSchedule()
    with pytest.raises(ValueError, match="flow_heun"):
        sample(
            "euler", MIXTURE.denoiser(schedule), X, schedule.time_grid(4),
            space=EuclideanSpace(schedule), churn=1.0,
        )  # fmt: skip


def test_function_evaluations_values():
    assert function_evaluations("heun", 10) == 19
    assert function_evaluations("flow_heun", 10) == 19
    for name in set(NAMES) - {"heun", "flow_heun"}:
        assert function_evaluations(name, 10) == 10


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("t_end", [0.0, 0.05])
def test_function_evaluations_match_denoiser_calls(name, t_end):
    """``function_evaluations`` is what the sampler really spends. Heun skips its corrector on
    the final step to sigma = 0 (documented "2N - 1 network evaluations"), so that step must
    not call the network either; ending at t > 0 keeps all N correctors (2N calls)."""
    calls = []

    def counting(x, t):
        calls.append(t)
        return DENOISE(x, t)

    steps = 10
    times = SCHEDULE.time_grid(steps, t_start=0.99, t_end=t_end)
    sample(name, counting, X, times, space=SPACE, generator=torch.Generator().manual_seed(1))
    expected = function_evaluations(name, steps)
    if t_end > 0 and name in {"heun", "flow_heun"}:
        expected = 2 * steps
    assert len(calls) == expected, f"{name}: {len(calls)} calls, advertised {expected}"


@pytest.mark.parametrize("name", sorted(set(SAMPLERS) - {"categorical"}))
def test_state_dtype_may_differ_from_time_dtype(name: str) -> None:
    """A float64 state on a float32 grid (and the reverse) samples without dtype errors."""
    schedule = CosineSchedule()
    space = EuclideanSpace(schedule)
    for state_dtype, time_dtype in ((torch.float64, torch.float32), (torch.float32, torch.float64)):
        x = torch.randn(4, 2, dtype=state_dtype)
        times = schedule.time_grid(5, t_start=0.99, dtype=time_dtype)
        out = sample(name, lambda x, t: 0.5 * x, x, times, space=space)
        assert torch.isfinite(out).all()
