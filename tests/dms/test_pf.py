"""The DMS's power flows (twin.dms.pf): warm starts that change nothing but the start."""

from __future__ import annotations

import copy

import numpy as np
import pandapower as pp
import pandapower.networks as pn
import pytest

from twin.dms.pf import p_loss_mw, runpp_warm
from twin.grid.paper import create_paper_flisr_net


@pytest.fixture
def net():
    return pn.create_cigre_network_mv(with_der="all")


def cold(net):
    """The same net solved from scratch: pandapower's defaults, no results to start from."""
    ref = copy.deepcopy(net)
    pp.runpp(ref, init="auto", tolerance_mva=1e-10)
    return ref


def assert_same_state(a, b):
    np.testing.assert_allclose(a.res_bus.vm_pu, b.res_bus.vm_pu, rtol=0, atol=1e-9)
    np.testing.assert_allclose(a.res_bus.va_degree, b.res_bus.va_degree, rtol=0, atol=1e-7)


def test_first_run_converges_like_a_cold_start(net):
    runpp_warm(net)
    assert net.converged
    assert_same_state(net, cold(net))


def test_warm_run_after_a_change_equals_a_cold_one(net):
    runpp_warm(net)
    net.load["p_mw"] *= 1.3  # a heavier state, started from the last results
    net.sgen["p_mw"] *= 0.5
    runpp_warm(net)
    assert net.converged
    assert_same_state(net, cold(net))


def test_dead_buses_after_switching_are_no_obstacle():
    net = create_paper_flisr_net()
    runpp_warm(net)
    b2 = int(net.switch.index[net.switch["name"] == "Breaker 2"][0])
    net.switch.at[b2, "closed"] = False  # loads 2 and 3 lose supply (Breaker 4 is open)
    runpp_warm(net)
    dead = net.res_bus.vm_pu.isna()
    assert list(net.bus.name[dead]) == ["Load 2", "Load 3"]
    net.switch.at[b2, "closed"] = True   # no results to start from for those buses
    runpp_warm(net)
    assert net.converged and net.res_bus.vm_pu.notna().all()
    assert_same_state(net, cold(net))


def test_losses_close_the_power_balance(net):
    # What flows in (slack + generators) minus what is consumed is lost in lines and trafos.
    runpp_warm(net)
    fed_in = net.res_ext_grid.p_mw.sum() + net.res_sgen.p_mw.sum()
    consumed = net.res_load.p_mw.sum() + net.res_storage.p_mw.sum()
    assert p_loss_mw(net) == pytest.approx(fed_in - consumed, abs=1e-6)
    assert p_loss_mw(net) > 0
