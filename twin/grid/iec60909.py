"""IEC 60909 short-circuit currents over pandapower's ``calc_sc``: the data it needs
(:func:`prepare_for_sc`) and the currents of a fault anywhere along a line
(:func:`fault_currents`) through every line, trafo and switch — what the grid simulator's
protection and fault-passage indicators see. The DMS's check of its switchgear against
these currents is :mod:`twin.dms.short_circuit`.

Currents are initial symmetrical short-circuit currents I"k [kA] by the equivalent voltage
source at the fault (c·Un/√3 behind the network's short-circuit impedance), and peak
currents ip [kA]; loads, shunts and line capacitances of the positive sequence are
neglected, as the standard prescribes. Case "max" uses c_max and the grid's largest
short-circuit power; case "min" uses c_min, the smallest short-circuit power and line
resistances at their end temperature. Only parts connected to an ext_grid carry current.

What pandapower does that a reader may not expect
    * Static generators (``net.sgen``, "full converter" by default) are current sources of
      k·In (``net.sgen.k``) in case "max" only; in case "min" they contribute nothing. They
      add the same k·In to 1ph and 2ph faults as to 3ph ones, so with DER a 2ph current is
      a little more than √3/2 of the 3ph one.
    * ``net.storage`` (batteries) and loads are ignored altogether.
    * Branch results for 2ph and 1ph faults are the fault current pushed through the
      positive-sequence network: right along a radial path, but a trafo's HV current for an
      MV earth fault behind a Dyn trafo is the LV current over the ratio, not the per-phase
      currents a delta winding really carries.
    * For 1ph faults pandapower gives no peak current; the DMS's report uses the 3ph
      κ = ip / (√2·I"k) of the same bus, as IEC 60909-0 allows.

References
----------
.. [1] IEC 60909-0:2016, Short-circuit currents in three-phase a.c. systems — Part 0:
   Calculation of currents.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import warnings
from dataclasses import dataclass
from typing import Iterator

import networkx as nx
import numpy as np
import pandapower as pp
import pandapower.shortcircuit as sc
import pandapower.topology as top
import pandas as pd

FAULTS = ("3ph", "2ph", "1ph")
CASES = ("max", "min")

#: Short-circuit power of the upstream grid (max, min) [MVA] by the ext_grid's voltage.
#: 110 kV: a meshed HV grid, I"k ≈ 5.8 / 4.2 kA (the DMS paper grids use the same);
#: MV (an ext_grid on a 10–30 kV busbar): 250 / 200 MVA keeps a 10 kV busbar below 16 kA.
S_SC_HV_MVA = (1000.0, 800.0)
S_SC_MV_MVA = (250.0, 200.0)
#: R/X of the upstream grid: IEC 60909-0 allows R = 0.1·X for a feeding grid above 35 kV
#: supplied by overhead lines.
RX_GRID = 0.1
#: Zero sequence of the upstream grid: X0/X1 = 1 and R0/X0 = 0.1 (an effectively earthed HV
#: grid). Behind a Dyn trafo it does not reach the MV side at all.
X0X_GRID = 1.0
R0X0_GRID = 0.1
#: Conductor temperature at the end of the fault for case "min" [°C]: a conductor at its
#: full-load temperature (XLPE is rated 90 °C); the heating during a clearing time of a few
#: hundred ms is neglected.
LINE_ENDTEMP_DEGREE = 80.0
#: Zero-sequence line data as multiples of the positive sequence when missing:
#: R0 = 4·R1, X0 = 3·X1 (earth/screen return, the usual planning values); C0 = C1 for
#: cables (each core in its own screen) and 0.5·C1 for overhead lines.
R0_PER_R1 = 4.0
X0_PER_X1 = 3.0
C0_PER_C1 = {"cs": 1.0, "ol": 0.5}
#: Trafo vector group when missing: Dyn, an MV neutral earthed at the substation. Names like
#: "YNd5" in a std_type are not read: an isolated or compensated MV neutral gives capacitive
#: earth-fault currents that IEC 60909 does not cover.
VECTOR_GROUP = "Dyn"
#: Ratio Zm0/Zk0 and R/X of the zero-sequence magnetising branch, and the HV share of the
#: zero-sequence leakage (pandapower's own suggestions); Z0 = Z1 for the leakage.
MAG0_PERCENT = 100.0
MAG0_RX = 0.0
SI0_HV_PARTIAL = 0.9
#: Converter DER (full converter, current source): I"k = k·In, inverters limit their fault
#: current to 1.0–1.5 × rated; 1.2 is a middle value (IEC 60909-0:2016 leaves the
#: contribution of full-converter units to the manufacturer's data).
SGEN_K = 1.2

HV_ABOVE_KV = 36.0   # above: HV switchgear (IEC 62271 rated voltages up to 36 kV are MV)
LV_UP_TO_KV = 1.0


# ---------------------------------------------------------------- preparation
def prepare_for_sc(net: pp.pandapowerNet) -> None:
    """Fill in place what ``calc_sc`` needs and the net lacks, never a value present.

    Enough for faults "3ph", "2ph" and "1ph" in both cases "max" and "min". A value counts
    as present when it is not NaN; columns that are missing are added.

    Parameters
    ----------
    net : pandapowerNet
        Changed in place.

    Notes
    -----
    Defaults (module constants; their comments give the reasons):

    * ext_grid ``s_sc_max_mva`` / ``s_sc_min_mva``: 1000 / 800 MVA above 36 kV,
      250 / 200 MVA at or below; ``rx_max``, ``rx_min``: 0.1; ``x0x_*``: 1.0;
      ``r0x0_*``: 0.1.
    * line ``endtemp_degree``: 80 °C; ``r0_ohm_per_km`` = 4·r1, ``x0_ohm_per_km`` = 3·x1,
      ``c0_nf_per_km`` = c1 for cables ("cs"), 0.5·c1 for overhead lines ("ol").
    * trafo ``vector_group``: "Dyn"; ``vk0_percent`` = vk, ``vkr0_percent`` = vkr (Z0 = Z1);
      ``mag0_percent``: 100; ``mag0_rx``: 0; ``si0_hv_partial``: 0.9;
      ``power_station_unit``: False (network trafos, whose K_T applies).
    * sgen ``k``: 1.2; ``current_source``: True (full converter); ``sn_mva``: abs(p_mw).

    Storage units and loads need nothing: pandapower's calc_sc ignores them. Synchronous
    generators (``net.gen``) and three-winding trafos are taken as they are.
    """
    eg = net.ext_grid
    if len(eg):
        hv = net.bus.loc[eg.bus, "vn_kv"].to_numpy(dtype=float) > HV_ABOVE_KV
        s_max = np.where(hv, S_SC_HV_MVA[0], S_SC_MV_MVA[0])
        s_min = np.where(hv, S_SC_HV_MVA[1], S_SC_MV_MVA[1])
        _fill(eg, "s_sc_max_mva", s_max)
        _fill(eg, "s_sc_min_mva", s_min)
        for case in CASES:
            _fill(eg, f"rx_{case}", RX_GRID)
            _fill(eg, f"x0x_{case}", X0X_GRID)
            _fill(eg, f"r0x0_{case}", R0X0_GRID)
    ln = net.line
    if len(ln):
        _fill(ln, "endtemp_degree", LINE_ENDTEMP_DEGREE)
        _fill(ln, "r0_ohm_per_km", R0_PER_R1 * ln["r_ohm_per_km"].to_numpy(dtype=float))
        _fill(ln, "x0_ohm_per_km", X0_PER_X1 * ln["x_ohm_per_km"].to_numpy(dtype=float))
        kind = ln["type"] if "type" in ln.columns else pd.Series("cs", index=ln.index)
        c0_per_c1 = kind.map(C0_PER_C1).fillna(1.0).to_numpy(dtype=float)
        _fill(ln, "c0_nf_per_km", c0_per_c1 * ln["c_nf_per_km"].to_numpy(dtype=float))
    tr = net.trafo
    if len(tr):
        if "vector_group" in tr.columns:
            # a std_type's "YNd5" (phase-shift number) is not read, as said above
            named = tr["vector_group"].astype(str).str.contains(r"\d", regex=True)
            tr.loc[named, "vector_group"] = np.nan
        _fill(tr, "vector_group", VECTOR_GROUP)
        _fill(tr, "vk0_percent", tr["vk_percent"].to_numpy(dtype=float))
        _fill(tr, "vkr0_percent", tr["vkr_percent"].to_numpy(dtype=float))
        _fill(tr, "mag0_percent", MAG0_PERCENT)
        _fill(tr, "mag0_rx", MAG0_RX)
        _fill(tr, "si0_hv_partial", SI0_HV_PARTIAL)
        # a NaN here makes pandapower warn on every run (fillna on a float column)
        _fill(tr, "power_station_unit", False)
    sg = net.sgen
    if len(sg):
        _fill(sg, "k", SGEN_K)
        _fill(sg, "current_source", True)
        _fill(sg, "sn_mva", sg["p_mw"].abs().to_numpy(dtype=float))


def _fill(df: pd.DataFrame, column: str, values) -> None:
    """Set ``df[column]`` to ``values`` where it is missing or NaN."""
    new = pd.Series(values, index=df.index) if np.ndim(values) else \
        pd.Series([values] * len(df), index=df.index)
    if column not in df.columns:
        df[column] = new
        return
    missing = df[column].isna()
    if missing.any():
        if missing.all():
            df[column] = new  # takes the filler's dtype (bool, str) instead of object/float
        else:
            df.loc[missing, column] = new[missing]


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """calc_sc logs "branch results are in beta mode" on every call, and numpy warns about
    all-NaN rows for branches no current flows through: expected here, so silenced."""
    log = logging.getLogger("pandapower.shortcircuit.calc_sc")

    def drop_beta(record: logging.LogRecord) -> bool:
        return "beta mode" not in record.getMessage()

    log.addFilter(drop_beta)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="All-NaN slice", category=RuntimeWarning)
            yield
    finally:
        log.removeFilter(drop_beta)


def check_fault(fault: str, case: str) -> None:
    if fault not in FAULTS:
        raise ValueError(f"fault: expected one of {', '.join(FAULTS)}; found {fault!r}")
    if case not in CASES:
        raise ValueError(f"case: expected one of {', '.join(CASES)}; found {case!r}")


def live_buses(net: pp.pandapowerNet, graph: nx.MultiGraph | None = None) -> set[int]:
    """Buses connected to an in-service ext_grid through closed switches (``graph``: the
    net's graph with switches respected, if the caller has it already)."""
    if graph is None:
        graph = top.create_nxgraph(net, respect_switches=True, include_out_of_service=False)
    live: set[int] = set()
    for bus in net.ext_grid.bus[net.ext_grid.in_service.astype(bool)]:
        if int(bus) in graph and int(bus) not in live:
            live |= nx.node_connected_component(graph, int(bus))
    return live


# ---------------------------------------------------------------- fault on a line
@dataclass(frozen=True)
class FaultCurrents:
    """Currents of one fault on a line, keyed by the original net's indices [kA]."""

    fault: str                   # "3ph" | "2ph" | "1ph"
    case: str                    # "max" | "min"
    ikss_ka: float               # initial symmetrical short-circuit current at the fault
    line_ka: dict[int, float]    # in-service lines: current at the from end (faulted line:
                                 # flowing in from its from bus); 0.0 where none flows
    trafo_ka: dict[int, float]   # in-service trafos: current on the HV side
    switch_ka: dict[int, float]  # closed line and trafo switches: current at the switch's
                                 # bus end of its element (bus-bus switches left out)


def fault_currents(net: pp.pandapowerNet, line: int, position: float = 0.5,
                   fault: str = "3ph", r_fault_ohm: float = 0.0, x_fault_ohm: float = 0.0,
                   case: str = "max") -> FaultCurrents:
    """IEC 60909 currents of a fault at ``position`` along ``line`` (the net is not changed).

    Parameters
    ----------
    net : pandapowerNet
        The grid with its present switch states; data calc_sc needs and the net lacks are
        filled on a copy by :func:`prepare_for_sc`.
    line : int
        Index in ``net.line`` of the faulted line.
    position : float
        Place of the fault as the share of the line's length from its from bus, 0..1. At 0
        or 1 the fault is at that end's bus; on the line side of a line switch that is
        open there, if there is one.
    fault : {"3ph", "2ph", "1ph"}
    r_fault_ohm, x_fault_ohm : float
        Fault impedance [Ω].
    case : {"max", "min"}

    Returns
    -------
    FaultCurrents
        All zero when the fault point has no path to an ext_grid (line out of service or
        cut off by open switches).

    Raises
    ------
    ValueError
        On an unknown line, a position outside [0, 1], an unknown fault type or case.

    Notes
    -----
    The line is split at the fault by an auxiliary bus into two lines of the same data with
    lengths position·l and (1 − position)·l; its line switches go with the segment at their
    bus. A fault at an end behind an open switch of the line gets its own bus there, the
    open switch between the two (the line's current at that end is then the fault's
    infeed through the line). One ``calc_sc(bus=<fault bus>, branch_results=True)`` gives
    the branch currents; with DER (case "max") lines off the path carry their k·In.
    """
    if line not in net.line.index:
        raise ValueError(f"line: expected an index of net.line; found {line!r}")
    if not 0.0 <= float(position) <= 1.0:  # NaN fails too
        raise ValueError(f"position: expected a share of the line length in [0, 1]; "
                         f"found {position!r}")
    check_fault(fault, case)
    line = int(line)
    position = float(position)
    lines = [int(i) for i in net.line.index[net.line.in_service.astype(bool)]]
    trafos = [int(i) for i in net.trafo.index[net.trafo.in_service.astype(bool)]]
    closed = net.switch[net.switch.closed.astype(bool) & net.switch.et.isin(("l", "t"))]

    def result(ikss, line_ka, trafo_ka, switch_ka) -> FaultCurrents:
        return FaultCurrents(fault, case, float(ikss), line_ka, trafo_ka, switch_ka)

    zeros = result(0.0, dict.fromkeys(lines, 0.0), dict.fromkeys(trafos, 0.0),
                   {int(s): 0.0 for s in closed.index})
    if not bool(net.line.at[line, "in_service"]):
        return zeros

    work = copy.deepcopy(net)
    prepare_for_sc(work)
    fault_bus, ends = _place_fault(work, line, position)
    if fault_bus not in live_buses(work):
        return zeros
    with quiet():
        sc.calc_sc(work, bus=fault_bus, fault=fault, case=case, branch_results=True,
                   r_fault_ohm=r_fault_ohm, x_fault_ohm=x_fault_ohm)
    ikss = float(np.nan_to_num(work.res_bus_sc.at[fault_bus, "ikss_ka"]))
    res_line = work.res_line_sc
    i_from = np.nan_to_num(res_line["ikss_from_ka"].to_numpy(dtype=float))
    i_to = np.nan_to_num(res_line["ikss_to_ka"].to_numpy(dtype=float))
    at_from = dict(zip(res_line.index, i_from))
    at_to = dict(zip(res_line.index, i_to))
    # the faulted line's ends are now those of its two segments
    at_from[line], at_to[line] = at_from[ends[0]], at_to[ends[1]]
    line_ka = {ln: float(at_from[ln]) for ln in lines}
    res_tr = work.res_trafo_sc
    hv = dict(zip(res_tr.index, np.nan_to_num(res_tr["ikss_hv_ka"].to_numpy(dtype=float))))
    lv = dict(zip(res_tr.index, np.nan_to_num(res_tr["ikss_lv_ka"].to_numpy(dtype=float))))
    trafo_ka = {t: float(hv[t]) for t in trafos}

    switch_ka: dict[int, float] = {}
    # per switch kind: the elements carrying current, the column of the end the first
    # currents belong to, the currents at that end and at the other
    sides = {"l": (lines, net.line["from_bus"], at_from, at_to),
             "t": (trafos, net.trafo["hv_bus"], hv, lv)}
    for sw, bus, element, et in zip(closed.index, closed.bus, closed.element, closed.et):
        element = int(element)
        live, first_end, at_first, at_other = sides[et]
        if element not in live:
            current = 0.0
        else:
            current = at_first[element] if int(bus) == int(first_end.at[element]) \
                else at_other[element]
        switch_ka[int(sw)] = float(current)
    return result(ikss, line_ka, trafo_ka, switch_ka)


def _place_fault(work: pp.pandapowerNet, line: int, position: float) -> tuple[int, tuple[int, int]]:
    """Make the bus of a fault at ``position`` on ``line`` in ``work`` (changed).

    Returns the fault bus and the lines that now hold the original line's from end and its
    to end (both ``line`` when it is not split).
    """
    from_bus = int(work.line.at[line, "from_bus"])
    to_bus = int(work.line.at[line, "to_bus"])
    on_line = (work.switch.et == "l") & (work.switch.element == line)
    if 0.0 < position < 1.0:
        aux = _aux_bus(work, from_bus, line)
        length = float(work.line.at[line, "length_km"])
        second = int(work.line.index.max()) + 1
        work.line.loc[second] = work.line.loc[line]
        work.line.at[line, "to_bus"] = aux
        work.line.at[line, "length_km"] = position * length
        work.line.at[second, "from_bus"] = aux
        work.line.at[second, "length_km"] = (1.0 - position) * length
        # a switch at the to bus now belongs to the segment that ends there
        work.switch.loc[on_line & (work.switch.bus == to_bus), "element"] = second
        return aux, (line, second)
    end, column = (from_bus, "from_bus") if position == 0.0 else (to_bus, "to_bus")
    open_here = on_line & (work.switch.bus == end) & ~work.switch.closed.astype(bool)
    if not open_here.any():
        return end, (line, line)
    # The fault is on the line side of an open switch: give the line end a bus of its own,
    # and make the open switch one between the two buses.
    aux = _aux_bus(work, end, line)
    work.line.at[line, column] = aux
    at_end = on_line & (work.switch.bus == end)
    work.switch.loc[at_end, "et"] = "b"
    work.switch.loc[at_end, "element"] = aux
    return aux, (line, line)


def _aux_bus(work: pp.pandapowerNet, like: int, line: int) -> int:
    return int(pp.create_bus(work, vn_kv=float(work.bus.at[like, "vn_kv"]),
                             name=f"fault on line {line}"))
