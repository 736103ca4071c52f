"""A DMS over TCP (twin/dms/remote.py, twin/dms/serve.py): a server in a thread serving a
tiny DMS, the twin's side connecting to it."""

from __future__ import annotations

import math
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from tests.dms.test_wire import make_context
from twin.dms import wire
from twin.dms.api import API_VERSION, DMSContext, DMSLoadError, DMSStep, GuardedDMS
from twin.dms.decisions import Decision
from twin.dms.remote import RemoteDMS, RemoteDMSError
from twin.dms.serve import make_server


class EchoDMS:
    """Commands a tap move per step, fails on request, tells what it was given."""

    API_VERSION = API_VERSION
    VERSION = "0.3"

    def __init__(self, context: DMSContext, params: dict) -> None:
        if params.get("refuse"):
            raise ValueError("refused by params")
        self.seed, self.params, self.n = context.seed, params, 0
        self.cycle_s = context.cycle_s

    def step(self, t_s, telemetry, outcomes) -> DMSStep:
        if any(row["quantity"] == "boom" for row in telemetry):
            raise RuntimeError("boom at the vendor")
        if any(row["quantity"] == "slow" for row in telemetry):
            time.sleep(1.0)
        self.n += 1
        return DMSStep(
            commands=[{"id": f"e-{self.n}", "target": "trafo:Trafo 0-1", "action": "set_tap",
                       "value": float(len(telemetry)), "source": "volt_var"}],
            decisions=[Decision(t_s, "volt_var", "set_tap", "trafo:Trafo 0-1",
                                float(len(telemetry)), "direct", f"seed {self.seed}",
                                {"n": self.n, "outcomes": len(outcomes)})],
            next_call_s=math.inf if self.n % 2 else t_s + self.cycle_s)


class OldDMS(EchoDMS):
    API_VERSION = "0.9"


@pytest.fixture(scope="module")
def context() -> DMSContext:
    return make_context()


@pytest.fixture()
def server():
    """An EchoDMS server in a thread; its address."""
    srv = make_server(EchoDMS, name="tests.dms.test_remote:EchoDMS")
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(5)


def _row(quantity: str, value: float = 1.0) -> dict:
    return {"element": "bus:Bus 1", "quantity": quantity, "value": value, "source_t_s": 0.0,
            "delivery_t_s": 0.1, "sigma": 0.0}


def test_hello_and_steps(server, context):
    address = f"127.0.0.1:{server.port}"
    with RemoteDMS.connect(address, None, context, {"x": 1}) as dms:
        assert dms.info.as_dict() == {
            "class": "tests.dms.test_remote:EchoDMS", "version": "0.3",
            "api_version": API_VERSION, "params": {"x": 1},
            "transport": f"tcp://{address}"}
        assert (dms.API_VERSION, dms.VERSION) == (API_VERSION, "0.3")
        first = dms.step(5.0, [_row("vm_pu"), _row("p_mw")], [])
        assert first.commands == [{"id": "e-1", "target": "trafo:Trafo 0-1",
                                   "action": "set_tap", "value": 2.0, "source": "volt_var"}]
        assert first.decisions[0].reason == f"seed {context.seed}"
        assert first.next_call_s == math.inf
        second = dms.step(65.0, [], [{"id": "e-1", "status": "success", "applied_t_s": 6.0,
                                      "result_t_s": 6.5}])
        assert second.next_call_s == 65.0 + context.cycle_s
        assert second.decisions[0].inputs == {"n": 2, "outcomes": 1}


def test_several_connections_have_a_dms_each(server, context):
    address = f"127.0.0.1:{server.port}"
    a = RemoteDMS.connect(address, None, context, {})
    b = RemoteDMS.connect(address, None, context, {})
    try:
        a.step(5.0, [], [])
        a.step(6.0, [], [])
        assert b.step(5.0, [], []).commands[0]["id"] == "e-1"
    finally:
        a.close()
        b.close()


def test_an_error_in_the_vendor_s_step_is_an_exception_and_the_connection_stays(
        server, context):
    with RemoteDMS.connect(f"127.0.0.1:{server.port}", None, context, {}) as dms:
        with pytest.raises(RemoteDMSError, match="RuntimeError: boom at the vendor"):
            dms.step(5.0, [_row("boom")], [])
        assert dms.step(65.0, [], []).commands[0]["id"] == "e-1"
        # as the twin calls it: recorded as dms_error, called again at the next cycle
        guarded = GuardedDMS(dms, cycle_s=60.0, cycle_offset_s=5.0)
        out = guarded.step(125.0, [_row("boom")], [])
        assert out.records[0]["tags"]["kind"] == "dms_error"
        assert "RemoteDMSError: RuntimeError: boom" in out.records[0]["fields"]["message"]
        assert out.next_call_s == 185.0 and guarded.errors == 1


def test_the_class_asked_for_must_be_the_one_served(server, context):
    address = f"127.0.0.1:{server.port}"
    with pytest.raises(DMSLoadError, match=f"remote DMS at {address}: refused: this server "
                       "serves tests.dms.test_remote:EchoDMS; asked for other.py:OtherDMS"):
        RemoteDMS.connect(address, "other.py:OtherDMS", context, {})
    # the same class name by another path is the served one
    RemoteDMS.connect(address, "elsewhere/test_remote.py:EchoDMS", context, {}).close()


def test_a_constructor_s_failure_refuses_the_hello(server, context):
    with pytest.raises(DMSLoadError, match="refused: .*ValueError: refused by params"):
        RemoteDMS.connect(f"127.0.0.1:{server.port}", None, context, {"refuse": True})


def test_another_api_major_version_is_refused(context):
    srv = make_server(lambda c, p: OldDMS(c, p))
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05},
                     daemon=True).start()
    try:
        with pytest.raises(DMSLoadError, match="expected API_VERSION 1.x .*declares '0.9'"):
            RemoteDMS.connect(f"127.0.0.1:{srv.port}", None, context, {})
    finally:
        srv.shutdown()
        srv.server_close()


def test_a_class_of_another_api_major_version_is_not_served():
    with pytest.raises(DMSLoadError, match="API_VERSION"):
        make_server(OldDMS)


def test_nothing_listening_is_a_load_error_naming_the_address(context):
    with socket.socket() as s:  # a port that was free a moment ago
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DMSLoadError, match=f"remote DMS at 127.0.0.1:{port}: nothing "
                       "listens there"):
        RemoteDMS.connect(f"127.0.0.1:{port}", None, context, {})


def test_a_malformed_address_is_a_load_error(context):
    with pytest.raises(DMSLoadError, match="expected host:port"):
        RemoteDMS.connect("localhost", None, context, {})


def test_no_reply_in_time_is_a_load_error(context):
    with socket.socket() as silent:  # listens, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        with pytest.raises(DMSLoadError, match="no reply to hello within 0.3 s"):
            RemoteDMS.connect(f"127.0.0.1:{port}", None, context, {}, timeout_s=0.3)


def test_a_broken_connection_fails_this_step_and_every_later_one_at_once(server, context):
    dms = RemoteDMS.connect(f"127.0.0.1:{server.port}", None, context, {})
    dms._sock.shutdown(socket.SHUT_RDWR)  # the line goes down
    with pytest.raises(ConnectionError, match="remote DMS at"):
        dms.step(5.0, [], [])
    t0 = time.perf_counter()
    with pytest.raises(ConnectionError, match="connection lost earlier"):
        dms.step(65.0, [], [])
    assert time.perf_counter() - t0 < 0.1
    dms.close()


def test_a_step_without_reply_in_time_breaks_the_connection(server, context):
    dms = RemoteDMS.connect(f"127.0.0.1:{server.port}", None, context, {}, timeout_s=0.3)
    with pytest.raises(ConnectionError, match="no reply within 0.3 s at t = 5 s"):
        dms.step(5.0, [_row("slow")], [])
    with pytest.raises(ConnectionError, match="connection lost earlier"):
        dms.step(65.0, [], [])


def test_the_server_going_away_breaks_the_connection(context):
    srv = make_server(EchoDMS)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    dms = RemoteDMS.connect(f"127.0.0.1:{srv.port}", None, context, {})
    assert dms.step(5.0, [], []).commands
    srv.shutdown()
    srv.server_close()
    # the connection's thread still runs: end it as a dying server would
    dms._sock.shutdown(socket.SHUT_WR)
    with pytest.raises(ConnectionError):
        dms.step(65.0, [], [])


def test_protocol_errors_are_replied_and_the_connection_stays(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        f = s.makefile("rb")
        for request, expected in ((b"{nope\n", "invalid JSON"),
                                  (b'{"type": "step", "t_s": 1}\n', "hello before step"),
                                  (b'{"type": "dance"}\n', "hello, step or close"),
                                  (b'{"type": "hello", "protocol": 7}\n', "protocol 1")):
            s.sendall(request)
            reply = wire.decode(f.readline())
            assert reply["type"] == "error" and expected in reply["message"]
        s.sendall(b'{"type": "close"}\n')
        assert wire.decode(f.readline()) == {"type": "bye"}


def test_close_says_goodbye_and_collection_closes_the_socket(server, context):
    dms = RemoteDMS.connect(f"127.0.0.1:{server.port}", None, context, {})
    sock = dms._sock
    del dms
    import gc

    gc.collect()
    assert sock.fileno() == -1


def test_serve_module_starts_quickly_without_pandapower_or_mosaik():
    code = ("import sys, time; t = time.perf_counter(); import twin.dms.serve; "
            "print(time.perf_counter() - t, [m for m in ('pandapower', 'pandas', 'mosaik', "
            "'mosaik_api_v3') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split(maxsplit=1)
    assert float(out[0]) < 1.0 and out[1].strip() == "[]"


def test_forecast_arrives_as_a_table(server, context):
    seen = {}

    def factory(ctx, params):
        seen["forecast"] = ctx.forecast(300.0)
        return EchoDMS(ctx, params)

    srv = make_server(factory, name="factory:EchoDMS")
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05},
                     daemon=True).start()
    try:
        RemoteDMS.connect(f"127.0.0.1:{srv.port}", None, context, {}).close()
    finally:
        srv.shutdown()
        srv.server_close()
    for mine, theirs in zip(context.forecast(300.0), seen["forecast"]):
        np.testing.assert_array_equal(mine, theirs)
