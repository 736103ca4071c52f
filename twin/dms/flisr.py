"""Fault location, isolation and service restoration (FLISR): plain functions over the
DMS's network model.

The network is seen as *sections*: the parts that stay connected whatever the switches
do. A node graph has the buses, plus one node per line or trafo that carries a switch
(the element between its switches); an edge per switch, and plain edges for the element
ends without a switch. Sections are the components left when the switch edges are cut;
they are what switching can isolate.

Location (:func:`locate`)
    The tripped breaker de-energised some sections; the fault is in one of them. A
    fault-passage indicator (at a line's from end, a trafo's HV side) sees fault current
    when it lies on the path from the source to the fault. Each dead section is scored by
    how many reported indicators disagree with a fault there; the fault zone is every dead
    section with the lowest score (several when the indicators cannot tell them apart).
Isolation (:func:`isolation`)
    Open every closed switch on the zone's boundary.
Restoration (:func:`restoration`)
    Reclose the tripped breaker when it is not on the boundary (upstream); for each group
    of healthy dead sections, close the normally-open tie to a live section that keeps
    voltages and loadings within limits by power flow (and the switchgear within its
    short-circuit ratings, when a check is given), least loaded first.
Return to normal (:func:`switching_sequence`)
    Close what energises a dead part; open a tie just before the close that takes its
    area back.
"""

from __future__ import annotations

import copy
import math
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

import networkx as nx
import numpy as np
import pandapower as pp

from twin.dms.pf import runpp_warm
from twin.grid.names import element_names

Node = tuple[str, int]  # ("bus", 3), ("line", 7), ("trafo", 0)


@dataclass(frozen=True)
class Sections:
    """The node graph of a net and its sections (see the module docstring)."""

    graph: nx.Graph                       # edges carry "switch": index or None
    section: dict[Node, int]              # node -> section id
    switch_edge: dict[int, tuple[Node, Node]]
    sources: frozenset[Node]              # ext_grid buses

    def nodes_of(self, sections: set[int] | frozenset[int]) -> list[Node]:
        return [n for n, s in self.section.items() if s in sections]


def build_sections(net: pp.pandapowerNet) -> Sections:
    """The node graph and sections of ``net`` (switch positions, not states)."""
    g = nx.Graph()
    g.add_nodes_from(("bus", int(b)) for b in net.bus.index[net.bus.in_service.astype(bool)])
    switch_edge: dict[int, tuple[Node, Node]] = {}
    sw = net.switch
    switched = {(et, int(el)) for et, el in zip(sw.et, sw.element) if et in ("l", "t")}
    for table, et, ends in (("line", "l", ("from_bus", "to_bus")),
                            ("trafo", "t", ("hv_bus", "lv_bus"))):
        df = net[table]
        for idx in df.index[df.in_service.astype(bool)]:
            a, b = (("bus", int(df.at[idx, e])) for e in ends)
            if (et, int(idx)) not in switched:
                g.add_edge(a, b, switch=None, element=(table, int(idx)))
                continue
            node = (table, int(idx))
            for end in (a, b):
                g.add_edge(end, node, switch=None, element=node)  # replaced below if switched
    for s in sw.index:
        et, el, bus = sw.at[s, "et"], int(sw.at[s, "element"]), ("bus", int(sw.at[s, "bus"]))
        if et == "b":
            u, v = bus, ("bus", el)
            g.add_edge(u, v, switch=int(s), element=None)
        else:
            v = ("line" if et == "l" else "trafo", el)
            if v not in g:
                continue  # element out of service
            u = bus
            g.add_edge(u, v, switch=int(s), element=v)
        switch_edge[int(s)] = (u, v)
    fixed = nx.Graph()
    fixed.add_nodes_from(g.nodes)
    fixed.add_edges_from((u, v) for u, v, d in g.edges(data=True) if d["switch"] is None)
    section = {n: k for k, comp in enumerate(nx.connected_components(fixed)) for n in comp}
    slack = net.ext_grid.bus[net.ext_grid.in_service.astype(bool)]
    sources = frozenset(("bus", int(b)) for b in slack)
    return Sections(g, section, switch_edge, sources)


def _closed_graph(sec: Sections, closed: dict[int, bool]) -> nx.Graph:
    g = nx.Graph()
    g.add_nodes_from(sec.graph.nodes)
    g.add_edges_from((u, v) for u, v, d in sec.graph.edges(data=True)
                     if d["switch"] is None or closed.get(d["switch"], False))
    return g


def patrol_order(sec: Sections, lines: tuple[int, ...] | list[int],
                 closed: dict[int, bool]) -> list[int]:
    """The lines of a faulted section in the order a crew patrols them: from the supply
    end, where the fault current came in, outwards — by the hops of each line's nearer end
    from a source with the switch states ``closed`` (the normal ones); ties keep the given
    order."""
    g = _closed_graph(sec, closed)
    hops = nx.multi_source_dijkstra_path_length(g, [s for s in sec.sources if s in g])
    ends: dict[int, list[Node]] = {int(x): [] for x in lines}
    for u, v, d in sec.graph.edges(data=True):
        element = d.get("element")
        if element is not None and element[0] == "line" and element[1] in ends:
            ends[element[1]] += [u, v]
    return sorted(ends, key=lambda x: min((hops.get(n, math.inf) for n in ends[x]),
                                          default=math.inf))


def live_sections(sec: Sections, closed: dict[int, bool]) -> set[int]:
    """Sections connected to a source with these switch states."""
    g = _closed_graph(sec, closed)
    live: set[Node] = set()
    for s in sec.sources:
        if s in g and s not in live:
            live |= nx.node_connected_component(g, s)
    return {sec.section[n] for n in live}


def switch_states(net: pp.pandapowerNet) -> dict[int, bool]:
    return {int(i): bool(c) for i, c in zip(net.switch.index, net.switch.closed)}


def indicator_edge(net: pp.pandapowerNet, sec: Sections, table: str, idx: int) -> tuple[Node, Node]:
    """The node-graph edge an indicator sits on: a line's from end, a trafo's HV side."""
    bus = ("bus", int(net[table].at[idx, "from_bus" if table == "line" else "hv_bus"]))
    node = (table, idx)
    if node in sec.graph:
        return (bus, node)
    other = ("bus", int(net[table].at[idx, "to_bus" if table == "line" else "lv_bus"]))
    return (bus, other)


@dataclass(frozen=True)
class FaultLocation:
    """Where the DMS believes the fault is."""

    breaker: int
    zone: frozenset[int]                  # section ids
    buses: tuple[int, ...]
    lines: tuple[int, ...]
    saw_fault: tuple[str, ...]            # indicators (element names) that saw fault
                                          # current, the one nearest the zone last
    no_fault: tuple[str, ...]             # the dead part's that did not, nearest first
    mismatches: int
    candidates: int                       # dead sections considered


def locate(net: pp.pandapowerNet, sec: Sections, breaker: int,
           indicators: dict[tuple[str, int], bool]) -> FaultLocation:
    """Locate the fault behind tripped ``breaker`` from the reported indicators.

    ``net`` holds the switch states the DMS believes (the breaker open);
    ``indicators`` maps ("line" | "trafo", index) → whether it reported fault current.
    """
    closed = switch_states(net)
    before = {**closed, breaker: True}
    dead = live_sections(sec, before) - live_sections(sec, closed)
    g = _closed_graph(sec, before)
    parent = _bfs_parents(g, sec.sources)
    edges = {key: frozenset(indicator_edge(net, sec, *key)) for key in indicators}
    scores: dict[int, int] = {}
    for s in dead:
        entry = min((n for n in sec.nodes_of({s}) if n in parent), key=lambda n: parent[n][1],
                    default=None)
        if entry is None:
            continue
        path = set()
        n = entry
        while parent[n][0] is not None:
            path.add(frozenset((n, parent[n][0])))
            n = parent[n][0]
        score = 0
        for key, saw in indicators.items():
            u, v = tuple(edges[key])
            if sec.section.get(u) == s and sec.section.get(v) == s:
                continue  # inside the candidate itself: says nothing against it
            score += (edges[key] in path) != saw
        scores[s] = score
    if not scores:
        raise ValueError(f"breaker {breaker}: no dead section behind it to locate a fault in")
    best = min(scores.values())
    zone = frozenset(s for s, v in scores.items() if v == best)
    nodes = sec.nodes_of(zone)
    names = {t: element_names(net, t) for t in ("line", "trafo")}
    pos = {t: {int(i): k for k, i in enumerate(net[t].index)} for t in ("line", "trafo")}
    dead_nodes = set(sec.nodes_of(dead))
    saw, no = [], []

    # nearest the zone first, so that the wording reads "between the last that saw it and
    # the first that did not"
    near = nx.multi_source_dijkstra_path_length(sec.graph, set(nodes))

    def distance(key) -> int:
        return min(near.get(n, 1 << 30) for n in edges[key])

    def order(key) -> tuple:
        return (-distance(key) if indicators[key] else distance(key), key)

    for key in sorted(indicators, key=order):
        table, idx = key
        if edges[key] & dead_nodes or indicators[key]:
            (saw if indicators[key] else no).append(names[table][pos[table][idx]])
    lines = sorted({n[1] for n in nodes if n[0] == "line"} | {
        d["element"][1] for u, v, d in sec.graph.edges(data=True)
        if d["switch"] is None and d["element"] and d["element"][0] == "line"
        and sec.section[u] in zone and sec.section[v] in zone})
    return FaultLocation(breaker, zone, tuple(sorted(n[1] for n in nodes if n[0] == "bus")),
                         tuple(lines), tuple(saw), tuple(no), best, len(scores))


def _bfs_parents(g: nx.Graph, sources) -> dict[Node, tuple[Node | None, int]]:
    parent: dict[Node, tuple[Node | None, int]] = {}
    queue = deque()
    for s in sorted(sources):
        if s in g:
            parent[s] = (None, 0)
            queue.append(s)
    while queue:
        n = queue.popleft()
        for m in sorted(g.neighbors(n)):
            if m not in parent:
                parent[m] = (n, parent[n][1] + 1)
                queue.append(m)
    return parent


def isolation(sec: Sections, zone: frozenset[int], closed: dict[int, bool]) -> list[int]:
    """Closed switches on the zone's boundary: open them to isolate it."""
    out = []
    for s, (u, v) in sorted(sec.switch_edge.items()):
        inside = (sec.section[u] in zone) + (sec.section[v] in zone)
        if inside == 1 and closed.get(s, False):
            out.append(s)
    return out


@dataclass(frozen=True)
class Restoration:
    """How to bring back the healthy part of a dead area."""

    close: tuple[int, ...]                       # switches to close, in order
    restored_buses: tuple[int, ...]
    unrestored_buses: tuple[int, ...]
    checks: dict[int, dict] = field(default_factory=dict)   # tie -> figures / refusal
    reasons: dict[int, str] = field(default_factory=dict)   # switch -> why it closes
    restores: dict[int, tuple[int, ...]] = field(default_factory=dict)  # switch -> buses


#: ``check(net) -> list of violation sentences`` on a proposed topology (e.g. switchgear
#: against short-circuit currents); empty when fine.
Check = Callable[[pp.pandapowerNet], list[str]]


def restoration(net: pp.pandapowerNet, sec: Sections, location: FaultLocation,
                opened: list[int], *, vm_min_pu: float = 0.95, vm_max_pu: float = 1.05,
                max_loading_percent: float = 100.0, check: Check | None = None) -> Restoration:
    """Switches to close after ``opened`` isolated the zone (see the module docstring).

    ``net`` carries the DMS's believed switch states (breaker open) and its estimated
    loads; it is not changed.
    """
    closed = switch_states(net)
    for s in opened:
        closed[s] = False
    dead_before = _dead(sec, {**closed, location.breaker: True}) | _dead(sec, closed)
    plan: list[int] = []
    reasons: dict[int, str] = {}
    b = location.breaker
    u, v = sec.switch_edge[b]
    restores: dict[int, tuple[int, ...]] = {}
    if (sec.section[u] in location.zone) == (sec.section[v] in location.zone):
        before = live_sections(sec, closed)
        closed[b] = True
        plan.append(b)
        reasons[b] = "upstream"
        restores[b] = _buses(sec, live_sections(sec, closed) - before)
    checks: dict[int, dict] = {}
    work = copy.deepcopy(net)
    while True:
        live = live_sections(sec, closed)
        dead = {sec.section[n] for n in sec.graph if sec.section[n] not in live} \
            & dead_before - location.zone
        groups = _groups(sec, closed, dead)
        progress = False
        for group in groups:
            ties = [s for s, (a, c) in sorted(sec.switch_edge.items())
                    if not closed.get(s, False) and s not in opened and s != b
                    and {sec.section[a], sec.section[c]} & group
                    and {sec.section[a], sec.section[c]} & live
                    and not {sec.section[a], sec.section[c]} & location.zone]
            best = None
            base = _evaluate(work, closed, None) if ties else {}
            for tie in ties:
                trial = {**closed, tie: True}
                figures = _evaluate(work, trial, check)
                # what the tie makes worse: violations elsewhere that it does not touch
                # (a feeder already low at peak) are not its to answer for
                figures["new_violations"] = _worse(base, figures, vm_min_pu, vm_max_pu,
                                                   max_loading_percent)
                ok = (figures.get("converged") and not figures["new_violations"]
                      and not figures["violations"])
                figures["ok"] = bool(ok)
                checks[tie] = figures
                if ok and (best is None or figures["max_loading_percent"]
                           < checks[best]["max_loading_percent"]):
                    best = tie
            if best is not None:
                closed[best] = True
                plan.append(best)
                reasons[best] = "downstream"
                restores[best] = _buses(sec, group)
                progress = True
                break  # the live part changed: look again
        if not progress:
            break
    live = live_sections(sec, closed)
    buses = {n[1] for n in sec.graph if n[0] == "bus"}
    restored = sorted(x for x in buses if sec.section[("bus", x)] in live & dead_before)
    unrestored = sorted(x for x in buses if sec.section[("bus", x)] in dead_before
                        and sec.section[("bus", x)] not in live)
    return Restoration(tuple(plan), tuple(restored), tuple(unrestored), checks, reasons,
                       restores)


def _buses(sec: Sections, sections: set[int]) -> tuple[int, ...]:
    return tuple(sorted(n[1] for n in sec.nodes_of(sections) if n[0] == "bus"))


def _dead(sec: Sections, closed: dict[int, bool]) -> set[int]:
    return set(sec.section.values()) - live_sections(sec, closed)


def _groups(sec: Sections, closed: dict[int, bool], dead: set[int]) -> list[set[int]]:
    g = nx.Graph()
    g.add_nodes_from(dead)
    for s, (u, v) in sec.switch_edge.items():
        a, c = sec.section[u], sec.section[v]
        if closed.get(s, False) and a in dead and c in dead and a != c:
            g.add_edge(a, c)
    return [set(c) for c in sorted(nx.connected_components(g), key=min)]


def _worse(base: dict, trial: dict, vm_min_pu: float, vm_max_pu: float,
           max_loading_percent: float) -> list[str]:
    """Limit violations of ``trial`` at buses/branches that were dead or fine in ``base``,
    or that the trial made worse by more than a hair."""
    if not trial.get("converged"):
        return []
    out = []
    vm0 = base.get("vm_pu")
    for bus, v in trial["vm_pu"].items():
        before = vm0.get(bus, np.nan) if vm0 is not None else np.nan
        if v < vm_min_pu and not (before <= v + 1e-3):
            out.append(f"bus {bus} at {v:.3f} p.u.")
        elif v > vm_max_pu and not (before >= v - 1e-3):
            out.append(f"bus {bus} at {v:.3f} p.u.")
    l0 = base.get("loading")
    for key, x in trial["loading"].items():
        before = l0.get(key, np.nan) if l0 is not None else np.nan
        if x > max_loading_percent and not (before >= x - 0.1):
            out.append(f"{key[0]} {key[1]} at {x:.0f} %")
    return out


def _evaluate(work: pp.pandapowerNet, closed: dict[int, bool], check: Check | None) -> dict:
    work.switch["closed"] = [closed.get(int(i), False) for i in work.switch.index]
    try:
        runpp_warm(work)
    except Exception as exc:  # a proposal that does not solve is refused, not fatal
        return {"converged": False, "violations": [f"power flow failed: {exc}"],
                "vm_min_pu": np.nan, "vm_max_pu": np.nan, "max_loading_percent": np.nan}
    vm = work.res_bus.vm_pu.to_numpy(dtype=float)
    loading = np.concatenate([work.res_line.loading_percent.to_numpy(dtype=float),
                              work.res_trafo.loading_percent.to_numpy(dtype=float)])
    keys = [("line", int(i)) for i in work.res_line.index] + \
        [("trafo", int(i)) for i in work.res_trafo.index]
    return {"converged": True,
            "vm_pu": {int(b): float(v) for b, v in zip(work.res_bus.index, vm) if np.isfinite(v)},
            "loading": {k: float(x) for k, x in zip(keys, loading) if np.isfinite(x)},
            "vm_min_pu": float(np.nanmin(vm)), "vm_max_pu": float(np.nanmax(vm)),
            "max_loading_percent": float(np.nanmax(loading)) if np.isfinite(loading).any()
            else 0.0,
            "p_loss_mw": float(work.res_line.pl_mw.sum() + work.res_trafo.pl_mw.sum()),
            "violations": check(work) if check is not None else []}


def switching_sequence(sec: Sections, target: dict[int, bool],
                       now: dict[int, bool]) -> list[list[tuple[int, str]]]:
    """Stages of (switch, "open" | "close") from ``now`` to ``target`` (back to normal
    after a repair, a load-management plan), each stage sent when the one before is done.
    Never a loop (nor two sources joined): a switch closes only between a dead part and
    anything else; a tie opens just before the close that takes its area back, so each
    area is off for one switching time, not the whole sequence."""
    state = dict(now)
    to_close = [s for s in sorted(now) if not now[s] and target.get(s, False)]
    to_open = [s for s in sorted(now) if now[s] and not target.get(s, True)]
    stages: list[list[tuple[int, str]]] = []
    while to_close or to_open:
        stage = []
        for s in list(to_close):
            if _loop_free(sec, state, s):
                state[s] = True
                to_close.remove(s)
                stage.append((s, "close"))
        if stage:
            stages.append(stage)
            continue
        tie = next((t for t in to_open if any(
            _loop_free(sec, {**state, t: False}, s) for s in to_close)), None)
        if tie is None:  # what is left to open frees nothing: open it all at once
            stages.append([(t, "open") for t in to_open])
            for t in to_open:
                state[t] = False
            to_open = []
            if to_close:  # cannot happen in a radial plan; stop rather than loop
                break
            continue
        state[tie] = False
        to_open.remove(tie)
        stages.append([(tie, "open")])
    return stages


def _loop_free(sec: Sections, closed: dict[int, bool], switch: int) -> bool:
    """Closing ``switch`` joins a dead part to something (no loop, no two sources)."""
    u, v = sec.switch_edge[switch]
    g = _closed_graph(sec, closed)
    if nx.has_path(g, u, v):
        return False
    live = live_sections(sec, closed)
    return not (sec.section[u] in live and sec.section[v] in live)
