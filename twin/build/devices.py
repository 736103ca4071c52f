"""Controllable devices the scenario adds to or marks in the grid: capacitor banks, line
switches, manual switches."""

from __future__ import annotations

import pandapower as pp

from twin.build.resolve import find_element
from twin.grid.names import element_names
from twin.scenario import ScenarioError
from twin.scenario.field import DevicesSpec


def add_capacitors(net: pp.pandapowerNet, spec: DevicesSpec) -> list[int]:
    """Add each capacitor bank as a switchable pandapower shunt; returns their indices.

    pandapower's shunt consumes ``q_mvar`` per step, so a capacitor has negative ``q_mvar``.
    """
    added = []
    for k, cap in enumerate(spec.capacitors):
        bus = find_element(net, "bus", cap.bus, f"devices.capacitors[{k}].bus")
        added.append(int(pp.create_shunt(
            net, bus, q_mvar=-cap.q_step_mvar, p_mw=0.0, step=cap.step_init,
            max_step=cap.max_step, name=cap.name)))
    return added


def add_line_switches(net: pp.pandapowerNet, spec: DevicesSpec) -> list[int]:
    """Add each line switch at its line's from or to bus; returns their indices."""
    added = []
    taken = set(element_names(net, "switch"))
    for k, sw in enumerate(spec.line_switches):
        key = f"devices.line_switches[{k}]"
        if sw.name in taken:
            raise ScenarioError(f"{key}.name: expected a new switch name; found {sw.name!r}, "
                                f"which the grid already has")
        line = find_element(net, "line", sw.line, f"{key}.line")
        bus = int(net.line.at[line, f"{sw.end}_bus"])
        added.append(int(pp.create_switch(net, bus, line, et="l", closed=sw.closed,
                                          type=sw.type, name=sw.name)))
        taken.add(sw.name)
    return added


def manual_switches(net: pp.pandapowerNet, spec: DevicesSpec) -> set[int]:
    """Indices of the switches only a field crew can operate."""
    return {find_element(net, "switch", name, f"devices.manual_switches[{k}]")
            for k, name in enumerate(spec.manual_switches)}
