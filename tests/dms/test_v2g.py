"""V2G participation and FCR assignment: the 15-min energy limit worked out by hand
(1 MWh over 0.25 h is 4 MW), no up from an EV without margin, agreement with the fleet's
own droop capability, a share in [0, 1], and a pro-rata assignment that sums to the
request when it can and to the capability when it cannot."""

from __future__ import annotations

import numpy as np
import pytest

from twin.dms.v2g import assign_fcr, v2g_participation
from twin.models.ev.fleet import EVFleet
from twin.models.ev.sessions import Sessions
from twin.models.ev.spec import EVFleetSpec


def test_energy_limit_over_the_15_min_hold():
    # two EVs on 11 kW chargers: 0.022 MW; 2 kWh of margin held 0.25 h gives 0.008 MW
    v = v2g_participation(["cp1"], 0.022, 0.0, 0.002, 0.050)
    assert v.up_mw[0] == pytest.approx(0.008)
    assert v.down_mw[0] == pytest.approx(0.022)          # 50 kWh of room: the charger binds
    assert v.symmetric_mw[0] == pytest.approx(0.008)
    assert v.share[0] == pytest.approx(0.008 / 0.022)
    # 1 kWh of room: 0.004 MW of extra charging over 15 min
    assert v2g_participation(["cp1"], 0.022, 0.0, 0.05, 0.001).down_mw[0] == pytest.approx(0.004)
    # a 5-min hold would allow three times the power from the same margin
    assert v2g_participation(["cp1"], 0.022, 0.0, 0.002, 0.05,
                             hold_s=300.0).up_mw[0] == pytest.approx(0.022)


def test_no_margin_no_up():
    v = v2g_participation(["idle", "charging", "behind"], 0.011, [0.0, 0.011, 0.011],
                          [0.0, 0.0, -0.001], 0.02)
    assert v.up_mw[0] == 0.0 and v.share[0] == 0.0      # nothing to discharge
    assert v.up_mw[1] == pytest.approx(0.011)           # may stop charging, not discharge
    assert v.down_mw[1] == 0.0                           # already at full charge
    # 1 kWh behind its trajectory: must charge 0.004 MW over the hold → 0.007 MW of up
    assert v.up_mw[2] == pytest.approx(0.007)


def test_agrees_with_the_fleet_droop_capability():
    # one V2G EV: 50 kWh, 11 kW both ways, eta 0.92, soc_min 0.2; SOC 0.22, target 0.8 in
    # 8 h. At t + 15 min the trajectory lies below soc_min, so the margin is
    # (0.22 − 0.2) · 0.05 = 1 kWh; room to the target 0.029 MWh.
    spec = EVFleetSpec(charge_point=[0], capacity_mwh=0.05, p_charge_max_mw=0.011,
                       p_discharge_max_mw=0.011, eta_charge=0.92, eta_discharge=0.92,
                       soc_min=0.2)
    fleet = EVFleet(spec, Sessions(ev=[0], arrival_s=0.0, departure_s=8 * 3600.0,
                                   soc_arrival=0.22, soc_target=0.8), history="none")
    v = v2g_participation(["cp"], 0.011, 0.0, 0.001, 0.029, eta_charge=0.92,
                          eta_discharge=0.92)
    assert v.symmetric_mw[0] == pytest.approx(0.001 * 0.92 * 4)      # 3.68 kW
    assert v.symmetric_mw[0] == pytest.approx(
        fleet.droop_capability_mw_per_hz(f_band_hz=0.2)[0] * 0.2)


def test_share_lies_in_0_1():
    rng = np.random.default_rng(11)
    n = 200
    p_max = rng.choice([0.0, 0.011, 0.022, 0.044], n)
    v = v2g_participation([f"cp{i}" for i in range(n)], p_max,
                          rng.uniform(-1, 1, n) * p_max, rng.uniform(-0.005, 0.03, n),
                          rng.uniform(0.0, 0.03, n), eta_charge=0.92, eta_discharge=0.92)
    assert ((v.share >= 0) & (v.share <= 1)).all()
    assert (v.share[p_max == 0] == 0).all()
    assert 0 <= v.share_total <= 1
    assert v.symmetric_total_mw == pytest.approx(v.symmetric_mw.sum())
    assert v.share_total == pytest.approx(v.symmetric_mw.sum() / p_max.sum())


def three_points():
    # symmetric capability 0.008, 0.022 and 0 MW (see the tests above)
    return v2g_participation(["a", "b", "c"], [0.022, 0.022, 0.011], 0.0,
                             [0.002, 0.05, 0.0], 0.05, n_connected=[2, 2, 1])


def test_assignment_pro_rata_when_feasible():
    cap = three_points()
    np.testing.assert_allclose(cap.symmetric_mw, [0.008, 0.022, 0.0], atol=1e-15)
    a = assign_fcr(0.015, cap)
    assert a.reserve_mw.sum() == pytest.approx(0.015)
    # 0.015 / 0.030 = half of each point's capability
    np.testing.assert_allclose(a.reserve_mw, [0.004, 0.011, 0.0], atol=1e-15)
    assert (a.reserve_mw <= cap.symmetric_mw).all()
    assert a.unassigned_mw == pytest.approx(0.0, abs=1e-15)
    assert "pro rata" in a.reason and "50 %" in a.reason


def test_assignment_capped_when_not_feasible():
    cap = three_points()
    a = assign_fcr(0.050, cap)
    np.testing.assert_allclose(a.reserve_mw, cap.symmetric_mw)
    assert a.assigned_mw == pytest.approx(0.030)
    assert a.unassigned_mw == pytest.approx(0.020)
    assert a.reason.startswith("Only 0.030 of the 0.050 MW")
    none = assign_fcr(0.01, v2g_participation(["x"], 0.011, 0.0, 0.0, 0.0))
    assert none.assigned_mw == 0.0 and none.unassigned_mw == pytest.approx(0.01)
    with pytest.raises(ValueError, match="reserve_mw must be >= 0"):
        assign_fcr(-1.0, cap)
