"""Storage rows and the cell view: up / down worked out by hand at low and high SOC (15-min
hold: 1 MWh held over 0.25 h is 4 MW), totals equal to the sums of the rows, and a
neighbour view holding exactly the neighbours' units."""

from __future__ import annotations

import numpy as np
import pytest

from twin.dms.storage_monitor import storage_rows, storage_totals, storage_view

CELLS = {"b1": "A", "b2": "A", "b3": "B", "b4": "C", "b5": "D"}
NEIGHBOURS = {"A": ["B", "C"], "B": ["A"], "C": ["A", "D"], "D": ["C"]}


def one(soc: float, p_mw: float = 0.0, **kw):
    """A 1 MWh, 1 MW battery on b1 with the SOC window [0.1, 0.9]."""
    args = dict(p_charge_max_mw=1.0, p_discharge_max_mw=1.0, soc_min=0.1, soc_max=0.9)
    args.update(kw)
    return storage_rows(["bat"], "battery", ["b1"], soc, 1.0, p_mw, np.nan, 80.0, CELLS,
                        **args)[0]


def test_energy_limits_up_at_low_soc():
    row = one(0.15)
    # 0.05 MWh above the floor, held 0.25 h: 0.2 MW; room 0.75 MWh: 3 MW, the 1 MW limit
    assert row.up_mw == pytest.approx(0.2)
    assert row.down_mw == pytest.approx(1.0)
    assert row.e_mwh == pytest.approx(0.15) and row.cell == "A"
    # charging at 0.5 MW: stopping it is up too, and only 0.5 MW more charge is possible
    row = one(0.15, p_mw=0.5)
    assert row.up_mw == pytest.approx(0.7)
    assert row.down_mw == pytest.approx(0.5)
    # losses: the cells give 0.05 MWh, the grid sees 0.9 of it
    assert one(0.15, eta_discharge=0.9).up_mw == pytest.approx(0.18)


def test_energy_limits_down_at_high_soc():
    row = one(0.88)
    # 0.02 MWh of room below 0.9: 0.08 MW; 0.78 MWh above the floor: the 1 MW limit
    assert row.down_mw == pytest.approx(0.08)
    assert row.up_mw == pytest.approx(1.0)
    # discharging at 0.3 MW: it can withhold that and charge 0.08 MW more
    row = one(0.88, p_mw=-0.3)
    assert row.down_mw == pytest.approx(0.38)
    assert row.up_mw == pytest.approx(0.7)
    # storing 0.02 MWh through eta_charge 0.8 takes 0.025 MWh from the grid: 0.1 MW
    assert one(0.88, eta_charge=0.8).down_mw == pytest.approx(0.1)
    assert one(0.9).down_mw == 0.0


def test_at_or_below_the_floor():
    assert one(0.1).up_mw == 0.0
    # an EV without V2G at its floor can still stop charging, never discharge
    ev = one(0.1, p_mw=0.011, p_discharge_max_mw=0.0)
    assert ev.up_mw == pytest.approx(0.011)
    # 0.02 MWh below the floor: it must charge 0.08 MW over the hold time
    assert one(0.08, p_mw=0.3).up_mw == pytest.approx(0.22)
    assert one(0.08, p_mw=0.05).up_mw == 0.0


def rows_for_view():
    rng = np.random.default_rng(3)
    buses = ["b1", "b2", "b3", "b4", "b5", "b1", "b4", "b3"]
    n = len(buses)
    return storage_rows(
        [f"s{i}" for i in range(n)], ["battery", "ev"] * (n // 2), buses,
        rng.uniform(0.1, 0.9, n), rng.uniform(0.05, 2.0, n), rng.uniform(-0.5, 0.5, n),
        rng.uniform(-0.5, 0.5, n), rng.uniform(20.0, 120.0, n), CELLS,
        p_charge_max_mw=1.0, p_discharge_max_mw=1.0, soc_min=0.1, soc_max=0.9,
        eta_charge=0.95, eta_discharge=0.95)


def test_totals_equal_sums():
    rows = rows_for_view()
    view = storage_view(rows, "A", NEIGHBOURS)
    for part, total in ((view.own, view.own_total), (view.neighbour, view.neighbour_total)):
        assert total.n == len(part)
        assert total.e_mwh == pytest.approx(sum(r.soc * r.capacity_mwh for r in part))
        assert total.up_mw == pytest.approx(sum(r.up_mw for r in part))
        assert total.down_mw == pytest.approx(sum(r.down_mw for r in part))
        assert total.p_mw == pytest.approx(sum(r.p_mw for r in part))
    per = view.per_neighbour
    assert per["B"].e_mwh + per["C"].e_mwh == pytest.approx(view.neighbour_total.e_mwh)
    assert storage_totals([]).e_mwh == 0 and storage_totals([]).n == 0


def test_neighbour_view_has_exactly_the_neighbours_units():
    rows = rows_for_view()
    view = storage_view(rows, "A", NEIGHBOURS)
    # A: b1, b2 → s0, s1, s5; B: b3 → s2, s7; C: b4 → s3, s6; D (not a neighbour): s4
    assert [r.name for r in view.own] == ["s0", "s1", "s5"]
    assert [r.name for r in view.neighbour] == ["s2", "s3", "s6", "s7"]
    assert view.neighbours == ("B", "C")
    assert view.per_neighbour["B"].n == 2 and view.per_neighbour["C"].n == 2
    d = storage_view(rows, "D", NEIGHBOURS)
    assert [r.name for r in d.own] == ["s4"] and [r.name for r in d.neighbour] == ["s3", "s6"]


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="unknown cell 'Z'"):
        storage_view([], "Z", NEIGHBOURS)
    with pytest.raises(ValueError, match="no cell for bus b9"):
        storage_rows(["x"], "battery", ["b9"], 0.5, 1.0, 0.0, 0.0, 0.0, CELLS,
                     p_charge_max_mw=1.0, p_discharge_max_mw=1.0)
    with pytest.raises(ValueError, match="soc must lie in"):
        storage_rows(["x"], "battery", ["b1"], 1.5, 1.0, 0.0, 0.0, 0.0, CELLS,
                     p_charge_max_mw=1.0, p_discharge_max_mw=1.0)
    with pytest.raises(ValueError, match="one value per unit"):
        storage_rows(["x", "y"], "ev", ["b1", "b2"], [0.5, 0.5, 0.5], 1.0, 0.0, 0.0, 0.0,
                     CELLS, p_charge_max_mw=1.0, p_discharge_max_mw=1.0)
