"""Relays, fault-passage indicators and faults resolved against a real net
(twin.build.protection)."""

from __future__ import annotations

import math

import pytest

from tests.build.minimal import minimal_scenario
from twin.build.protection import plan_protection, protection_settings, rated_current_ka
from twin.grid.paper import create_paper_flisr_net
from twin.scenario import ScenarioError


def scenario(**sections):
    return minimal_scenario("protection", grid="paper_flisr", **sections)


@pytest.fixture
def net():
    # Two 25 MVA 110/20 kV substations, three loads on a chain of four 0.421 kA lines,
    # each line switched by a circuit breaker ("Breaker 1" … "Breaker 4").
    return create_paper_flisr_net()


def test_a_relay_on_every_breaker_picks_up_above_the_rated_current(net):
    settings = protection_settings(net, pickup_factor=2.0)
    breakers = set(net.switch.index[net.switch["type"] == "CB"])
    assert set(settings.relays) == breakers
    for sw, relay in settings.relays.items():
        line = net.switch.at[sw, "element"]
        rated_ka = net.line.at[line, "max_i_ka"] * net.line.at[line, "parallel"]
        assert relay.switch == sw
        assert relay.pickup_ka == pytest.approx(2.0 * rated_ka)
        assert relay.pickup_ka > rated_ka


def test_indicators_on_every_line_and_trafo(net):
    settings = protection_settings(net, fpi_pickup_factor=1.5)
    assert set(settings.fpi_pickup_ka) == ({("line", i) for i in net.line.index}
                                           | {("trafo", i) for i in net.trafo.index})
    # A trafo's rated current on its HV side: S / (√3 · U) = 25 MVA / (√3 · 110 kV).
    trafo_ka = 25.0 / (math.sqrt(3) * 110.0)
    for i in net.trafo.index:
        assert settings.fpi_pickup_ka[("trafo", i)] == pytest.approx(1.5 * trafo_ka)
    for i in net.line.index:
        assert settings.fpi_pickup_ka[("line", i)] == pytest.approx(1.5 * 0.421)


def test_rated_current_of_a_bus_bus_switch_is_refused(net):
    import pandapower as pp

    sw = pp.create_switch(net, 1, 2, et="b", type="CB", name="Coupler")
    with pytest.raises(ScenarioError, match="Coupler connects two buses"):
        rated_current_ka(net, sw)


def test_no_faults_no_protection(net):
    assert plan_protection(scenario(), net) == (None, ())


def test_faults_and_relays_from_the_scenario(net):
    s = scenario(
        faults=[{"after": "10min", "line": "Line L1-L2", "position": 0.25, "type": "2ph"}],
        protection={"relays": [{"switch": "Breaker 2", "pickup_ka": 0.5, "delay": "0.5s"},
                               {"switch": "Breaker 1"}],
                    "pickup_factor": 3.0, "reclose_dead_time": "2s"})
    protection, faults = plan_protection(s, net)
    b1, b2 = (int(net.switch.index[net.switch["name"] == n][0]) for n in ("Breaker 1",
                                                                          "Breaker 2"))
    relays = protection.settings.relays
    assert set(relays) == {b1, b2}
    assert (relays[b2].pickup_ka, relays[b2].delay_s) == (0.5, 0.5)
    assert relays[b1].pickup_ka == pytest.approx(3.0 * 0.421)
    assert protection.settings.reclose_dead_time_s == 2.0
    ((tick, fault),) = faults
    assert tick == s.clock.ticks(600.0)
    line = int(net.line.index[net.line["name"] == "Line L1-L2"][0])
    assert (fault.line, fault.position, fault.fault_type) == (line, 0.25, "2ph")


def test_unknown_fault_line_names_the_key_path(net):
    with pytest.raises(ScenarioError, match=r"faults\[0\]\.line: .*'Line X'"):
        plan_protection(scenario(faults=[{"after": 0, "line": "Line X"}]), net)
