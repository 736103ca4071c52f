"""Serve a DMS of the interface (:mod:`twin.dms.api`) over TCP, for twins to connect to
(``dms.remote: "host:port"``; the protocol: ``docs/dms-protocol.md``)::

    python -m twin.dms.serve examples/rule_based_dms.py:RuleBasedDMS --port 7654

prints ``dms-serve: listening on HOST:PORT`` once it listens and serves until SIGINT or
SIGTERM. In a script: ``serve(MyDMS, port=7654)``.

Rules
-----
* One DMS per connection, a thread per connection: several runs (a parallel compare) may
  connect at once; each hello makes a new DMS from that run's context and params.
* hello asks for a class (or null: whatever is served); a class whose name differs from
  the served one is refused with an error reply (the path may differ: it is the twin's).
* An exception in the DMS's ``step`` (or a result that is not a well-formed
  :class:`~twin.dms.api.DMSStep`) is replied as ``{"type": "error"}``; the connection and
  the DMS stay. The traceback goes to stderr.
* This module needs only the standard library, numpy and the DMS interface: pandapower is
  imported when the DMS first reads ``context.net``; mosaik never.
"""

from __future__ import annotations

import argparse
import signal
import socket
import socketserver
import sys
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twin.dms import wire
from twin.dms.api import API_VERSION, DMSLoadError, check_dms_class, checked_step

#: A DMS class, or a factory ``(context, params) -> DMS``.
Factory = Callable[[Any, dict], Any]


class DMSServer(socketserver.ThreadingTCPServer):
    """A threading TCP server making one DMS per connection with ``factory``.

    Parameters
    ----------
    factory : class or callable
        ``factory(context, params)`` → a DMS (a class of the interface, usually).
    address : (host, port)
        Port 0: any free port (see :attr:`port`).
    name : str, optional
        The class path reported in ready (default ``module:Class`` of ``factory``).
    once : bool
        Stop serving after the first connection ends.
    """

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, factory: Factory, address: tuple[str, int] = ("127.0.0.1", 0),
                 name: str | None = None, once: bool = False) -> None:
        if isinstance(factory, type):
            check_dms_class(factory, name or "")
        self.factory = factory
        self.name = name or f"{factory.__module__}:{factory.__qualname__}"
        self.once = once
        super().__init__(address, _Connection)

    @property
    def host(self) -> str:
        return str(self.server_address[0])

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def accepts(self, cls_path: str | None) -> bool:
        """Whether a hello asking for ``cls_path`` gets the served DMS: None, the served
        path, or the same class name."""
        if cls_path is None or cls_path == self.name:
            return True
        return str(cls_path).rpartition(":")[2] == self.name.rpartition(":")[2]

    def connection_ended(self) -> None:
        if self.once:
            threading.Thread(target=self.shutdown, daemon=True).start()


class _Connection(socketserver.StreamRequestHandler):
    """One twin's connection: hello → DMS, step …, close."""

    server: DMSServer

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.dms = None

    def handle(self) -> None:
        try:
            while True:
                line = self.rfile.readline()
                if not line:
                    return
                try:
                    message = wire.decode(line)
                except wire.ProtocolError as exc:
                    self.send(wire.error(str(exc)))
                    continue
                kind = message["type"]
                if kind == "close":
                    self.send({"type": "bye"})
                    return
                reply = self.hello(message) if kind == "hello" else self.step(
                    message) if kind == "step" else wire.error(
                    f"expected a message of type hello, step or close; found {kind!r}")
                self.send(reply)
        except OSError:
            return  # the twin went away
        finally:
            self.dms = None
            self.server.connection_ended()

    def hello(self, message: dict) -> dict:
        server = self.server
        protocol = message.get("protocol")
        if protocol != wire.PROTOCOL_VERSION:
            return wire.error(f"expected protocol {wire.PROTOCOL_VERSION}; found {protocol!r}")
        api = str(message.get("api_version", ""))
        if api.split(".")[0] != API_VERSION.split(".")[0]:
            return wire.error(f"expected a twin of API {API_VERSION.split('.')[0]}.x (this "
                              f"server speaks {API_VERSION}); found {api!r}")
        asked = message.get("class")
        if not server.accepts(asked):
            return wire.error(f"this server serves {server.name}; asked for {asked}")
        try:
            context = wire.context_from_json(message["context"])
            params = message.get("params") or {}
            if not isinstance(params, dict):
                raise TypeError(f"params must be an object; found {type(params).__name__}")
            dms = server.factory(context, dict(params))
        except Exception as exc:
            _log(f"hello from {self.peer}: {server.name} could not be made:\n"
                 + traceback.format_exc())
            return wire.error(f"{server.name}({{params}}) failed: {type(exc).__name__}: {exc}")
        self.dms = dms
        _log(f"connection from {self.peer}: {server.name} made")
        return wire.ready(server.name, str(getattr(dms, "VERSION", "")),
                          str(getattr(dms, "API_VERSION", API_VERSION)))

    def step(self, message: dict) -> dict:
        if self.dms is None:
            return wire.error("expected hello before step")
        try:
            t_s, telemetry, outcomes = wire.request_from_json(message)
        except wire.ProtocolError as exc:
            return wire.error(str(exc))
        try:
            result = checked_step(self.dms.step(t_s, telemetry, outcomes), t_s)
            reply = wire.step_reply(result)
            wire.encode(reply)  # JSON-able, or the error below
            return reply
        except Exception as exc:
            _log(f"step at t = {t_s:g} s for {self.peer}:\n" + traceback.format_exc())
            return wire.error(f"{type(exc).__name__}: {exc}"[:2000])

    def send(self, message: dict) -> None:
        self.wfile.write(wire.encode(message))
        self.wfile.flush()

    @property
    def peer(self) -> str:
        host, port = self.client_address[:2]
        return f"{host}:{port}"


def _log(text: str) -> None:
    print(f"dms-serve: {text}", file=sys.stderr, flush=True)


def make_server(factory_or_class: Factory, host: str = "127.0.0.1", port: int = 0,
                name: str | None = None, once: bool = False) -> DMSServer:
    """A :class:`DMSServer` bound and listening (not yet serving: call its
    ``serve_forever``, stop it with ``shutdown``)."""
    return DMSServer(factory_or_class, (host, port), name=name, once=once)


def serve(factory_or_class: Factory, host: str = "127.0.0.1", port: int = 0,
          ready: Callable[[str, int], None] | None = None, once: bool = False,
          name: str | None = None) -> None:
    """Serve ``factory_or_class`` (a DMS class, or ``factory(context, params)``) on
    ``host:port`` (port 0: any free one) until SIGINT/SIGTERM (in the main thread), or
    after the first connection with ``once``. ``ready(host, port)`` is called once it
    listens; ``name`` is the class path reported to the twin."""
    server = make_server(factory_or_class, host, port, name=name, once=once)
    restore = _stop_on_signals(server)
    try:
        if ready is not None:
            ready(server.host, server.port)
        server.serve_forever(poll_interval=0.2)
    finally:
        restore()
        server.server_close()


def _stop_on_signals(server: DMSServer) -> Callable[[], None]:
    """SIGINT and SIGTERM shut ``server`` down (main thread only); the undo."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def stop(signum, frame) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    old = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    return lambda: [signal.signal(s, h) for s, h in old.items()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m twin.dms.serve",
        description="Serve a DMS class over TCP for twins to connect to (dms.remote).")
    parser.add_argument("cls", metavar="CLASS",
                        help="'package.module:Class' or 'path/file.py:Class'")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1; 0.0.0.0: all)")
    parser.add_argument("--port", type=int, default=0, help="port (default 0: any free one)")
    parser.add_argument("--once", action="store_true",
                        help="stop after the first connection ends")
    args = parser.parse_args(argv)
    from twin.dms.api import load_dms_class

    try:
        cls = load_dms_class(args.cls, (Path.cwd(),))
    except DMSLoadError as exc:
        _log(f"error: {exc}")
        return 2
    try:
        serve(cls, args.host, args.port, once=args.once, name=args.cls,
              ready=lambda h, p: print(f"dms-serve: listening on {h}:{p}", flush=True))
    except OSError as exc:
        _log(f"error: cannot listen on {args.host}:{args.port}: {exc}")
        return 2
    _log("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
