"""Central curtailment on a 20 kV radial feeder with PV at different distances behind a weak
cable: the plan clears the congestion with less curtailed energy than the pro-rata cut and
than any single unit that could do it alone, checked with pandapower power flows.

The feeder (``_feeder``)::

    ext grid ─ Bus 0 ─ Line 0-1 ─ Bus 1 ─ Line 1-2 (weak, 80 A) ─ Bus 2 ─ Bus 3 ─ Bus 4
                                   └─ Line 1-5 ─ Bus 5
    PV near 0.4 MW (Bus 2), PV mid 1.35 MW (Bus 3), PV far 1.8 MW (Bus 4): behind the weak
    cable; PV lateral 0.9 MW (Bus 5): not; PV small 22 kW of 25 kWp (Bus 2): no remote
    interface; PV small remote 27 kW of 30 kWp (Bus 3): has one. 0.1 MW load per bus.

Midday back-feed loads Line 1-2 to 117.7 %.
"""

from __future__ import annotations

import copy

import numpy as np
import pandapower as pp
import pytest

from twin.dms.curtailment import (
    Congestion,
    DerUnit,
    curtail,
    eligible,
    flow_sensitivities,
    plan_curtailment,
    seventy_percent_cap_mw,
    units_from_net,
)

WEAK = "line:Line 1-2"


def _feeder(line_3_4_max_i_ka: float = 0.3) -> pp.pandapowerNet:
    net = pp.create_empty_network()
    bus = [pp.create_bus(net, 20.0, name=f"Bus {i}") for i in range(6)]
    pp.create_ext_grid(net, bus[0], vm_pu=1.0)
    for f, t, km, i_max in ((0, 1, 2, 0.4), (1, 2, 2, 0.08), (2, 3, 3, 0.3),
                            (3, 4, 3, line_3_4_max_i_ka), (1, 5, 2, 0.3)):
        # NA2XS2Y 1×150-like cable
        pp.create_line_from_parameters(net, bus[f], bus[t], km, r_ohm_per_km=0.206,
                                       x_ohm_per_km=0.122, c_nf_per_km=300, max_i_ka=i_max,
                                       name=f"Line {f}-{t}")
    for i in range(1, 6):
        pp.create_load(net, bus[i], 0.1, 0.033, name=f"Load {i}")
    for b, p, peak, name in ((2, 0.4, 0.5, "PV near"), (3, 1.35, 1.5, "PV mid"),
                             (4, 1.8, 2.0, "PV far"), (5, 0.9, 1.0, "PV lateral"),
                             (2, 0.022, 0.025, "PV small"), (3, 0.027, 0.030, "PV small remote")):
        pp.create_sgen(net, bus[b], p, sn_mva=peak, name=name, type="PV")
    return net


def _units(net):
    return units_from_net(net, remote={"PV small remote"})


def _with_limits(net, p_limits_mw: dict[str, float]) -> pp.pandapowerNet:
    """A copy of ``net`` with the limits applied at the units, solved."""
    out = copy.deepcopy(net)
    for ref, p in p_limits_mw.items():
        idx = out.sgen.index[out.sgen.name == ref.split(":", 1)[1]][0]
        out.sgen.at[idx, "p_mw"] = min(float(out.sgen.at[idx, "p_mw"]), p)
    pp.runpp(out)
    return out


def _loadings(net, p_limits_mw) -> np.ndarray:
    return _with_limits(net, p_limits_mw).res_line.loading_percent.to_numpy()


def _least(net, cut_of, ok, hi: float) -> float | None:
    """The least ``x`` in [0, hi] with ``ok(loadings with cut_of(x))`` (bisection on power
    flows; loading falls as x grows), or None if even ``hi`` is not enough."""
    if not ok(_loadings(net, cut_of(hi))):
        return None
    lo = 0.0
    for _ in range(30):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if ok(_loadings(net, cut_of(mid))) else (mid, hi)
    return hi


def _alternatives(net, units, ok) -> dict[str, float]:
    """Curtailed MW of the simple ways to reach ``ok``: each eligible unit alone (those that
    can), pro rata over every eligible unit, pro rata over those behind the weak cable."""
    eligible_units = [u for u in units if eligible(u)]
    out = {}
    for u in eligible_units:
        c = _least(net, lambda c, u=u: {u.target: u.p_mw - c}, ok, u.p_mw)
        if c is not None:
            out[u.name] = c
    for label, group in (("pro rata", eligible_units),
                         ("pro rata behind the cable", [u for u in eligible_units
                                                        if u.name != "PV lateral"])):
        total = sum(u.p_mw for u in group)
        f = _least(net, lambda f, g=group: {u.target: u.p_mw * (1 - f) for u in g}, ok, 1.0)
        if f is not None:
            out[label] = f * total
    return out


@pytest.fixture(scope="module")
def feeder():
    net = _feeder()
    pp.runpp(net)
    return net


def test_the_30_kwp_rule_and_the_70_percent_cap():
    big = DerUnit("sgen:A", 1, 0.02, 0.031)
    edge = DerUnit("sgen:B", 1, 0.02, 0.030)
    small_remote = DerUnit("sgen:C", 1, 0.02, 0.025, remote=True)
    assert eligible(big) and not eligible(edge) and eligible(small_remote)
    assert seventy_percent_cap_mw(0.025) == pytest.approx(0.0175)


def test_sensitivities_agree_with_a_power_flow(feeder):
    units = _units(feeder)
    buses = [u.bus for u in units]
    s = flow_sensitivities(feeder, [WEAK], buses)[0]
    by_name = dict(zip([u.name for u in units], s))
    # behind the cable ≈ 35 %/MW (3.6 MVA rating at 20 kV), a little less the farther away
    # (the feeder's losses); the lateral's output does not pass through the cable
    assert 34.0 < by_name["PV far"] < by_name["PV mid"] < by_name["PV near"] < 36.5
    assert abs(by_name["PV lateral"]) < 0.5
    # 0.3 MW less at PV mid: the power flow moves the loading as the slope says (±2 %)
    before = feeder.res_line.loading_percent.at[1]
    after = _loadings(feeder, {"sgen:PV mid": 1.35 - 0.3})[1]
    assert before - after == pytest.approx(0.3 * by_name["PV mid"], rel=0.02)


def test_plan_clears_the_congestion_with_least_curtailed_energy(feeder):
    units = _units(feeder)
    assert feeder.res_line.loading_percent.at[1] == pytest.approx(117.7, abs=0.1)
    before = copy.deepcopy(feeder.sgen)
    plan = plan_curtailment(feeder, units)
    assert before.equals(feeder.sgen), "the caller's net is not changed"
    assert plan.feasible and plan.verified
    loading = _loadings(feeder, plan.p_limits_mw)
    # within the limit after a power flow, and not far below it (0.5 MW: 99.94 %)
    assert 99.5 < loading[1] <= 100.0
    assert loading[1] == pytest.approx(plan.flow_after[WEAK], abs=1e-6)
    # the nearest unit goes first; the small one without remote interface and the lateral
    # one (which does not relieve the cable) keep their output
    limits = plan.p_limits_mw
    assert limits["sgen:PV near"] == pytest.approx(0.0, abs=1e-9)
    assert "sgen:PV small" not in limits and "sgen:PV lateral" not in limits
    assert "70 % cap of 0.017 MW" in plan.reasons["sgen:PV small"]
    # measured: plan 0.5012 MW; PV mid alone 0.5045, PV far alone 0.5068, pro rata over the
    # units behind the cable 0.5053, pro rata over all eligible 0.6329
    alternatives = _alternatives(feeder, units, lambda ld: ld[1] <= loading[1])
    assert set(alternatives) == {"PV mid", "PV far", "pro rata", "pro rata behind the cable"}
    assert plan.curtailed_mw == pytest.approx(0.501, abs=0.002)
    for label, mw in alternatives.items():
        assert plan.curtailed_mw < mw, (label, mw)


def test_two_congestions_are_cleared_together():
    net = _feeder(line_3_4_max_i_ka=0.045)  # Line 3-4 now carries PV far's output at 109 %
    pp.runpp(net)
    loading = net.res_line.loading_percent.to_numpy()
    assert loading[1] > 100 and loading[3] > 100
    units = _units(net)
    plan = plan_curtailment(net, units)
    assert {c.element for c in plan.congestions} == {WEAK, "line:Line 3-4"}
    after = _loadings(net, plan.p_limits_mw)
    assert after[1] <= 100.0 and after[3] <= 100.0
    # only PV far relieves Line 3-4; what it gives also relieves Line 1-2
    assert "sgen:PV far" in plan.p_limits_mw
    alternatives = _alternatives(net, units, lambda ld: ld[1] <= after[1] and ld[3] <= after[3])
    assert "PV far" in alternatives and "PV mid" not in alternatives
    for label, mw in alternatives.items():
        assert plan.curtailed_mw < mw, (label, mw)


def test_units_that_cannot_clear_it_report_the_residual(feeder):
    # the DMS reaches only these units: PV near is the one that helps, and it is not enough
    units = [u for u in _units(feeder) if u.name in ("PV near", "PV lateral", "PV small")]
    plan = plan_curtailment(feeder, units)
    assert not plan.feasible
    assert plan.p_limits_mw == {"sgen:PV near": pytest.approx(0.0, abs=1e-9)}
    loading = _loadings(feeder, plan.p_limits_mw)[1]
    # 0.4 MW × 35 %/MW relieves 14 %: 103.6 % is left
    assert plan.residual[WEAK] == pytest.approx(loading - 100.0, abs=1e-6)
    assert 3.0 < plan.residual[WEAK] < 4.5
    assert "cannot clear" in plan.reason
    assert "still missing" in plan.reasons["sgen:PV near"]


def test_curtail_is_a_linear_programme_on_the_numbers():
    units = [DerUnit("sgen:A", 1, 1.0, 2.0), DerUnit("sgen:B", 2, 2.0, 2.0),
             DerUnit("sgen:C", 3, 0.02, 0.025)]  # C: small, no remote interface
    congestion = [Congestion("line:L", 103.0, 100.0)]
    sens = np.array([[2.0, 1.0, 10.0]])  # % per MW
    plan = curtail(units, congestion, sens)
    # A relieves 2 %/MW: all of it (2 %), then B the last 1 % (1 MW): 2 MW in all;
    # pro rata would need 3 / (2·1/3 + 1·2/3) · 1 = 2.25 MW
    assert plan.feasible and not plan.verified
    assert plan.p_limits_mw == pytest.approx({"sgen:A": 0.0, "sgen:B": 1.0})
    assert plan.curtailed_mw == pytest.approx(2.0)
    assert plan.flow_after["line:L"] == pytest.approx(100.0)
    infeasible = curtail(units, [Congestion("line:L", 110.0, 100.0)], sens)
    assert not infeasible.feasible
    assert infeasible.residual["line:L"] == pytest.approx(10.0 - 4.0)
    assert infeasible.curtailed_mw == pytest.approx(3.0)
    with pytest.raises(ValueError, match="shape"):
        curtail(units, congestion, sens[:, :2])


def test_decisions_carry_the_limits_and_a_reason(feeder):
    plan = plan_curtailment(feeder, _units(feeder))
    decisions = plan.decisions(t_s=43200.0)
    assert {d.target for d in decisions} == set(plan.p_limits_mw)
    for d in decisions:
        assert d.action == "set_der_p_limit" and d.function == "curtailment"
        assert d.value == pytest.approx(plan.p_limits_mw[d.target], abs=1e-6)
        assert d.reason.startswith("Line 1-2 at 118 % of rating (limit 100 %)")
        assert d.command("c1")["action"] == "set_p_limit"
