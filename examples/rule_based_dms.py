"""A rule-book DMS: Volt/Var by metered voltages, with tap and capacitor rules.

An example of the DMS interface (docs/dms-api.md) and a candidate to compare with the
built-in DMS (`twin compare … --candidate-dms examples/rule_based_dms.py:RuleBasedDMS`).
It uses no state estimation and no power flow: at every cycle it reads the newest metered
bus voltages of each transformer's feeder and, like an operator's rule book,

1. a voltage above ``high − margin_pu``: switch a capacitor step out on that feeder if one
   is in, else move the feeder's OLTC one step down in voltage;
2. a voltage below ``low + margin_pu``: switch a capacitor step in, else one tap step up;
3. never both directions on one feeder (a feeder with both is left to the operator, with a
   decision that says so), at most one move per feeder a cycle, and no device moved again
   within ``min_interval_s`` (anti-hunting).

Every move is a decision with its reason and the voltages that triggered it.

Params (``dms.params``): ``margin_pu`` (0.005), ``min_interval_s`` (300), ``stale_after_s``
(120: older telemetry is ignored).
"""

from __future__ import annotations

import math

import networkx as nx
import pandapower.topology as top

from twin.dms.api import API_VERSION, DMSContext, DMSStep
from twin.dms.decisions import Decision


class RuleBasedDMS:
    API_VERSION = API_VERSION
    VERSION = "1.0.0"

    def __init__(self, context: DMSContext, params: dict) -> None:
        unknown = set(params) - {"margin_pu", "min_interval_s", "stale_after_s"}
        if unknown:
            raise ValueError(f"unknown params {sorted(unknown)}; expected margin_pu, "
                             "min_interval_s, stale_after_s")
        self.margin_pu = float(params.get("margin_pu", 0.005))
        self.min_interval_s = float(params.get("min_interval_s", 300.0))
        self.stale_after_s = float(params.get("stale_after_s", 120.0))
        self.low_pu, self.high_pu = context.band_pu
        self.cycle_s, self.offset_s = context.cycle_s, context.cycle_offset_s
        net = context.net
        self.feeders = _feeders(net, context)
        self.latest: dict[tuple[str, str], tuple[float, float]] = {}  # (element, qty) -> (v, t)
        self.last_move_s: dict[str, float] = {}
        self.n_commands = 0

    # ------------------------------------------------------------------ the interface
    def step(self, t_s, telemetry, outcomes) -> DMSStep:
        for row in telemetry:
            key = (row["element"], row["quantity"])
            if key not in self.latest or row["source_t_s"] >= self.latest[key][1]:
                self.latest[key] = (float(row["value"]), float(row["source_t_s"]))
        for outcome in outcomes:
            if outcome["status"] != "success" and str(outcome["id"]).startswith("rb-"):
                self.last_move_s.pop(outcome.get("target", ""), None)  # may try again
        out = DMSStep(next_call_s=self._next_cycle(t_s))
        if t_s + 1e-6 < self.offset_s:
            return out
        for feeder in self.feeders:
            self._feeder(t_s, feeder, out)
        return out

    # ------------------------------------------------------------------ the rules
    def _next_cycle(self, t_s: float) -> float:
        k = max(math.floor((t_s - self.offset_s) / self.cycle_s + 1e-9) + 1, 0)
        return self.offset_s + k * self.cycle_s

    def _fresh(self, element: str, quantity: str, t_s: float) -> float | None:
        value, at = self.latest.get((element, quantity), (None, -math.inf))
        return value if t_s - at <= self.stale_after_s else None

    def _feeder(self, t_s: float, feeder: dict, out: DMSStep) -> None:
        vms = {bus: v for bus in feeder["buses"]
               if (v := self._fresh(f"bus:{bus}", "vm_pu", t_s)) is not None}
        if not vms:
            return
        hi_bus, vm_max = max(vms.items(), key=lambda kv: kv[1])
        lo_bus, vm_min = min(vms.items(), key=lambda kv: kv[1])
        too_high = vm_max > self.high_pu - self.margin_pu
        too_low = vm_min < self.low_pu + self.margin_pu
        inputs = {"vm_max_pu": vm_max, "bus_max": hi_bus, "vm_min_pu": vm_min,
                  "bus_min": lo_bus, "feeder": feeder["name"]}
        if too_high and too_low:
            out.decisions.append(Decision(
                t_s, "volt_var", "none", f"trafo:{feeder['name']}", None, "advisory",
                f"{hi_bus} at {vm_max:.3f} p.u. and {lo_bus} at {vm_min:.3f} p.u. on one "
                "feeder: no rule raises one and lowers the other; left to the operator",
                inputs))
            return
        if not (too_high or too_low):
            return
        sign = -1 if too_high else +1   # the voltage change wanted
        bus, vm = (hi_bus, vm_max) if too_high else (lo_bus, vm_min)
        why = f"{bus} at {vm:.3f} p.u. is {'above' if too_high else 'below'} " \
              f"{(self.high_pu - self.margin_pu) if too_high else (self.low_pu + self.margin_pu):.3f} p.u."
        for cap in feeder["capacitors"]:
            step = self._fresh(f"shunt:{cap['name']}", "step", t_s)
            step = cap["step"] if step is None else round(step)
            new = step + sign
            if 0 <= new <= cap["max_step"] and self._free(cap["ref"], t_s):
                self._move(t_s, out, "set_capacitor_step", "set_step", cap, new,
                           f"{why}: capacitor {cap['name']} step {step} → {new}", inputs)
                return
        for tr in feeder["taps"]:
            pos = self._fresh(f"trafo:{tr['name']}", "tap_pos", t_s)
            pos = tr["pos"] if pos is None else round(pos)
            new = pos + sign * tr["raise_dir"]
            if tr["min"] <= new <= tr["max"] and self._free(tr["ref"], t_s):
                self._move(t_s, out, "set_tap", "set_tap", tr, new,
                           f"{why}: {tr['name']} tap {pos} → {new}", inputs)
                return

    def _free(self, ref: str, t_s: float) -> bool:
        return t_s - self.last_move_s.get(ref, -math.inf) >= self.min_interval_s

    def _move(self, t_s, out, action, command, device, value, reason, inputs) -> None:
        self.n_commands += 1
        self.last_move_s[device["ref"]] = t_s
        out.decisions.append(Decision(t_s, "volt_var", action, device["element"],
                                      float(value), "direct", reason, dict(inputs)))
        out.commands.append({"id": f"rb-{self.n_commands}", "target": device["ref"],
                             "action": command, "value": float(value), "source": "volt_var"})


def _feeders(net, context: DMSContext) -> list[dict]:
    """Per transformer: the buses it feeds (with the normal topology), its OLTC and the
    capacitor banks on its feeder that the DMS may command."""
    commandable = {d.element: d.ref for d in context.devices
                   if {"set_tap", "set_step"} & set(d.actions) and d.rtu is not None}
    bus_names = dict(zip(net.bus.index, _names(net, "bus")))
    graph = top.create_nxgraph(net, include_trafos=False, respect_switches=True)
    feeders = []
    for idx, name in zip(net.trafo.index, _names(net, "trafo")):
        tr = net.trafo.loc[idx]
        lv = int(tr.lv_bus)
        buses = nx.node_connected_component(graph, lv) if lv in graph else {lv}
        taps = []
        ref = commandable.get(f"trafo:{name}")
        if ref and math.isfinite(float(tr.get("tap_pos", math.nan))):
            # a tap on the HV side with a positive step lowers the LV voltage as it rises
            raise_dir = -1 if str(tr.get("tap_side")) == "hv" else 1
            raise_dir *= 1 if float(tr.get("tap_step_percent", 1.0)) >= 0 else -1
            taps.append({"name": name, "ref": ref, "element": f"trafo:{name}",
                         "pos": int(tr.tap_pos), "min": int(tr.tap_min), "max": int(tr.tap_max),
                         "raise_dir": raise_dir})
        caps = []
        for s_idx, s_name in zip(net.shunt.index, _names(net, "shunt")):
            ref_s = commandable.get(f"shunt:{s_name}")
            if ref_s and int(net.shunt.at[s_idx, "bus"]) in buses:
                caps.append({"name": s_name, "ref": ref_s, "element": f"shunt:{s_name}",
                             "step": int(net.shunt.at[s_idx, "step"]),
                             "max_step": int(net.shunt.at[s_idx, "max_step"])})
        feeders.append({"name": name, "buses": sorted(bus_names[b] for b in buses),
                        "taps": taps, "capacitors": caps})
    return feeders


def _names(net, table: str) -> list[str]:
    """One name per row, as the twin names elements (twin.grid.names.element_names)."""
    from twin.grid.names import element_names

    return element_names(net, table)
