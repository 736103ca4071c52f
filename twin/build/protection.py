"""The scenario's faults and protection, resolved against the prepared grid."""

from __future__ import annotations

import math

import pandapower as pp

from twin.build.resolve import find_element
from twin.grid.names import element_names
from twin.models.protection import Fault, Protection, ProtectionSettings, Relay
from twin.scenario import Scenario, ScenarioError


def rated_current_ka(net: pp.pandapowerNet, switch: int) -> float:
    """Rated current of the line or trafo a switch sits on, at the switch's bus [kA]."""
    et, element, bus = (net.switch.at[switch, c] for c in ("et", "element", "bus"))
    if et == "l":
        return float(net.line.at[element, "max_i_ka"] * net.line.at[element, "parallel"])
    if et == "t":
        side = "hv" if int(net.trafo.at[element, "hv_bus"]) == int(bus) else "lv"
        return trafo_rated_ka(net, int(element), side)
    name = element_names(net, "switch")[list(net.switch.index).index(switch)]
    raise ScenarioError(f"protection: switch {name} connects two buses; a relay needs a line "
                        f"or trafo breaker")


def trafo_rated_ka(net: pp.pandapowerNet, trafo: int, side: str = "hv") -> float:
    return float(net.trafo.at[trafo, "sn_mva"]
                 / (math.sqrt(3) * net.trafo.at[trafo, f"vn_{side}_kv"]))


def protection_settings(net: pp.pandapowerNet, relays: dict[int, Relay] | None = None,
                        pickup_factor: float = 2.0, fpi_pickup_factor: float = 2.0,
                        fpi_reset_s: float = 600.0,
                        reclose_dead_time_s: float | None = None) -> ProtectionSettings:
    """Relays (default: one on every line or trafo circuit breaker, pick-up
    ``pickup_factor`` × its rated current) and an indicator on every line and trafo (pick-up
    ``fpi_pickup_factor`` × rated current)."""
    if relays is None:
        breakers = [int(i) for i in net.switch.index[net.switch["type"] == "CB"]]
        relays = {sw: Relay(sw, pickup_factor * rated_current_ka(net, sw))
                  for sw in breakers if net.switch.at[sw, "et"] in ("l", "t")}
    fpi = {("line", int(i)): fpi_pickup_factor * float(
        net.line.at[i, "max_i_ka"] * net.line.at[i, "parallel"]) for i in net.line.index}
    fpi |= {("trafo", int(i)): fpi_pickup_factor * trafo_rated_ka(net, int(i))
            for i in net.trafo.index}
    return ProtectionSettings(relays=relays, fpi_pickup_ka=fpi, fpi_reset_s=fpi_reset_s,
                              reclose_dead_time_s=reclose_dead_time_s)


def plan_protection(scenario: Scenario, net: pp.pandapowerNet
                    ) -> tuple[Protection | None, tuple[tuple[int, Fault], ...]]:
    """The grid's protection and the faults at their ticks; (None, []) without faults (the
    protection then has nothing to do and the grid skips it)."""
    if not scenario.faults:
        return None, ()
    spec = scenario.protection
    relays = None
    if spec.relays != "breakers":
        relays = {}
        for k, r in enumerate(spec.relays):
            sw = find_element(net, "switch", r.switch, f"protection.relays[{k}].switch")
            pickup = r.pickup_ka if r.pickup_ka is not None \
                else spec.pickup_factor * rated_current_ka(net, sw)
            relays[sw] = Relay(sw, pickup, r.delay)
    settings = protection_settings(net, relays, spec.pickup_factor, spec.fpi_pickup_factor,
                                   spec.fpi_reset_after, spec.reclose_dead_time)
    faults = []
    clock = scenario.clock
    for k, f in enumerate(scenario.faults):
        line = find_element(net, "line", f.line, f"faults[{k}].line")
        faults.append((clock.ticks(f.after) if f.after > 0 else 0, Fault(
            name=f"F{k + 1} {f.line}", line=line, position=f.position, fault_type=f.type,
            r_ohm=f.r_ohm, x_ohm=f.x_ohm, permanent=f.permanent, repair_time_s=f.repair_time)))
    return Protection(settings), tuple(faults)
