"""The twin's units answering the frequency (twin.models.frequency_units) and synthetic
inertia in the area's integration (twin.models.frequency.SyntheticInertia)."""

from __future__ import annotations

import numpy as np
import pytest

from twin.models.frequency import AreaSpec, AreaState, SyntheticInertia, advance
from twin.models.frequency_units import ResponseSettings, TwinUnits

SPEC = AreaSpec()
M = 2.0 * SPEC.inertia_h_s * SPEC.rated_mw / SPEC.f0_hz  # 2 H S / f0 [MW per Hz/s]


def units(**settings) -> TwinUnits:
    u = TwinUnits(ResponseSettings(**settings), pv_rated_mw=[0.5, 0.2], wind_rated_mw=[2.0],
                  battery_p_max_mw=[1.0, 0.4], battery_p_charge_max_mw=[1.0, 0.4],
                  battery_e_mwh=[2.0, 0.8], battery_soc_min=[0.1, 0.1],
                  battery_soc_max=[0.9, 0.9], n_ev_points=2)
    u.observe_pv([0.4, 0.1], [0.4, 0.05])  # the second is curtailed by the DMS to 0.05
    u.observe_wind([1.5], [1.5])
    u.observe_batteries([0.5, 0.5], [0.0, 0.0])
    u.observe_ev([0.3, 0.0], [0.0, 0.1])  # point 0 can only give, point 1 only take
    return u


def test_synthetic_inertia_lowers_the_first_rocof_within_its_headroom():
    trip = -3_000.0
    k = 6_000.0  # a tenth of the area's own
    first = advance(SPEC, AreaState(), 0.02, trip, inertia=SyntheticInertia(k, 1e9, 1e9))
    assert first.rocof_max_hz_s == pytest.approx(-trip / (M + k), rel=1e-12)
    assert first.p_inertia_mw == pytest.approx(-k * trip / (M + k), rel=1e-12)
    # clipped: a fixed power, the rest as without it
    clipped = advance(SPEC, AreaState(), 0.02, trip, inertia=SyntheticInertia(k, 100.0, 0.0))
    assert clipped.rocof_max_hz_s == pytest.approx(-(trip + 100.0) / M, rel=1e-12)
    assert clipped.p_inertia_mw == pytest.approx(100.0)
    none = advance(SPEC, AreaState(), 0.02, trip)
    assert none.rocof_max_hz_s == pytest.approx(-trip / M) and none.p_inertia_mw == 0.0


def test_fcr_of_batteries_is_their_share_at_full_activation_and_energy_limited():
    u = units(fcr_battery_share=0.5)
    r = u.step(50.0 - 0.2, 0.1)
    assert r.fcr_battery_mw == pytest.approx([0.5, 0.2])
    assert u.step(50.0 - 0.005, 0.1).fcr_battery_mw == pytest.approx([0.0, 0.0])  # deadband
    # nearly empty: what it can hold for 15 min, (soc − soc_min) · E · 3600 / 900
    u.observe_batteries([0.12, 0.5], [0.0, 0.0])
    r = u.step(50.0 - 0.2, 0.1)
    assert r.fcr_battery_mw[0] == pytest.approx(0.02 * 2.0 * 4.0)
    # over-frequency charges them: the room up to soc_max limits it alike
    u.observe_batteries([0.89, 0.5], [0.0, 0.0])
    assert u.step(50.0 + 0.2, 0.1).fcr_battery_mw == pytest.approx([-0.01 * 2.0 * 4.0, -0.2])


def test_v2g_fcr_answers_each_side_with_that_sides_capability():
    u = units(v2g_share=0.5)
    assert u.step(49.8, 0.1).fcr_ev_mw == pytest.approx([0.15, 0.0])
    assert u.step(50.2, 0.1).fcr_ev_mw == pytest.approx([0.0, -0.05])
    half = u.step(50.0 - 0.105, 0.1).fcr_ev_mw  # halfway between deadband and full
    assert half == pytest.approx([0.075, 0.0])


def test_pf_caps_only_units_above_the_characteristic():
    u = units()
    r = u.step(50.7, 0.1)  # crossing 50.2 now: P_M is today's output
    assert r.pv_cap_mw == pytest.approx([0.4 * 0.8, 0.1 * 0.8])
    assert r.wind_cap_mw == pytest.approx([1.5 * 0.8])
    # withheld: only what the cap takes off the output (the curtailed unit loses nothing)
    assert r.pf_mw == pytest.approx(-(0.4 * 0.2 + 0.3))
    r = u.step(50.1, 0.1)
    assert np.isinf(r.pv_cap_mw).all() and r.pf_mw == 0.0
    r = u.step(51.6, 0.1)
    assert r.pv_cap_mw == pytest.approx([0.0, 0.0]) and r.pf_mw == pytest.approx(-1.95)
    # back under 50.05 Hz: ramping up from zero at 10 % of rated per minute
    r = u.step(50.04, 60.0)
    assert r.pv_cap_mw == pytest.approx([0.0, 0.0])
    r = u.step(50.0, 60.0)
    assert r.pv_cap_mw == pytest.approx([0.05, 0.02])


def test_the_area_share_of_synthetic_inertia_goes_back_by_headroom():
    u = units(wind_inertia_h_s=4.0, storage_inertia_h_s=2.0, scale=1000.0)
    si = u.inertia()
    k_twin = 2.0 * (4.0 * 2.0 + 2.0 * 1.4) / 50.0
    assert si.k_mw_s_per_hz == pytest.approx(1000.0 * k_twin)
    # up: the rotor's 10 % of 2 MW and both batteries' converters (idle: 1.0 + 0.4)
    assert si.up_mw == pytest.approx(1000.0 * (0.2 + 1.4))
    wind, bat = u.share_inertia(800.0)
    assert wind.sum() + bat.sum() == pytest.approx(0.8)
    assert wind == pytest.approx([0.8 * 0.2 / 1.6]) and bat == pytest.approx(
        [0.8 * 1.0 / 1.6, 0.8 * 0.4 / 1.6])
