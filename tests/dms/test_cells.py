"""Cells on CIGRE MV (with PV and wind): the two feeders as two cells. Feeder 1 (Bus 1–11)
hangs on Trafo 0-1, feeder 2 (Bus 12–14) on Trafo 0-12; Line 14-8 (behind open switch S1)
joins them. The tie branches found, the exports after a power flow checked against the
cells' own balance of generation, load and losses, and each validation message."""

from __future__ import annotations

import copy
import math
import re

import pandapower as pp
import pandapower.networks as pn
import pytest

from twin.dms.cells import (
    Cell,
    TieBranch,
    branch_flows_mw,
    cell_export_mw,
    cell_of_bus,
    tie_branches,
)

FEEDER_1 = tuple(f"Bus {i}" for i in range(1, 12))
FEEDER_2 = ("Bus 12", "Bus 13", "Bus 14")
CELLS = (Cell("A", FEEDER_1, tie_schedule_mw=-20.0), Cell("B", FEEDER_2))


@pytest.fixture(scope="module")
def net():
    return pn.create_cigre_network_mv(with_der="pv_wind")


def solved(net, close_s1: bool):
    """A solved copy; with S1 closed Line 14-8 carries power between the cells."""
    net = copy.deepcopy(net)
    net.switch.loc[net.switch.name == "S1", "closed"] = close_s1
    pp.runpp(net)
    return net


def balance_mw(net, buses: tuple[str, ...]) -> float:
    """Generation minus load at the cell's buses [MW] (no storage, shunts or ext_grid there)."""
    idx = set(net.bus.index[net.bus.name.isin(buses)])
    gen = net.res_sgen.p_mw[net.sgen.bus.isin(idx)].sum()
    load = net.res_load.p_mw[net.load.bus.isin(idx)].sum()
    assert not net.ext_grid.bus.isin(idx).any() and len(net.storage) == 0
    return float(gen - load)


def losses_inside_mw(net, buses: tuple[str, ...]) -> float:
    """Losses of the lines with both ends in the cell [MW]."""
    idx = set(net.bus.index[net.bus.name.isin(buses)])
    inside = net.line.from_bus.isin(idx) & net.line.to_bus.isin(idx)
    return float(net.res_line.pl_mw[inside].sum())


def test_the_feeders_ties_are_their_trafos_and_the_line_between_them(net):
    ties = tie_branches(net, CELLS)
    assert ties == [
        TieBranch("line:Line 14-8", "A", "B", -1),     # to end (Bus 8) in feeder 1
        TieBranch("trafo:Trafo 0-1", "A", None, -1),   # hv side (Bus 0) outside every cell
        TieBranch("line:Line 14-8", "B", "A", +1),
        TieBranch("trafo:Trafo 0-12", "B", None, -1),
    ]


@pytest.mark.parametrize("close_s1", [False, True])
def test_export_is_the_sum_of_the_tie_flows(net, close_s1):
    res = solved(net, close_s1)
    flows = branch_flows_mw(res)
    export = cell_export_mw(tie_branches(res, CELLS), flows)
    line = res.res_line.p_from_mw[res.line.name == "Line 14-8"].item()
    trafo = res.res_trafo.p_hv_mw.to_dict()
    assert export["A"] == pytest.approx(-trafo[0] - line, abs=1e-9)
    assert export["B"] == pytest.approx(-trafo[1] + line, abs=1e-9)
    if close_s1:  # a real exchange over the tie, so the signs above are put to the test
        assert abs(line) > 0.05
    else:
        assert abs(line) < 1e-3
    # feeder 1 imports its net load, 24.16 MW of load less 1.70 MW of PV and wind (the
    # net's tables), plus its losses: a few hundred kW at most
    assert -22.46 - 0.3 < export["A"] < -22.46


@pytest.mark.parametrize("close_s1", [False, True])
def test_export_equals_the_cells_own_balance(net, close_s1):
    """From-end flows: a tie's losses count to the cell at its to end — feeder 1 carries the
    losses of Trafo 0-1 and of Line 14-8 (from end in B), feeder 2 those of Trafo 0-12."""
    res = solved(net, close_s1)
    export = cell_export_mw(tie_branches(res, CELLS), branch_flows_mw(res))
    pl_line = res.res_line.pl_mw[res.line.name == "Line 14-8"].item()
    pl_trafo = res.res_trafo.pl_mw.to_dict()
    a = balance_mw(res, FEEDER_1) - losses_inside_mw(res, FEEDER_1) - pl_trafo[0] - pl_line
    b = balance_mw(res, FEEDER_2) - losses_inside_mw(res, FEEDER_2) - pl_trafo[1]
    assert export["A"] == pytest.approx(a, abs=1e-6)
    assert export["B"] == pytest.approx(b, abs=1e-6)
    assert pl_trafo[0] > 0.01  # the trafo losses are large enough to tell the two apart


def test_with_both_ends_each_cell_is_measured_at_its_own_boundary(net):
    res = solved(net, close_s1=True)
    ties = tie_branches(res, CELLS)
    export = cell_export_mw(ties, branch_flows_mw(res), branch_flows_mw(res, "to"))
    for cell in CELLS:
        own = balance_mw(res, cell.buses) - losses_inside_mw(res, cell.buses)
        assert export[cell.name] == pytest.approx(own, abs=1e-6)


def test_a_missing_tie_flow_gives_no_export_for_that_cell_only(net):
    res = solved(net, close_s1=False)
    flows = branch_flows_mw(res)
    del flows["trafo:Trafo 0-12"]
    export = cell_export_mw(tie_branches(res, CELLS), flows)
    assert math.isnan(export["B"]) and math.isfinite(export["A"])


def test_out_of_service_branches_are_no_ties(net):
    out = copy.deepcopy(net)
    out.line.loc[out.line.name == "Line 14-8", "in_service"] = False
    assert [t.element for t in tie_branches(out, CELLS) if t.cell == "B"] == ["trafo:Trafo 0-12"]


def test_cell_of_bus(net):
    owner = cell_of_bus(CELLS)
    assert owner["Bus 8"] == "A" and owner["Bus 14"] == "B" and "Bus 0" not in owner
    assert len(owner) == 14


@pytest.mark.parametrize("cells, message", [
    ((Cell("A", FEEDER_1 + ("Bus 99", "bus 1")), Cell("B", FEEDER_2)),
     "bus names not in the net: Bus 99, bus 1"),
    ((Cell("A", FEEDER_1), Cell("B", FEEDER_2 + ("Bus 5",))),
     "buses in more than one cell: Bus 5 (in A and B)"),
    ((Cell("A", FEEDER_1), Cell("B", FEEDER_2), Cell("C", ())),
     "cells without buses: C"),
    ((Cell("all", ("Bus 0",) + FEEDER_1 + FEEDER_2),),
     "cells without any tie branch: all"),
    ((Cell("A", FEEDER_1), Cell("A", FEEDER_2)), "cell names used twice: A"),
])
def test_each_problem_is_named(net, cells, message):
    with pytest.raises(ValueError, match=f"^cells: {re.escape(message)}$"):
        tie_branches(net, cells)


def test_all_problems_come_in_one_error(net):
    cells = (Cell("A", FEEDER_1 + ("Bus 99",)), Cell("B", FEEDER_2 + ("Bus 5",)), Cell("C", ()))
    with pytest.raises(ValueError) as err:
        tie_branches(net, cells)
    said = str(err.value)
    assert "Bus 99" in said and "Bus 5 (in A and B)" in said and "without buses: C" in said
    with pytest.raises(ValueError, match="Bus 5 \\(in A and B\\)"):
        cell_of_bus(cells)


def test_a_closed_bus_switch_across_the_boundary_is_refused(net):
    joined = copy.deepcopy(net)
    pp.create_switch(joined, bus=5, element=12, et="b", closed=True, name="coupler")
    with pytest.raises(ValueError, match="not measured as line or trafo flows: switch:coupler"):
        tie_branches(joined, CELLS)
    joined.switch.loc[joined.switch.name == "coupler", "closed"] = False
    assert len(tie_branches(joined, CELLS)) == 4


def test_a_cell_checks_its_own_numbers():
    with pytest.raises(ValueError, match="tolerance_mw must be a finite number >= 0"):
        Cell("A", ("Bus 1",), tolerance_mw=-0.1)
