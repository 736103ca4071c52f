"""The field as the scenario describes it, resolved against the grid: what each RTU point
measures (where its truth sits in the grid simulator's snapshot), which device each command
target is, how commands reach it (an RTU's link, or a crew for a manual switch), and where.

Gives the plain data of :mod:`twin.models.field` that the field simulator runs.
"""

from __future__ import annotations

import math

import pandapower as pp

from twin.build.resolve import find_element
from twin.grid.geo import bus_xy_km, is_lonlat
from twin.grid.model import snapshot_attrs
from twin.grid.names import ELEMENT_KINDS, element_names, split_ref
from twin.models import comms
from twin.models.crews import CrewSpec
from twin.models.field import ACTIONS, KIND_TABLE, Device, FieldPlan, TruthRef
from twin.scenario import Scenario, ScenarioError
from twin.scenario.field import LinkModel

# A point's quantity → the snapshot attribute, where a table names it differently.
_ALIASES = {
    "line": {"p_mw": "p_from_mw", "q_mvar": "q_from_mvar"},
    "trafo": {"p_mw": "p_hv_mw", "q_mvar": "q_hv_mvar", "i_ka": "i_hv_ka"},
}
_STATUS = {"closed", "tripped", "fault_passed", "supplied"}
_DISCRETE = {"tap_pos", "step", "in_service", "n_connected", *_STATUS}
#: What an EV charging point's operator reports besides its power (the fleet's outputs):
#: plugged-in EVs and the V2G power they can hold for 15 minutes each way.
EV_AGGREGATOR = ("n_connected", "fcr_inject_mw", "fcr_absorb_mw")


def _latency(model, default: comms.LatencySpec) -> comms.LatencySpec:
    if model is None:
        return default
    return comms.LatencySpec(fixed_s=model.fixed, kind=model.kind, mean_s=model.mean,
                             sigma_s=model.sigma)


def link_spec(link: str | LinkModel, start_s: float = 0.0) -> comms.LinkSpec:
    """A scenario link (preset name or model) as the comms model's LinkSpec."""
    if isinstance(link, str):
        return comms.LinkSpec.fibre() if link == "fibre" else comms.LinkSpec.cellular()
    base = comms.LinkSpec.cellular() if link.preset == "cellular" else comms.LinkSpec.fibre()
    return comms.LinkSpec(
        uplink=_latency(link.uplink, base.uplink),
        downlink=_latency(link.downlink, base.downlink),
        loss_prob=base.loss_prob if link.loss_prob is None else link.loss_prob,
        bandwidth_bps=link.bandwidth_bps if link.bandwidth_bps is not None else base.bandwidth_bps,
        outages=tuple((o.after - start_s, o.after + o.duration - start_s) for o in link.outages),
    )


def grid_refs(net: pp.pandapowerNet, extra: dict[str, dict[str, int]]) -> dict[str, str]:
    """Field device reference → the grid element that holds it, for whoever names field
    devices by grid elements (the DMS's command targets): ``{"ev:Bus 10": "load:EV Bus 10",
    "wind:WKA 7": "sgen:WKA 7", …}``; ``extra`` is {kind: {name: index in the kind's
    table}}."""
    out: dict[str, str] = {}
    for kind, by_name in extra.items():
        table = KIND_TABLE[kind]
        names = dict(zip(net[table].index, element_names(net, table)))
        for name, idx in by_name.items():
            out[f"{kind}:{name}"] = f"{table}:{names[idx]}"
    return out


class _Names:
    """Element name → (table, index, position) lookups, built once."""

    def __init__(self, net: pp.pandapowerNet, pv: dict[str, int], wind: dict[str, int],
                 batteries: dict[str, int], ev_loads: dict[str, int]):
        self.net = net
        self.by_table = {t: {n: (int(i), k) for k, (n, i) in
                             enumerate(zip(element_names(net, t), net[t].index))}
                         for t in ("bus", "line", "trafo", "switch", "shunt", "load", "sgen",
                                   "storage")}
        self.extra = {"pv": pv, "wind": wind, "battery": batteries, "ev": ev_loads}
        self.names = {t: element_names(net, t) for t in self.by_table}

    def grid_element(self, table: str, position: int) -> str:
        """The element at ``position`` of ``table`` as the grid names it: ``"load:EV Bus 10"``."""
        return f"{table}:{self.names[table][position]}"

    def find(self, ref: str, key: str) -> tuple[str, str, int, int]:
        """``ref`` → (kind, table, index, position in table)."""
        kind, name = split_ref(ref, ELEMENT_KINDS, strip=True)  # as the scenario checked it
        table = KIND_TABLE[kind]
        if kind in self.extra:
            idx = self.extra[kind].get(name)
            if idx is None:
                known = sorted(self.extra[kind])
                raise ScenarioError(
                    f"{key}: expected one of the {kind} names {known}; found {name!r}" if known
                    else f"{key}: expected a {kind} in the scenario; there is none ({ref!r})")
            return kind, table, idx, list(self.net[table].index).index(idx)
        found = self.by_table[table].get(name)
        if found is None:
            shown = ", ".join(list(self.by_table[table])[:12])
            raise ScenarioError(f"{key}: expected the name of a {table} ({shown} …); "
                                f"found {name!r}")
        return kind, table, found[0], found[1]


def _default_range(net: pp.pandapowerNet, table: str, idx: int, attr: str) -> tuple[float, float]:
    if attr == "vm_pu":
        return (0.8, 1.2)
    if attr == "loading_percent":
        return (0.0, 200.0)
    if table == "line":
        i_max = float(net.line.at[idx, "max_i_ka"])
        vn = float(net.bus.at[net.line.at[idx, "from_bus"], "vn_kv"])
        s = math.sqrt(3) * vn * i_max
        return (0.0, 2 * i_max) if attr.startswith("i_") else (-s, s)
    if table == "trafo":
        sn = float(net.trafo.at[idx, "sn_mva"])
        i = sn / (math.sqrt(3) * float(net.trafo.at[idx, "vn_hv_kv"]))
        return (0.0, 2 * i) if attr.startswith("i_") else (-sn, sn)
    df = net[table]
    rating = float(df.at[idx, "sn_mva"]) if "sn_mva" in df.columns and df.at[idx, "sn_mva"] > 0 \
        else abs(float(df.at[idx, "p_mw"])) * 2 or 1.0
    return (-rating, rating)


def build_field_plan(scenario: Scenario, net: pp.pandapowerNet, pv: dict[str, int],
                     wind: dict[str, int], batteries: dict[str, int],
                     ev_loads: dict[str, int], manual: set[int]) -> FieldPlan:
    """Resolve the scenario's RTUs, devices and crews against the prepared grid."""
    names = _Names(net, pv, wind, batteries, ev_loads)
    rtus: list[comms.RTUSpec] = []
    truth: dict[str, dict[str, TruthRef]] = {}
    devices: dict[str, Device] = {}
    status: dict[str, tuple[str, ...]] = {}
    for r, rtu in enumerate(scenario.rtus):
        points, refs = [], {}
        for p, pt in enumerate(rtu.points):
            key = f"rtus[{r}].points[{p}]"
            kind, table, idx, pos = names.find(pt.element, f"{key}.element")
            attr = _ALIASES.get(table, {}).get(pt.quantity, pt.quantity)
            truth_table, truth_pos = table, pos
            if kind == "ev" and attr in EV_AGGREGATOR:
                # the charging points' operator reports these (the EV fleet's snapshot)
                truth_table = "ev"
                truth_pos = list(ev_loads).index(split_ref(pt.element, strip=True)[1])
            elif attr not in snapshot_attrs(table):
                known = snapshot_attrs(table) | (set(EV_AGGREGATOR) if kind == "ev" else set())
                raise ScenarioError(f"{key}.quantity: expected one of "
                                    f"{sorted(known)} for a {kind}; found {pt.quantity!r}")
            # the display name keeps the scenario's reference ("ev:Bus 10/p_mw"); the
            # element is the grid's ("load:EV Bus 10"), resolved here once for every reader
            name = f"{pt.element}/{pt.quantity}"
            discrete = attr in _DISCRETE
            rng = pt.range or (None if discrete else _default_range(
                net, table, idx, "p_mw" if truth_table == "ev" else attr))
            points.append(comms.PointSpec(name=name, quantity=pt.quantity,
                                          range=rng if rng is not None else (0.0, 1.0),
                                          noise_pct=0.0 if discrete else pt.noise_pct,
                                          quantum=1.0 if discrete else pt.quantum,
                                          element=names.grid_element(table, pos)))
            refs[name] = TruthRef(truth_table, truth_pos, attr)
        rtus.append(comms.RTUSpec(name=rtu.name, points=tuple(points),
                                  scan_period_s=rtu.scan_period,
                                  link=link_spec(rtu.link), scan_offset_s=rtu.scan_offset))
        truth[rtu.name] = refs
        if rtu.report_by_exception:
            status[rtu.name] = tuple(n for n, ref in refs.items() if ref.attr in _STATUS)
        for d, ref in enumerate(rtu.devices):
            _add_device(devices, names, ref, rtu.name, manual, f"rtus[{r}].devices[{d}]")
    for idx in sorted(manual):  # manual switches are devices too, operated by crews
        ref = f"switch:{element_names(net, 'switch')[list(net.switch.index).index(idx)]}"
        if ref in devices and devices[ref].rtu is not None:
            raise ScenarioError(f"devices.manual_switches: {ref} is manual but also listed "
                                f"as remote under RTU {devices[ref].rtu}")
        _add_device(devices, names, ref, None, manual, "devices.manual_switches")
    work_time: dict[str, float] = {}
    line_names = element_names(net, "line")
    for fault in scenario.faults:  # any line can be patrolled; a faulted one takes its repair
        for pos, idx in enumerate(net.line.index):
            ref = f"line:{line_names[pos]}"
            if ref not in devices:
                devices[ref] = Device(ref=ref, kind="line", eid=f"dev:{ref}", attr="repaired",
                                      rtu=None, manual=True,
                                      location_xy_km=_line_middle_km(net, int(idx)))
        work_time[f"line:{fault.line}"] = fault.repair_time
    crew = _crew_spec(scenario, net) if manual or scenario.faults else None
    plan = FieldPlan(rtus, truth, devices, crew, work_time_s=work_time,
                     status_points={k: v for k, v in status.items() if v})
    for dev in devices.values():
        kind, table, idx, _pos = names.find(dev.ref, "devices")
        plan.targets[dev.eid] = (table, idx)
    return plan


def _add_device(devices: dict[str, Device], names: _Names, ref: str, rtu: str | None,
                manual: set[int], key: str) -> None:
    kind, table, idx, _pos = names.find(ref, key)
    attrs = {a for a, (kinds, _attr) in ACTIONS.items() if kind in kinds}
    if not attrs:
        raise ScenarioError(f"{key}: expected a controllable device (switch, trafo, shunt, pv, "
                            f"wind, battery, ev); found {ref!r}")
    attr = next(ACTIONS[a][1] for a in ACTIONS if kind in ACTIONS[a][0])
    is_manual = kind == "switch" and idx in manual
    location = None
    if kind == "switch":
        location = bus_xy_km(names.net, int(names.net.switch.at[idx, "bus"]))
    devices[ref] = Device(ref=ref, kind=kind, eid=f"dev:{ref}", attr=attr,
                          rtu=None if is_manual else rtu, manual=is_manual,
                          location_xy_km=location)


def _line_middle_km(net: pp.pandapowerNet, line: int) -> tuple[float, float] | None:
    ends = [bus_xy_km(net, int(net.line.at[line, end])) for end in ("from_bus", "to_bus")]
    if ends[0] is None or ends[1] is None:
        return ends[0] or ends[1]
    return ((ends[0][0] + ends[1][0]) / 2, (ends[0][1] + ends[1][1]) / 2)


def _crew_spec(scenario: Scenario, net: pp.pandapowerNet) -> CrewSpec:
    c = scenario.crews
    depot = c.depot_xy_km
    if depot is None and c.depot_bus is not None:
        idx = find_element(net, "bus", c.depot_bus, "crews.depot_bus")
        depot = bus_xy_km(net, idx)
    if depot is None and c.fixed_travel is None:
        raise ScenarioError("crews: expected 'depot_xy_km', a 'depot_bus' with geodata or "
                            "'fixed_travel' to time the crews' journeys; found none")
    # Positions are the net's geodata: km, or longitude/latitude (then so is depot_xy_km)
    return CrewSpec(n_crews=c.n_crews, depot_xy_km=depot or (0.0, 0.0),
                    speed_km_h=c.speed_km_h, work_time_s=c.work_time,
                    fixed_travel_s=c.fixed_travel, detour_factor=c.detour_factor,
                    lonlat=is_lonlat(net))
