"""Tie-line control of one cell in closed loop with a plain plant: the cell's export is
``base + disturbance + Σ(p − p0)`` over its resources, each resource follows its set-point
within one 60 s cycle and within its limits. Cell A is scheduled to export 0.50 MW with a
0.10 MW tolerance; its resources: battery B1 (±1.5 MW), the EVs at Bus 5 (charging 0.2 MW,
up to 1.0 MW), PV 3 (producing 1.0 MW, curtailable to 0), at the default costs."""

from __future__ import annotations

import math

import pytest

from twin.dms.cells import Cell
from twin.dms.tie_line import FlexResource, TieLineController, deviation_mw

CELL = Cell("A", ("Bus 3", "Bus 5"), tie_schedule_mw=0.5, tolerance_mw=0.1)
LIMITS_MW = {"battery:B1": (-1.5, 1.5), "ev:Bus 5": (-1.0, 0.0), "pv:PV 3": (0.0, 1.0)}
KINDS = {"battery:B1": "battery", "ev:Bus 5": "ev", "pv:PV 3": "der"}
P0_MW = {"battery:B1": 0.0, "ev:Bus 5": -0.2, "pv:PV 3": 1.0}
CAPACITY_DOWN_MW = 1.5 + 0.8 + 1.0  # from P0 to the lower limits
DT_S = 60.0


def resources(p: dict[str, float], cost: dict[str, float] | None = None) -> list[FlexResource]:
    return [FlexResource(t, KINDS[t], p[t], LIMITS_MW[t][1] - p[t], p[t] - LIMITS_MW[t][0],
                         (cost or {}).get(t)) for t in p]


def run(disturbance_mw, cycles: int, controller=None, cost=None):
    """Close the loop; ``disturbance_mw(k)`` is extra export in cycle k (more PV, say).
    Returns per cycle the deviation seen, the resources' power then, and the action."""
    c = controller or TieLineController(CELL)
    p = dict(P0_MW)
    rows = []
    for k in range(cycles):
        export = CELL.tie_schedule_mw + disturbance_mw(k) + sum(p[t] - P0_MW[t] for t in p)
        action = c.step(deviation_mw(CELL, export), resources(p, cost), DT_S)
        rows.append((deviation_mw(CELL, export), dict(p), action))
        p = {t: min(max(action.set_points_mw[t], lo), hi)
             for t, (lo, hi) in LIMITS_MW.items()}
    return rows


def cycles_to_settle(rows, start: int) -> int:
    """Cycles from ``start`` until the deviation is within tolerance and stays there."""
    outside = [k for k, (e, _, _) in enumerate(rows) if abs(e) > CELL.tolerance_mw]
    return max(outside) + 1 - start


def test_a_step_of_pv_is_balanced_within_five_cycles_without_overshoot():
    rows = run(lambda k: 2.0 if k >= 3 else 0.0, 20)
    # measured: 2.00, 0.60, 0.38, 0.17, 0.09 MW — back in the band at the 4th cycle
    assert cycles_to_settle(rows, start=3) <= 5
    assert all(e >= -CELL.tolerance_mw for e, _, _ in rows)  # never overshoots to import
    _, p, _ = rows[-1]
    assert p["battery:B1"] == pytest.approx(-1.5)            # cheapest, used to its limit
    assert -1.0 < p["ev:Bus 5"] < -0.2 - 0.4                  # the rest, most of 0.5 MW
    assert p["pv:PV 3"] == 1.0                                # no curtailment needed


def test_merit_order_the_expensive_only_after_the_cheap_is_saturated():
    rows = run(lambda k: 2.0 if k >= 1 else 0.0, 12)
    for _, p, _ in rows:
        if abs(p["ev:Bus 5"] - P0_MW["ev:Bus 5"]) > 1e-9:
            assert p["battery:B1"] == pytest.approx(LIMITS_MW["battery:B1"][0])
        assert p["pv:PV 3"] == P0_MW["pv:PV 3"]
    assert any(p["ev:Bus 5"] < -0.3 for _, p, _ in rows)


def test_costs_are_an_input_cheap_curtailment_goes_first():
    cost = {"battery:B1": 50.0, "ev:Bus 5": 60.0, "pv:PV 3": 5.0}
    rows = run(lambda k: 0.8 if k >= 1 else 0.0, 10, cost=cost)
    _, p, _ = rows[-1]
    assert p["pv:PV 3"] < 0.3 and p["battery:B1"] == 0.0 and p["ev:Bus 5"] == -0.2


CAPACITY_UP_MW = 1.5 + 0.2 + 0.0  # from P0 to the upper limits (PV 3 is at full output)


@pytest.mark.parametrize("disturbance, capacity", [(4.0, CAPACITY_DOWN_MW),
                                                   (-3.0, -CAPACITY_UP_MW)])
def test_saturation_leaves_a_residual_and_no_windup(disturbance, capacity):
    on, off = 3, 25  # 22 cycles of a disturbance the cell cannot fully balance
    rows = run(lambda k: disturbance if on <= k < off else 0.0, 40)
    e, p, action = rows[off - 1]
    limit = 0 if disturbance > 0 else 1
    assert p == {t: lims[limit] for t, lims in LIMITS_MW.items()}  # all at their limits
    assert e == pytest.approx(disturbance - capacity)
    assert action.residual_mw == pytest.approx(-(disturbance - capacity))
    assert f"{abs(disturbance - capacity):.2f} MW cannot be covered in the cell" in action.reason
    # released: measured 5 (export side) and 4 (import side) cycles back into the band, and
    # never past it to the other side, as a wound-up integral would push it
    assert cycles_to_settle(rows, start=off) <= 6
    assert all(abs(e) <= CELL.tolerance_mw or e * disturbance < 0 for e, _, _ in rows[off:])


def test_on_release_the_most_expensive_activation_goes_first():
    rows = run(lambda k: 4.0 if 3 <= k < 25 else 0.0, 27)
    after = rows[26][1]
    assert after["pv:PV 3"] == pytest.approx(1.0) and after["ev:Bus 5"] == pytest.approx(-0.2)
    assert after["battery:B1"] < -0.9


def test_leaving_the_band_again_is_bumpless():
    c = TieLineController(CELL)
    rows = run(lambda k: 2.0 if k >= 1 else 0.0, 10, controller=c)
    _, p, _ = rows[-1]
    action = c.step(0.2, resources(p), DT_S)
    # from where the resources stand: (kp + ki·Δt)·e = (0.1 + 0.01·60)·0.2 = 0.14 MW less
    assert sum(action.delta_mw.values()) == pytest.approx(-0.14)


def test_within_the_dead_band_nothing_moves():
    c = TieLineController(CELL)
    p = {"battery:B1": 0.3, "ev:Bus 5": -0.4, "pv:PV 3": 0.9}
    for e in (0.0, 0.08, -0.1):
        action = c.step(e, resources(p), DT_S)
        assert action.set_points_mw == p and action.delta_mw == {}
        assert action.correction_mw == 0.0 and action.residual_mw == 0.0
        assert "within the 0.10 MW tolerance" in action.reason


def test_the_reason_says_what_moves():
    action = TieLineController(CELL).step(2.0, resources(P0_MW), DT_S)
    # kp·e + ki·Δt·e = 0.1·2.0 + 0.01·60·2.0 = 1.40 MW, all from the battery
    assert action.reason == ("Cell A exports 2.50 MW against a schedule of 0.50 MW: "
                             "battery B1 charges 1.40 MW more.")
    assert action.delta_mw == {"battery:B1": pytest.approx(-1.4)}
    assert action.correction_mw == pytest.approx(-1.4)


def test_importing_too_much_makes_the_cell_inject_more():
    p = {"battery:B1": -0.5, "ev:Bus 5": -0.6, "pv:PV 3": 1.0}
    action = TieLineController(CELL).step(-1.0, resources(p), DT_S)
    # 0.70 MW more injection: the battery stops charging 0.5 MW and discharges 0.2 MW
    assert action.set_points_mw["battery:B1"] == pytest.approx(0.2)
    assert "battery B1 turns from charging 0.50 MW to discharging 0.20 MW" in action.reason
    assert action.residual_mw == 0.0


def test_equal_costs_share_pro_rata_to_headroom():
    two = [FlexResource("battery:B1", "battery", 0.0, 1.0, 1.0),
           FlexResource("battery:B2", "battery", 0.0, 3.0, 3.0)]
    action = TieLineController(CELL).step(2.0, two, DT_S)  # asks −1.40 MW
    assert action.delta_mw["battery:B1"] == pytest.approx(-0.35)
    assert action.delta_mw["battery:B2"] == pytest.approx(-1.05)


def test_no_measurement_holds_everything():
    c = TieLineController(CELL)
    c.step(2.0, resources(P0_MW), DT_S)
    integral = c.integral_mw_s
    action = c.step(math.nan, resources(P0_MW), DT_S)
    assert action.delta_mw == {} and math.isnan(action.residual_mw)
    assert c.integral_mw_s == integral and "no export measured" in action.reason


def test_inputs_are_checked():
    with pytest.raises(ValueError, match="battery:B1: down_mw must be a finite number >= 0"):
        FlexResource("battery:B1", "battery", 0.0, 1.0, -1.0)
    with pytest.raises(ValueError, match="kind must be one of battery, ev, der"):
        FlexResource("pv:PV 3", "pv", 0.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="dt_s must be a finite number > 0"):
        TieLineController(CELL).step(1.0, [], 0.0)
    with pytest.raises(ValueError, match="resources listed twice: battery:B1"):
        TieLineController(CELL).step(1.0, resources(P0_MW) + resources(P0_MW)[:1], DT_S)
    assert FlexResource("ev:Bus 5", "ev", 0.0, 0.0, 1.0).cost_eur_mwh == 40.0
