"""The cached plans of load estimation and the array power flows of the what-ifs give
exactly what computing everything afresh gives (issue 15: the DMS cycle in milliseconds)."""

from __future__ import annotations

import copy

import numpy as np
import pandapower as pp
import pandas as pd
import pytest

from twin.dms import load_estimation as le
from twin.dms import pf
from twin.dms.netcopy import INJECTION_TABLES, TOPOLOGY_TABLES, working_copy
from twin.dms.pf_arrays import ArrayPowerFlow
from twin.grid.build import build_net
from twin.scenario import GridSpec


@pytest.fixture(scope="module")
def cigre() -> pp.pandapowerNet:
    net = build_net(GridSpec(builtin="cigre_mv"))
    pp.runpp(net)
    return net


def _fresh(net, *args, **kwargs) -> pd.DataFrame:
    le._PLANS.clear()
    le._GROUPS.clear()
    return le.pseudo_measurements(net, *args, **kwargs)


def test_cached_plan_gives_the_same_pseudo_measurements(cigre):
    heads = {"trafo:Trafo 0-1": 19.0, "trafo:Trafo 0-12": 12.0}
    model = working_copy(cigre, TOPOLOGY_TABLES + INJECTION_TABLES)
    first = _fresh(model, 0.8, 0.5, heads, 30.0)
    for factor in (0.6, 0.9):
        cached = le.pseudo_measurements(model, factor, 0.5, heads, 30.0)
        again = _fresh(model, factor, 0.5, heads, 30.0)
        pd.testing.assert_frame_equal(cached, again, check_exact=True)
        assert cached.attrs == again.attrs
    assert len(first) == len(cached)


def test_a_switching_makes_a_new_plan(cigre):
    model = working_copy(cigre, TOPOLOGY_TABLES + INJECTION_TABLES + ("bus",))
    before = le.pseudo_measurements(model, 1.0, 1.0, None, 30.0)
    bus_switch = model.switch.index[model.switch.et == "b"]
    model.switch.loc[:, "closed"] = True
    if len(bus_switch):
        model.switch.loc[bus_switch, "closed"] = False
    model.bus.loc[model.bus.index[-1], "in_service"] = False
    after = le.pseudo_measurements(model, 1.0, 1.0, None, 30.0)
    fresh = _fresh(model, 1.0, 1.0, None, 30.0)
    pd.testing.assert_frame_equal(after, fresh, check_exact=True)
    assert not before.element.equals(after.element)


def test_known_powers_and_bad_keys(cigre):
    idx = int(cigre.sgen.index[0])
    known = {("sgen", idx, "p_mw"): (0.123, 0.001)}
    out = le.pseudo_measurements(cigre, 1.0, 1.0, None, 30.0, known=known)
    bus = int(cigre.sgen.at[idx, "bus"])
    assert bus in set(out.element)
    with pytest.raises(ValueError, match="known"):
        le.pseudo_measurements(cigre, 1.0, 1.0, None, 30.0, known={("sgen", 9999, "p_mw"):
                                                                  (0.0, 1.0)})


def _steps(cigre):
    """Injection changes (cache hits after the first solve), then a tap what-if (a new
    structure: pandapower, starting from the last results)."""
    def scale_loads(net, factor):
        net.load.loc[:, "p_mw"] = cigre.load.p_mw.to_numpy() * factor

    def move_taps(net):
        net.trafo.loc[:, "tap_pos"] = net.trafo.tap_pos.to_numpy() + 1.0

    for factor in (1.0, 0.7, 1.2):
        yield lambda net, f=factor: scale_loads(net, f)
    yield move_taps


def test_array_power_flow_equals_runpp_warm(cigre):
    pf.clear_cache()  # each sequence meets the same cache: the same misses and hits
    a = copy.deepcopy(cigre)
    expected = []
    for step in _steps(cigre):
        step(a)
        pf.runpp_warm(a)
        expected.append((a.res_bus.vm_pu.to_numpy().copy(), pf.p_loss_mw(a)))
    pf.clear_cache()
    b = copy.deepcopy(cigre)
    flows = ArrayPowerFlow(b)
    for k, step in enumerate(_steps(cigre)):
        step(b)
        flows.solve(same_structure=0 < k < 3)
        np.testing.assert_array_equal(flows.values("bus", "vm_pu"), expected[k][0])
        assert flows.p_loss_mw() == expected[k][1]
    flows.flush()
    pd.testing.assert_frame_equal(a.res_bus, b.res_bus, check_exact=True)
