"""PV plants (twin.models.pv): PVWatts chain, checked against hand numbers and pvlib."""

from __future__ import annotations

import math

import numpy as np
import pvlib
import pytest

from twin.models.pv import (
    PVPlants,
    available_power_mw,
    cell_temperature_c,
    dc_power_mw,
    dispatch,
    poa_irradiance_w_m2,
)


def stc_weather(wind_speed_m_s: float = 2.0) -> dict[str, float]:
    """Sun at 30° zenith due south, beam only, air cold enough for a 25 °C cell.

    A south-facing 30° plane then sees the beam at normal incidence: POA = DNI = 1000 W/m².
    Faiman: T_cell = T_air + 1000 / (25 + 6.84 × 2) = T_air + 25.853, so T_air = −0.853 °C.
    """
    return dict(
        ghi_w_m2=1000.0 * math.cos(math.radians(30.0)),
        dni_w_m2=1000.0,
        dhi_w_m2=0.0,
        solar_zenith_deg=30.0,
        solar_azimuth_deg=180.0,
        temp_air_c=25.0 - 1000.0 / (25.0 + 6.84 * wind_speed_m_s),
        wind_speed_m_s=wind_speed_m_s,
    )


def test_stc_dc_equals_peak_after_losses_and_ac_follows_pvwatts():
    plants = PVPlants.from_lists([1.0, 2.5], tilt_deg=30.0, azimuth_deg=180.0,
                                 s_inverter_mva=[1.0, 2.5], albedo=0.0)
    w = stc_weather()
    poa = poa_irradiance_w_m2(plants, w["ghi_w_m2"], w["dni_w_m2"], w["dhi_w_m2"],
                              w["solar_zenith_deg"], w["solar_azimuth_deg"])
    np.testing.assert_allclose(poa, 1000.0, rtol=1e-12)
    temp_cell = cell_temperature_c(poa, w["temp_air_c"], w["wind_speed_m_s"])
    np.testing.assert_allclose(temp_cell, 25.0, rtol=1e-12)
    p_dc = dc_power_mw(plants, poa, temp_cell)
    np.testing.assert_allclose(p_dc, [0.86, 2.15], rtol=1e-9)  # p_peak × (1 − 0.14)

    # PVWatts inverter by hand, plant 1: P_dc0 = 1 / 0.96 MW, zeta = 0.86 × 0.96 = 0.8256,
    # eta = 0.96 / 0.9637 × (0.9858 − 0.0133747 − 0.0071463) = 0.99616 × 0.96528 = 0.96157
    zeta = 0.86 * 0.96
    eta = 0.96 / 0.9637 * (-0.0162 * zeta - 0.0059 / zeta + 0.9858)
    assert eta == pytest.approx(0.96157, abs=1e-5)
    p_ac = available_power_mw(plants, **w)
    np.testing.assert_allclose(p_ac, [0.86 * eta, 2.15 * eta], rtol=1e-12)


def test_inverter_clips_at_s():
    plants = PVPlants.from_lists(1.0, tilt_deg=30.0, s_inverter_mva=0.7, albedo=0.0)
    np.testing.assert_allclose(available_power_mw(plants, **stc_weather()), [0.7])


def test_matches_pvlib_chain():
    rng = np.random.default_rng(5)
    plants = PVPlants.from_lists(
        rng.uniform(0.1, 5.0, 10), rng.uniform(0, 60, 10), rng.uniform(60, 300, 10),
        s_inverter_mva=rng.uniform(0.1, 5.0, 10), albedo=0.25,
    )
    for _ in range(20):
        zenith, azimuth = rng.uniform(0, 89), rng.uniform(0, 360)
        dni, dhi = rng.uniform(0, 900), rng.uniform(0, 300)
        ghi = dni * math.cos(math.radians(zenith)) + dhi
        temp_air, wind = rng.uniform(-10, 35), rng.uniform(0, 15)
        poa = pvlib.irradiance.get_total_irradiance(
            plants.tilt_deg, plants.azimuth_deg, zenith, azimuth, dni, ghi, dhi,
            albedo=0.25, model="isotropic",
        )["poa_global"]
        temp_cell = pvlib.temperature.faiman(poa, temp_air, wind)
        p_dc = pvlib.pvsystem.pvwatts_dc(poa, temp_cell, plants.p_peak_mw * 0.86, -0.004)
        p_ac = pvlib.inverter.pvwatts(p_dc, plants.s_inverter_mva / 0.96, 0.96)
        ours = available_power_mw(plants, ghi, dni, dhi, zenith, azimuth, temp_air, wind)
        np.testing.assert_allclose(ours, p_ac, rtol=1e-12, atol=1e-15)


def test_zero_at_night():
    plants = PVPlants.from_lists([1.0, 2.0, 3.0], tilt_deg=[0, 30, 90],
                                 azimuth_deg=[180, 90, 0])
    dark = available_power_mw(plants, 0.0, 0.0, 0.0, 110.0, 0.0, 10.0, 3.0)
    np.testing.assert_array_equal(dark, 0.0)
    # Bad data (beam with the sun below the horizon) still gives no beam on any plane.
    poa = poa_irradiance_w_m2(plants, 0.0, 500.0, 0.0, 95.0, 0.0)
    np.testing.assert_array_equal(poa, 0.0)


def test_tilt_facing_sun_beats_horizontal_at_low_sun():
    # Winter noon in Berlin: sun at 75° zenith due south, clear sky.
    plants = PVPlants.from_lists([1.0, 1.0, 1.0], tilt_deg=[0.0, 60.0, 60.0],
                                 azimuth_deg=[180.0, 180.0, 0.0])
    dni, dhi = 500.0, 80.0
    ghi = dni * math.cos(math.radians(75.0)) + dhi  # 209.4 W/m²
    p = available_power_mw(plants, ghi, dni, dhi, 75.0, 180.0, 0.0, 3.0)
    horizontal, south, north = p
    assert south > 2.0 * horizontal > 0.0
    assert north < horizontal


def test_weather_arrays_broadcast_over_time():
    plants = PVPlants.from_lists([1.0, 2.0], tilt_deg=[20, 35], azimuth_deg=[170, 200])
    ghi = np.array([[0.0], [300.0], [800.0]])
    out = available_power_mw(plants, ghi, ghi, 0.3 * ghi, np.array([[95.0], [60.0], [30.0]]),
                             180.0, 15.0, 2.0)
    assert out.shape == (3, 2)
    for k in range(3):
        one = available_power_mw(plants, ghi[k, 0], ghi[k, 0], 0.3 * ghi[k, 0],
                                 [95.0, 60.0, 30.0][k], 180.0, 15.0, 2.0)
        np.testing.assert_array_equal(out[k], one)


def test_plants_validate_and_are_frozen():
    with pytest.raises(ValueError, match="one value per plant"):
        PVPlants(p_peak_mw=[1.0, 2.0], tilt_deg=[30, 30, 30], azimuth_deg=180,
                 s_inverter_mva=1.0)
    with pytest.raises(ValueError, match="system_loss_fraction"):
        PVPlants.from_lists(1.0, system_loss_fraction=1.5)
    plants = PVPlants.from_lists([1.0, 2.0])
    assert len(plants) == 2
    np.testing.assert_array_equal(plants.s_inverter_mva, [1.0, 2.0])
    with pytest.raises(ValueError):
        plants.p_peak_mw[0] = 5.0


def test_dispatch_energy_balance_and_s_limit():
    rng = np.random.default_rng(11)
    n = 10_000
    s = rng.uniform(0.1, 5.0, n)
    available = s * rng.uniform(0.0, 1.0, n)
    limit = np.where(rng.random(n) < 0.2, np.nan, available * rng.uniform(0.0, 1.5, n))
    limit[:10] = np.inf
    q_set = s * rng.uniform(-1.5, 1.5, n)
    p, q, curtailed = dispatch(available, limit, q_set, s)

    np.testing.assert_array_equal(p + curtailed, available)  # exactly, not approximately
    assert (curtailed >= 0).all()
    no_limit = ~np.isfinite(limit)
    np.testing.assert_array_equal(p[no_limit], available[no_limit])
    np.testing.assert_allclose(p[~no_limit], np.minimum(available, limit)[~no_limit],
                               rtol=1e-15, atol=1e-15)
    assert (p * p + q * q <= s * s * (1 + 1e-12)).all()
    assert (np.sign(q) * np.sign(q_set) >= 0).all()
    assert (np.abs(q) <= np.abs(q_set)).all()


def test_dispatch_active_power_has_priority():
    # S = 1 MVA, P = 0.8 MW leaves sqrt(1 − 0.64) = 0.6 Mvar.
    p, q, curtailed = dispatch([0.8, 0.8, 0.8], [np.nan, 0.5, -1.0], [0.9, -0.9, 0.9], 1.0)
    np.testing.assert_allclose(p, [0.8, 0.5, 0.0])
    np.testing.assert_allclose(q, [0.6, -math.sqrt(0.75), 0.9])
    np.testing.assert_allclose(curtailed, [0.0, 0.3, 0.8])
    _, q_nan, _ = dispatch(0.5, np.inf, np.nan, 1.0)
    assert q_nan == 0.0
