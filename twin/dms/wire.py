"""The DMS interface as JSON messages (``docs/dms-protocol.md``): pure encoding and
decoding, no sockets. :mod:`twin.dms.remote` (the twin's side) and :mod:`twin.dms.serve`
(a DMS's side, in Python) speak it over TCP; a DMS in another language implements the
same messages.

Messages are JSON objects with a ``type``, one per line (UTF-8, ``\\n``-terminated); each
request has exactly one reply::

    hello  {"type": "hello", "protocol": 1, "api_version": "1.0", "class": …, "params": …,
            "context": …}          → {"type": "ready", …} or {"type": "error", "message": …}
    step   {"type": "step", "t_s": …, "telemetry": […], "outcomes": […]}
                                   → {"type": "step", "commands": …, "decisions": …,
                                      "records": …, "next_call_s": …} or error
    close  {"type": "close"}       → {"type": "bye"}

Notes
-----
JSON has no infinity or NaN: every number that is not finite travels as ``null``.
``next_call_s`` null means infinity (no wish to be called); a telemetry value, sigma or
time null is restored as NaN on the Python side; elsewhere (decision values and inputs,
record fields) null stays None, which the recorder drops as it drops NaN.

The network model travels as pandapower's JSON text (``pandapower.to_json``). That text
keeps 15 digits and pandas reads it back with a fast, not exactly rounding parser; the
values that would not come back exactly are sent beside it (``net_exact``), so the model
a remote DMS decodes equals the twin's bit for bit.

The forecast travels as a table sampled every ``step_s`` over [0, ``duration_s``] (the
interval widened to a multiple of ``step_s`` for very long runs, at most
:data:`MAX_FORECAST_VALUES` values); the decoded :class:`TableForecast` returns the sample
at or before the time asked for. The twin's own forecast changes its load factors
continuously, so between samples a remote DMS sees the value of the last sample.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from twin.dms.api import (
    DeviceInfo,
    DMSContext,
    DMSStep,
    PointInfo,
    decision_as_dict,
)
from twin.dms.decisions import Decision

#: The message protocol's version (sent in hello and ready). A peer speaking another
#: protocol version is refused; the DMS interface's own version is ``api_version``.
PROTOCOL_VERSION = 1

#: At most this many forecast values (rows × (loads + generators)) travel in a context.
MAX_FORECAST_VALUES = 2_000_000

#: Telemetry fields restored as NaN when they arrive as null.
_TELEMETRY_FLOATS = ("value", "source_t_s", "delivery_t_s", "sigma")


class ProtocolError(ValueError):
    """A message that is not what the protocol says."""


# ----------------------------------------------------------------- framing
def encode(message: Mapping[str, Any]) -> bytes:
    """``message`` as one line of UTF-8 JSON (non-finite numbers as null, numpy scalars
    and arrays as numbers and lists); a TypeError for a value JSON cannot hold."""
    return (json.dumps(plain(message), allow_nan=False, ensure_ascii=False,
                       separators=(",", ":")) + "\n").encode("utf-8")


def decode(line: bytes | str) -> dict:
    """One line as a message: a JSON object with a string ``type``; a
    :class:`ProtocolError` otherwise."""
    try:
        message = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"expected one JSON object per line; found invalid JSON ({exc})"
                            ) from None
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise ProtocolError("expected a JSON object with a string 'type'; found "
                            f"{str(message)[:80]!r}")
    return message


def plain(value: Any) -> Any:
    """``value`` with tuples as lists, numpy values as Python ones and every non-finite
    float as None: what :func:`json.dumps` writes as strict JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return [plain(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        return plain(value.item())
    raise TypeError(f"expected JSON-like values (numbers, strings, lists, mappings); found "
                    f"{type(value).__name__}")


def error(message: str) -> dict:
    """An error reply."""
    return {"type": "error", "message": str(message)}


# ----------------------------------------------------------------- the context
def context_to_json(context: DMSContext) -> dict:
    """The DMS's database as a JSON object (see the module notes)."""
    import pandapower as pp  # the twin's side only

    net = context.net
    text = pp.to_json(net, indent=None)
    return {
        "net": text,
        "net_exact": _exact_floats(net, pp.from_json_string(text)),
        "rtus": [{"name": name, "scan_period_s": float(period),
                  "points": [_point(p) for p in points]}
                 for name, period, points in context.rtus],
        "devices": [{"ref": d.ref, "element": d.element, "actions": list(d.actions),
                     "rtu": d.rtu, "manual": bool(d.manual)} for d in context.devices],
        "forecast": forecast_table(context.forecast, context.step_s, context.duration_s),
        "band_pu": [float(context.band_pu[0]), float(context.band_pu[1])],
        "start_utc": context.start_utc,
        "step_s": float(context.step_s),
        "duration_s": float(context.duration_s),
        "cycle_s": float(context.cycle_s),
        "cycle_offset_s": float(context.cycle_offset_s),
        "seed": int(context.seed),
        "manual_switches": list(context.manual_switches),
        "switch_ratings": {name: [_number(b), _number(m)]
                           for name, (b, m) in context.switch_ratings.items()},
    }


def context_from_json(data: Mapping[str, Any]) -> DMSContext:
    """The :class:`~twin.dms.api.DMSContext` a context object describes; its ``net`` is
    decoded (with pandapower) when first used. A :class:`ProtocolError` names a missing
    key."""
    try:
        rtus = tuple((str(r["name"]), float(r["scan_period_s"]),
                      tuple(PointInfo(rtu=str(p["rtu"]), point=str(p["point"]),
                                      element=str(p["element"]), quantity=str(p["quantity"]),
                                      sigma=_float(p["sigma"]),
                                      scan_period_s=float(p["scan_period_s"]))
                            for p in r["points"]))
                     for r in data["rtus"])
        devices = tuple(DeviceInfo(ref=str(d["ref"]), element=str(d["element"]),
                                   actions=tuple(d["actions"]), rtu=d["rtu"],
                                   manual=bool(d.get("manual", False)))
                        for d in data["devices"])
        f = data["forecast"]
        forecast = TableForecast(np.asarray(f["times_s"], dtype=float),
                                 _table(f["load_factor"]), _table(f["sgen_factor"]))
        return RemoteContext(
            net=_NetText(data["net"], data.get("net_exact") or {}), rtus=rtus,
            devices=devices, forecast=forecast,
            band_pu=(float(data["band_pu"][0]), float(data["band_pu"][1])),
            start_utc=str(data["start_utc"]), step_s=float(data["step_s"]),
            duration_s=float(data["duration_s"]), cycle_s=float(data["cycle_s"]),
            cycle_offset_s=float(data["cycle_offset_s"]), seed=int(data["seed"]),
            manual_switches=tuple(data.get("manual_switches") or ()),
            switch_ratings={str(k): (_opt(v[0]), _opt(v[1]))
                            for k, v in (data.get("switch_ratings") or {}).items()})
    except KeyError as exc:
        raise ProtocolError(f"context: expected the key {exc.args[0]!r}; found none") from None


class RemoteContext(DMSContext):
    """A :class:`~twin.dms.api.DMSContext` whose network model is decoded from its
    pandapower JSON text on first use (so a DMS that never looks at it needs no
    pandapower)."""

    @property
    def net(self):
        if isinstance(self._net, _NetText):
            self._net = self._net.load()
        return self._net

    @net.setter
    def net(self, value) -> None:
        self._net = value


class _NetText:
    """pandapower JSON text and the exact values of the floats it rounds."""

    def __init__(self, text: str, exact: Mapping[str, Mapping[str, list]]) -> None:
        self.text, self.exact = text, exact

    def load(self):
        import pandapower as pp

        net = pp.from_json_string(self.text)
        for table, columns in self.exact.items():
            frame = net[table]
            for column, pairs in columns.items():
                rows = [int(k) for k, _ in pairs]
                col = frame.columns.get_loc(column)
                for row, (_, value) in zip(rows, pairs):
                    frame.iat[row, col] = float(value)
        return net


def _exact_floats(net, decoded) -> dict[str, dict[str, list]]:
    """{table: {column: [[row position, value], …]}} of the finite floats of ``net`` that
    ``decoded`` (``net`` through pandapower's JSON, which writes 15 digits and reads them
    back with pandas' fast parser) does not hold exactly."""
    import pandas as pd

    out: dict[str, dict[str, list]] = {}
    for table, frame in net.items():
        other = decoded.get(table)
        if not isinstance(frame, pd.DataFrame) or frame.empty or not isinstance(
                other, pd.DataFrame) or other.shape != frame.shape:
            continue
        for k, column in enumerate(frame.columns):
            if frame[column].dtype.kind != "f" or other.columns[k] != column:
                continue
            values = frame[column].to_numpy(dtype=float)
            back = other[column].to_numpy(dtype=float)
            differ = np.nonzero(np.isfinite(values) & (values != back))[0]
            if len(differ):
                out.setdefault(table, {})[str(column)] = [[int(i), float(values[i])]
                                                          for i in differ]
    return out


def _point(p: PointInfo) -> dict:
    return {"rtu": p.rtu, "point": p.point, "element": p.element, "quantity": p.quantity,
            "sigma": _number(p.sigma), "scan_period_s": float(p.scan_period_s)}


def _number(v) -> float | None:
    return None if v is None or not math.isfinite(float(v)) else float(v)


def _opt(v) -> float | None:
    return None if v is None else float(v)


def _float(v) -> float:
    return math.nan if v is None else float(v)


def _table(rows) -> np.ndarray:
    return np.array([[_float(v) for v in row] for row in rows], dtype=float).reshape(
        len(rows), -1)


# ----------------------------------------------------------------- the forecast
def forecast_table(forecast, step_s: float, duration_s: float) -> dict:
    """``forecast`` sampled every ``step_s`` over [0, ``duration_s``] [s]: ``{"times_s":
    [...], "load_factor": [[per load] per time], "sgen_factor": [[per sgen] per time]}``;
    the interval is a multiple of ``step_s``, widened so at most
    :data:`MAX_FORECAST_VALUES` values travel."""
    load0, sgen0 = forecast(0.0)
    width = max(1, len(load0) + len(sgen0))
    n = int(math.floor(duration_s / step_s + 1e-9)) + 1
    every = max(1, math.ceil(n * width / MAX_FORECAST_VALUES))
    times = [k * every * step_s for k in range(0, (n - 1) // every + 1)]
    loads, sgens = [], []
    for t in times:
        load_f, sgen_f = forecast(t) if t else (load0, sgen0)
        loads.append(plain(np.asarray(load_f, dtype=float)))
        sgens.append(plain(np.asarray(sgen_f, dtype=float)))
    return {"times_s": times, "load_factor": loads, "sgen_factor": sgens}


class TableForecast:
    """A forecast given as a table: ``forecast(t_s)`` is the row at or before ``t_s``
    (the first row before the first time).

    Parameters
    ----------
    times_s : numpy.ndarray
        Sample times, ascending [s since the start].
    load_factor, sgen_factor : numpy.ndarray
        One row per time: factors per row of ``net.load`` and ``net.sgen`` [-].
    """

    def __init__(self, times_s: np.ndarray, load_factor: np.ndarray,
                 sgen_factor: np.ndarray) -> None:
        if len(times_s) == 0 or len(load_factor) != len(times_s) or len(sgen_factor) != len(
                times_s):
            raise ProtocolError("forecast: expected one row of load and sgen factors per "
                                f"time; found {len(times_s)} times, {len(load_factor)} and "
                                f"{len(sgen_factor)} rows")
        self.times_s, self.load_factor, self.sgen_factor = times_s, load_factor, sgen_factor

    def __call__(self, t_s: float) -> tuple[np.ndarray, np.ndarray]:
        row = max(int(np.searchsorted(self.times_s, t_s, side="right")) - 1, 0)
        return self.load_factor[row].copy(), self.sgen_factor[row].copy()


# ----------------------------------------------------------------- hello and step
def hello(cls_path: str | None, params: Mapping[str, Any], context: DMSContext,
          api_version: str) -> dict:
    """The first request of a connection."""
    return {"type": "hello", "protocol": PROTOCOL_VERSION, "api_version": api_version,
            "class": cls_path, "params": dict(params), "context": context_to_json(context)}


def ready(cls_path: str, version: str, api_version: str) -> dict:
    """hello's reply when the DMS is made."""
    return {"type": "ready", "protocol": PROTOCOL_VERSION, "class": cls_path,
            "version": version, "api_version": api_version}


def step_request(t_s: float, telemetry: list, outcomes: list) -> dict:
    """A step request: the time [s since the start] and what arrived since the last one."""
    return {"type": "step", "t_s": float(t_s), "telemetry": plain(telemetry),
            "outcomes": plain(outcomes)}


def request_from_json(message: Mapping[str, Any]) -> tuple[float, list[dict], list[dict]]:
    """(t_s, telemetry, outcomes) of a step request; null telemetry numbers as NaN."""
    try:
        t_s = float(message["t_s"])
        telemetry = [dict(row) for row in message.get("telemetry") or ()]
        outcomes = [dict(o) for o in message.get("outcomes") or ()]
    except (KeyError, TypeError, ValueError) as exc:
        raise ProtocolError(f"step: expected t_s (a number), telemetry and outcomes (lists "
                            f"of objects); {type(exc).__name__}: {exc}") from None
    for row in telemetry:
        for key in _TELEMETRY_FLOATS:
            if key in row and row[key] is None:
                row[key] = math.nan
    return t_s, telemetry, outcomes


def step_reply(result: DMSStep) -> dict:
    """A step's reply: ``next_call_s`` infinity (and any non-finite number) as null."""
    return {"type": "step", "commands": plain(list(result.commands)),
            "decisions": plain([decision_as_dict(d) if isinstance(d, Decision) else d
                                for d in result.decisions]),
            "records": plain(list(result.records)),
            "next_call_s": plain(float(result.next_call_s)
                                 if result.next_call_s is not None else None)}


def step_from_reply(message: Mapping[str, Any]) -> DMSStep:
    """The :class:`~twin.dms.api.DMSStep` a step reply carries (``next_call_s`` null:
    infinity); decisions with every key become :class:`~twin.dms.decisions.Decision`,
    anything else is left for :func:`twin.dms.api.checked_step` to refuse."""
    if message.get("type") != "step":
        raise ProtocolError(f"expected a step reply; found type {message.get('type')!r}")
    nxt = message.get("next_call_s")
    return DMSStep(commands=list(message.get("commands") or ()),
                   decisions=[_decision(d) for d in message.get("decisions") or ()],
                   records=list(message.get("records") or ()),
                   next_call_s=math.inf if nxt is None else nxt)


def _decision(d: Any) -> Any:
    keys = ("t_s", "function", "action", "target", "value", "mode", "reason")
    if not isinstance(d, Mapping) or not all(k in d for k in keys):
        return d
    return Decision(t_s=float(d["t_s"]), function=d["function"], action=d["action"],
                    target=d["target"], value=None if d["value"] is None else float(d["value"]),
                    mode=d["mode"], reason=d["reason"], inputs=dict(d.get("inputs") or {}))
