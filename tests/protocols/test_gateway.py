"""The field's protocol gateway on its own (no simulation): delivered values and the scan
time as a Modbus client reads them, stale values flagged after 2.5 scan periods, an outage
window silencing the RTU, clients' commands drained as field commands with their source,
and outcomes written back."""

from __future__ import annotations

import math
import struct
import time
from types import SimpleNamespace

import pytest
from pymodbus.client import ModbusTcpClient

from twin.protocols.gateway import STALE_SCANS, EndpointSpec, Gateway
from twin.protocols.pointmap import MappedPoint, PointMap, scan_time_point

RTU = "RTU A"


def _point(name, quantity, direction, value_type, table, address, count=None, **kw):
    return MappedPoint(rtu=RTU, name=name, element=name.rsplit("/", 1)[0], quantity=quantity,
                       direction=direction, value_type=value_type, unit="-",
                       modbus_table=table, modbus_address=address,
                       modbus_count=count or (2 if value_type == "float" else 1), iec104_ca=1,
                       iec104_ioa=1, iec104_type="-", low=kw.get("low", -1e6),
                       high=kw.get("high", 1e6))


POINTS = PointMap((
    _point("bus:B1/vm_pu", "vm_pu", "telemetry", "float", "input_register", 0),
    _point("switch:S1/closed", "closed", "telemetry", "bool", "discrete_input", 0),
    _point(scan_time_point(RTU), "scan_t_s", "telemetry", "float", "input_register", 2),
    _point("switch:S1/switch", "switch", "command", "bool", "coil", 0),
    _point("switch:S1/switch/status", "status", "status", "int", "holding_register", 100),
    _point("trafo:T1/set_tap", "set_tap", "command", "int", "holding_register", 1,
           low=-9, high=9),
    _point("trafo:T1/set_tap/status", "status", "status", "int", "holding_register", 101),
))
SCAN_S = 10.0
OUTAGE = (100.0, 160.0)


def _f32(words) -> float:
    return struct.unpack(">f", struct.pack(">HH", *words))[0]


@pytest.fixture
def gateway():
    rtu = SimpleNamespace(name=RTU, scan_period_s=SCAN_S,
                          link=SimpleNamespace(outages=(OUTAGE,)))
    gw = Gateway(POINTS, {RTU: EndpointSpec("modbus", 0)}, [rtu])
    gw.start()
    yield gw
    gw.stop()


@pytest.fixture
def client(gateway):
    _protocol, host, port = gateway.addresses()[RTU]
    c = ModbusTcpClient(host, port=port, timeout=0.5, retries=0)
    assert c.connect()
    yield c
    c.close()


def test_values_and_scan_time_as_delivered_then_stale(gateway, client):
    assert math.isnan(_f32(client.read_input_registers(2, count=2).registers))  # no scan yet
    gateway.at(20.0)
    gateway.deliver(RTU, {"bus:B1/vm_pu": 1.0234, "switch:S1/closed": True}, 20.0)
    rr = client.read_input_registers(0, count=4).registers
    assert _f32(rr[0:2]) == pytest.approx(1.0234, rel=1e-7) and _f32(rr[2:4]) == 20.0
    assert client.read_discrete_inputs(0, count=1).bits[0] is True
    # 2.5 scan periods without a scan: the float reads NaN; the scan time stays (it is true)
    gateway.at(20.0 + STALE_SCANS * SCAN_S)
    assert not math.isnan(_f32(client.read_input_registers(0, count=2).registers))
    gateway.at(20.0 + STALE_SCANS * SCAN_S + 0.01)
    rr = client.read_input_registers(0, count=4).registers
    assert math.isnan(_f32(rr[0:2])) and _f32(rr[2:4]) == 20.0
    # the next scan makes it valid again; a value that is not a number is invalid
    gateway.deliver(RTU, {"bus:B1/vm_pu": 1.01, "switch:S1/closed": False}, 60.0)
    gateway.at(60.0)
    assert _f32(client.read_input_registers(0, count=2).registers) == pytest.approx(1.01)
    gateway.deliver(RTU, {"bus:B1/vm_pu": float("nan"), "switch:S1/closed": False}, 70.0)
    rr = client.read_input_registers(0, count=4).registers
    assert math.isnan(_f32(rr[0:2])) and _f32(rr[2:4]) == 70.0
    # an older scan delivered late does not turn the scan time back
    gateway.deliver(RTU, {"bus:B1/vm_pu": 1.02}, 65.0)
    assert _f32(client.read_input_registers(2, count=2).registers) == 70.0


def test_outage_window_silences_the_rtu(gateway, client):
    gateway.deliver(RTU, {"bus:B1/vm_pu": 1.0}, 90.0)
    gateway.at(OUTAGE[0] - 0.01)
    assert not client.read_input_registers(0, count=2).isError()
    gateway.at(OUTAGE[0])
    t0 = time.monotonic()
    with pytest.raises(Exception):  # pymodbus: no response (a timeout, not a refusal)
        rr = client.read_input_registers(0, count=2)
        assert rr.isError()
    assert time.monotonic() - t0 >= 0.4
    gateway.at(OUTAGE[1])
    client.close()
    assert client.connect()
    # back, but its last values are from before the outage: stale until the next scan
    assert math.isnan(_f32(client.read_input_registers(0, count=2).registers))
    gateway.deliver(RTU, {"bus:B1/vm_pu": 1.0}, OUTAGE[1] + 1.0)
    gateway.at(OUTAGE[1] + 1.0)
    assert _f32(client.read_input_registers(0, count=2).registers) == 1.0


def test_commands_drained_with_their_source_and_outcomes_written_back(gateway, client):
    assert gateway.drain() == []
    assert not client.write_coil(0, False).isError()
    assert not client.write_register(1, (-3) & 0xFFFF).isError()
    assert client.write_register(1, 12).isError()  # outside -9 .. 9: refused, not drained
    commands = gateway.drain()
    assert [(c["target"], c["action"], c["value"]) for c in commands] == [
        ("switch:S1", "open", None), ("trafo:T1", "set_tap", -3)]
    assert all(c["source"].startswith("modbus 127.0.0.1:") for c in commands)
    assert all(c["id"].startswith(f"modbus:{RTU}:") for c in commands)
    assert client.read_holding_registers(100, count=2).registers == [1, 1]  # pending
    gateway.done(commands[0]["id"], "success")
    gateway.done(commands[1]["id"], "timeout")
    gateway.done("op-1", "success")  # not a client's command: ignored
    assert client.read_holding_registers(100, count=2).registers == [2, 4]
    assert gateway.drain() == []
