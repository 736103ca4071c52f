"""The DMS paper's use-case nets: names, normal state, FLISR sequence, load-management optimum.

Expected values come from the paper (II.D Fig. 3–5, II.F Fig. 6–7) and from the band the
nets were designed for (EN 50160-style 0.95–1.05 p.u., Line A-1 overloaded 115–135 %).
"""

from __future__ import annotations

import itertools
import json
import math

import networkx as nx
import pandapower as pp
import pandapower.topology as top
import pytest

from twin.grid.paper import create_paper_flisr_net, create_paper_load_management_net
from twin.models.load_shapes import load_kind


def _idx(net: pp.pandapowerNet, table: str, name: str) -> int:
    hits = net[table].index[net[table]["name"] == name]
    assert len(hits) == 1, f"expected exactly one {table} named {name!r}; found {len(hits)}"
    return int(hits[0])


def _set(net: pp.pandapowerNet, breaker: str, closed: bool) -> None:
    net.switch.at[_idx(net, "switch", breaker), "closed"] = closed


def _has_loop(net: pp.pandapowerNet) -> bool:
    # multi=False: nx.cycle_basis does not take multigraphs (these nets have no parallel lines).
    return bool(nx.cycle_basis(top.create_nxgraph(net, respect_switches=True, multi=False)))


def _losses_mw(net: pp.pandapowerNet) -> float:
    """Active losses [MW] from the balance of feed-in and load, after a power flow."""
    return float(net.res_ext_grid.p_mw.sum() - net.res_load.p_mw.sum())


def _in_service_vm_pu(net: pp.pandapowerNet):
    return net.res_bus.vm_pu.dropna()


# --- names -------------------------------------------------------------------------------

FLISR_NAMES = {
    "bus": {"HV Grid", "Substation 1", "Substation 2", "Load 1", "Load 2", "Load 3"},
    "trafo": {"Trafo Substation 1", "Trafo Substation 2"},
    "line": {"Line S1-L1", "Line L1-L2", "Line L2-L3", "Line L3-S2"},
    "switch": {"Breaker 1", "Breaker 2", "Breaker 3", "Breaker 4"},
    "load": {"Load R1", "Load R2", "Load R3"},
    "ext_grid": {"Grid"},
}
LM_NAMES = {
    "bus": {"HV Grid", "Grid A", "Grid B", "Grid C", "Load 1", "Load 2", "Load 3"},
    "trafo": {"Trafo A", "Trafo B", "Trafo C"},
    "line": {"Line A-1", "Line 1-2", "Line 2-3", "Line B-1", "Line C-3"},
    "switch": {"Breaker A", "Breaker 1-2", "Breaker 2-3", "Breaker B", "Breaker C"},
    "load": {"Load R1", "Load CI2", "Load R3"},
    "ext_grid": {"Grid"},
}


@pytest.mark.parametrize("make, names", [(create_paper_flisr_net, FLISR_NAMES),
                                         (create_paper_load_management_net, LM_NAMES)])
def test_element_names_are_exact_and_unique(make, names):
    net = make()
    for table, expected in names.items():
        assert list(net[table].name).count(None) == 0
        assert sorted(net[table].name) == sorted(expected), table


def test_flisr_wiring_follows_the_paper_sketch():
    net = create_paper_flisr_net()
    # (breaker, bus it sits at, line it switches, closed in normal state)
    wiring = [("Breaker 1", "Substation 1", "Line S1-L1", True),
              ("Breaker 2", "Load 1", "Line L1-L2", True),
              ("Breaker 3", "Load 2", "Line L2-L3", True),
              ("Breaker 4", "Load 3", "Line L3-S2", False)]
    for breaker, bus, line, closed in wiring:
        s = net.switch.loc[_idx(net, "switch", breaker)]
        assert (s.et, s.type, bool(s.closed)) == ("l", "CB", closed), breaker
        assert s.bus == _idx(net, "bus", bus) and s.element == _idx(net, "line", line), breaker
    assert all(2.0 <= km <= 3.0 for km in net.line.length_km)
    hv = _idx(net, "bus", "HV Grid")
    assert list(net.ext_grid.bus) == [hv] and net.ext_grid.vm_pu.iat[0] == 1.02
    assert set(net.trafo.hv_bus) == {hv} and net.trafo.oltc.all()
    assert (net.trafo.tap_pos == net.trafo.tap_neutral).all()
    loads = net.load.set_index("name")
    assert loads.p_mw.to_dict() == {"Load R1": 2.0, "Load R2": 1.5, "Load R3": 1.0}
    assert [load_kind(n) for n in net.load.name] == ["residential"] * 3


def test_lm_wiring_and_load_kinds():
    net = create_paper_load_management_net()
    # (breaker, bus it sits at, line it switches, closed in normal state)
    wiring = [("Breaker A", "Grid A", "Line A-1", True),
              ("Breaker 1-2", "Load 1", "Line 1-2", True),
              ("Breaker 2-3", "Load 2", "Line 2-3", True),
              ("Breaker B", "Grid B", "Line B-1", False),
              ("Breaker C", "Grid C", "Line C-3", False)]
    for breaker, bus, line, closed in wiring:
        s = net.switch.loc[_idx(net, "switch", breaker)]
        assert (s.et, s.type, bool(s.closed)) == ("l", "CB", closed), breaker
        assert s.bus == _idx(net, "bus", bus) and s.element == _idx(net, "line", line), breaker
    hv = _idx(net, "bus", "HV Grid")
    assert list(net.ext_grid.bus) == [hv] and set(net.trafo.hv_bus) == {hv}
    kinds = dict(zip(net.load.name, map(load_kind, net.load.name)))
    assert kinds == {"Load R1": "residential", "Load CI2": "commercial", "Load R3": "residential"}


@pytest.mark.parametrize("make", [create_paper_flisr_net, create_paper_load_management_net])
def test_each_call_returns_a_fresh_net(make):
    a = make()
    a.switch["closed"] = True
    a.load["p_mw"] *= 10
    a.bus.at[0, "name"] = "changed"
    b = make()
    assert not b.switch.closed.all()
    assert b.load.p_mw.max() <= 3.5 and b.bus.at[0, "name"] == "HV Grid"


@pytest.mark.parametrize("make", [create_paper_flisr_net, create_paper_load_management_net])
def test_geodata_in_km_and_cables_no_shorter_than_the_crow_flies(make):
    net = make()
    xy = {b: json.loads(g)["coordinates"][:2] for b, g in net.bus.geo.items()}
    assert len(xy) == len(net.bus)
    for line in net.line.itertuples():
        straight_km = math.dist(xy[line.from_bus], xy[line.to_bus])
        assert straight_km <= line.length_km <= 1.3 * straight_km + 0.5, line.name


# --- II.D fault management ----------------------------------------------------------------

def test_flisr_normal_state_all_loads_from_substation_1():
    net = create_paper_flisr_net()
    pp.runpp(net)
    assert net.converged and top.unsupplied_buses(net) == set()
    vm = net.res_bus.vm_pu
    assert vm.between(0.95, 1.05).all() and vm.min() == pytest.approx(1.006, abs=0.003)
    # Substation 1 carries the 4.5 MW of load plus the feeder's losses; Substation 2 idles
    # (its iron losses and the open tie's charging only).
    p1 = net.res_trafo.p_hv_mw.at[_idx(net, "trafo", "Trafo Substation 1")]
    p2 = net.res_trafo.p_hv_mw.at[_idx(net, "trafo", "Trafo Substation 2")]
    assert 4.5 < p1 < 4.5 * 1.02 and abs(p2) < 0.03
    # Physical invariant: the balance of feed-in and load equals the sum of branch losses.
    branch_mw = net.res_line.pl_mw.sum() + net.res_trafo.pl_mw.sum()
    assert _losses_mw(net) == pytest.approx(branch_mw, abs=1e-6)


def test_flisr_breaker_4_is_open_because_closing_it_makes_a_loop():
    net = create_paper_flisr_net()
    assert not _has_loop(net)
    _set(net, "Breaker 4", True)
    # Substation 1 → feeder → Substation 2 → 110 kV bus → Substation 1
    assert _has_loop(net)


def test_flisr_paper_sequence_isolates_load_2_and_restores_load_3_from_substation_2():
    net = create_paper_flisr_net()
    _set(net, "Breaker 2", False)  # Fig. 4: isolate the fault between Load 1 and Load 2
    assert top.unsupplied_buses(net) == {_idx(net, "bus", n) for n in ("Load 2", "Load 3")}
    _set(net, "Breaker 3", False)  # Fig. 5: cut Load 2 off from Load 3 …
    _set(net, "Breaker 4", True)   # … and feed Load 3 from Substation 2
    assert top.unsupplied_buses(net) == {_idx(net, "bus", "Load 2")}
    assert not _has_loop(net)
    pp.runpp(net)
    assert net.converged and _in_service_vm_pu(net).between(0.95, 1.05).all()
    p_load3 = net.res_load.p_mw.at[_idx(net, "load", "Load R3")]
    p_sub2 = net.res_trafo.p_hv_mw.at[_idx(net, "trafo", "Trafo Substation 2")]
    p_sub1 = net.res_trafo.p_hv_mw.at[_idx(net, "trafo", "Trafo Substation 1")]
    assert p_load3 == 1.0 and p_load3 < p_sub2 < 1.03 * p_load3
    assert 2.0 < p_sub1 < 1.03 * 2.0  # Substation 1 keeps Load 1 only
    assert net.res_load.p_mw.at[_idx(net, "load", "Load R2")] == 0.0


# --- II.F load management -------------------------------------------------------------------

LM_LINES = ("Line A-1", "Line 1-2", "Line 2-3", "Line B-1", "Line C-3")
TARGET = frozenset({"Line B-1", "Line 1-2", "Line C-3"})  # Fig. 7
NORMAL = frozenset({"Line A-1", "Line 1-2", "Line 2-3"})  # Fig. 6


def _configure(closed_lines: frozenset[str]) -> pp.pandapowerNet:
    net = create_paper_load_management_net()
    for line, name in net.line.name.items():
        net.switch.loc[net.switch.element == line, "closed"] = name in closed_lines
    return net


def _radial(net: pp.pandapowerNet) -> bool:
    # Every bus supplied and no loop: each load bus hangs off exactly one 20 kV substation
    # (two would close a loop through the 110 kV bus).
    return not top.unsupplied_buses(net) and not _has_loop(net)


def test_lm_normal_configuration_overloads_line_a1():
    net = create_paper_load_management_net()
    pp.runpp(net)
    loading = dict(zip(net.line.name, net.res_line.loading_percent))
    assert 115.0 <= loading["Line A-1"] <= 135.0
    assert all(v < 80.0 for k, v in loading.items() if k != "Line A-1")
    assert net.res_bus.vm_pu.min() >= 0.95 and net.res_bus.vm_pu.max() <= 1.05
    # All 8.7 MW come through Trafo A.
    p_a = net.res_trafo.p_hv_mw.at[_idx(net, "trafo", "Trafo A")]
    assert 8.7 < p_a < 8.7 * 1.06


def test_lm_target_is_the_unique_minimum_loss_radial_configuration():
    losses_mw = {}
    for combo in itertools.combinations(LM_LINES, 3):
        net = _configure(frozenset(combo))
        if not _radial(net):
            continue
        pp.runpp(net)
        assert net.converged
        losses_mw[frozenset(combo)] = _losses_mw(net)
    # 10 sets of three lines: A-1 with B-1 loops, the rest are the 7 spanning trees.
    assert len(losses_mw) == 7 and NORMAL in losses_mw and TARGET in losses_mw
    ranked = sorted(losses_mw, key=losses_mw.get)
    best, runner_up = ranked[0], ranked[1]
    assert best == TARGET
    assert losses_mw[TARGET] < 0.97 * losses_mw[runner_up]
    assert losses_mw[TARGET] < 0.5 * losses_mw[NORMAL]


def test_lm_target_configuration_relieves_the_overload():
    net = create_paper_load_management_net()
    for breaker, closed in [("Breaker A", False), ("Breaker 2-3", False), ("Breaker B", True),
                            ("Breaker C", True)]:
        _set(net, breaker, closed)
    assert _radial(net)
    pp.runpp(net)
    assert net.converged and (net.res_line.loading_percent < 80.0).all()
    assert net.res_bus.vm_pu.between(0.95, 1.05).all()
    # Loads 1 and 2 (6.5 MW) from Grid B, Load 3 (2.2 MW) from Grid C, nothing from Grid A.
    p = {n: net.res_trafo.p_hv_mw.at[_idx(net, "trafo", n)] for n in ("Trafo A", "Trafo B",
                                                                       "Trafo C")}
    assert abs(p["Trafo A"]) < 0.03
    assert 6.5 < p["Trafo B"] < 6.5 * 1.03 and 2.2 < p["Trafo C"] < 2.2 * 1.03
