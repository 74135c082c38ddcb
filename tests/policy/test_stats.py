import math

import pytest

from sci_diffusion.policy.stats import wilson_interval


def test_wilson_matches_hand_computed_values():
    # 45/50: p = 0.9, z = 1.96: centre = (0.9 + 0.038415) / 1.076829 = 0.871484,
    # half = 1.96 * sqrt(0.0018 + 0.0003841) / 1.076829 = 0.085056.
    low, high = wilson_interval(45, 50)
    assert math.isclose(low, 0.78645, abs_tol=1e-4)
    assert math.isclose(high, 0.95655, abs_tol=1e-4)


def test_wilson_stays_inside_unit_interval_at_the_extremes():
    low, high = wilson_interval(50, 50)
    assert high == pytest.approx(1.0) and 0.9 < low < 1.0
    low, high = wilson_interval(0, 50)
    assert low == 0.0 and 0.0 < high < 0.1


def test_wilson_rejects_impossible_counts():
    with pytest.raises(ValueError):
        wilson_interval(3, 0)
    with pytest.raises(ValueError):
        wilson_interval(6, 5)
