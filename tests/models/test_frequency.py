"""The area's frequency and the DER's answers to it, point by point (issue 16, items 1–2)."""

from __future__ import annotations

import numpy as np
import pytest

from twin.models.frequency import AreaSpec, AreaState, advance, fcr_droop_mw
from twin.models.frequency_response import (
    OverFrequencyReduction,
    energy_limited_mw,
    fcr_response_mw,
    pf_characteristic,
    synthetic_inertia_mw,
)

AREA = AreaSpec(afrr_s=0.0)  # Continental Europe's order of magnitude; FCR alone


# ---------------------------------------------------------------- swing equation
def test_rocof_right_after_a_trip_is_dp_f0_over_2hs():
    for h_s, s_mw, trip_mw in ((5.0, 300_000.0, 3_000.0), (2.0, 50_000.0, 1_000.0)):
        spec = AreaSpec(inertia_h_s=h_s, rated_mw=s_mw, load_mw=s_mw)
        step = advance(spec, AreaState(), 0.02, -trip_mw)
        expected = -trip_mw * spec.f0_hz / (2 * h_s * s_mw)
        assert step.state.rocof_hz_s == pytest.approx(expected, rel=1e-12)
        # and the first 20 ms move the frequency by that slope
        assert step.state.df_hz == pytest.approx(expected * 0.02, rel=1e-12)


def test_fcr_reaches_full_activation_at_minus_200_mhz_within_30_s():
    # a frequency held at −200 mHz: an area whose inertia dwarfs everything
    still = AreaSpec(inertia_h_s=1e9, fcr_mw=3_000.0)
    state = AreaState(df_hz=-0.2)
    at = {}
    for t in range(1, 31):
        state = advance(still, state, 1.0, 0.0).state
        at[t] = state.p_fcr_mw
    assert at[15] == pytest.approx(1_500.0, rel=1e-6)      # half within 15 s
    assert at[29] < 3_000.0 - 1.0                            # not before 30 s …
    assert at[30] == pytest.approx(3_000.0, rel=1e-6)      # … full at 30 s


def test_fcr_droop_deadband_and_full_activation():
    assert fcr_droop_mw(0.0, 100.0) == 0.0
    assert fcr_droop_mw(-0.010, 100.0) == 0.0 and fcr_droop_mw(0.009, 100.0) == 0.0
    assert fcr_droop_mw(-0.105, 100.0) == pytest.approx(50.0)   # half-way on the line
    assert fcr_droop_mw(-0.2, 100.0) == pytest.approx(100.0)
    assert fcr_droop_mw(-0.5, 100.0) == pytest.approx(100.0)    # no more than the reserve
    assert fcr_droop_mw(0.2, 100.0) == pytest.approx(-100.0)


def test_a_reference_incident_settles_within_200_mhz_and_the_nadir_is_below():
    """3 GW lost (the Continental European reference incident): inertia, FCR and the
    load's self-regulation stop the fall; the steady state balances the loss."""
    state, f_min = AreaState(), 50.0
    for _ in range(120):  # 2 min in 1-s steps
        step = advance(AREA, state, 1.0, -3_000.0)
        state, f_min = step.state, min(f_min, step.f_min_hz)
    assert 49.8 < 50.0 + state.df_hz < 49.9                  # settled above −200 mHz
    assert f_min < 50.0 + state.df_hz - 0.01                  # a nadir before it
    balance = -3_000.0 + state.p_fcr_mw - AREA.damping_mw_per_hz * state.df_hz
    assert abs(balance) < 1.0 and abs(state.rocof_hz_s) < 1e-3


def test_more_inertia_or_a_twin_response_gives_a_better_nadir_and_rocof():
    def worst(spec, p_twin_mw=0.0):
        state, f_min, rocof = AreaState(), 50.0, 0.0
        for _ in range(60):
            step = advance(spec, state, 0.5, -3_000.0, p_twin_mw)
            state, f_min, rocof = step.state, min(f_min, step.f_min_hz), max(
                rocof, step.rocof_max_hz_s)
        return f_min, rocof

    base = worst(AREA)
    assert worst(AreaSpec(inertia_h_s=6.0, afrr_s=0.0))[0] > base[0]
    assert worst(AreaSpec(inertia_h_s=6.0, afrr_s=0.0))[1] < base[1]
    assert worst(AREA, p_twin_mw=500.0)[0] > base[0]


def test_afrr_restores_nominal_frequency_and_the_area_comes_to_rest():
    spec = AreaSpec()  # aFRR with a 5-min time constant
    state, at = AreaState(), {}
    for t in range(1, 3601):
        state = advance(spec, state, 1.0, -3_000.0).state
        at[t] = state
    assert at[60].df_hz < -0.1                                # FCR's offset first …
    assert abs(at[1800].df_hz) < 0.01                          # … restored within 30 min
    assert at[3600].p_afrr_mw == pytest.approx(3_000.0, rel=1e-3)  # aFRR replaced the loss
    assert abs(at[3600].p_fcr_mw) < 1.0                        # and FCR is free again
    assert at[3600].at_rest(spec, -3_000.0) and not at[60].at_rest(spec, -3_000.0)
    assert AreaState().at_rest(spec, 0.0) and not AreaState().at_rest(spec, -10.0)


def test_steps_split_finer_give_the_same_trajectory():
    coarse = advance(AREA, AreaState(), 10.0, -3_000.0).state
    fine = AreaState()
    for _ in range(100):
        fine = advance(AREA, fine, 0.1, -3_000.0).state
    assert fine.df_hz == pytest.approx(coarse.df_hz, abs=1e-9)
    assert fine.p_fcr_mw == pytest.approx(coarse.p_fcr_mw, abs=1e-6)


def test_bad_area_parameters_are_named():
    with pytest.raises(ValueError, match="inertia_h_s"):
        AreaSpec(inertia_h_s=0.0)
    with pytest.raises(ValueError, match="fcr_deadband_hz"):
        AreaSpec(fcr_deadband_hz=0.3)


# ---------------------------------------------------------------- P(f), VDE-AR-N 4105
@pytest.mark.parametrize("f_hz, share", [(50.0, 1.0), (50.2, 1.0), (50.7, 0.8),
                                         (51.2, 0.6), (51.5, 0.48), (51.51, 0.0)])
def test_pf_characteristic_points(f_hz, share):
    assert pf_characteristic(f_hz, np.array([2.0]))[0] == pytest.approx(2.0 * share)


def test_pf_freezes_the_power_at_50_2_hz_and_follows_the_line_both_ways():
    units = OverFrequencyReduction(np.array([1.0, 2.0]))
    avail = np.array([0.8, 1.5])
    assert units.step(50.1, avail, 1.0) == pytest.approx(avail)
    assert units.step(50.3, avail, 1.0) == pytest.approx(avail * (1 - 0.4 * 0.1))
    # more sun now does not move P_M: the line is on the power at the crossing
    assert units.step(50.7, avail * 1.2, 1.0) == pytest.approx(avail * 0.8)
    assert units.step(50.45, avail * 1.2, 1.0) == pytest.approx(avail * 0.9)
    # back below 50.2 Hz: the available power again
    assert units.step(50.15, avail * 1.2, 1.0) == pytest.approx(avail * 1.2)


def test_pf_disconnects_above_51_5_and_reconnects_below_50_05_with_a_ramp():
    units = OverFrequencyReduction(np.array([1.0]))
    avail = np.array([0.9])
    units.step(50.5, avail, 1.0)
    assert units.step(51.6, avail, 1.0) == pytest.approx([0.0])
    assert units.step(50.1, avail, 60.0) == pytest.approx([0.0])    # not yet below 50.05
    assert units.step(50.04, avail, 60.0) == pytest.approx([0.0])   # reconnects: from zero
    out = [units.step(50.0, avail, 60.0)[0] for _ in range(12)]
    # at most 10 % of rated per minute, until the available power is reached
    assert out[:9] == pytest.approx([0.1 * k for k in range(1, 10)])
    assert out[9:] == pytest.approx([0.9, 0.9, 0.9])


# ---------------------------------------------------------------- FCR, inertia
def test_fcr_response_is_limited_by_what_each_unit_can_hold():
    reserve = np.array([1.0, 1.0, 2.0])
    up, down = np.array([1.0, 0.3, 5.0]), np.array([1.0, 1.0, 0.5])
    assert fcr_response_mw(-0.2, reserve, up, down) == pytest.approx([1.0, 0.3, 2.0])
    assert fcr_response_mw(0.2, reserve, up, down) == pytest.approx([-1.0, -1.0, -0.5])
    assert fcr_response_mw(0.005, reserve, up, down) == pytest.approx([0.0, 0.0, 0.0])


def test_energy_limited_power_holds_for_15_minutes():
    # 0.25 MWh above the floor holds 1 MW for 15 min; a 0.5 MW converter caps it
    assert energy_limited_mw(np.array([0.25, 0.25, 0.0]), np.array([2.0, 0.5, 2.0])) == \
        pytest.approx([1.0, 0.5, 0.0])


def test_synthetic_inertia_opposes_the_rocof_within_headroom():
    h, s = np.array([4.0, 4.0]), np.array([2.0, 2.0])
    # −0.1 Hz/s on 2 MVA with H = 4 s: 2·4·2/50·0.1 = 0.032 MW up
    got = synthetic_inertia_mw(-0.1, h, s, up_mw=np.array([1.0, 0.01]),
                               down_mw=np.array([1.0, 1.0]))
    assert got == pytest.approx([0.032, 0.01])
    assert synthetic_inertia_mw(0.1, h, s, np.ones(2), np.ones(2)) == pytest.approx(
        [-0.032, -0.032])
