"""The twin's side of a DMS served out of process (``dms.remote: "host:port"``): a
:class:`RemoteDMS` is a DMS of the interface (:mod:`twin.dms.api`) whose ``step`` is a
request over TCP to a DMS server — ``python -m twin.dms.serve CLASS`` (:mod:`twin.dms.serve`)
or a vendor's own implementation of ``docs/dms-protocol.md``.

Rules
-----
* :meth:`RemoteDMS.connect` opens the connection, sends hello with the DMS's database
  (:func:`twin.dms.wire.context_to_json`) and waits for ready; nothing listening, a
  refused class, another protocol or API major version and no reply in time are each a
  :class:`~twin.dms.api.DMSLoadError` of one line naming the address.
* :meth:`RemoteDMS.step` is one request, one reply. An error reply raises
  :class:`RemoteDMSError` (the connection stays; the DMS is called again at its next
  cycle). A broken connection or no reply within ``timeout_s`` (60 s by default) raises
  :class:`ConnectionError`, and every later step raises it at once: a reply that comes
  late can no longer be matched to its request. :class:`~twin.dms.api.GuardedDMS`
  records either as a ``dms_error`` event and the run goes on.
* :meth:`RemoteDMS.close` says goodbye and closes the socket; it also happens when the
  object is collected or the interpreter exits.
"""

from __future__ import annotations

import socket
import weakref
from typing import Any

from twin.dms import wire
from twin.dms.api import (
    API_VERSION,
    CommandOutcome,
    DMSContext,
    DMSInfo,
    DMSLoadError,
    DMSStep,
    TelemetryRow,
)

#: Wait at most this long for a reply, hello's included (the server builds the DMS then) [s].
TIMEOUT_S = 60.0
#: Wait at most this long to connect [s].
CONNECT_TIMEOUT_S = 10.0
#: Wait at most this long for the goodbye when closing [s].
CLOSE_TIMEOUT_S = 2.0


class RemoteDMSError(RuntimeError):
    """The remote DMS replied to a step with an error."""


def parse_address(address: str) -> tuple[str, int]:
    """``"host:port"`` (``"[::1]:port"`` for IPv6) as (host, port); a ValueError saying
    what was expected otherwise."""
    host, sep, port = str(address).rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected host:port (port 1-65535); found {address!r}")
    return host, int(port)


class RemoteDMS:
    """A DMS in another process, reached over TCP. Make it with :meth:`connect`.

    Attributes
    ----------
    info : DMSInfo
        Class, version and API version as the server reports them, the params as sent,
        transport ``tcp://host:port``.
    API_VERSION, VERSION : str
        The server's API version and the DMS's own version.
    address : str
    timeout_s : float
        The longest wait for a reply [s].
    """

    API_VERSION = API_VERSION
    VERSION = ""

    def __init__(self, sock: socket.socket, address: str, info: DMSInfo,
                 timeout_s: float = TIMEOUT_S) -> None:
        self._sock = sock
        self._reader = sock.makefile("rb")
        self.address, self.info, self.timeout_s = address, info, timeout_s
        self.API_VERSION, self.VERSION = info.api_version, info.version
        self._broken: str | None = None
        self._closer = weakref.finalize(self, _goodbye, sock, self._reader)

    @classmethod
    def connect(cls, address: str, cls_path: str | None, context: DMSContext,
                params: dict[str, Any], timeout_s: float = TIMEOUT_S) -> RemoteDMS:
        """Connect to the DMS server at ``address`` and have it make its DMS from
        ``context`` and ``params``; ``cls_path`` asks for a class (None: whatever the
        server serves). A :class:`~twin.dms.api.DMSLoadError` of one line if that fails."""
        where = f"remote DMS at {address}"
        try:
            host, port = parse_address(address)
        except ValueError as exc:
            raise DMSLoadError(f"{where}: {exc}") from None
        try:
            request = wire.encode(wire.hello(cls_path, params, context, API_VERSION))
        except (TypeError, ValueError) as exc:
            raise DMSLoadError(f"{where}: the hello cannot be encoded: {exc}") from None
        try:
            sock = socket.create_connection((host, port),
                                            timeout=min(timeout_s, CONNECT_TIMEOUT_S))
        except ConnectionRefusedError:
            raise DMSLoadError(f"{where}: nothing listens there (connection refused); "
                               "start it with `python -m twin.dms.serve CLASS --port "
                               f"{port}`") from None
        except TimeoutError:
            raise DMSLoadError(f"{where}: no connection within "
                               f"{min(timeout_s, CONNECT_TIMEOUT_S):g} s") from None
        except OSError as exc:
            raise DMSLoadError(f"{where}: cannot connect: {exc}") from None
        reader = None
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.settimeout(timeout_s)
            reader = sock.makefile("rb")
            reply = _exchange(sock, reader, request)
        except TimeoutError:
            _goodbye(sock, reader)
            raise DMSLoadError(f"{where}: no reply to hello within {timeout_s:g} s") from None
        except (OSError, wire.ProtocolError) as exc:
            _goodbye(sock, reader)
            raise DMSLoadError(f"{where}: hello failed: {exc}") from None
        kind = reply.get("type")
        problem = None
        if kind == "error":
            problem = f"refused: {reply.get('message', '(no message)')}"
        elif kind != "ready":
            problem = f"expected a ready reply to hello; found type {kind!r}"
        elif reply.get("protocol", wire.PROTOCOL_VERSION) != wire.PROTOCOL_VERSION:
            problem = (f"expected protocol {wire.PROTOCOL_VERSION}; the server speaks "
                       f"{reply.get('protocol')!r}")
        elif str(reply.get("api_version", "")).split(".")[0] != API_VERSION.split(".")[0]:
            problem = (f"expected API_VERSION {API_VERSION.split('.')[0]}.x (this twin speaks "
                       f"{API_VERSION}); the server's DMS declares "
                       f"{reply.get('api_version')!r}")
        if problem is not None:
            _goodbye(sock, reader, polite=kind == "ready")
            raise DMSLoadError(f"{where}: {problem}")
        reader.close()  # the instance makes its own
        info = DMSInfo(cls=str(reply.get("class") or cls_path or ""),
                       version=str(reply.get("version") or ""),
                       api_version=str(reply["api_version"]), params=dict(params),
                       transport=f"tcp://{address}")
        return cls(sock, address, info, timeout_s)

    def step(self, t_s: float, telemetry: list[TelemetryRow],
             outcomes: list[CommandOutcome]) -> DMSStep:
        """One step of the remote DMS (see the module's rules for errors)."""
        if self._broken is not None:
            raise ConnectionError(f"remote DMS at {self.address}: connection lost earlier "
                                  f"({self._broken})")
        request = wire.encode(wire.step_request(t_s, telemetry, outcomes))
        try:
            reply = _exchange(self._sock, self._reader, request)
        except TimeoutError:
            self._break(f"no reply within {self.timeout_s:g} s at t = {t_s:g} s")
        except (OSError, wire.ProtocolError) as exc:
            self._break(f"{type(exc).__name__}: {exc} at t = {t_s:g} s")
        if reply.get("type") == "error":
            raise RemoteDMSError(str(reply.get("message", "(no message)")))
        return wire.step_from_reply(reply)

    def close(self) -> None:
        """Say goodbye and close the connection (the server drops its DMS). Idempotent."""
        self._broken = self._broken or "closed"
        self._closer()

    def __enter__(self) -> RemoteDMS:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _break(self, reason: str):
        self._broken = reason
        self._closer.detach()
        _goodbye(self._sock, self._reader, polite=False)
        raise ConnectionError(f"remote DMS at {self.address}: {reason}")


def _exchange(sock: socket.socket, reader, request: bytes) -> dict:
    """Send one request, read one reply (EOF: a ConnectionError)."""
    sock.sendall(request)
    line = reader.readline()
    if not line:
        raise ConnectionError("the server closed the connection")
    return wire.decode(line)


def _goodbye(sock: socket.socket, reader, polite: bool = True) -> None:
    """Send close, wait briefly for bye, close the socket; never raises."""
    try:
        if polite:
            sock.settimeout(CLOSE_TIMEOUT_S)
            sock.sendall(wire.encode({"type": "close"}))
            if reader is not None:
                reader.readline()
    except (OSError, ValueError):
        pass
    finally:
        try:
            if reader is not None:
                reader.close()
            sock.close()
        except OSError:
            pass
