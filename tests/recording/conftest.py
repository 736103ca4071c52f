"""Fixtures for the recording tests: sample points, a tiny HTTP server, the real InfluxDB."""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Iterator
from urllib.parse import parse_qs, urlsplit

import pytest

from twin.recording.schema import FieldValue, Point

T0_NS = 1_704_067_200_000_000_000  # 2024-01-01T00:00:00Z
STEP_NS = 900 * 10**9  # 15 min


def sample_points(steps: int = 20, run: str = "run 1") -> list[Point]:
    """Mixed points like the recorder produces, with every awkward case mixed in.

    Several measurements; fields that come and go (as NaN ones are dropped); all four value
    types; names and tags needing escapes; one optional tag (``kind``). Each field keeps one
    type per measurement, as InfluxDB requires. ``(measurement, tags, time)`` is unique.
    """
    elements = ["Bus 0", "Bus,1", "Bus=2", 'Bus "3"', "Umspannwerk Süd", "C:\\grid\\4", "a b,c=d"]
    points: list[Point] = []
    for step in range(steps):
        t = T0_NS + step * STEP_NS
        for index, element in enumerate(elements):
            tags = {"run": run, "element": element}
            bus: dict[str, FieldValue] = {
                "vm_pu": 1.0 + index * 1e-3 + step * 1e-5,
                "va_degree": -0.1 * step,
            }
            if (step + index) % 3:
                bus["p_mw"] = float(step * index)  # integral floats must stay floats (e.g. 0.0)
            points.append(Point("bus", t, dict(tags), bus))
            line: dict[str, FieldValue] = {
                "loading_percent": 12.5 * index + step,
                "in_service": step % 4 != 1,
            }
            if index % 2:
                line["i ka,max=x"] = 1e-05 * (index + 1)
            points.append(Point("line", t, dict(tags), line))
            trafo: dict[str, FieldValue] = {"tap_pos": step - index}
            if step % 5 == 0:
                trafo["big_int"] = 2**62 + step
                trafo["huge_float"] = 1e20 * (index + 1)
            points.append(Point("trafo", t, dict(tags), trafo))
        if step % 4 == 0:
            points.append(
                Point(
                    "event",
                    t,
                    {"run": run, "element": "grid", "kind": "power flow"},
                    {
                        "message": f'step {step}: "diverged" at C:\\pf, after 10 iterations',
                        "code": -step,
                    },
                )
            )
            points.append(
                Point(
                    "my meas,ure",
                    t,
                    {"run": run, "element": "x", "tag key,=": "v"},
                    {"f": -0.5, "ok": True},
                )
            )
    return points


def point_key(point: Point) -> tuple[object, ...]:
    """Sort key that makes point lists comparable regardless of order."""
    return (point.measurement, point.time_ns, sorted(point.tags.items()))


@pytest.fixture
def make_points() -> Callable[..., list[Point]]:
    """:func:`sample_points` as a fixture (test modules cannot import this conftest reliably)."""
    return sample_points


@pytest.fixture
def sort_points() -> Callable[[list[Point]], list[Point]]:
    """Sort points by measurement, time, tags, so lists from different stores compare equal."""
    return lambda points: sorted(points, key=point_key)


@pytest.fixture
def typed() -> Callable[[list[Point]], list[tuple[object, ...]]]:
    """Points as comparable tuples whose fields include the value's type.

    Plain ``==`` treats ``1 == 1.0 == True``; this makes a float coming back as an int fail.
    """
    return lambda points: [
        (p.measurement, p.time_ns, p.tags, {k: (type(v), v) for k, v in p.fields.items()})
        for p in points
    ]


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


Responder = Callable[[Request], tuple[int, bytes]]


@dataclass
class FakeServer:
    """A loopback HTTP server whose answers come from ``respond``; records every request."""

    url: str
    respond: Responder
    httpd: ThreadingHTTPServer
    requests: list[Request] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopped: bool = False

    def stop(self) -> None:
        """Stop listening: from now on connections to ``url`` are refused."""
        if not self.stopped:
            self.stopped = True
            self.httpd.shutdown()
            self.httpd.server_close()

    def writes(self) -> list[Request]:
        """Write requests carrying points (not the empty write that checks the database)."""
        with self.lock:
            return [r for r in self.requests if r.path.endswith("/write") and r.body]


def default_responder(request: Request) -> tuple[int, bytes]:
    """Answer like an InfluxDB 1.x server that accepts everything."""
    if request.path == "/query":
        return 200, b'{"results":[{"statement_id":0}]}'
    if request.path == "/ping":
        return 204, b""
    return 204, b""


@pytest.fixture
def fake_server() -> Iterator[Callable[..., FakeServer]]:
    """Factory: ``fake_server(respond)`` starts a server on 127.0.0.1; stopped after the test."""
    servers: list[FakeServer] = []

    def start(respond: Responder = default_responder) -> FakeServer:
        holder: dict[str, FakeServer] = {}

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                request = Request(
                    method=self.command,
                    path=parts.path,
                    query={
                        k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()
                    },
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=self.rfile.read(length),
                )
                server = holder["server"]
                with server.lock:
                    server.requests.append(request)
                status, body = server.respond(request)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if body:
                    self.wfile.write(body)

            do_GET = do_POST = _handle

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass  # keep test output clean

        httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        httpd.daemon_threads = True
        url = f"http://127.0.0.1:{httpd.server_address[1]}"
        server = FakeServer(url=url, respond=respond, httpd=httpd)
        servers.append(server)
        holder["server"] = server
        # A short poll interval keeps stop() (and so each test) fast.
        threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        ).start()
        return holder["server"]

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def closed_port_url() -> str:
    """URL of a loopback port nobody listens on (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
