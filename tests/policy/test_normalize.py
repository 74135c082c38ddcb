import pytest
import torch

from sci_diffusion.policy.normalize import MIN_RANGE, LimitsNormalizer


def test_limits_map_the_demonstrated_range_onto_unit_interval_and_back():
    data = torch.tensor([[0.0, -3.0, 5.0], [2.0, 1.0, 5.0], [1.0, 0.0, 5.0]])
    norm = LimitsNormalizer(3).fit(data)
    y = norm.normalize(data)
    torch.testing.assert_close(y[:, :2].min(0).values, torch.tensor([-1.0, -1.0]))
    torch.testing.assert_close(y[:, :2].max(0).values, torch.tensor([1.0, 1.0]))
    # A constant dimension is centred, not divided by its (zero) range.
    torch.testing.assert_close(y[:, 2], torch.zeros(3))
    torch.testing.assert_close(norm.unnormalize(y), data)


def test_round_trip_on_random_data_including_nearly_constant_dims():
    g = torch.Generator().manual_seed(0)
    data = torch.randn(200, 4, generator=g) * torch.tensor([1.0, 100.0, 1e-3, MIN_RANGE / 10])
    norm = LimitsNormalizer(4).fit(data)
    back = norm.unnormalize(norm.normalize(data))
    # float32: relative to each dimension's range (scales of 1e-5 .. 1e2 in one tensor).
    span = (data.max(0).values - data.min(0).values).clamp_min(MIN_RANGE)
    assert ((back - data).abs() / span).max() < 1e-5


def test_statistics_travel_in_the_state_dict():
    norm = LimitsNormalizer(2).fit(torch.tensor([[0.0, 1.0], [4.0, 3.0]]))
    copy = LimitsNormalizer(2)
    copy.load_state_dict(norm.state_dict())
    assert set(norm.state_dict()) == {"low", "high"}
    torch.testing.assert_close(copy.normalize(torch.tensor([[2.0, 2.0]])), torch.zeros(1, 2))


def test_fit_refuses_wrong_width_and_non_finite_data():
    with pytest.raises(ValueError, match="expects 3 features"):
        LimitsNormalizer(3).fit(torch.zeros(5, 2))
    with pytest.raises(ValueError, match="NaN or inf"):
        LimitsNormalizer(1).fit(torch.tensor([[0.0], [float("nan")]]))
