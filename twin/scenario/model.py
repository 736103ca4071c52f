"""The scenario file: one YAML file explains one whole run.

Validated by the pydantic model :class:`Scenario`; ``twin schema`` prints its JSON Schema.
:func:`load_scenario` turns any problem into one :class:`ScenarioError` that names the file,
the key path, what was expected and what was found.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from twin.scenario.base import Name, OffsetSeconds, Seconds
from twin.scenario.base import Strict as _Strict
from twin.scenario.dms import DMSSpec
from twin.scenario.expectations import ExpectationsSpec
from twin.scenario.faults import FaultSpecModel, ProtectionSpec, ReliabilitySpec
from twin.scenario.field import (
    BatteriesSpec,
    CommandSpec,
    CrewSpecModel,
    DevicesSpec,
    EVFleetSpecModel,
    RTUSpecModel,
)
from twin.scenario.frequency import FrequencySpec
from twin.timebase import Clock, short_repr

#: Bounds a scenario is checked against before anything is built. Years: well inside the
#: range of pandas' timestamps (1677–2262), with room for a 10-year run. Steps: 10 million
#: grid steps (19 years of minutes) is far beyond any useful run, and each step costs a power
#: flow and a row in every profile. Durations are at most 10 years (twin.timebase).
MIN_START_YEAR, MAX_START_YEAR = 1900, 2200
MAX_STEPS = 10_000_000


# --------------------------------------------------------------------------- grid
class GridSpec(_Strict):
    """Exactly one of ``builtin``, ``simbench`` or ``file``."""

    builtin: Literal["cigre_mv", "paper_flisr", "paper_load_management"] | None = Field(
        None, description="A built-in grid: 'cigre_mv' (CIGRE MV with PV, wind and storage); "
        "'paper_flisr', 'paper_load_management' (the DMS paper's three-load cases)."
    )
    simbench: str | None = Field(None, description="A SimBench code, e.g. '1-MV-rural--0-sw'.")
    file: str | None = Field(
        None, description="A pandapower net saved as JSON; relative to the scenario file."
    )
    solver: Literal["auto", "pandapower", "power-grid-model"] = Field(
        "auto", description="The power-flow backend. 'auto': power-grid-model where it models "
        "every element of the grid (about 10x faster per step; results equal to pandapower's "
        "within 1e-6 p.u.), else pandapower; run.json says which ran and why.",
    )

    @model_validator(mode="after")
    def _one_source(self) -> "GridSpec":
        given = [k for k in ("builtin", "simbench", "file") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "exactly one of 'builtin', 'simbench', 'file'; found "
                + (", ".join(given) if given else "none")
            )
        return self


# --------------------------------------------------------------------------- profiles
class ProfilesSpec(_Strict):
    source: Literal["synthetic", "simbench"] = Field(
        "synthetic",
        description="'synthetic': seeded daily shapes by load type; 'simbench': the SimBench "
        "profiles of the grid's elements (needs a 'simbench' grid).",
    )
    load_scaling: float = Field(1.0, ge=0, description="Factor on every load's P and Q.")
    sgen_scaling: float = Field(
        1.0, ge=0, description="Factor on profile-driven generators (not the PV/wind plants)."
    )
    noise: float = Field(
        0.03, ge=0, le=0.5, description="Relative σ of the seeded load noise (synthetic only)."
    )


# --------------------------------------------------------------------------- DER plants
class PVPlantSpec(_Strict):
    name: Name
    sgen: str | None = Field(None, description="Name of an existing sgen this plant drives.")
    bus: str | None = Field(None, description="Bus name for a new plant.")
    p_peak_kw: float | None = Field(None, gt=0, description="DC peak power [kW].")
    s_inverter_kva: float | None = Field(None, gt=0, description="Inverter limit [kVA].")
    tilt_deg: float | None = Field(None, ge=0, le=90)
    azimuth_deg: float | None = Field(None, ge=0, lt=360, description="180 = south.")

    @model_validator(mode="after")
    def _where(self) -> "PVPlantSpec":
        if (self.sgen is None) == (self.bus is None):
            raise ValueError("exactly one of 'sgen' (existing) or 'bus' (new plant)")
        if self.bus is not None and self.p_peak_kw is None:
            raise ValueError("a new plant (with 'bus') needs 'p_peak_kw'")
        return self


class PVSpec(_Strict):
    attach_existing: bool = Field(
        True, description="Model every existing sgen of type PV with the defaults below."
    )
    tilt_deg: float = Field(30.0, ge=0, le=90)
    azimuth_deg: float = Field(180.0, ge=0, lt=360)
    dc_ac_ratio: float = Field(1.1, gt=0, description="DC peak / inverter rating.")
    scaling: float = Field(
        1.0, ge=0, description="Factor on every PV plant the twin models (attached sgens and "
        "the plants below): DC peak and inverter rating, so output, curtailment and reactive "
        "capability scale alike. profiles.sgen_scaling scales only the generators no model "
        "drives; the two never apply to the same sgen.")
    plants: list[PVPlantSpec] = []


class WindPlantSpec(_Strict):
    name: Name
    sgen: str | None = None
    bus: str | None = None
    p_rated_kw: float | None = Field(None, gt=0)
    hub_height_m: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _where(self) -> "WindPlantSpec":
        if (self.sgen is None) == (self.bus is None):
            raise ValueError("exactly one of 'sgen' (existing) or 'bus' (new plant)")
        if self.bus is not None and self.p_rated_kw is None:
            raise ValueError("a new plant (with 'bus') needs 'p_rated_kw'")
        return self


class WindSpec(_Strict):
    attach_existing: bool = Field(True, description="Model every existing sgen of type WP.")
    hub_height_m: float = Field(100.0, gt=0)
    shear_exponent: float = Field(0.14, ge=0, le=0.6)
    scaling: float = Field(
        1.0, ge=0, description="Factor on every wind plant the twin models (attached sgens "
        "and the plants below): the rated power, so output and curtailment scale alike. "
        "profiles.sgen_scaling scales only the generators no model drives; the two never "
        "apply to the same sgen.")
    plants: list[WindPlantSpec] = []


# --------------------------------------------------------------------------- weather
class WeatherSpec(_Strict):
    source: Literal["synthetic", "csv"] = "synthetic"
    csv: str | None = Field(None, description="CSV file (relative to the scenario file).")
    latitude_deg: float = Field(52.5, ge=-90, le=90)
    longitude_deg: float = Field(13.4, ge=-180, le=180)
    altitude_m: float = 40.0
    cloud_cover: float = Field(0.3, ge=0, le=1, description="Mean cloudiness, 0 = clear.")
    cloud_variability: float = Field(0.5, ge=0, le=1)
    wind_mean_m_s: float = Field(6.0, ge=0)
    temp_min_c: float = 8.0
    temp_max_c: float = 18.0

    @model_validator(mode="after")
    def _csv(self) -> "WeatherSpec":
        if self.source == "csv" and not self.csv:
            raise ValueError("source 'csv' needs 'csv: <file>'")
        if self.temp_min_c > self.temp_max_c:
            raise ValueError(f"temp_min_c ≤ temp_max_c; found temp_min_c {self.temp_min_c:g}, "
                             f"temp_max_c {self.temp_max_c:g}")
        return self


# --------------------------------------------------------------------------- recording
class InfluxSpec(_Strict):
    url: str = Field(..., description="e.g. http://127.0.0.1:8086")
    api: Literal["v1", "v2"] = "v1"
    database: str | None = Field(None, description="v1: database name.")
    username: str | None = Field(None, description="v1: user (optional).")
    password_env: str | None = Field(
        None, description="v1: NAME of the environment variable holding the password."
    )
    bucket: str | None = Field(None, description="v2: bucket.")
    org: str | None = Field(None, description="v2: organisation.")
    token_env: str | None = Field(
        None, description="v2: NAME of the environment variable holding the token."
    )
    batch_size: int = Field(10_000, gt=0, description="Points per write request (InfluxDB takes "
                            "fewer, larger requests faster: +30 % from 5,000 to 10,000 here).")
    retries: int = Field(4, ge=0, description="Retries of a failed write before spilling.")
    backoff_s: float = Field(0.5, ge=0, description="First retry delay; doubles each retry.")

    @model_validator(mode="before")
    @classmethod
    def _no_secrets(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in ("password", "token"):
                if key in data:
                    raise ValueError(
                        f"secrets do not belong in a scenario file: replace '{key}' by "
                        f"'{key}_env: <NAME of an environment variable>'"
                    )
        return data

    @model_validator(mode="after")
    def _per_api(self) -> "InfluxSpec":
        if self.api == "v1" and not self.database:
            raise ValueError("api 'v1' needs 'database'")
        if self.api == "v2" and not (self.bucket and self.org and self.token_env):
            raise ValueError("api 'v2' needs 'bucket', 'org' and 'token_env'")
        return self


class RecordingSpec(_Strict):
    store: Literal["files", "influx"] = "files"
    influx: InfluxSpec | None = None
    elements: Literal["auto", "all", "summary"] | list[str] = Field(
        "auto", description="Which grid elements' rows are recorded: 'all' (every element "
        "at every solve), 'summary' (the grid summary, the rows of elements outside the "
        "voltage band or above 100 % loading at each solve, and each bus's min/max voltage "
        "and each line's and transformer's highest loading over the run, written at its "
        "end) or a list of refs like ['bus:Bus 3', 'line:Line 1-2'] (the summary plus these "
        "elements). 'auto': 'all' for grids up to 1,000 buses, 'summary' above. KPIs always "
        "see every element.")
    every: Seconds | None = Field(
        None, description="Record the grid's element tables only every this long, e.g. "
        "'15min' (a whole multiple of 'step'); the summary, violations and events are "
        "recorded at every solve. Default: every solve.")

    @model_validator(mode="after")
    def _influx(self) -> "RecordingSpec":
        if self.store == "influx" and self.influx is None:
            raise ValueError("store 'influx' needs an 'influx:' section with at least 'url'")
        return self


class KpiSpec(_Strict):
    voltage_band_pu: tuple[float, float] = Field(
        (0.95, 1.05), description="Allowed bus voltage band [p.u.]."
    )
    warmup: OffsetSeconds | None = Field(
        None, description="The KPIs that judge operation (voltage-violation and overload "
        "minutes, min/max bus voltage, max line/trafo loading) count from this time on, e.g. "
        "'10min'; energies, counts and reliability indices cover the whole run. Default: "
        "the first grid step after the DMS's first cycle (dms.cycle_offset) when the DMS is "
        "enabled — the first state its commands can reach — else 0.")

    @field_validator("voltage_band_pu")
    @classmethod
    def _ordered(cls, band: tuple[float, float]) -> tuple[float, float]:
        if not 0 < band[0] < band[1]:
            raise ValueError("two numbers, low < high, e.g. [0.95, 1.05]")
        return band


# --------------------------------------------------------------------------- scenario
class Scenario(_Strict):
    """One whole run of the twin."""

    name: str = Field(..., pattern=r"^[A-Za-z0-9_.-]+$", description="Letters, digits, _ . -")
    description: str = ""
    start: datetime = Field(..., description="ISO 8601 (a string or a YAML date/time); "
                            "without a zone it is UTC; in the years 1900 to 2200.")
    duration: Seconds = Field(..., description="e.g. '1d', '6h', 'PT30M' or seconds; at most "
                              "10 years and 10 million steps.")
    step: Seconds = Field(60.0, description="Grid (power flow) step, e.g. '1min'.")
    time_resolution: float = Field(
        1.0, ge=0.001, description="Seconds per mosaik tick (0.01 resolves tens of ms); at "
        "least 1 ms."
    )
    seed: int = Field(..., ge=0, strict=True, description="A whole number ≥ 0.")
    grid: GridSpec
    profiles: ProfilesSpec = ProfilesSpec()
    pv: PVSpec = PVSpec()
    wind: WindSpec = WindSpec()
    weather: WeatherSpec = WeatherSpec()
    devices: DevicesSpec = DevicesSpec()
    ev_fleet: EVFleetSpecModel = EVFleetSpecModel()
    batteries: BatteriesSpec = BatteriesSpec()
    rtus: list[RTUSpecModel] = []
    crews: CrewSpecModel = CrewSpecModel()
    dms: DMSSpec = DMSSpec()
    commands: list[CommandSpec] = Field(
        [], description="Operator commands sent at given times through the command path.")
    faults: list[FaultSpecModel] = Field([], description="Faults injected into the grid.")
    frequency: FrequencySpec = FrequencySpec()
    protection: ProtectionSpec = ProtectionSpec()
    reliability: ReliabilitySpec = ReliabilitySpec()
    recording: RecordingSpec = RecordingSpec()
    kpis: KpiSpec = KpiSpec()
    expectations: ExpectationsSpec = ExpectationsSpec()

    @field_validator("start", mode="before")
    @classmethod
    def _iso(cls, value: Any) -> Any:
        # pydantic would read a number (or a string of digits) as seconds since 1970
        if isinstance(value, datetime):
            return value
        if isinstance(value, date):  # YAML `start: 2026-06-21`
            return datetime(value.year, value.month, value.day)
        if isinstance(value, str) and re.match(r"\s*[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
            return value
        raise ValueError("an ISO 8601 date and time like '2026-06-21T00:00:00Z'; found "
                         + short_repr(value))

    @field_validator("start")
    @classmethod
    def _utc(cls, start: datetime) -> datetime:
        if start.tzinfo is None:
            start = start.replace(tzinfo=timezone.utc)
        if not MIN_START_YEAR <= start.year <= MAX_START_YEAR:  # before converting: it may overflow
            raise ValueError(f"a start in the years {MIN_START_YEAR} to {MAX_START_YEAR}; "
                             f"found {start.isoformat()}")
        return start.astimezone(timezone.utc)

    @model_validator(mode="after")
    def _ticks(self) -> "Scenario":
        if self.duration / self.step > MAX_STEPS:
            raise ValueError(f"at most {MAX_STEPS:,} steps (duration / step); found "
                             f"{self.duration / self.step:,.0f}")
        clock = self.clock
        step_ticks = clock.ticks(self.step)  # raises with a clear message
        dur_ticks = clock.ticks(self.duration)
        if dur_ticks % step_ticks:
            raise ValueError(
                f"duration ({self.duration:g} s) is not a whole number of steps ({self.step:g} s)"
            )
        names = [r.name for r in self.rtus]
        if len(set(names)) != len(names):
            raise ValueError(f"unique RTU names; found {names}")
        if self.profiles.source == "simbench" and self.grid.simbench is None:
            raise ValueError("profiles.source 'simbench' needs a 'grid: {simbench: <code>}'")
        return self

    @property
    def clock(self) -> Clock:
        return Clock(self.start, self.time_resolution)

    @property
    def step_ticks(self) -> int:
        return self.clock.ticks(self.step)

    @property
    def n_steps(self) -> int:
        return round(self.duration / self.step)


# --------------------------------------------------------------------------- loading
class ScenarioError(Exception):
    """A scenario file that cannot be used; the message says where and why."""


#: What a message echoes: at most this many problems, each value cut to 80 characters
#: (twin.timebase.short_repr), each line to MAX_LINE characters — a huge or malicious input
#: must not flood the terminal.
MAX_PROBLEMS = 20
MAX_LINE = 400
#: What a YAML file may hold: anchors and aliases expanding into more values than this (a
#: "billion laughs" file) or deeper nesting are refused before they are built.
MAX_YAML_NODES = 100_000
MAX_YAML_DEPTH = 100
#: The largest scenario file read (the shipped ones are a few kB).
MAX_FILE_BYTES = 10_000_000


def _cut(text: str, limit: int = MAX_LINE) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _loc(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif isinstance(item, str) and not item.startswith("function-"):
            parts.append(("." if parts else "") + _cut(item, 80))
    return "".join(parts) or "(top level)"


def _describe(error: dict[str, Any]) -> str:
    kind = error["type"]
    found = error.get("input")
    if kind == "missing":
        return "required key is missing"
    if kind == "extra_forbidden":
        return f"unknown key (found {found!r})"
    msg = error["msg"]
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix):]
    if kind == "value_error":
        text = f"expected {msg}"
    else:
        text = f"expected: {msg[0].lower() + msg[1:]}"
    if found is not None and not isinstance(found, dict) and "found" not in text:
        text += f"; found {short_repr(found)}"
    return text


def format_validation_error(source: str, exc: ValidationError) -> str:
    """One line per problem: ``file: key.path: expected …; found …``; the first
    :data:`MAX_PROBLEMS` problems and a count of the rest."""
    errors = exc.errors()
    lines = [_cut(f"{source}: {_loc(err['loc'])}: {_describe(err)}")
             for err in errors[:MAX_PROBLEMS]]
    if len(errors) > MAX_PROBLEMS:
        lines.append(f"{source}: … and {len(errors) - MAX_PROBLEMS} more problems")
    return "\n".join(lines)


def parse_scenario(data: Any, source: str = "<scenario>") -> Scenario:
    if not isinstance(data, dict):
        raise ScenarioError(
            f"{source}: (top level): expected a mapping of keys (name, start, …); "
            f"found {type(data).__name__}"
        )
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(format_validation_error(source, exc)) from None
    except RecursionError:  # data not from load_scenario, which bounds the nesting
        raise ScenarioError(f"{source}: (top level): expected at most {MAX_YAML_DEPTH} levels "
                            "of nesting; found deeper") from None


class _Refused(Exception):
    """YAML that parses but is refused; the message starts with where (a line)."""


class _Loader(yaml.SafeLoader):
    """Safe YAML that refuses a key given twice in one mapping: YAML requires unique keys,
    and PyYAML would silently keep the last one."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                continue  # merge keys (<<) may be overridden; odd keys fail in the base class
            key = self.construct_object(key_node)
            line = key_node.start_mark.line + 1
            try:
                if key in seen:
                    raise _Refused(f"line {line}: expected each key once in a mapping; "
                                        f"found {short_repr(key)} on lines {seen[key]} and {line}")
                seen[key] = line
            except TypeError:  # unhashable: the base class says so
                pass
        return super().construct_mapping(node, deep=deep)

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except ValueError as exc:  # `2026-13-01`, an int of 5000 digits, …
            found = short_repr(node.value) if isinstance(node, yaml.ScalarNode) else node.tag
            raise _Refused(f"line {node.start_mark.line + 1}: expected a valid "
                           f"{node.tag.rpartition(':')[2]}; found {found} ({exc})") from None


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def _expanded_size(root: yaml.Node) -> tuple[int, int]:
    """(values, depth) of ``root`` with every alias expanded, counted without expanding:
    an aliased node is one object, measured once. _Refused for a recursive alias."""
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:  # iterative: a deep file must not exhaust Python's stack here
        node, done = stack.pop()
        key = id(node)
        if done:
            on_path.discard(key)
            kids = _children(node)
            size[key] = 1 + sum(size[id(c)] for c in kids)
            depth[key] = 1 + max((depth[id(c)] for c in kids), default=0)
            continue
        if key in size:
            continue
        on_path.add(key)
        stack.append((node, True))
        for child in _children(node):
            if id(child) in on_path:
                raise _Refused(f"line {child.start_mark.line + 1}: expected no recursive "
                                 "aliases; found an alias inside its own anchor")
            if id(child) not in size:
                stack.append((child, False))
    return size[id(root)], depth[id(root)]


def _load_yaml(text: str, source: str) -> Any:
    """``text`` as YAML, or one ScenarioError saying where and why; refuses duplicate keys,
    anchors and aliases that expand beyond :data:`MAX_YAML_NODES` values and nesting deeper
    than :data:`MAX_YAML_DEPTH`."""
    loader = None
    try:
        loader = _Loader(text)  # checks the characters: ReaderError
        node = loader.get_single_node()
        if node is None:
            return None
        values, depth = _expanded_size(node)
        if values > MAX_YAML_NODES:
            raise _Refused(f"(top level): expected at most {MAX_YAML_NODES:,} values after "
                             f"expanding anchors and aliases; found {values:,}")
        if depth > MAX_YAML_DEPTH:
            raise _Refused(f"(top level): expected at most {MAX_YAML_DEPTH} levels of "
                             f"nesting; found {depth}")
        return loader.construct_document(node)
    except _Refused as exc:
        raise ScenarioError(_cut(f"{source}: {exc}")) from None
    except RecursionError:  # composing is recursive: nesting of thousands of levels
        raise ScenarioError(f"{source}: (top level): expected at most {MAX_YAML_DEPTH} levels "
                            "of nesting; found deeper") from None
    except yaml.reader.ReaderError as exc:
        raise ScenarioError(f"{source}: character {exc.position + 1}: expected printable "
                            f"text; found {short_repr(chr(exc.character))}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(parse)"
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ScenarioError(_cut(f"{source}: {where}: expected valid YAML; found {problem}")) \
            from None
    finally:
        if loader is not None:
            loader.dispose()


_STEP = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def override_path(path: str) -> list[str | int]:
    """``"rtus[1].link.loss_prob"`` (or ``"rtus.1.link.loss_prob"``) → ``["rtus", 1,
    "link", "loss_prob"]``; ValueError for anything else (``a..b``, ``a[x]``, ``[1]``)."""
    steps: list[str | int] = []
    for part in path.split("."):
        found = [(m.group(1), m.group(2)) for m in _STEP.finditer(part)]
        if not part or "".join(k or f"[{i}]" for k, i in found) != part \
                or (found and found[0][0] is None):
            raise ValueError(f"a key path such as dms.volt_var.mode or rtus[1].scan_period; "
                             f"found {short_repr(path)}")
        for key, index in found:
            steps.append(int(key) if key is not None and key.isdigit() and steps
                         else key if key is not None else int(index))
    return steps


def apply_overrides(data: dict, overrides: list[str], source: str) -> dict:
    """``["dms.volt_var.mode=direct", "rtus[1].link.loss_prob=0.1", "seed=7"]`` applied
    to the raw scenario mapping.

    Values are read as YAML (``3`` is a number, ``[1, 2]`` a list). A key path names
    sections by key and list items by index (``rtus[1]`` or ``rtus.1``); a missing section
    is created, a list item must exist. Validation happens afterwards as usual.
    """
    for item in overrides:
        path, sep, raw = item.partition("=")
        path = path.strip()
        if not sep or not path:
            raise ScenarioError(f"--set: expected KEY.PATH=VALUE; found {short_repr(item)}")
        try:
            steps = override_path(path)
        except ValueError as exc:
            raise ScenarioError(f"{source}: --set: expected {exc}") from None
        try:
            value = _load_yaml(raw, f"{source}: --set {path}")
        except ScenarioError as exc:
            raise ScenarioError(f"{exc} (expected a YAML value; found {short_repr(raw)})") \
                from None
        node: Any = data
        for k, step in enumerate(steps):
            where = _override_where(steps[:k])
            last = k == len(steps) - 1
            if isinstance(step, int):
                if not isinstance(node, list):
                    raise ScenarioError(f"{source}: --set {path}: expected a list at {where}; "
                                        f"found {type(node).__name__}")
                if step >= len(node):
                    raise ScenarioError(
                        f"{source}: --set {path}: expected an item of {where} (0–"
                        f"{len(node) - 1}); found index {step}" if node else
                        f"{source}: --set {path}: {where} is an empty list")
            elif not isinstance(node, dict):
                raise ScenarioError(f"{source}: --set {path}: {where} is not a section "
                                    f"(found {short_repr(node)})")
            if last:
                node[step] = value
            elif isinstance(step, str) and node.get(step) is None:
                if isinstance(steps[k + 1], int):
                    raise ScenarioError(f"{source}: --set {path}: {_override_where(steps[:k + 1])}"
                                        f" has no items to index")
                child: dict = {}
                node[step] = child  # (not node = node[step] = {}: that binds node first)
                node = child
            else:
                node = node[step]
    return data


def _override_where(steps: list[str | int]) -> str:
    text = ""
    for step in steps:
        text += f"[{step}]" if isinstance(step, int) else (f".{step}" if text else step)
    return text or "the scenario"


def load_scenario(path: str | Path, overrides: list[str] | None = None) -> Scenario:
    """Read and validate a scenario file, with ``--set KEY.PATH=VALUE`` overrides."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)  # bounded: a device or a huge file must not hang
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read the file ({exc.strerror})") from None
    if len(raw) > MAX_FILE_BYTES:
        raise ScenarioError(f"{path}: expected a scenario file of at most "
                            f"{MAX_FILE_BYTES // 1_000_000} MB; found a larger one")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        utf16 = raw[:2] in (b"\xff\xfe", b"\xfe\xff")
        raise ScenarioError(
            f"{path}: byte {exc.start}: expected UTF-8 text; found "
            + ("a UTF-16 file (save it as UTF-8)" if utf16 else f"byte 0x{raw[exc.start]:02x}")
        ) from None
    data = _load_yaml(text, str(path))
    if overrides and isinstance(data, dict):
        data = apply_overrides(data, overrides, str(path))
    return parse_scenario(data, str(path) + (" (with --set)" if overrides else ""))


def resolve_path(scenario_file: Path | None, relative: str) -> Path:
    """Paths inside a scenario are relative to the scenario file."""
    p = Path(relative)
    if p.is_absolute() or scenario_file is None:
        return p
    return scenario_file.parent / p
