"""Inertia per cell: sums of the units, the headroom cap on synthetic inertia, the tie limit
on what a cell delivers, and what a cell receives from its neighbours — with expected
values worked out from the inputs (f0 = 50 Hz, RoCoF_ref = 1 Hz/s, so k = 2 · 1 / 50 =
0.04 MW per MWs)."""

from __future__ import annotations

import numpy as np
import pytest

from twin.dms.inertia import InertiaUnit, inertia_per_cell

K = 2.0 * 1.0 / 50.0  # MW of response per MWs of inertia at 1 Hz/s and 50 Hz


def ties(pairs: dict[tuple[str, str], float], cells: dict) -> dict:
    """Spare capacity per cell and neighbour from {(cell, neighbour): MW}."""
    return {c: {n: pairs[(c, n)] for n in nbs} for c, nbs in cells.items()}


def test_per_cell_sums_equal_the_units():
    rng = np.random.default_rng(20240611)
    cells = {"A": ["B"], "B": ["A", "C"], "C": ["B"]}
    units = []
    for i in range(40):
        kind = "rotating" if rng.random() < 0.4 else "synthetic"
        h, s = rng.uniform(1.0, 8.0), rng.uniform(0.5, 30.0)
        # synthetic headroom: none, a little (binding) or plenty
        up = 0.0 if kind == "rotating" else float(rng.choice([0.0, 0.1, 100.0]))
        units.append(InertiaUnit(f"u{i}", str(rng.choice(list(cells))), kind, h, s, up, up))
    big = ties({(c, n): 1e6 for c, nbs in cells.items() for n in nbs}, cells)
    res = inertia_per_cell(units, cells, big, big)
    for c in cells:
        mine = [u for u in units if u.cell == c]
        rot = sum(u.h_s * u.s_mva for u in mine if u.kind == "rotating")
        # each synthetic unit: its H·S, or what its headroom pays for at 1 Hz/s
        syn = sum(min(u.h_s * u.s_mva, u.up_mw / K) for u in mine if u.kind == "synthetic")
        up = sum(u.up_mw for u in mine if u.kind == "synthetic")
        r = res[c]
        assert r.rotating_mws == pytest.approx(rot, rel=1e-12)
        assert r.synthetic_mws == pytest.approx(syn, rel=1e-12)
        assert r.total_mws == pytest.approx(rot + syn, rel=1e-12)
        assert r.synthetic_up_mw == pytest.approx(up, rel=1e-12)
        assert r.response_mw == pytest.approx(K * (rot + syn), rel=1e-12)
        assert r.deliverable_mws == pytest.approx(r.total_mws, rel=1e-12)  # ties unlimited
        assert r.deliverable_mws <= r.total_mws + 1e-9
    assert sum(r.rotating_mws for r in res.values()) == pytest.approx(
        sum(u.h_s * u.s_mva for u in units if u.kind == "rotating"), rel=1e-12)


def test_headroom_limits_synthetic_inertia():
    cells = {"A": []}
    none = {"A": {}}
    # H_em = 5 s on 10 MVA asks 2 · 5 · 10 / 50 · 1 = 2 MW at 1 Hz/s
    def syn(up_mw: float) -> float:
        unit = InertiaUnit("wt", "A", "synthetic", 5.0, 10.0, up_mw=up_mw)
        return inertia_per_cell([unit], cells, none, none)["A"].synthetic_mws

    assert syn(3.0) == pytest.approx(50.0)    # headroom above 2 MW: the full H·S
    assert syn(0.5) == pytest.approx(12.5)    # 0.5 MW · 50 / (2 · 1)
    assert syn(0.0) == 0.0                    # no headroom, no synthetic inertia
    # a steeper reference RoCoF asks more power of the same headroom: 2 Hz/s → 4 MW wanted
    unit = InertiaUnit("wt", "A", "synthetic", 5.0, 10.0, up_mw=3.0)
    steep = inertia_per_cell([unit], cells, none, none, rocof_ref_hz_s=2.0)["A"]
    assert steep.synthetic_mws == pytest.approx(3.0 * 50 / (2 * 2.0))  # 37.5 MWs
    assert steep.response_mw == pytest.approx(3.0)
    # a rotating unit is never capped
    rot = InertiaUnit("sg", "A", "rotating", 5.0, 10.0)
    assert inertia_per_cell([rot], cells, none, none)["A"].rotating_mws == 50.0


def test_tie_capacity_limits_what_a_cell_delivers():
    # A: rotating 4 s · 50 MVA = 200 MWs → 8 MW at 1 Hz/s
    units = [InertiaUnit("sg", "A", "rotating", 4.0, 50.0)]
    cells = {"A": ["B", "C"], "B": ["A"], "C": ["A"]}
    exp = {"A": {"B": 3.0, "C": 10.0}, "B": {"A": 0.0}, "C": {"A": 0.0}}
    imp = {"A": {"B": 0.0, "C": 0.0}, "B": {"A": 5.0}, "C": {"A": 5.0}}
    a = inertia_per_cell(units, cells, exp, imp)["A"]
    assert a.response_mw == pytest.approx(8.0)
    assert a.deliverable_to_mws["B"] == pytest.approx(3.0 / K)    # 75 MWs: the tie binds
    assert a.deliverable_to_mws["C"] == pytest.approx(200.0)      # 8 MW < 10 MW spare
    assert a.deliverable_mw == pytest.approx(8.0)                  # min(8, 3 + 10)
    # only 3 MW spare in all: that is all it delivers
    exp["A"]["C"] = 0.0
    a = inertia_per_cell(units, cells, exp, imp)["A"]
    assert a.deliverable_mw == pytest.approx(3.0)
    assert a.deliverable_mws == pytest.approx(75.0)
    # an overloaded tie (negative spare) delivers nothing
    exp["A"]["B"] = -2.0
    assert inertia_per_cell(units, cells, exp, imp)["A"].deliverable_mws == 0.0


def test_receivable_two_cells_symmetric():
    # A and B alike: 100 MWs rotating + a synthetic unit H 4 s · 5 MVA (0.8 MW wanted) with
    # 0.5 MW headroom → 100 + 12.5 = 112.5 MWs, 4.5 MW each
    units = [InertiaUnit(f"sg{c}", c, "rotating", 5.0, 20.0) for c in "AB"] + [
        InertiaUnit(f"bat{c}", c, "synthetic", 4.0, 5.0, up_mw=0.5) for c in "AB"]
    cells = {"A": ["B"], "B": ["A"]}
    exp = {"A": {"B": 4.0}, "B": {"A": 4.0}}
    imp = {"A": {"B": 3.0}, "B": {"A": 3.0}}
    res = inertia_per_cell(units, cells, exp, imp)
    p = 4.5
    assert res["A"].response_mw == pytest.approx(p)
    assert res["A"].deliverable_mw == pytest.approx(min(p, 4.0))            # 4 MW
    assert res["A"].receivable_mw == pytest.approx(min(p, 4.0, 3.0))        # 3 MW
    assert res["A"].receivable_mws == pytest.approx(3.0 / K)                # 75 MWs
    assert res["A"].receivable_mws == pytest.approx(res["B"].receivable_mws)
    assert res["A"].deliverable_mws == pytest.approx(res["B"].deliverable_mws)


def test_receivable_three_cells_in_a_chain():
    # A – B – C. Responses: A 200 MWs → 8 MW; B 50 MWs → 2 MW; C 25 MWs → 1 MW.
    units = [InertiaUnit("a", "A", "rotating", 4.0, 50.0),
             InertiaUnit("b", "B", "rotating", 5.0, 10.0),
             InertiaUnit("c", "C", "synthetic", 5.0, 5.0, up_mw=5.0)]
    cells = {"A": ["B"], "B": ["A", "C"], "C": ["B"]}
    exp = ties({("A", "B"): 6.0, ("B", "A"): 6.0, ("B", "C"): 1.5, ("C", "B"): 1.5}, cells)
    imp = ties({("A", "B"): 6.0, ("B", "A"): 5.0, ("B", "C"): 0.5, ("C", "B"): 1.5}, cells)
    res = inertia_per_cell(units, cells, exp, imp)
    # B receives min(8, 6, 5) = 5 MW from A and min(1, 1.5, 0.5) = 0.5 MW from C
    assert res["B"].receivable_from_mws["A"] == pytest.approx(5.0 / K)
    assert res["B"].receivable_from_mws["C"] == pytest.approx(0.5 / K)
    assert res["B"].receivable_mw == pytest.approx(5.5)
    # A and C receive from B alone: min(2, 6, 6) = 2 MW and min(2, 1.5, 1.5) = 1.5 MW
    assert res["A"].receivable_mw == pytest.approx(2.0)
    assert res["C"].receivable_mw == pytest.approx(1.5)
    # B's 2 MW counted in full toward A and (tie-limited) toward C: one event at a time
    assert res["A"].receivable_mw + res["C"].receivable_mw > res["B"].response_mw
    # A gives B at most min(8, 6) = 6 MW; no transit to C
    assert res["A"].deliverable_mw == pytest.approx(6.0)
    assert "A" not in res["C"].receivable_from_mws


def test_unknown_cell_and_bad_relations_are_refused():
    cells = {"A": ["B"], "B": ["A"]}
    spare = {"A": {"B": 1.0}, "B": {"A": 1.0}}
    with pytest.raises(ValueError, match="cell 'Z', which is not among the cells"):
        inertia_per_cell([InertiaUnit("u", "Z", "rotating", 1.0, 1.0)], cells, spare, spare)
    with pytest.raises(ValueError, match="does not list 'A'"):
        inertia_per_cell([], {"A": ["B"], "B": []}, spare, spare)
    with pytest.raises(ValueError, match=r"spare_import_mw\['A'\] must have one entry"):
        inertia_per_cell([], cells, spare, {"A": {}, "B": {"A": 1.0}})
    with pytest.raises(ValueError, match="kind must be one of"):
        InertiaUnit("u", "A", "hydro", 1.0, 1.0)
    with pytest.raises(ValueError, match="up_mw must be >= 0"):
        InertiaUnit("u", "A", "synthetic", 1.0, 1.0, up_mw=float("nan"))
