"""The DMS cycle's fast paths give what the slow ones gave: working copies leave the
DMS's model alone, the selected inverse equals the dense inverse where it is read, and
the fused-bus nodes equal networkx's components."""

from __future__ import annotations

import copy

import networkx as nx
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from twin.dms.cycle import CycleSettings, DMSState, run_cycle
from twin.dms.load_estimation import bus_nodes
from twin.dms.netcopy import working_copy
from twin.dms.selinv import selected_inverse, symmetric_lu
from twin.grid.build import build_net
from twin.scenario import GridSpec


def _tables(net) -> dict[str, pd.DataFrame]:
    return {k: v.copy() for k, v in net.items() if isinstance(v, pd.DataFrame)}


def test_a_cycle_with_volt_var_leaves_the_dms_model_as_it_was():
    net = build_net(GridSpec(builtin="cigre_mv"))
    state = DMSState(model=net)
    before = _tables(net)
    settings = CycleSettings(volt_var_mode="direct")
    n_load, n_sgen = len(net.load), len(net.sgen)
    for t_s in (0.0, 60.0):  # the second cycle finds the power-flow model cached
        result = run_cycle(state, t_s, np.full(n_load, 1.2), np.full(n_sgen, 0.9), settings)
        assert result.failed == ""
    for name, table in before.items():
        pd.testing.assert_frame_equal(state.model[name], table, obj=name)


def test_working_copy_owns_the_tables_it_names_and_the_results():
    net = build_net(GridSpec(builtin="cigre_mv"))
    import pandapower as pp
    pp.runpp(net)
    vm = net.res_bus.vm_pu.copy()
    work = working_copy(net, ("load",))
    work.load.loc[:, "p_mw"] = 0.0
    work.res_bus.loc[:, "vm_pu"] = 0.0
    assert (net.load.p_mw > 0).any() and net.res_bus.vm_pu.equals(vm)
    assert work.bus is net.bus  # shared, read-only


def _gain(n_bus: int, seed: int) -> tuple[sp.csr_matrix, sp.csc_matrix]:
    """H of a meshed random network's bus injections and G = Hᵀ H."""
    rng = np.random.default_rng(seed)
    edges = [(i, int(rng.integers(0, i))) for i in range(1, n_bus)]
    edges += [tuple(rng.choice(n_bus, 2, replace=False)) for _ in range(n_bus // 10)]
    graph = nx.Graph(edges)
    rows, cols, vals = [], [], []
    for b in range(n_bus):
        for j in [b, *graph.neighbors(b)]:
            rows.append(b)
            cols.append(j)
            vals.append(rng.uniform(0.5, 2.0))
    H = sp.vstack([sp.csr_matrix((vals, (rows, cols)), shape=(n_bus, n_bus)),
                   sp.eye(n_bus, format="csr")]).tocsr()
    return H, sp.csc_matrix(H.T @ H)


def test_selected_inverse_equals_the_dense_inverse_where_read():
    H, G = _gain(200, seed=3)
    selected = selected_inverse(symmetric_lu(G))
    assert selected is not None
    inverse = np.linalg.inv(G.toarray())
    states = np.arange(G.shape[0])
    np.testing.assert_allclose(selected.diagonal(states), np.diag(inverse), rtol=1e-9)
    Hd = H.toarray()
    np.testing.assert_allclose(selected.quadratic_rows(H),
                               np.einsum("ij,jk,ik->i", Hd, inverse, Hd), rtol=1e-9)


def test_bus_nodes_are_networkx_components():
    net = build_net(GridSpec(builtin="cigre_mv"))
    net = copy.deepcopy(net)
    import pandapower as pp
    a, b = int(net.bus.index[3]), int(net.bus.index[4])
    pp.create_switch(net, a, b, "b", closed=True)
    graph = nx.Graph()
    graph.add_nodes_from(int(x) for x in net.bus.index)
    graph.add_edge(a, b)
    expected = {x: min(c) for c in nx.connected_components(graph) for x in c}
    assert bus_nodes(net) == expected
    net.switch.loc[net.switch.index[-1], "closed"] = False  # a new state: not the cached
    assert bus_nodes(net) == {int(x): int(x) for x in net.bus.index}


def test_load_scaling_on_the_cached_model_equals_the_copy_path(monkeypatch):
    """The scaling's power flows take the forecast arrays straight into the cached model;
    on a working copy with its injection tables set, the same solver gives the same
    pseudo-measurements, bit for bit (and a different forecast gives others)."""
    from twin.dms import load_estimation as le
    from twin.dms import pf

    net = build_net(GridSpec(builtin="cigre_mv"))
    pf.runpp_warm(net)  # caches the model of this structure
    heads = {"trafo:Trafo 0-1": float(net.res_trafo.at[0, "p_hv_mw"]) * 1.1,
             "trafo:Trafo 0-12": float(net.res_trafo.at[1, "p_hv_mw"]) * 0.9}
    factor = np.linspace(0.8, 1.2, len(net.load))
    solves = []
    original_solve = type(pf.cached_solver(pf.structure_key(net))).solve
    monkeypatch.setattr(type(pf.cached_solver(pf.structure_key(net))), "solve",
                        lambda self, *a, **k: solves.append(bool(a[1:] or k))
                        or original_solve(self, *a, **k))
    fast = le.pseudo_measurements(net, factor, 0.7, heads)
    assert solves and all(solves)  # every solve took the arrays
    init = le._ForecastFlows.__init__

    def copy_path(self, *args):
        init(self, *args)
        self.solver = None  # as for a structure not cached: a working copy

    monkeypatch.setattr(le._ForecastFlows, "__init__", copy_path)
    solves.clear()
    slow = le.pseudo_measurements(net, factor, 0.7, heads)
    assert solves and not any(solves)  # the copy's tables, through the same model
    pd.testing.assert_frame_equal(fast, slow, check_exact=True)
    assert fast.attrs == slow.attrs
    assert fast.attrs["scale"]["trafo:Trafo 0-1"] != pytest.approx(1.0, abs=0.02)
    other = le.pseudo_measurements(net, factor, 0.7, {k: v * 1.05 for k, v in heads.items()})
    assert not np.allclose(other.value, fast.value)
