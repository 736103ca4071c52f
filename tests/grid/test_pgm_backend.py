"""power-grid-model behind the grid model gives pandapower's results.

Two grid models on copies of one net, one per backend, take the same sequence of changes
(injections, switching that islands part of the grid, taps, capacitor steps, elements out of
service, a fault the protection clears); after each, every result of every element must
agree within 1e-6 (p.u., MW, Mvar, kA, degrees) and 1e-3 % loading.
"""

from __future__ import annotations

import copy

import numpy as np
import pandapower as pp
import pytest

from twin.grid.build import build_net
from twin.grid.model import RESULT_SPEC, GridModel, choose_solver
from twin.grid.pgm import PgmSolver, PgmUnsupported, unsupported_reason
from twin.scenario import GridSpec

TOL = 1e-6
TOL_LOADING_PERCENT = 1e-3


def assert_same(pandapower_model: GridModel, pgm_model: GridModel, what: str) -> None:
    for table, (_res, attrs) in RESULT_SPEC.items():
        for attr in attrs:
            ref = np.asarray(pandapower_model.results[table][attr], dtype=float)
            got = np.asarray(pgm_model.results[table][attr], dtype=float)
            assert ref.shape == got.shape, f"{what}: {table}.{attr} shape"
            np.testing.assert_array_equal(
                np.isfinite(ref), np.isfinite(got),
                err_msg=f"{what}: {table}.{attr}: NaN where the other has a value")
            tol = TOL_LOADING_PERCENT if attr == "loading_percent" else TOL
            both = np.isfinite(ref)
            if both.any():
                worst = float(np.max(np.abs(ref[both] - got[both])))
                assert worst <= tol, f"{what}: {table}.{attr} differs by {worst:.3g} (> {tol:g})"
    for key in ("p_loss_mw", "q_loss_mvar", "vm_min_pu", "vm_max_pu", "p_ext_grid_mw"):
        assert pgm_model.summary[key] == pytest.approx(pandapower_model.summary[key], abs=TOL)


class Pair:
    """The same net under both backends; every step is applied to both and compared."""

    def __init__(self, net: pp.pandapowerNet, protection_factory=None):
        self.pp = GridModel(copy.deepcopy(net), solver="pandapower",
                            protection=protection_factory() if protection_factory else None)
        self.pgm = GridModel(copy.deepcopy(net), solver="power-grid-model",
                             protection=protection_factory() if protection_factory else None)
        assert self.pgm.choice.solver == "power-grid-model"

    def do(self, what: str, action=None) -> None:
        for model in (self.pp, self.pgm):
            if action is not None:
                action(model)
            assert model.solve().converged, f"{what}: {model.choice.solver} did not converge"
        assert_same(self.pp, self.pgm, what)


def _first_line_switch(net: pp.pandapowerNet) -> int:
    closed_line = net.switch[(net.switch.et == "l") & net.switch.closed]
    return int(closed_line.index[len(closed_line) // 2])


def _exercise(pair: Pair, rng: np.random.Generator) -> None:
    net = pair.pp.net
    pair.do("first state")

    factor = rng.uniform(0.5, 1.5, len(net.load))
    loads = {int(i): (p * f, q * f) for i, p, q, f in zip(
        net.load.index, net.load.p_mw, net.load.q_mvar, factor)}
    sgens = {int(i): (None, 0.1 * p) for i, p in zip(net.sgen.index, net.sgen.p_mw)}

    def injections(m: GridModel) -> None:
        m.set_injections("load", loads)
        m.set_injections("sgen", sgens)

    pair.do("injections", injections)
    switch = _first_line_switch(net)
    pair.do("a line switch opened", lambda m: m.set_switch(switch, False))
    pair.do("injections while switched", injections)
    trafo = int(net.trafo.index[0])
    tap = int(net.trafo.at[trafo, "tap_pos"]) + 2
    pair.do("a tap moved", lambda m: m.set_tap(trafo, tap))
    pair.do("the switch closed again", lambda m: m.set_switch(switch, True))
    load, sgen = int(net.load.index[-1]), int(net.sgen.index[0])

    def out_of_service(m: GridModel) -> None:
        m.net.load.at[load, "in_service"] = False
        m.net.sgen.at[sgen, "in_service"] = False
        m._topology_changed()  # pandapower's recycled injections keep the service states

    pair.do("a load and a generator out of service", out_of_service)
    line = int(net.line.index[-1])

    def line_out(m: GridModel) -> None:
        m.net.line.at[line, "in_service"] = False
        m._topology_changed()

    pair.do("a line out of service", line_out)
    if len(net.shunt):
        shunt = int(net.shunt.index[0])
        pair.do("a capacitor step", lambda m: m.set_shunt_step(shunt, 2))
        pair.do("injections with the capacitor in", injections)
        # pandapower's next solve must see the step power-grid-model applied in place
        pair.do("a tap moved after the capacitor step", lambda m: m.set_tap(trafo, tap - 1))
        pair.do("the capacitor out again", lambda m: m.set_shunt_step(shunt, 0))
    assert pair.pgm.n_pgm_solves >= 2, "power-grid-model never solved a step"


def _with_capacitor(net: pp.pandapowerNet, bus: int) -> pp.pandapowerNet:
    pp.create_shunt(net, bus, q_mvar=-0.4, p_mw=0.001, step=0, max_step=3,
                    vn_kv=float(net.bus.at[bus, "vn_kv"]), name="Cap test")
    return net


def test_cigre_mv_matches_pandapower():
    net = _with_capacitor(build_net(GridSpec(builtin="cigre_mv")), 11)
    _exercise(Pair(net), np.random.default_rng(1))


def test_simbench_mv_rural_matches_pandapower():
    net = build_net(GridSpec(simbench="1-MV-rural--0-sw"))
    net = _with_capacitor(net, int(net.load.bus.iloc[0]))
    _exercise(Pair(net), np.random.default_rng(2))


@pytest.mark.slow
def test_simbench_10k_bus_grid_matches_pandapower():
    net = build_net(GridSpec(simbench="1-MVLV-urban-all-0-sw"))
    assert len(net.bus) > 10_000
    net = _with_capacitor(net, int(net.load.bus.iloc[0]))
    _exercise(Pair(net), np.random.default_rng(3))


def test_a_fault_cleared_by_the_protection_matches_pandapower():
    from twin.build.protection import protection_settings
    from twin.grid.paper import create_paper_flisr_net
    from twin.models.protection import Fault, Protection

    net = create_paper_flisr_net()
    pair = Pair(net, lambda: Protection(protection_settings(net)))
    pair.do("before the fault")
    for model in (pair.pp, pair.pgm):
        events = model.inject_fault(Fault("F", 1), 10.0)
        assert any(e.kind == "trip" for e in events), [e.kind for e in events]
    pair.do("the fault cleared: part of the grid dead")
    dead = ~np.isfinite(pair.pgm.results["bus"]["vm_pu"])
    assert dead.any(), "the fault should leave buses without supply"
    assert not pair.pgm.results["load"]["supplied"].all()


def test_the_pgm_model_is_rebuilt_only_on_structural_changes():
    net = build_net(GridSpec(builtin="cigre_mv"))
    m = GridModel(net, solver="power-grid-model")
    for _ in range(3):
        m.solve()
    assert m._pgm is not None and m._pgm.n_builds == 1 and m.n_pgm_solves == 2
    m.set_switch(_first_line_switch(net), False)
    m.solve()
    assert m._pgm.n_builds == 2 and m.n_pgm_solves == 2  # pandapower solved the new topology
    m.solve()
    assert m.n_pgm_solves == 3


def test_auto_falls_back_to_pandapower_where_pgm_does_not_model_the_net():
    net = build_net(GridSpec(builtin="cigre_mv"))
    assert choose_solver(net, "auto").solver == "power-grid-model"
    pp.create_gen(net, 5, p_mw=1.0, vm_pu=1.01)
    reason = unsupported_reason(net)
    assert "gen" in reason
    choice = choose_solver(net, "auto")
    assert choice.solver == "pandapower" and choice.reason == reason
    with pytest.raises(ValueError, match="cannot solve"):
        choose_solver(net, "power-grid-model")
    with pytest.raises(PgmUnsupported):
        PgmSolver(net)
    model = GridModel(net, solver="auto")
    assert model.solve().converged and model.n_pgm_solves == 0
