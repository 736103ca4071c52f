"""The RTUs' protocol endpoints as the scenario asks for them (``rtus[i].endpoint``),
checked before the run: one address per endpoint, the IEC 104 extra installed, something to
serve. :func:`start_gateway` then opens them for the run (:mod:`twin.protocols.gateway`)."""

from __future__ import annotations

import importlib.util

from twin.models.field import FieldPlan
from twin.protocols.gateway import EndpointSpec, EndpointUnavailable, Gateway
from twin.protocols.pointmap import PointMap
from twin.scenario import Scenario, ScenarioError
from twin.scenario.field import EndpointModel

#: What ``pip`` installs for IEC 104 (c104, GPL-3.0).
IEC104_EXTRA = "dms-twin[iec104]"


def endpoint_specs(scenario: Scenario, plan: FieldPlan | None) -> dict[str, EndpointSpec]:
    """RTU name → its endpoint, for the RTUs that have one; ScenarioError for a port two
    endpoints share, IEC 104 without its extra, or an RTU with nothing to serve."""
    out: dict[str, EndpointSpec] = {}
    taken: dict[tuple[str, int], int] = {}
    served = {r.name for r in plan.rtus if r.points} | {
        d.rtu for d in plan.devices.values() if d.rtu} if plan is not None else set()
    dms = scenario.dms
    transport = dms.transport if dms.enabled else "in_process"
    for i, rtu in enumerate(scenario.rtus):
        ep = rtu.endpoint
        key = f"rtus[{i}].endpoint"
        if ep is None and transport != "in_process" and rtu.name in served:
            # the DMS's front end reaches every RTU over the wire: loopback, any free port
            ep = EndpointModel(protocol=transport, port=0)
            key = "dms.transport"
        if ep is None:
            continue
        if not rtu.points and not rtu.devices or rtu.name not in served:
            raise ScenarioError(f"{key}: RTU {rtu.name} has no points and no devices to serve")
        if ep.protocol == "iec104" and importlib.util.find_spec("c104") is None:
            where = key if key == "dms.transport" else f"{key}.protocol"
            raise ScenarioError(f"{where}: iec104 needs the optional extra "
                                f"{IEC104_EXTRA} (c104, GPL-3.0): pip install "
                                f"'{IEC104_EXTRA}'")
        if ep.port:
            # 0.0.0.0 listens on every address: it shares a port with none
            clash = next((j for (h, p), j in taken.items() if p == ep.port and
                          (h == ep.host or "0.0.0.0" in (h, ep.host))), None)
            if clash is not None:
                raise ScenarioError(f"{key}.port: expected a port no other RTU listens on; "
                                    f"found {ep.port}, also rtus[{clash}]'s")
            taken[(ep.host, ep.port)] = i
        out[rtu.name] = EndpointSpec(ep.protocol, ep.port, ep.host)
    return out


def start_gateway(scenario: Scenario, plan: FieldPlan, specs: dict[str, EndpointSpec],
                  point_map: PointMap) -> Gateway:
    """The started gateway; ScenarioError (with the key path) for an address that cannot
    be had (a port in use, an address not of this machine)."""
    gateway = Gateway(point_map, specs, plan.rtus)
    try:
        gateway.start()
    except EndpointUnavailable as err:
        index = next(i for i, r in enumerate(scenario.rtus) if r.name == err.rtu)
        raise ScenarioError(f"rtus[{index}].endpoint: {err}") from None
    return gateway
