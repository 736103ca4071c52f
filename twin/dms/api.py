"""The DMS interface (API version 1): what any DMS plugged into the twin is given and must
return. ``docs/dms-api.md`` is its user documentation; the built-in DMS
(:class:`twin.dms.builtin.BuiltinDMS`) implements exactly this, as does the example
rule-book DMS (``examples/rule_based_dms.py``) and, over TCP, :mod:`twin.dms.remote`.

A DMS is a class::

    class MyDMS:
        API_VERSION = "1.0"          # the interface it was written for
        VERSION = "2.3.1"            # its own version (recorded with every run)

        def __init__(self, context: DMSContext, params: dict): ...
        def step(self, t_s, telemetry, outcomes) -> DMSStep: ...

``context`` is what a DMS's database holds — its network model as the utility knows it
(never the simulated truth), its RTUs and their points, the devices it may command, its
load and generation forecast — and ``params`` the scenario's ``dms.params``. The twin
calls :meth:`step` first at ``dms.cycle_offset``, then whenever the DMS asked to be called
(``next_call_s``) and whenever telemetry or command outcomes arrive at a step the DMS
runs; it hands over what arrived since the last call. The DMS returns the commands it
sends (they travel the command path: RTU link, latency, loss, device), its decisions (each
recorded with its reason, DESIGN rule 3), optional records of its own (estimates, notes)
and when it wants to be called next.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NotRequired, Protocol, TypedDict, runtime_checkable

import numpy as np

from twin.dms.decisions import COMMAND_ACTIONS, Decision
from twin.recording.schema import DMS_DECISION, MEASUREMENTS, event_record

#: The interface version this twin speaks. A DMS declaring another major version is
#: refused at the start of a run; a newer minor version of the twin only adds.
API_VERSION = "1.0"


class TelemetryRow(TypedDict):
    """One delivered value, as the DMS reads it.

    ``element`` is the grid element, ``"<table>:<name>"`` as the DMS's network model names
    it (``"bus:Bus 1"``, ``"load:EV Bus 10"``); ``quantity`` what is measured (``vm_pu``,
    ``p_mw``, ``closed``, ``tap_pos``, ``tripped``, …); ``value`` in the quantity's unit
    (1.0/0.0 for states); ``source_t_s`` the scan time and ``delivery_t_s`` the arrival
    [s since the start]; ``sigma`` the meter's standard deviation in the quantity's unit
    (0 for states). ``rtu`` and ``point`` (the point's display name) say where it came
    from and are not needed to use it.
    """

    element: str
    quantity: str
    value: float
    source_t_s: float
    delivery_t_s: float
    sigma: float
    rtu: NotRequired[str]
    point: NotRequired[str]


class CommandOutcome(TypedDict):
    """How one command ended, as the field reports it.

    ``id`` is the command's id (the DMS's own, as it sent it); ``status`` ``"success"``,
    ``"failed"`` or ``"timeout"``; ``applied_t_s`` when the device accepted it (None if it
    did not) and ``result_t_s`` when the outcome became known [s since the start].
    Outcomes of other senders' commands (operator commands of the scenario) come too.
    """

    id: str
    status: Literal["success", "failed", "timeout"]
    applied_t_s: float | None
    result_t_s: float
    target: NotRequired[str]
    action: NotRequired[str]
    value: NotRequired[object]
    sent_t_s: NotRequired[float]
    reason: NotRequired[str]
    via: NotRequired[str]


class Command(TypedDict):
    """A command for the field: ``id`` unique among the DMS's commands (its outcome comes
    back with it), ``target`` a device reference of :attr:`DMSContext.devices`
    (``"trafo:Trafo 0-1"``, ``"pv:Solar A"``), ``action`` one the device takes (``open``,
    ``close``, ``set_tap``, ``set_step``, ``set_q``, ``set_p_limit``, ``set_p``,
    ``set_ev_limit``, ``repair``), ``value`` its set-point (None for switching),
    ``source`` the DMS function that decided it."""

    id: str
    target: str
    action: str
    value: float | None
    source: str


@dataclass(frozen=True)
class PointInfo:
    """One telemetry point of an RTU, as the DMS's database lists it."""

    rtu: str
    point: str        # its display name (the ``point`` of a :class:`TelemetryRow`)
    element: str      # "<table>:<name>" in the network model
    quantity: str
    sigma: float      # the meter's standard deviation in the quantity's unit (0: a state)
    scan_period_s: float


@dataclass(frozen=True)
class DeviceInfo:
    """A device the DMS may command: ``ref`` is the command's ``target``, ``element`` the
    network model's element it acts on, ``actions`` the command actions it takes, ``rtu``
    the RTU carrying its commands (None: only a crew reaches it), ``manual`` whether a crew
    must operate it (slow: travel and work time)."""

    ref: str
    element: str
    actions: tuple[str, ...]
    rtu: str | None
    manual: bool = False


class Forecast(Protocol):
    """The DMS's forecast: ``forecast(t_s)`` → (load factors per row of ``net.load``,
    generation factors per row of ``net.sgen``), each to be multiplied with the model's
    ``p_mw``/``q_mvar`` (typical daily profiles and a clear-sky PV estimate, not truth)."""

    def __call__(self, t_s: float) -> tuple[np.ndarray, np.ndarray]: ...


@dataclass
class DMSContext:
    """What a DMS starts with: its database. ``net`` is its own copy (change it at will).

    Attributes
    ----------
    net : pandapowerNet
        The network model as the utility knows it: normal switch states, nameplate data,
        the loads' and generators' rated powers. Never the simulated state.
    rtus : tuple of (name, scan period [s], tuple of PointInfo)
        Use :attr:`points` for the flat list.
    devices : tuple of DeviceInfo
    forecast : Forecast
    band_pu : (low, high)
        The voltage band the utility operates to [p.u.].
    start_utc : str
        ISO 8601 time of t = 0.
    step_s, duration_s : float
        The grid's step and the run's length [s].
    cycle_s, cycle_offset_s : float
        The scenario's DMS cycle and first call [s] (``dms.cycle``, ``dms.cycle_offset``).
    seed : int
        The run's seed, for a DMS that draws random numbers (use
        ``numpy.random.default_rng(seed)``: same seed, same run).
    manual_switches : tuple of str
        Switch names only a crew can operate.
    switch_ratings : dict
        Switch name → (breaking current, making current) [kA].
    """

    net: Any
    rtus: tuple[tuple[str, float, tuple[PointInfo, ...]], ...]
    devices: tuple[DeviceInfo, ...]
    forecast: Forecast
    band_pu: tuple[float, float]
    start_utc: str
    step_s: float
    duration_s: float
    cycle_s: float
    cycle_offset_s: float
    seed: int
    manual_switches: tuple[str, ...] = ()
    switch_ratings: dict[str, tuple[float, float]] = field(default_factory=dict)

    @property
    def points(self) -> list[PointInfo]:
        """Every telemetry point of every RTU."""
        return [p for _, _, points in self.rtus for p in points]


@dataclass
class DMSStep:
    """What one call of ``step`` returns.

    Attributes
    ----------
    commands : list of Command
        To send through the field, in order.
    decisions : list of Decision
        What the DMS decided and why (recorded as ``dms_decision``; advisory decisions
        have no command).
    records : list of dict
        Further records of the DMS's own (``dms_estimate``, ``dms_cycle``,
        ``dms_short_circuit`` measurements; see :mod:`twin.recording.schema`). Optional.
    next_call_s : float
        When to call next [s since the start]; ``math.inf``: only when something arrives.
        At or before now: as soon as possible (the next tick).
    """

    commands: list[Command] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    records: list[dict] = field(default_factory=list)
    next_call_s: float = math.inf


@runtime_checkable
class DMS(Protocol):
    """The interface (see the module notes)."""

    API_VERSION: str
    VERSION: str

    def step(self, t_s: float, telemetry: list[TelemetryRow],
             outcomes: list[CommandOutcome]) -> DMSStep: ...


#: The built-in DMS, what ``dms.class`` defaults to.
BUILTIN_CLASS = "twin.dms.builtin:BuiltinDMS"


class DMSLoadError(ValueError):
    """A DMS class that cannot be found or does not implement the interface."""


def load_dms_class(spec: str, search: tuple[Path, ...] = ()) -> type:
    """The class named by ``spec``: ``"package.module:Class"`` or ``"path/file.py:Class"``.

    A file path is taken as given, else relative to each folder of ``search`` (the
    scenario's folder); a module not on the path is looked for there too. Raises
    :class:`DMSLoadError` saying what was expected and what was found.
    """
    where, sep, name = spec.rpartition(":")
    if not sep or not where or not name.isidentifier():
        raise DMSLoadError(f"expected 'package.module:Class' or 'file.py:Class'; found {spec!r}")
    if where.endswith(".py"):
        module = _module_from_file(where, search, spec)
    else:
        module = _import(where, search, spec)
    cls = getattr(module, name, None)
    if not isinstance(cls, type):
        raise DMSLoadError(f"expected a class {name!r} in {where}; found "
                           f"{'nothing' if cls is None else type(cls).__name__}")
    check_dms_class(cls, spec)
    return cls


def check_dms_class(cls: type, spec: str = "") -> None:
    """Refuse a class that cannot be a DMS of this interface version."""
    label = spec or cls.__qualname__
    if not callable(getattr(cls, "step", None)):
        raise DMSLoadError(f"{label}: expected a method step(t_s, telemetry, outcomes); "
                           "found none")
    declared = str(getattr(cls, "API_VERSION", ""))
    if declared.split(".")[0] != API_VERSION.split(".")[0]:
        raise DMSLoadError(f"{label}: expected API_VERSION {API_VERSION.split('.')[0]}.x "
                           f"(this twin speaks {API_VERSION}); found {declared or 'none'!r}")


def _module_from_file(where: str, search: tuple[Path, ...], spec: str):
    candidates = [Path(where)] + [base / where for base in search]
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        raise DMSLoadError(f"expected a Python file {where!r} (as given or next to the "
                           f"scenario); found none")
    name = f"_twin_dms_{abs(hash(str(path.resolve())))}"
    if name in sys.modules:
        return sys.modules[name]
    module_spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    try:
        module_spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise DMSLoadError(f"{spec}: importing {path} failed: {type(exc).__name__}: "
                           f"{exc}") from None
    return module


def _import(where: str, search: tuple[Path, ...], spec: str):
    try:
        return importlib.import_module(where)
    except ModuleNotFoundError as exc:
        if exc.name is None or not where.startswith(exc.name):
            raise DMSLoadError(f"{spec}: importing {where} failed: {exc}") from None
    except Exception as exc:
        raise DMSLoadError(f"{spec}: importing {where} failed: {type(exc).__name__}: "
                           f"{exc}") from None
    # not on the path: the working directory and the scenario's folder
    for base in (Path.cwd(), *search):
        if not (base / Path(*where.split("."))).with_suffix(".py").is_file() and not (
                base / Path(*where.split(".")) / "__init__.py").is_file():
            continue
        sys.path.insert(0, str(base))
        try:
            return importlib.import_module(where)
        except Exception as exc:
            raise DMSLoadError(f"{spec}: importing {where} failed: {type(exc).__name__}: "
                               f"{exc}") from None
        finally:
            sys.path.remove(str(base))
    raise DMSLoadError(f"expected an importable module {where!r} (installed, or in the "
                       "working directory or the scenario's folder); found none")


# ------------------------------------------------------------------- a guarded DMS
#: Keys a decision given as a mapping must have.
DECISION_KEYS = ("function", "action", "target", "value", "mode", "reason")
#: Command actions a device takes (the field's).
FIELD_ACTIONS = frozenset(COMMAND_ACTIONS.values())


@dataclass
class DMSInfo:
    """What ``run.json``, ``kpis.json`` and the report say about the DMS that ran."""

    cls: str
    version: str
    api_version: str
    params: dict
    transport: str = "in-process"

    def as_dict(self) -> dict:
        return {"class": self.cls, "version": self.version, "api_version": self.api_version,
                "params": self.params, "transport": self.transport}


class GuardedDMS:
    """A DMS as the twin calls it: each result checked, an error in ``step`` recorded as an
    event (``dms_error``) and survived — the run goes on; the DMS is called again at its
    next cycle. Nothing it returns can reach the recorder unchecked.

    Parameters
    ----------
    dms : DMS
    cycle_s, cycle_offset_s : float
        The scenario's DMS cycle: when to call again after an error.
    """

    def __init__(self, dms, cycle_s: float, cycle_offset_s: float) -> None:
        self.dms, self.cycle_s, self.cycle_offset_s = dms, cycle_s, cycle_offset_s
        self.errors = 0

    def step(self, t_s: float, telemetry: list[TelemetryRow],
             outcomes: list[CommandOutcome]) -> DMSStep:
        try:
            result = self.dms.step(t_s, telemetry, outcomes)
            return checked_step(result, t_s)
        except Exception as exc:  # a DMS's bug must not end the run
            self.errors += 1
            message = f"{type(exc).__name__}: {exc}"[:500]
            k = math.floor((t_s - self.cycle_offset_s) / self.cycle_s) + 1
            return DMSStep(records=[event_record(t_s, "dms", "dms_error", message)],
                           next_call_s=self.cycle_offset_s + max(k, 0) * self.cycle_s)


def checked_step(result: object, t_s: float) -> DMSStep:
    """``result`` as a :class:`DMSStep` whose every part is well-formed; a TypeError or
    ValueError saying what is wrong otherwise."""
    if not isinstance(result, DMSStep):
        raise TypeError(f"step() must return a DMSStep; returned {type(result).__name__}")
    commands = [_command(c, k) for k, c in enumerate(result.commands)]
    decisions = [_decision(d, k, t_s) for k, d in enumerate(result.decisions)]
    records = [_record(r, k) for k, r in enumerate(result.records)]
    nxt = result.next_call_s
    if nxt is None:
        nxt = math.inf
    if not isinstance(nxt, (int, float)) or math.isnan(nxt):
        raise ValueError(f"next_call_s must be a number (inf: no wish); found {nxt!r}")
    return DMSStep(commands, decisions, records, float(nxt))


def _command(c: object, k: int) -> Command:
    if not isinstance(c, Mapping):
        raise TypeError(f"commands[{k}] must be a mapping; found {type(c).__name__}")
    missing = [key for key in ("id", "target", "action") if key not in c]
    if missing:
        raise ValueError(f"commands[{k}] lacks {missing}")
    if c["action"] not in FIELD_ACTIONS:
        raise ValueError(f"commands[{k}].action must be one of {sorted(FIELD_ACTIONS)}; "
                         f"found {c['action']!r}")
    value = c.get("value")
    if value is not None and not (isinstance(value, (int, float)) and math.isfinite(value)):
        raise ValueError(f"commands[{k}].value must be a finite number or None; found "
                         f"{value!r}")
    return {"id": str(c["id"]), "target": str(c["target"]), "action": str(c["action"]),
            "value": None if value is None else float(value),
            "source": str(c.get("source", "dms"))}


def _decision(d: object, k: int, t_s: float) -> Decision:
    if isinstance(d, Decision):
        return d
    if not isinstance(d, Mapping):
        raise TypeError(f"decisions[{k}] must be a Decision or a mapping; found "
                        f"{type(d).__name__}")
    missing = [key for key in DECISION_KEYS if key not in d]
    if missing:
        raise ValueError(f"decisions[{k}] lacks {missing}")
    value = d["value"]
    inputs = d.get("inputs") or {}
    if not isinstance(inputs, Mapping):
        raise TypeError(f"decisions[{k}].inputs must be a mapping")
    return Decision(t_s=float(d.get("t_s", t_s)), function=str(d["function"]),
                    action=str(d["action"]), target=str(d["target"]),
                    value=None if value is None else float(value), mode=str(d["mode"]),
                    reason=str(d["reason"]), inputs=dict(inputs))


def _record(r: object, k: int) -> dict:
    if not isinstance(r, Mapping) or not {"measurement", "t_s", "tags", "fields"} <= set(r):
        raise ValueError(f"records[{k}] must be a mapping with measurement, t_s, tags, "
                         "fields")
    m = r["measurement"]
    if m not in MEASUREMENTS or not str(m).startswith("dms_") or m == DMS_DECISION:
        raise ValueError(f"records[{k}].measurement must be a dms_ measurement of the "
                         f"schema other than {DMS_DECISION} (decisions go in decisions); "
                         f"found {m!r}")
    return {"measurement": m, "t_s": float(r["t_s"]), "tags": dict(r["tags"]),
            "fields": dict(r["fields"])}


def decision_as_dict(d: Decision) -> dict:
    """A decision as plain data (the wire format and :func:`checked_step`'s input)."""
    return {"t_s": d.t_s, "function": d.function, "action": d.action, "target": d.target,
            "value": d.value, "mode": d.mode, "reason": d.reason, "inputs": dict(d.inputs)}


def create_dms(cls: type, context: DMSContext, params: dict) -> Any:
    """An instance of ``cls``, its constructor's failure as a :class:`DMSLoadError`."""
    try:
        return cls(context, dict(params))
    except Exception as exc:
        raise DMSLoadError(f"{cls.__module__}:{cls.__qualname__}({{params}}) failed: "
                           f"{type(exc).__name__}: {exc}") from None


#: What a caller passes to build the DMS inside the simulator: () -> (instance, info).
DMSFactory = Callable[[], tuple[Any, DMSInfo]]
