"""Wind turbines (twin.models.wind)."""

from __future__ import annotations

import numpy as np
import pytest

from twin.models.wind import PowerCurve, available_power_mw, hub_wind_speed_m_s

CURVE = PowerCurve.generic()  # cut-in 3, rated 12, cut-out 25 m/s


def test_zero_below_cut_in_and_from_cut_out():
    speeds = np.array([0.0, 1.0, 2.99, 25.0, 25.1, 30.0, 40.0])
    np.testing.assert_array_equal(available_power_mw(speeds, 3.0, CURVE), 0.0)


def test_rated_between_rated_speed_and_cut_out():
    speeds = np.linspace(12.0, 24.99, 50)
    np.testing.assert_allclose(available_power_mw(speeds, 3.0, CURVE), 3.0, rtol=1e-12)
    assert CURVE.rated_m_s == 12.0


def test_monotone_below_rated_and_cubic_at_low_speed():
    speeds = np.linspace(3.0, 12.0, 901)
    p = available_power_mw(speeds, 2.0, CURVE)
    assert (np.diff(p) >= 0).all()
    assert p[0] == 0.0 and 0 < p[1] < p[-1]
    # Cube law in the lower part: (8³ − 3³) / (12³ − 3³) = 485 / 1701.
    assert available_power_mw(8.0, 1.0, CURVE) == pytest.approx(485 / 1701, rel=1e-12)


def test_vectorised_over_turbines():
    out = available_power_mw(np.array([[5.0], [14.0]]), np.array([2.0, 3.0]), CURVE)
    assert out.shape == (2, 2)
    np.testing.assert_allclose(out[1], [2.0, 3.0])
    np.testing.assert_allclose(out[0] / [2.0, 3.0], out[0, 0] / 2.0)


def test_shear_power_law():
    # 6 m/s at 10 m → 6 × (100 / 10)^0.14 = 6 × 1.380384 = 8.2823 m/s at 100 m.
    assert hub_wind_speed_m_s(6.0) == pytest.approx(8.2823, abs=1e-4)
    # 5 m/s at 10 m → 5 × (80 / 10)^0.2 = 5 × 2^0.6 = 5 × 1.515717 = 7.5786 m/s at 80 m.
    assert hub_wind_speed_m_s(5.0, 10.0, 80.0, 0.2) == pytest.approx(7.5786, abs=1e-4)
    np.testing.assert_allclose(hub_wind_speed_m_s(np.array([0.0, 1.0]), 10.0, 10.0), [0.0, 1.0])


def test_curve_validation():
    with pytest.raises(ValueError, match="increasing"):
        PowerCurve([3.0, 3.0, 12.0], [0.0, 0.5, 1.0])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        PowerCurve([3.0, 12.0], [0.0, 1.2])
    custom = PowerCurve([4.0, 10.0, 20.0], [0.0, 1.0, 1.0])
    assert (custom.cut_in_m_s, custom.cut_out_m_s) == (4.0, 20.0)
    assert available_power_mw(7.0, 2.0, custom) == pytest.approx(1.0)


def test_hub_height_per_turbine():
    v = hub_wind_speed_m_s(np.array([5.0, 5.0]), hub_height_m=np.array([10.0, 80.0]),
                           shear_exponent=0.2)
    assert v[0] == 5.0 and v[1] == pytest.approx(5.0 * 8.0**0.2)
