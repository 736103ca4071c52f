"""Network reconfiguration for low losses: move the normally-open points of a radial
distribution network by branch exchange.

A line is *switchable* when it carries at least one line switch (``net.switch`` rows with
``et == "l"``); it is in the configuration when all its line switches are closed. Starting
from the present (radial) configuration, each round tries every exchange — close one open
switchable line (a tie), open one closed switchable line on the loop that closing the tie
makes — with a power flow, and keeps the exchange that lowers the losses most while the
voltages and loadings stay within the limits; rounds stop when no exchange helps. An
exchange inside one loop turns a spanning tree into another spanning tree on the same
buses, so every plan is radial and supplies every bus the present configuration supplies;
each candidate is checked for that anyway. "Radial" means no loop through a switchable
line: loops without one (parallel substation transformers on a coupled busbar) are part of
the fixed network and stay as they are. The work per round grows with the number of
ties times their loop lengths, not with the number of configurations.

References
----------
.. [1] S. Civanlar, J. J. Grainger, H. Yin, S. S. H. Lee, "Distribution feeder
   reconfiguration for loss reduction", IEEE Trans. Power Delivery 3(3), 1988.
.. [2] M. E. Baran, F. F. Wu, "Network reconfiguration in distribution systems for loss
   reduction and load balancing", IEEE Trans. Power Delivery 4(2), 1989.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import networkx as nx
import numpy as np
import pandapower as pp
import pandapower.topology as top

from twin.dms.pf import p_loss_mw, runpp_warm
from twin.grid.names import element_names


@dataclass(frozen=True)
class SwitchingPlan:
    """What :func:`minimize_losses` proposes (switch names as in ``net.switch``)."""

    open: list[str]                  # switches to open
    close: list[str]                 # switches to close
    p_loss_before_mw: float
    p_loss_mw: float                 # after the plan
    vm_min_pu: float                 # after the plan
    max_loading_percent: float       # lines and trafos, after the plan
    exchanges: list[tuple[str, str]] = field(default_factory=list)  # (closed line, opened line)
    n_power_flows: int = 0

    @property
    def saving_mw(self) -> float:
        return self.p_loss_before_mw - self.p_loss_mw


@dataclass(frozen=True)
class _Solved:
    p_loss_mw: float
    vm_min_pu: float
    max_loading_percent: float

    def score(self, limits: tuple[float, float]) -> tuple[float, float]:
        """(how far outside the limits, losses): an overloaded start is first brought
        within the limits, then the losses count."""
        vm_min_pu, max_loading_percent = limits
        excess = max(0.0, self.max_loading_percent - max_loading_percent) \
            + 100.0 * max(0.0, vm_min_pu - self.vm_min_pu)
        return (round(excess, 6), self.p_loss_mw)


def with_line_switches(net: pp.pandapowerNet) -> pp.pandapowerNet:
    """A copy of ``net`` with a closed line switch (at the from bus) on every line that has
    none, so that :func:`minimize_losses` may open any line."""
    net = copy.deepcopy(net)
    has = set(net.switch.element[net.switch.et == "l"])
    for line in net.line.index:
        if line not in has:
            pp.create_switch(net, net.line.at[line, "from_bus"], line, "l", closed=True)
    return net


def _line_switches(net: pp.pandapowerNet) -> dict[int, list[int]]:
    sw = net.switch[net.switch.et == "l"]
    out: dict[int, list[int]] = {}
    for idx, line in zip(sw.index, sw.element):
        out.setdefault(int(line), []).append(int(idx))
    return out


def _line_closed(net: pp.pandapowerNet, switches: list[int]) -> bool:
    return bool(net.switch.loc[switches, "closed"].all())


def _set_line(net: pp.pandapowerNet, switches: list[int], closed: bool) -> None:
    if closed:
        net.switch.loc[switches, "closed"] = True
    elif _line_closed(net, switches):
        net.switch.at[switches[0], "closed"] = False  # one open switch opens the line


_SOURCES = "sources"  # one node behind all ext_grids: a path between two is a loop too


def _graph(net: pp.pandapowerNet) -> nx.MultiGraph:
    graph = top.create_nxgraph(net, respect_switches=True, include_out_of_service=False)
    slack = sorted({int(b) for b in net.ext_grid.bus[net.ext_grid.in_service.astype(bool)]})
    if len(slack) > 1:  # feeders from separate sources meet in the grid upstream
        for b in slack:
            graph.add_edge(_SOURCES, b, key=("source", b))
    return graph


def _supplied(net: pp.pandapowerNet, graph: nx.MultiGraph) -> set[int]:
    slack = set(int(b) for b in net.ext_grid.bus[net.ext_grid.in_service.astype(bool)])
    out: set[int] = set()
    for b in slack:
        if b in graph and b not in out:
            out |= nx.node_connected_component(graph, b)
    out.discard(_SOURCES)  # type: ignore[arg-type]
    return out


def _loops(graph: nx.MultiGraph) -> int:
    """Independent loops (cyclomatic number E − V + C)."""
    return (graph.number_of_edges() - graph.number_of_nodes()
            + nx.number_connected_components(graph))


def _fixed_loops(net: pp.pandapowerNet, switches: dict[int, list[int]]) -> int:
    """Loops without any switchable line (parallel substation trafos and the like)."""
    fixed = copy.deepcopy(net)
    for sw in switches.values():
        fixed.switch.loc[sw, "closed"] = False
    return _loops(_graph(fixed))


def _solve(net: pp.pandapowerNet) -> _Solved | None:
    try:
        runpp_warm(net)
    except pp.LoadflowNotConverged:
        return None
    loss = p_loss_mw(net)
    loading = np.concatenate([net.res_line.loading_percent.to_numpy(dtype=float),
                              net.res_trafo.loading_percent.to_numpy(dtype=float)])
    return _Solved(loss, float(np.nanmin(net.res_bus.vm_pu)), float(np.nanmax(loading)))


def minimize_losses(net: pp.pandapowerNet, *, vm_min_pu: float = 0.95,
                    max_loading_percent: float = 100.0, max_rounds: int = 50,
                    min_saving_mw: float = 1e-5) -> SwitchingPlan:
    """A switching plan that lowers the losses of a radial net (the net is not changed).

    When the present configuration is outside the limits (an overloaded line, a low
    voltage), every step first brings it closer to them and only then lowers the losses:
    the plan relieves the overload if a radial configuration can (load management).

    Parameters
    ----------
    net : pandapowerNet
        A radial distribution net with its present loads and switch states; lines that
        carry line switches are the ones the plan may open or close.
    vm_min_pu : float
        Every supplied bus should stay at or above this voltage [p.u.] in the plan.
    max_loading_percent : float
        No line or trafo should exceed this loading [%] in the plan (the returned
        ``vm_min_pu`` and ``max_loading_percent`` say whether it could be met).
    max_rounds : int
        At most this many exchanges.
    min_saving_mw : float
        An exchange must lower the losses by at least this much [MW].

    Returns
    -------
    SwitchingPlan
        Switches to open and close (empty lists: the present configuration is already the
        best the search finds), losses before and after, minimum voltage and maximum
        loading after the plan.

    Raises
    ------
    ValueError
        If the present configuration is meshed or its power flow fails.
    """
    work = copy.deepcopy(net)
    switches = _line_switches(work)
    graph = _graph(work)
    supplied = _supplied(work, graph)
    fixed_loops = _fixed_loops(work, switches)
    if _loops(graph) != fixed_loops:
        raise ValueError("minimize_losses: expected a radial net; the present switch states "
                         "close a loop through a switchable line")
    base = _solve(work)
    if base is None:
        raise ValueError("minimize_losses: the power flow of the present configuration "
                         "does not converge")
    start_states = work.switch["closed"].copy()
    limits = (vm_min_pu, max_loading_percent)
    # two starts: the present configuration, and the one that opening the least-loaded
    # loop line of the meshed net gives; branch exchange from each, the better one wins
    runs = [_branch_exchange(work, switches, supplied, fixed_loops, base, limits,
                             max_rounds, min_saving_mw)]
    meshed = copy.deepcopy(net)
    seeded, n_pf = _open_meshed(meshed, switches, supplied, fixed_loops)
    if seeded is not None:
        runs.append(_branch_exchange(meshed, switches, supplied, fixed_loops, seeded, limits,
                                     max_rounds, min_saving_mw))
    n_pf += 1 + sum(r[3] for r in runs)
    final_net, current, exchanges, _ = min(runs, key=lambda r: r[1].score(limits))
    final = final_net.switch["closed"]
    if not _better(current, base, limits, min_saving_mw):
        final, current, exchanges = start_states, base, []
    switch_names = element_names(work, "switch")
    opened = [switch_names[k] for k, idx in enumerate(work.switch.index)
              if bool(start_states[idx]) and not bool(final[idx])]
    closed = [switch_names[k] for k, idx in enumerate(work.switch.index)
              if not bool(start_states[idx]) and bool(final[idx])]
    return SwitchingPlan(open=opened, close=closed, p_loss_before_mw=base.p_loss_mw,
                         p_loss_mw=current.p_loss_mw, vm_min_pu=current.vm_min_pu,
                         max_loading_percent=current.max_loading_percent,
                         exchanges=exchanges, n_power_flows=int(n_pf))


def _open_meshed(net, switches, supplied, fixed_loops) -> tuple[_Solved | None, int]:
    """Close every switchable line, then open, one at a time, the switchable line with the
    least current among those on a loop, until no loop through a switchable line is left
    (the sequential opening of Shirmohammadi and Hong). ``net`` is changed. Returns the
    solved result (None if it fails) and the power flows spent."""
    for sw in switches.values():
        _set_line(net, sw, True)
    n_pf = 0
    while True:
        graph = _graph(net)
        if _loops(graph) == fixed_loops:
            break
        n_pf += 1
        try:
            runpp_warm(net)
        except pp.LoadflowNotConverged:
            return None, n_pf
        simple = nx.Graph(graph)
        bridges = {frozenset(e) for e in nx.bridges(simple)}
        doubled = {frozenset((u, v)) for u, v in simple.edges
                   if graph.number_of_edges(u, v) > 1}
        on_loop = []
        for line, sw in switches.items():
            if not _line_closed(net, sw):
                continue
            ends = frozenset((int(net.line.at[line, "from_bus"]), int(net.line.at[line, "to_bus"])))
            if ends not in bridges or ends in doubled:
                on_loop.append((float(net.res_line.at[line, "i_ka"]), line))
        if not on_loop:
            return None, n_pf
        _set_line(net, switches[min(on_loop)[1]], False)
    if not _supplied(net, _graph(net)) >= supplied:
        return None, n_pf
    return _solve(net), n_pf + 1


def _better(a: _Solved, b: _Solved, limits: tuple[float, float], min_saving_mw: float) -> bool:
    """``a`` is closer to the limits than ``b``, or as close and saves enough losses."""
    (ea, la), (eb, lb) = a.score(limits), b.score(limits)
    return ea < eb or (ea == eb and la < lb - min_saving_mw)


def _branch_exchange(work, switches, supplied, fixed_loops, start: _Solved, limits,
                     max_rounds, min_saving_mw):
    """Best-improvement branch exchange from the configuration in ``work`` (changed):
    (net, solved, exchanges, power flows)."""
    name_of = dict(zip(work.line.index, element_names(work, "line")))
    graph = _graph(work)
    current = start
    exchanges: list[tuple[str, str]] = []
    n_pf = 0
    for _round in range(max_rounds):
        best: tuple[_Solved, int, int] | None = None
        closed_lines = {ln for ln, sw in switches.items() if _line_closed(work, sw)}
        for tie, tie_sw in switches.items():
            if tie in closed_lines or not bool(work.line.at[tie, "in_service"]):
                continue
            a, b = int(work.line.at[tie, "from_bus"]), int(work.line.at[tie, "to_bus"])
            if a not in supplied or b not in supplied:
                continue  # the tie reaches an unsupplied part: closing it is not an exchange
            path = nx.shortest_path(graph, a, b)
            loop = []
            for u, v in zip(path[:-1], path[1:]):
                for key in graph.get_edge_data(u, v):
                    if key[0] == "line" and int(key[1]) in closed_lines:
                        loop.append(int(key[1]))
            for out_line in loop:
                saved = work.switch["closed"].copy()
                _set_line(work, tie_sw, True)
                _set_line(work, switches[out_line], False)
                trial_graph = _graph(work)
                ok = (_supplied(work, trial_graph) >= supplied
                      and _loops(trial_graph) == fixed_loops)
                solved = _solve(work) if ok else None
                n_pf += ok
                work.switch["closed"] = saved
                if solved is None:
                    continue
                if best is None or solved.score(limits) < best[0].score(limits):
                    best = (solved, tie, out_line)
        if best is None or not _better(best[0], current, limits, min_saving_mw):
            break
        solved, tie, out_line = best
        _set_line(work, switches[tie], True)
        _set_line(work, switches[out_line], False)
        graph = _graph(work)
        current = solved
        exchanges.append((name_of[tie], name_of[out_line]))
    if exchanges:
        check = _solve(work)  # the final configuration, solved from its own state
        n_pf += 1
        current = check if check is not None else current
    return work, current, exchanges, n_pf
