"""The RTU's Modbus TCP server (twin.protocols.modbus) over real loopback sockets, checked
with pymodbus's client (an independent implementation) and, for what that client cannot
send, raw frames. Expected register words come from IEEE-754 (1.0 = 0x3F800000, -2.5 =
0xC0200000, quiet NaN = 0x7FC00000) and the exception codes from the MODBUS Application
Protocol Specification V1.1b3, section 7."""

from __future__ import annotations

import errno
import logging
import math
import socket
import struct
import threading
import time
from collections.abc import Iterator

import pytest
from pymodbus.client import ModbusTcpClient
from pymodbus.exceptions import ModbusException

from twin.protocols.modbus import CommandRequest, ModbusEndpoint
from twin.protocols.pointmap import MappedPoint

RTU = "RTU 1"


def point(name: str, element: str, quantity: str, direction: str, value_type: str,
          table: str, address: int, low: float = 0.0, high: float = 1.0) -> MappedPoint:
    count = 2 if value_type == "float" else 1
    return MappedPoint(rtu=RTU, name=name, element=element, quantity=quantity,
                       direction=direction, value_type=value_type, unit="-",
                       modbus_table=table, modbus_address=address, modbus_count=count,
                       iec104_ca=1, iec104_ioa=1, iec104_type="-", low=low, high=high)


# Addresses laid out as the point map's conventions say (status = command address + 100);
# the holding-register commands start at 10 so their status registers do not meet the
# coils' ones.
POINTS = [
    point("bus:Bus 1/vm_pu", "bus:Bus 1", "vm_pu", "telemetry", "float", "input_register", 0,
          0.0, 2.0),
    point("line:L1/i_ka", "line:L1", "i_ka", "telemetry", "float", "input_register", 2, 0, 1),
    point("line:L1/p_mw", "line:L1", "p_mw", "telemetry", "float", "input_register", 4,
          -10, 10),
    point("switch:S1/closed", "switch:S1", "closed", "telemetry", "bool", "discrete_input", 0),
    point("line:L1/fault_passed", "line:L1", "fault_passed", "telemetry", "bool",
          "discrete_input", 1),
    point("switch:S1/switch", "switch:S1", "switch", "command", "bool", "coil", 0),
    point("switch:S2/switch", "switch:S2", "switch", "command", "bool", "coil", 1),
    point("trafo:T1/set_tap", "trafo:T1", "set_tap", "command", "int", "holding_register", 10,
          -9, 9),
    point("sgen:PV1/set_p", "sgen:PV1", "set_p", "command", "float", "holding_register", 12,
          0.0, 0.3),
    point("switch:S1/switch/status", "switch:S1", "status", "status", "int",
          "holding_register", 100, 0, 4),
    point("switch:S2/switch/status", "switch:S2", "status", "status", "int",
          "holding_register", 101, 0, 4),
    point("trafo:T1/set_tap/status", "trafo:T1", "status", "status", "int",
          "holding_register", 110, 0, 4),
    point("sgen:PV1/set_p/status", "sgen:PV1", "status", "status", "int",
          "holding_register", 112, 0, 4),
]
VM, I_KA, P_MW = "bus:Bus 1/vm_pu", "line:L1/i_ka", "line:L1/p_mw"
CLOSED, FAULT = "switch:S1/closed", "line:L1/fault_passed"
S1_STATUS, TAP_STATUS, SETP_STATUS = 100, 110, 112


def f32_words(x: float) -> list[int]:
    return list(struct.unpack(">HH", struct.pack(">f", x)))


def words_f32(hi: int, lo: int) -> float:
    return struct.unpack(">f", struct.pack(">HH", hi, lo))[0]


class Endpoint:
    """A started endpoint and the command requests it handed over."""

    def __init__(self, **kwargs):
        self.requests: list[CommandRequest] = []
        self.server = ModbusEndpoint(RTU, POINTS, on_command=self.requests.append, **kwargs)


@pytest.fixture
def ep() -> Iterator[Endpoint]:
    e = Endpoint()
    e.server.start()
    yield e
    e.server.stop()


def make_client(port: int, timeout: float = 2.0) -> ModbusTcpClient:
    client = ModbusTcpClient("127.0.0.1", port=port, timeout=timeout, retries=0)
    assert client.connect()
    return client


@pytest.fixture
def client(ep: Endpoint) -> Iterator[ModbusTcpClient]:
    c = make_client(ep.server.port)
    yield c
    c.close()


def exception_code(response) -> int:
    assert response.isError(), f"expected an exception response; got {response}"
    return response.exception_code


def raw_request(port: int, pdu: bytes, unit: int = 1, tid: int = 7) -> bytes:
    """Send one Modbus TCP frame on a fresh socket; the response PDU."""
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.sendall(struct.pack(">HHHB", tid, 0, len(pdu) + 1, unit) + pdu)
        head = recv_exactly(s, 7)
        rtid, pid, length, runit = struct.unpack(">HHHB", head)
        assert (rtid, pid, runit) == (tid, 0, unit)
        return recv_exactly(s, length - 1)


def recv_exactly(s: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        assert chunk, "connection closed early"
        data += chunk
    return data


def fails(call) -> bool:
    """True if a pymodbus call raised or returned an error (timeout, closed connection)."""
    try:
        response = call()
    except ModbusException:
        return True
    return response.isError()


# --------------------------------------------------------------------------- telemetry
def test_published_float_and_bool_read_back_exactly(ep, client):
    # 1.0234375 = 1 + 3/128 is exact in float32; 1.02 is not, and reads as its float32.
    ep.server.publish({VM: 1.0234375, I_KA: 1.02, P_MW: -3.25, CLOSED: True, FAULT: False})
    rr = client.read_input_registers(0, count=6)
    assert not rr.isError()
    values = [words_f32(*rr.registers[i:i + 2]) for i in (0, 2, 4)]
    assert values == [1.0234375, struct.unpack(">f", struct.pack(">f", 1.02))[0], -3.25]
    di = client.read_discrete_inputs(0, count=2)
    assert di.bits[:2] == [True, False]
    ep.server.publish({CLOSED: False, FAULT: True})  # a later publish changes only these
    assert client.read_discrete_inputs(0, count=2).bits[:2] == [False, True]
    assert words_f32(*client.read_input_registers(0, count=2).registers) == 1.0234375


def test_float32_is_two_registers_high_word_first(ep, client):
    ep.server.publish({VM: 1.0, P_MW: -2.5})
    rr = client.read_input_registers(0, count=6)
    assert rr.registers[0:2] == [0x3F80, 0x0000]  # 1.0 = 0x3F800000
    assert rr.registers[4:6] == [0xC020, 0x0000]  # -2.5 = 0xC0200000


def test_stale_and_never_published_floats_read_nan(ep, client):
    assert client.read_input_registers(2, count=2).registers == [0x7FC0, 0x0000]
    ep.server.publish({VM: 1.01, CLOSED: True})
    ep.server.publish({}, invalid=[VM, CLOSED])
    rr = client.read_input_registers(0, count=2)
    assert rr.registers == [0x7FC0, 0x0000] and math.isnan(words_f32(*rr.registers))
    # Discrete inputs have no quality code: the stale status point keeps its value.
    assert client.read_discrete_inputs(0, count=1).bits[0] is True


def test_publish_of_a_name_not_telemetry_raises_and_stores_nothing(ep, client):
    with pytest.raises(ValueError, match="switch:S1/switch"):
        ep.server.publish({VM: 1.0, "switch:S1/switch": True})
    assert client.read_input_registers(0, count=2).registers == [0x7FC0, 0x0000]


# --------------------------------------------------------------------------- commands
def test_switch_coil_write_is_a_close_or_open_request_from_the_client(ep, client):
    local_host, local_port = client.socket.getsockname()[:2]
    assert not client.write_coil(0, True).isError()
    assert len(ep.requests) == 1
    req = ep.requests[0]
    assert (req.rtu, req.device, req.action, req.value) == (RTU, "switch:S1", "close", None)
    assert req.client == f"{local_host}:{local_port}"
    assert not client.write_coil(0, False).isError()
    assert ep.requests[1].action == "open" and ep.requests[1].id != req.id
    assert client.read_coils(0, count=1).bits[0] is False  # the last command written
    assert client.read_holding_registers(S1_STATUS, count=1).registers == [1]  # pending


def test_write_multiple_coils_is_one_request_per_switch(ep, client):
    assert not client.write_coils(0, [True, False]).isError()
    assert [(r.device, r.action) for r in ep.requests] == [("switch:S1", "close"),
                                                          ("switch:S2", "open")]
    assert client.read_coils(0, count=2).bits[:2] == [True, False]


def test_tap_write_is_a_signed_int(ep, client):
    assert not client.write_register(10, (-3) & 0xFFFF).isError()
    (req,) = ep.requests
    assert (req.device, req.action, req.value) == ("trafo:T1", "set_tap", -3)
    assert isinstance(req.value, int)
    assert client.read_holding_registers(10, count=1).registers == [0xFFFD]
    assert client.read_holding_registers(TAP_STATUS, count=1).registers == [1]


def test_float_setpoint_needs_both_registers_in_one_write(ep, client):
    # 0.3 is not a float32: the client's float32 (0x3E99999A = 0.30000001192…) lies above
    # 0.3, but the bound is compared as a float32 too, so the top of the range can be
    # written; the request carries the shortest decimal of that float32, 0.3.
    assert f32_words(0.3) == [0x3E99, 0x999A]
    assert not client.write_registers(12, f32_words(0.3)).isError()
    (req,) = ep.requests
    assert (req.device, req.action, req.value) == ("sgen:PV1", "set_p", 0.3)
    assert client.read_holding_registers(12, count=2).registers == [0x3E99, 0x999A]
    assert not client.write_registers(12, f32_words(0.1234567)).isError()
    assert ep.requests[1].value == 0.1234567
    # Half a float: function 6 to either half, function 16 covering one half.
    assert exception_code(client.write_register(12, 0x3E80)) == 2
    assert exception_code(client.write_register(13, 0x0000)) == 2
    assert exception_code(client.write_registers(12, [0x3E80])) == 2
    assert exception_code(client.write_registers(13, [0x0000, 0x0000])) == 2
    assert len(ep.requests) == 2
    assert client.read_holding_registers(12, count=2).registers == f32_words(0.1234567)


def test_out_of_range_or_nan_values_are_illegal_data_value_without_request(ep, client):
    assert exception_code(client.write_register(10, 10)) == 3  # tap range -9 .. 9
    assert exception_code(client.write_register(10, (-10) & 0xFFFF)) == 3
    assert exception_code(client.write_registers(12, f32_words(0.31))) == 3  # 0 .. 0.3
    assert exception_code(client.write_registers(12, f32_words(-0.01))) == 3
    assert exception_code(client.write_registers(12, [0x7FC0, 0x0000])) == 3  # NaN
    assert exception_code(client.write_registers(12, [0x7F80, 0x0000])) == 3  # +inf
    # A coil value other than 0xFF00 / 0x0000 (pymodbus's client only sends those).
    assert raw_request(ep.server.port, struct.pack(">BHH", 5, 0, 0x1234)) == bytes([0x85, 3])
    assert ep.requests == []
    assert client.read_holding_registers(10, count=1).registers == [0]  # unchanged
    assert client.read_holding_registers(TAP_STATUS, count=1).registers == [0]


def test_unknown_addresses_are_illegal_data_address_without_request(ep, client):
    assert exception_code(client.write_coil(999, True)) == 2
    assert exception_code(client.write_register(999, 1)) == 2
    assert exception_code(client.write_register(11, 1)) == 2  # a gap between commands
    assert exception_code(client.write_register(TAP_STATUS, 2)) == 2  # status: read-only
    # One bad address refuses the whole write: coil 2 does not exist.
    assert exception_code(client.write_coils(0, [True, True, True])) == 2
    assert ep.requests == []
    assert exception_code(client.read_input_registers(0, count=7)) == 2  # 6 mapped
    assert exception_code(client.read_discrete_inputs(5, count=1)) == 2
    assert exception_code(client.read_coils(0, count=3)) == 2


def test_unsupported_function_and_foreign_unit_id(ep):
    # 8 diagnostics is not served: ILLEGAL FUNCTION.
    assert raw_request(ep.server.port, bytes([8, 0, 0, 0x12, 0x34])) == bytes([0x88, 1])
    # Unit 7 is not this RTU (1): GATEWAY TARGET DEVICE FAILED TO RESPOND.
    pdu = struct.pack(">BHH", 4, 0, 2)
    assert raw_request(ep.server.port, pdu, unit=7) == bytes([0x84, 11])
    # A count beyond the protocol's 125 registers: ILLEGAL DATA VALUE.
    assert raw_request(ep.server.port, struct.pack(">BHH", 4, 0, 126)) == bytes([0x84, 3])


def test_command_done_sets_the_status_register(ep, client):
    def status() -> int:
        return client.read_holding_registers(S1_STATUS, count=1).registers[0]

    assert status() == 0  # no command yet
    for outcome, code in (("success", 2), ("failed", 3), ("timeout", 4)):
        client.write_coil(0, True)
        assert status() == 1
        ep.server.command_done(ep.requests[-1].id, outcome)
        assert status() == code
    # The register holds the last command's outcome: a superseded one is ignored.
    client.write_coil(0, False)
    client.write_coil(0, True)
    ep.server.command_done(ep.requests[-2].id, "failed")
    assert status() == 1
    ep.server.command_done(ep.requests[-1].id, "success")
    assert status() == 2
    assert client.read_holding_registers(TAP_STATUS, count=1).registers == [0]  # untouched
    with pytest.raises(ValueError, match="unknown request"):
        ep.server.command_done("no-such-id", "success")
    with pytest.raises(ValueError, match="status must be"):
        ep.server.command_done(ep.requests[-1].id, "done")  # type: ignore[arg-type]


def test_on_command_raising_is_server_device_failure_and_the_server_goes_on(caplog):
    def boom(request: CommandRequest) -> None:
        raise RuntimeError("field simulator queue full")

    with ModbusEndpoint(RTU, POINTS, on_command=boom) as server:
        c = make_client(server.port)
        with caplog.at_level(logging.ERROR, logger="twin.protocols.modbus"):
            assert exception_code(c.write_coil(0, True)) == 4
        assert "field simulator queue full" in caplog.text
        server.publish({VM: 1.0})
        assert c.read_input_registers(0, count=2).registers == [0x3F80, 0]
        c.close()


def test_on_command_may_report_the_outcome_at_once():
    # A field that completes a command inside the callback: no deadlock, status 2.
    def complete(request: CommandRequest) -> None:
        server.command_done(request.id, "success")

    server = ModbusEndpoint(RTU, POINTS, on_command=complete)
    with server:
        c = make_client(server.port)
        assert not c.write_register(10, 2).isError()
        assert c.read_holding_registers(TAP_STATUS, count=1).registers == [2]
        c.close()


# --------------------------------------------------------------------------- outages
def test_unreachable_rtu_times_out_and_recovers(ep):
    c = make_client(ep.server.port, timeout=0.5)
    ep.server.publish({VM: 1.0})
    assert c.read_input_registers(0, count=2).registers == [0x3F80, 0]
    ep.server.set_reachable(False)
    t0 = time.monotonic()
    assert fails(lambda: c.read_input_registers(0, count=2))
    assert time.monotonic() - t0 >= 0.4  # a timeout, not a refusal
    assert fails(lambda: c.write_coil(0, True))
    assert ep.requests == []  # the command was lost on the dead link
    # A new connection gets in (loopback completes the handshake) but no answer.
    c2 = make_client(ep.server.port, timeout=0.5)
    assert fails(lambda: c2.read_input_registers(0, count=2))
    c2.close()
    ep.server.set_reachable(True)
    ep.server.publish({VM: 1.5})
    if not c.connected:  # pymodbus may have dropped the connection after the timeouts
        assert c.connect()
    assert c.read_input_registers(0, count=2).registers == [0x3FC0, 0]  # 1.5 = 0x3FC00000
    assert not c.write_coil(0, True).isError() and len(ep.requests) == 1
    c.close()


# --------------------------------------------------------------------------- abuse
def test_garbage_bytes_close_only_that_connection(ep, client):
    ep.server.publish({VM: 1.0})
    with socket.create_connection(("127.0.0.1", ep.server.port), timeout=2) as s:
        s.sendall(b"\xde\xad\xbe\xef GET / HTTP/1.1\r\n\r\n" * 4)
        try:
            closed = s.recv(100) == b""
        except ConnectionResetError:
            closed = True
        assert closed
    assert client.read_input_registers(0, count=2).registers == [0x3F80, 0]
    other = make_client(ep.server.port)
    assert other.read_input_registers(0, count=2).registers == [0x3F80, 0]
    other.close()


def test_a_flood_of_connections_does_not_lock_out_a_client(ep):
    ep.server.publish({VM: 1.0})
    port = ep.server.port
    for _ in range(200):  # connect and go away at once
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    held = [socket.create_connection(("127.0.0.1", port), timeout=2) for _ in range(200)]
    try:
        c = make_client(port)
        for _ in range(3):
            assert c.read_input_registers(0, count=2).registers == [0x3F80, 0]
        c.close()
    finally:
        for s in held:
            s.close()
    assert ep.server.running
    c = make_client(port)
    assert c.read_input_registers(0, count=2).registers == [0x3F80, 0]
    c.close()


# --------------------------------------------------------------------------- lifecycle
def test_stop_leaves_no_thread_and_is_idempotent():
    before = set(threading.enumerate())
    server = ModbusEndpoint(RTU, POINTS)
    server.start()
    c = make_client(server.port)  # an open connection must not keep anything alive
    assert any(t.name == f"modbus-{RTU}" for t in threading.enumerate())
    server.stop()
    server.stop()
    assert set(threading.enumerate()) <= before
    assert fails(lambda: c.read_input_registers(0, count=2))
    c.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", server.port), timeout=2).close()


def test_a_taken_port_raises_a_clear_error_and_leaves_no_thread():
    before = set(threading.enumerate())
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = ModbusEndpoint(RTU, POINTS, port=port)
        with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{port}") as info:
            server.start()
        assert info.value.errno == errno.EADDRINUSE
    assert set(threading.enumerate()) <= before
    server.stop()  # harmless after a failed start


@pytest.mark.parametrize("bad, message", [
    (point("x", "bus:B", "vm_pu", "telemetry", "float", "input_register", 40),
     "belongs to RTU 'RTU 2'"),
    (point("switch:S9/closed", "switch:S9", "closed", "telemetry", "bool", "input_register",
           40), "not a layout"),
    (point("line:L9/p_mw", "line:L9", "p_mw", "telemetry", "float", "input_register", 5),
     "input_register 5 is used by both"),
    (point(VM, "bus:Bus 1", "vm_pu", "telemetry", "float", "input_register", 40), "repeated"),
])
def test_a_bad_point_list_fails_at_construction(bad, message):
    if "RTU 2" in message:
        bad = MappedPoint(**{**bad.__dict__, "rtu": "RTU 2"})
    with pytest.raises(ValueError, match=message):
        ModbusEndpoint(RTU, [*POINTS, bad])
