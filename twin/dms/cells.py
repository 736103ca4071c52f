"""Cells of the ELECTRA "web of cells": which buses a cell holds, its tie branches, its export.

A cell is a set of buses run by one operator who keeps the cell's balance: the net active
power leaving the cell over its tie branches is held at a schedule (the "distributed"
control of the DMS paper [1]_, section III.F). This module finds a cell's tie branches in a
pandapower net (:func:`tie_branches`) and sums their measured flows into the cell's export
(:func:`cell_export_mw`); :mod:`twin.dms.tie_line` acts on the deviation from the schedule.

Names are the twin's (:func:`twin.grid.names.element_names`): buses by their bus name, branches
by their reference ``"line:<name>"`` or ``"trafo:<name>"``, the keys the DMS's telemetry uses.

Sign convention: a cell's export is positive when active power leaves the cell. A branch's
flow is pandapower's: ``res_line.p_from_mw`` / ``res_trafo.p_hv_mw``, positive into the
branch at its from (hv) end; ``p_to_mw`` / ``p_lv_mw`` likewise at the other end.

References
----------
.. [1] The DMS paper beside DESIGN.md, section III.F (web of cells, distributed control).
.. [2] ELECTRA IRP, "Web of Cells" control architecture: each cell keeps its tie-line flows
   at schedule (balance restoration control), like the area control error of a control area.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import pandapower as pp

from twin.grid.names import element_names

#: Branch tables a tie may be, and their (from, to) bus columns.
_BRANCH_ENDS = {"line": ("from_bus", "to_bus"), "trafo": ("hv_bus", "lv_bus")}
#: Result columns of a branch's active power at its (from, to) end.
_BRANCH_P = {"line": ("p_from_mw", "p_to_mw"), "trafo": ("p_hv_mw", "p_lv_mw")}


@dataclass(frozen=True)
class Cell:
    """A cell: its buses, its scheduled export and the band in which the schedule counts as met.

    Attributes
    ----------
    name : str
        The cell's name, unique among the cells.
    buses : tuple of str
        Bus names (:func:`twin.grid.names.element_names` of ``net.bus``).
    tie_schedule_mw : float
        Scheduled net export [MW], positive = power leaving the cell.
    tolerance_mw : float
        Dead band [MW]: a deviation of the export from the schedule within it counts as met;
        default 0.1 MW.
    """

    name: str
    buses: tuple[str, ...]
    tie_schedule_mw: float = 0.0
    tolerance_mw: float = 0.1

    def __post_init__(self) -> None:
        object.__setattr__(self, "buses", tuple(self.buses))
        if not (self.tolerance_mw >= 0.0 and math.isfinite(self.tolerance_mw)):
            raise ValueError(f"cell {self.name!r}: tolerance_mw must be a finite number >= 0; "
                             f"found {self.tolerance_mw!r}")
        if not math.isfinite(self.tie_schedule_mw):
            raise ValueError(f"cell {self.name!r}: tie_schedule_mw must be finite; "
                             f"found {self.tie_schedule_mw!r}")


@dataclass(frozen=True)
class TieBranch:
    """One branch across a cell's boundary, seen from that cell.

    Attributes
    ----------
    element : str
        The branch: ``"line:<name>"`` or ``"trafo:<name>"``.
    cell : str
        The cell this entry belongs to.
    neighbour : str or None
        The cell at the branch's other end; ``None`` outside every cell (e.g. the upstream grid).
    sign : int
        +1 if the branch's from (hv) end lies in ``cell`` (``p_from_mw`` is then export),
        −1 if its to (lv) end does.
    """

    element: str
    cell: str
    neighbour: str | None
    sign: int


def _cell_problems(cells: Sequence[Cell]) -> list[str]:
    """What is wrong with the cells among themselves: duplicate names, empty cells, shared buses."""
    problems = []
    names = [c.name for c in cells]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        problems.append(f"cell names used twice: {', '.join(twice)}")
    empty = [c.name for c in cells if not c.buses]
    if empty:
        problems.append(f"cells without buses: {', '.join(empty)}")
    owners: dict[str, list[str]] = {}
    for c in cells:
        for bus in dict.fromkeys(c.buses):
            owners.setdefault(bus, []).append(c.name)
    shared = [f"{bus} (in {' and '.join(o)})" for bus, o in owners.items() if len(o) > 1]
    if shared:
        problems.append(f"buses in more than one cell: {', '.join(shared)}")
    return problems


def _raise(problems: list[str]) -> None:
    if problems:
        raise ValueError("cells: " + "; ".join(problems))


def cell_of_bus(cells: Sequence[Cell]) -> dict[str, str]:
    """The cell each bus belongs to.

    Parameters
    ----------
    cells : sequence of Cell

    Returns
    -------
    dict
        Bus name → cell name, for every bus of every cell (buses outside every cell are absent).

    Raises
    ------
    ValueError
        One error naming every problem: cell names used twice, cells without buses, buses
        in more than one cell.
    """
    _raise(_cell_problems(cells))
    return {bus: c.name for c in cells for bus in c.buses}


def tie_branches(net: pp.pandapowerNet, cells: Sequence[Cell]) -> list[TieBranch]:
    """Every in-service line and 2-winding trafo with exactly one end in a cell, per cell.

    A branch between two cells appears twice, once from each side (with opposite signs).

    Parameters
    ----------
    net : pandapowerNet
        The grid; only its tables are read.
    cells : sequence of Cell

    Returns
    -------
    list of TieBranch
        In the order of ``cells``; within a cell lines, then trafos, in table order.

    Raises
    ------
    ValueError
        One error naming every problem found: cell names used twice, a cell without buses,
        a bus in two cells, bus names the net does not have (listed), a closed bus-bus
        switch or an in-service 3-winding trafo across a cell boundary (their flows are not
        measured as branch flows: put both sides in one cell), and — once the cells are
        otherwise sound — a cell without any tie branch.

    Notes
    -----
    A line behind an open line switch stays a tie: it carries no active power while open
    and is counted again once closed, so the ties need not be found anew after switching.
    Out-of-service branches are left out.
    """
    problems = _cell_problems(cells)
    bus_names = element_names(net, "bus")
    known = set(bus_names)
    unknown = [b for c in cells for b in dict.fromkeys(c.buses) if b not in known]
    if unknown:
        problems.append(f"bus names not in the net: {', '.join(unknown)}")
    _raise(problems)

    owner_by_name = {bus: c.name for c in cells for bus in c.buses}
    owner = {int(i): owner_by_name.get(n) for i, n in zip(net.bus.index, bus_names)}

    crossing = []
    sw = net.switch
    for i, name in zip(sw.index, element_names(net, "switch")):
        if sw.at[i, "et"] == "b" and bool(sw.at[i, "closed"]) and \
                owner[int(sw.at[i, "bus"])] != owner[int(sw.at[i, "element"])]:
            crossing.append(f"switch:{name}")
    if len(net.trafo3w):
        t3 = net.trafo3w
        for i, name in zip(t3.index, element_names(net, "trafo3w")):
            ends = {owner[int(t3.at[i, col])] for col in ("hv_bus", "mv_bus", "lv_bus")}
            if bool(t3.at[i, "in_service"]) and len(ends) > 1:
                crossing.append(f"trafo3w:{name}")
    if crossing:
        _raise([f"elements across a cell boundary that are not measured as line or trafo "
                f"flows: {', '.join(crossing)}"])

    ties: dict[str, list[TieBranch]] = {c.name: [] for c in cells}
    for table, (from_col, to_col) in _BRANCH_ENDS.items():
        df = net[table]
        for i, name in zip(df.index, element_names(net, table)):
            if not bool(df.at[i, "in_service"]):
                continue
            a, b = owner[int(df.at[i, from_col])], owner[int(df.at[i, to_col])]
            if a == b:
                continue
            ref = f"{table}:{name}"
            if a is not None:
                ties[a].append(TieBranch(ref, a, b, +1))
            if b is not None:
                ties[b].append(TieBranch(ref, b, a, -1))
    lonely = [c for c, found in ties.items() if not found]
    _raise([f"cells without any tie branch: {', '.join(lonely)}"] if lonely else [])
    return [t for c in cells for t in ties[c.name]]


def branch_flows_mw(net: pp.pandapowerNet,
                    end: Literal["from", "to"] = "from") -> dict[str, float]:
    """Active power into every line and trafo at one end, from a solved net.

    Parameters
    ----------
    net : pandapowerNet
        With ``res_line`` and ``res_trafo`` (a power flow or a state estimate).
    end : {"from", "to"}
        ``"from"``: ``p_from_mw`` / ``p_hv_mw``; ``"to"``: ``p_to_mw`` / ``p_lv_mw``.

    Returns
    -------
    dict
        ``{"line:Line 1-2": MW, "trafo:Trafo 0-1": MW, …}``, positive into the branch.
    """
    column = 0 if end == "from" else 1
    flows = {}
    for table, cols in _BRANCH_P.items():
        res = net[f"res_{table}"]
        for i, name in zip(net[table].index, element_names(net, table)):
            flows[f"{table}:{name}"] = float(res.at[i, cols[column]]) if i in res.index \
                else math.nan
    return flows


def cell_export_mw(ties: Iterable[TieBranch], p_from_mw: Mapping[str, float],
                   p_to_mw: Mapping[str, float] | None = None) -> dict[str, float]:
    """Each cell's net export: the active power leaving it over its tie branches.

    Parameters
    ----------
    ties : iterable of TieBranch
        From :func:`tie_branches`.
    p_from_mw : mapping
        Branch reference → active power into the branch at its from (hv) end [MW]
        (``res_line.p_from_mw``, ``res_trafo.p_hv_mw``; the DMS's telemetry points).
    p_to_mw : mapping, optional
        Branch reference → active power into the branch at its to (lv) end [MW]. Where
        given, a cell at the to end uses it: each cell then counts the flow at its own end.

    Returns
    -------
    dict
        Cell name → export [MW], positive = power leaving the cell. NaN for a cell with a
        tie flow missing or NaN: a partial sum would look like a real deviation.

    Notes
    -----
    .. math:: P_{export,c} = \\sum_{s_b = +1} P_{from,b}
              + \\sum_{s_b = -1} \\left(P_{to,b} \\text{ if measured, else } -P_{from,b}\\right)

    over the tie branches *b* of cell *c*.

    Measured at the from end only, a tie branch's losses count to the cell at its to end:
    that cell's export is then lower than at its own boundary by the branch's losses (the
    cell is charged with them; the losses of a feeder's trafo, measured on the hv side,
    count to the feeder's cell). With both ends, each cell's export is exact at its own
    boundary and the tie's losses belong to no cell.
    """
    export: dict[str, float] = {}
    for t in ties:
        if t.sign > 0 or p_to_mw is None or t.element not in p_to_mw:
            p = t.sign * p_from_mw.get(t.element, math.nan)
        else:
            p = p_to_mw[t.element]
        export[t.cell] = export.get(t.cell, 0.0) + float(p)
    return export
