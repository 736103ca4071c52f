"""The field plan resolved against a real net (twin.build.field): where each RTU point's truth
sits, which device each reference is, and errors naming the key path."""

from __future__ import annotations

import pandapower as pp
import pandapower.networks as pn
import pytest

from tests.build.minimal import minimal_scenario
from twin.build.field import build_field_plan
from twin.scenario import ScenarioError


def scenario(points, devices=()):
    return minimal_scenario(
        "field", rtus=[{"name": "R1", "points": points, "devices": list(devices)}])


@pytest.fixture
def net():
    return pn.create_cigre_network_mv(with_der="pv_wind")


def position(net, table, name):
    return list(net[table]["name"]).index(name)


def plan_for(net, points, devices=(), ev_loads=None):
    pv = {n: int(i) for i, n in net.sgen["name"].items() if n.startswith("PV")}
    return build_field_plan(scenario(points, devices), net, pv=pv, wind={}, batteries={},
                            ev_loads=ev_loads or {}, manual=set())


def test_truth_points_at_the_right_table_position_and_attribute(net):
    ev_load = pp.create_load(net, 3, p_mw=0.0, name="EV Bus 3")
    points = [
        {"element": "bus:Bus 5", "quantity": "vm_pu"},
        {"element": "trafo:Trafo 0-12", "quantity": "p_mw"},   # a trafo's P is on its HV side
        {"element": "line:Line 3-4", "quantity": "i_ka"},
        {"element": "pv:PV 8", "quantity": "p_mw"},
        {"element": "ev:Bus 3", "quantity": "p_mw"},
        {"element": "switch:S1", "quantity": "closed"},
    ]
    plan = plan_for(net, points, ev_loads={"Bus 3": int(ev_load)})
    (rtu,) = plan.rtus
    truth = [plan.truth["R1"][p.name] for p in rtu.points]
    expected = [
        ("bus", position(net, "bus", "Bus 5"), "vm_pu"),
        ("trafo", position(net, "trafo", "Trafo 0-12"), "p_hv_mw"),
        ("line", position(net, "line", "Line 3-4"), "i_ka"),
        ("sgen", position(net, "sgen", "PV 8"), "p_mw"),
        ("load", position(net, "load", "EV Bus 3"), "p_mw"),
        ("switch", position(net, "switch", "S1"), "closed"),
    ]
    assert [(t.table, t.position, t.attr) for t in truth] == expected
    # Each point names the grid element the DMS's network model knows.
    assert [p.element for p in rtu.points] == [
        "bus:Bus 5", "trafo:Trafo 0-12", "line:Line 3-4", "sgen:PV 8", "load:EV Bus 3",
        "switch:S1"]
    assert rtu.points[-1].noise_pct == 0.0  # a switch state is not noisy


def test_a_line_current_range_follows_its_rating(net):
    plan = plan_for(net, [{"element": "line:Line 3-4", "quantity": "i_ka"}])
    i_max = float(net.line.loc[net.line["name"] == "Line 3-4", "max_i_ka"].iloc[0])
    assert plan.rtus[0].points[0].range == pytest.approx((0.0, 2 * i_max))


def test_spaces_around_a_scenario_name_are_ignored(net):
    plan = plan_for(net, [{"element": "bus:  Bus 5 ", "quantity": "vm_pu"}])
    (ref,) = plan.truth["R1"].values()
    assert (ref.table, ref.position) == ("bus", position(net, "bus", "Bus 5"))


def test_devices_get_their_grid_targets(net):
    plan = plan_for(net, [], devices=["switch:S2", "trafo:Trafo 0-1"])
    s2, t01 = plan.devices["switch:S2"], plan.devices["trafo:Trafo 0-1"]
    assert (s2.kind, s2.attr, s2.rtu, s2.manual) == ("switch", "closed", "R1", False)
    assert t01.attr == "tap_pos"
    assert plan.targets[s2.eid] == ("switch", int(net.switch.index[net.switch["name"] == "S2"][0]))
    assert plan.targets[t01.eid] == ("trafo", 0)


@pytest.mark.parametrize("points, devices, match", [
    ([{"element": "bus:Bus 5", "quantity": "vm_pu"}, {"element": "bus:Bus 99",
                                                      "quantity": "vm_pu"}], [],
     r"rtus\[0\]\.points\[1\]\.element: expected the name of a bus .*found 'Bus 99'"),
    ([{"element": "pv:PV 99", "quantity": "p_mw"}], [],
     r"rtus\[0\]\.points\[0\]\.element: expected one of the pv names .*found 'PV 99'"),
    ([{"element": "bus:Bus 5", "quantity": "p_hv_mw"}], [],
     r"rtus\[0\]\.points\[0\]\.quantity: expected one of .* for a bus"),
    ([], ["bus:Bus 5"], r"rtus\[0\]\.devices\[0\]: expected a controllable device"),
])
def test_unknown_names_raise_naming_the_key_path(net, points, devices, match):
    with pytest.raises(ScenarioError, match=match):
        plan_for(net, points, devices)
