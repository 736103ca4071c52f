"""Capacitor banks, line switches and manual switches added to a real net (twin.build.devices)."""

from __future__ import annotations

import pandapower.networks as pn
import pytest

from tests.build.minimal import minimal_scenario
from twin.build.devices import add_capacitors, add_line_switches, manual_switches
from twin.grid.names import element_names
from twin.scenario import ScenarioError


def devices(**spec):
    return minimal_scenario("devices", devices=spec).devices


@pytest.fixture
def net():
    return pn.create_cigre_network_mv(with_der="pv_wind")


def test_capacitor_is_a_shunt_at_its_bus_with_its_mvar(net):
    spec = devices(capacitors=[{"name": "Cap 6", "bus": "Bus 6", "q_step_mvar": 0.3,
                                "max_step": 3, "step_init": 2}])
    (idx,) = add_capacitors(net, spec)
    shunt = net.shunt.loc[idx]
    assert shunt["name"] == "Cap 6"
    assert net.bus.at[shunt["bus"], "name"] == "Bus 6"
    # pandapower's shunt consumes q_mvar per step: a capacitor's is negative.
    assert shunt["q_mvar"] == pytest.approx(-0.3)
    assert shunt["p_mw"] == 0.0
    assert (shunt["step"], shunt["max_step"]) == (2, 3)


def test_capacitor_at_an_unknown_bus_names_the_key_path(net):
    spec = devices(capacitors=[{"name": "C", "bus": "Bus 99", "q_step_mvar": 0.1}])
    with pytest.raises(ScenarioError, match=r"devices\.capacitors\[0\]\.bus: .*'Bus 99'"):
        add_capacitors(net, spec)


def test_line_switch_sits_at_the_chosen_end_of_its_line(net):
    line = int(net.line.index[net.line["name"] == "Line 3-4"][0])
    spec = devices(line_switches=[{"name": "LS 4", "line": "Line 3-4", "end": "to",
                                   "type": "CB", "closed": False}])
    (idx,) = add_line_switches(net, spec)
    sw = net.switch.loc[idx]
    assert (sw["et"], sw["element"], sw["bus"]) == ("l", line, net.line.at[line, "to_bus"])
    assert (sw["type"], bool(sw["closed"]), sw["name"]) == ("CB", False, "LS 4")


def test_line_switch_name_the_grid_has_is_refused(net):
    spec = devices(line_switches=[{"name": "S1", "line": "Line 3-4"}])
    with pytest.raises(ScenarioError, match=r"devices\.line_switches\[0\]\.name"):
        add_line_switches(net, spec)


def test_manual_switches_are_found_by_name(net):
    names = element_names(net, "switch")
    s3 = int(net.switch.index[names.index("S3")])
    assert manual_switches(net, devices(manual_switches=["S3"])) == {s3}
    with pytest.raises(ScenarioError, match=r"devices\.manual_switches\[0\]"):
        manual_switches(net, devices(manual_switches=["S9"]))
