"""The embedded HTML report of one run: ``<run_dir>/report.html``, readable offline.

One self-contained file — plotly.js is inlined once in the page, every figure's data sits in
the page, no fonts, styles or scripts are fetched — so a run directory can be mailed or
archived and still be read in any browser without a server or a network.

The report reads everything from the run directory (``run.json``, ``kpis.json``,
``scenario.yaml`` and the file store ``store/``) and shows, each only where the run recorded
the data:

1. the run (scenario, start, duration, seed, wall time, speed-up) and every KPI, grouped;
2. the voltage band: min / mean / max bus voltage per time step, the allowed band shaded;
3. a heatmap of bus voltage over bus × time;
4. line and transformer loading: the maximum per step and the most loaded elements;
5. PV and wind output and curtailment, battery SOC and power, EV charging power;
6. communication health: telemetry latency per RTU, messages lost per RTU, command outcomes;
7. DMS decisions (a timeline and a table with their reasons) and protection events;
8. reliability: which loads were off when, and the IEEE 1366 indices.

Size and speed: a series is aggregated per time step (the store holds one point per element
and step), and a run with more time steps than ``MAX_POINTS`` is binned further, so a year
of steps gives a page of the same size as a day. A default day (~320k points) makes a page
of ~6 MB, of which 4.8 MB is plotly.js, in about half a second.
"""

from __future__ import annotations

import html
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
import plotly.offline
import yaml
from plotly.subplots import make_subplots

from twin.recording.files import list_measurements, read_measurement
from twin.reliability import MOMENTARY_S
from twin.timebase import parse_duration_s

REPORT_NAME = "report.html"

#: at most this many points along the time axis of a figure (more steps are binned)
MAX_POINTS = 2000
#: at most this many heatmap cells (bus × time); more steps are binned further
MAX_HEATMAP_CELLS = 150_000
#: at most this many buses in the heatmap (the ones furthest from 1 p.u. are kept)
MAX_HEATMAP_BUSES = 150
#: elements drawn one by one in the loading and storage figures (the rest as a maximum)
TOP_ELEMENTS = 5
#: rows shown in a table (decisions, commands, interruptions); the count says the rest
MAX_TABLE_ROWS = 1000

_TEMPLATE = "plotly_white"
_FIG_CONFIG = {"displaylogo": False, "responsive": True}


class RunDirectoryError(FileNotFoundError):
    """The directory is not a run directory (``twin run --out DIR`` writes one)."""


# ----------------------------------------------------------------------------- the run


@dataclass
class RunData:
    """What a run directory holds, read lazily: one measurement at a time, once.

    Attributes
    ----------
    run_dir : Path
        The run directory.
    run_info : dict
        ``run.json``.
    kpis : dict
        ``kpis.json`` (empty if the run wrote none).
    scenario : dict
        ``scenario.yaml`` as plain data (empty if missing or unreadable).
    store_dir : Path or None
        The file store, None when the run recorded elsewhere (InfluxDB) and spilled nothing.
    measurements : set of str
        Measurements present in the file store.
    """

    run_dir: Path
    run_info: dict
    kpis: dict
    scenario: dict
    store_dir: Path | None
    measurements: set[str]
    _cache: dict[str, pd.DataFrame | None] = field(default_factory=dict, repr=False)

    def read(self, measurement: str) -> pd.DataFrame | None:
        """The measurement as a DataFrame with naive-UTC ``time``, or None if not recorded."""
        if measurement not in self._cache:
            frame = None
            if self.store_dir is not None and measurement in self.measurements:
                frame = read_measurement(self.store_dir, measurement)
                # plotly.js drops a time zone offset anyway; axes say "UTC" instead.
                frame["time"] = frame["time"].dt.tz_convert("UTC").dt.tz_localize(None)
                if frame.empty:
                    frame = None
            self._cache[measurement] = frame
        return self._cache[measurement]

    @property
    def start(self) -> pd.Timestamp | None:
        """Scenario start (naive UTC)."""
        text = self.run_info.get("start")
        if not text:
            return None
        stamp = pd.Timestamp(text)
        return stamp.tz_convert("UTC").tz_localize(None) if stamp.tzinfo else stamp

    @property
    def end(self) -> pd.Timestamp | None:
        """Start + simulated time (naive UTC)."""
        start, simulated_s = self.start, self.run_info.get("simulated_s")
        if start is None or simulated_s is None:
            return None
        return start + pd.Timedelta(seconds=float(simulated_s))


def load_run(run_dir: str | Path) -> RunData:
    """Read a run directory's JSON files and find its store.

    Parameters
    ----------
    run_dir : str or Path
        A directory written by ``twin run`` (it holds ``run.json``).

    Returns
    -------
    RunData

    Raises
    ------
    RunDirectoryError
        If ``run_dir`` is not a directory or holds no ``run.json``.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunDirectoryError(f"{run_dir}: expected a run directory; found no such directory")
    run_json = run_dir / "run.json"
    if not run_json.is_file():
        raise RunDirectoryError(
            f"{run_dir}: expected a run directory (written by `twin run --out DIR`); "
            "found no run.json in it")
    try:
        run_info = json.loads(run_json.read_text(encoding="utf-8"))
        kpis_path = run_dir / "kpis.json"
        kpis = json.loads(kpis_path.read_text(encoding="utf-8")) if kpis_path.is_file() else {}
    except json.JSONDecodeError as exc:
        raise RunDirectoryError(f"{run_dir}: a JSON file of the run is damaged: {exc}") from None
    scenario: dict = {}
    scenario_path = run_dir / "scenario.yaml"
    if scenario_path.is_file():
        try:
            loaded = yaml.safe_load(scenario_path.read_text(encoding="utf-8"))
            scenario = loaded if isinstance(loaded, dict) else {}
        except yaml.YAMLError:
            scenario = {}  # the header then lacks the description; the data still shows
    store_dir = run_dir / "store"
    measurements = set(list_measurements(store_dir)) if store_dir.is_dir() else set()
    return RunData(run_dir, run_info, kpis, scenario, store_dir if measurements else None,
                   measurements)


# ----------------------------------------------------------------------- data helpers


def natural_key(name: str) -> list:
    """Sort key that puts ``Bus 2`` before ``Bus 10``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", str(name))]


def time_bins(times: pd.Series, max_points: int = MAX_POINTS) -> pd.Series:
    """The time each sample is plotted at: its own, or its bin's start when there are too many.

    Parameters
    ----------
    times : pandas.Series of datetime64
        Sample times.
    max_points : int
        At most this many distinct times come out.

    Returns
    -------
    pandas.Series
        Same index as ``times``.

    Notes
    -----
    Bins are whole seconds wide, ``ceil(span / max_points)``, floored from the epoch, so the
    same run always bins the same way.
    """
    unique = times.drop_duplicates()
    if len(unique) <= max_points:
        return times
    span_s = (unique.max() - unique.min()).total_seconds()
    width_s = max(1, math.ceil(span_s / max(1, max_points - 1)))
    return times.dt.floor(f"{width_s}s")


def per_step(frame: pd.DataFrame, column: str, how: Iterable[str],
             max_points: int = MAX_POINTS) -> pd.DataFrame:
    """Aggregate one field over all elements per time step (binned if too many steps).

    Parameters
    ----------
    frame : pandas.DataFrame
        A measurement with ``time`` and ``column``.
    column : str
        Field to aggregate.
    how : iterable of {"min", "max", "mean", "sum"}
        Aggregations; with binning, ``sum`` becomes the bin's mean of the per-step sums
        (a power stays a power), the others keep their meaning.
    max_points : int
        Time axis length limit.

    Returns
    -------
    pandas.DataFrame
        Index: time; one column per aggregation.
    """
    how = list(how)
    data = frame[["time", column]].dropna()
    step = data.groupby("time")[column].agg(how)
    if len(step) <= max_points:
        return step
    bins = time_bins(step.index.to_series(), max_points)
    rebin = {"min": "min", "max": "max", "mean": "mean", "sum": "mean"}
    return step.groupby(bins.values).agg({name: rebin[name] for name in how})


def per_element(frame: pd.DataFrame, column: str, elements: Iterable[str],
                max_points: int = MAX_POINTS, how: str = "mean") -> pd.DataFrame:
    """One column per element over time (binned with ``how`` if too many steps)."""
    data = frame.loc[frame["element"].isin(list(elements)), ["time", "element", column]]
    data = data.assign(time=time_bins(data["time"], max_points))
    return data.pivot_table(index="time", columns="element", values=column, aggfunc=how)


def interruptions(load: pd.DataFrame, end: pd.Timestamp | None) -> pd.DataFrame:
    """Intervals in which a load was not supplied.

    Parameters
    ----------
    load : pandas.DataFrame
        The ``load`` measurement with ``time``, ``element`` and ``supplied``.
    end : pandas.Timestamp or None
        End of the run: an interval still open at the last sample ends here.

    Returns
    -------
    pandas.DataFrame
        Columns ``element``, ``off`` (time), ``back`` (time, or NaT if it never came back
        and ``end`` is None), ``duration_min``; sorted by ``off``.

    Notes
    -----
    A sample's state holds until the next sample of the same load, as in the KPIs; samples
    come at every step and at every event solve, so the edges are exact to the tick.
    """
    columns = ["element", "off", "back", "duration_min"]
    data = load[["time", "element", "supplied"]].dropna(subset=["supplied"])
    if data.empty:
        return pd.DataFrame(columns=columns)
    data = data.sort_values(["element", "time"], kind="stable")
    off = ~data["supplied"].astype(bool).to_numpy()
    same = data["element"].to_numpy()
    first = np.r_[True, same[1:] != same[:-1]]
    previous_off = np.r_[False, off[:-1]] & ~first
    starts = off & ~previous_off
    ends = ~off & previous_off  # first supplied sample after an off one
    times = data["time"].to_numpy()
    rows = []
    start_idx = np.flatnonzero(starts)
    end_idx = np.flatnonzero(ends)
    for i in start_idx:
        later = end_idx[end_idx > i]
        j = later[0] if len(later) else None
        if j is not None and same[j] != same[i]:
            j = None
        back = pd.Timestamp(times[j]) if j is not None else end
        rows.append((same[i], pd.Timestamp(times[i]), back))
    if not rows:
        return pd.DataFrame(columns=columns)
    out = pd.DataFrame(rows, columns=columns[:3])
    out["back"] = pd.to_datetime(out["back"])
    out["duration_min"] = (out["back"] - out["off"]).dt.total_seconds() / 60.0
    return out.sort_values(["off", "element"], kind="stable").reset_index(drop=True)


# -------------------------------------------------------------------- formatting helpers


_UNITS = (  # name suffix -> unit, and what of the name the label drops; first match wins
    ("customer_minutes_interrupted", "customer·min", ""),
    ("_bus_minutes", "bus·min", "_minutes"),
    ("_minutes", "min", "_minutes"),
    ("_pu", "p.u.", "_pu"),
    ("_percent", "%", "_percent"),
    ("_mwh", "MWh", "_mwh"),
    ("_mw", "MW", "_mw"),
    ("_mvar", "Mvar", "_mvar"),
    ("_ka", "kA", "_ka"),
    ("_min", "min", "_min"),
    ("_s", "s", "_s"),
    ("saifi", "interruptions/customer", ""),
    ("maifi", "interruptions/customer", ""),
)

_KPI_GROUPS = (  # group title, key prefixes; first match wins
    ("Voltage", ("voltage_", "vm_")),
    ("Loading", ("max_line_loading", "max_trafo_loading")),
    ("Energy and power flow", ("energy_losses", "load_energy", "ext_grid_energy",
                               "grid_solves", "non_converged")),
    ("DER, EV and battery", ("pv_", "wind_", "ev_", "battery_")),
    ("Communication, commands and operations", ("telemetry_", "commands_", "crew_",
                                                "switching_", "tap_", "capacitor_")),
    ("DMS", ("dms_", "bad_data", "se_error")),
    ("Reliability and protection", ("customer", "saifi", "saidi", "caidi", "maifi",
                                    "momentary", "energy_not_supplied", "interruptions",
                                    "protection_")),
)

_RELIABILITY_KEYS = ("customers_served", "customers_interrupted", "customer_minutes_interrupted",
                     "saifi", "saidi_min", "caidi_min", "momentary_interruptions", "maifi",
                     "energy_not_supplied_mwh", "interruptions", "interruptions_momentary",
                     "switching_operations", "protection_trips", "protection_recloses",
                     "crew_jobs")


def kpi_unit(key: str) -> str:
    """Unit of a KPI from its name (units are in the names: ``_mwh``, ``_pu``, …)."""
    for suffix, unit, _ in _UNITS:
        if key.endswith(suffix):
            return unit
    return ""


def kpi_group(key: str) -> str:
    """The report's group for a KPI key."""
    for title, prefixes in _KPI_GROUPS:
        if key.startswith(prefixes):
            return title
    return "Other"


def format_value(key: str, value: Any) -> str:
    """A KPI value as shown: voltages to 4 decimals, other floats to 3, ints with separators."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:,.4f}" if key.endswith("_pu") else f"{value:,.3f}"
    if isinstance(value, (list, tuple)):
        return " – ".join(format_value(key, item) for item in value)
    return str(value)


def _label(key: str) -> str:
    """A KPI's name without its unit suffix (the unit has a column of its own)."""
    for suffix, _, strip in _UNITS:
        if key.endswith(suffix):
            key = key[: -len(strip)] if strip else key
            break
    return key.replace("_", " ")


def _duration_text(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    seconds = float(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g} {unit}"
    if seconds >= 3600:
        return f"{seconds / 3600:.2f} h"
    return f"{seconds:g} s"


def _esc(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _table(header: list[str], rows: Iterable[Iterable[Any]], css: str = "") -> str:
    head = "".join(f"<th>{_esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_esc(cell)}</td>" for cell in row) + "</tr>"
                   for row in rows)
    return (f'<div class="wide"><table class="{css}"><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table></div>")


def _cell(value: Any, digits: int | None = 3) -> str:
    """A table cell's text: floats to ``digits`` decimals, or 6 significant digits if None."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return ""
    if isinstance(value, (pd.Timestamp, np.datetime64)):
        return pd.Timestamp(value).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    if isinstance(value, (float, np.floating)):
        return f"{value:.6g}" if digits is None else f"{value:,.{digits}f}"
    return str(value)


def _limited(frame: pd.DataFrame, what: str) -> tuple[pd.DataFrame, str]:
    """At most MAX_TABLE_ROWS rows, and a note saying how many were left out."""
    if len(frame) <= MAX_TABLE_ROWS:
        return frame, ""
    return frame.head(MAX_TABLE_ROWS), (
        f'<p class="note">The first {MAX_TABLE_ROWS:,} of {len(frame):,} {what} are listed; '
        "the store holds all of them.</p>")


# ----------------------------------------------------------------------- figure helpers


@dataclass
class _Figures:
    """Numbers the figures of one page so their div ids are unique and deterministic."""

    count: int = 0

    def html(self, fig: go.Figure, height_px: int = 420, time_x: bool = True) -> str:
        self.count += 1
        if time_x:  # times come as numbers (see _xs): every x axis must be a date axis
            fig.update_xaxes(type="date")
        fig.update_layout(template=_TEMPLATE, height=height_px,
                          margin=dict(l=60, r=20, t=40, b=40))
        if fig.layout.legend.orientation is None:  # a section may place its own legend
            fig.update_layout(legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0))
        return pio.to_html(fig, full_html=False, include_plotlyjs=False, config=_FIG_CONFIG,
                           div_id=f"fig-{self.count}", default_height=f"{height_px}px",
                           validate=False)


def _xs(index: Iterable) -> np.ndarray:
    """Times for a plotly date axis as milliseconds since the epoch (UTC).

    Numbers go into the page base64-packed, 11 characters a time against 26 for an ISO
    string; a date axis reads them as milliseconds.
    """
    return pd.DatetimeIndex(index).as_unit("ns").asi8 / 1e6


def _count_axis(title: str, max_count: int) -> dict:
    """A y axis for counts: whole-number ticks when the counts are small."""
    axis: dict[str, Any] = dict(title=title, rangemode="tozero")
    if max_count <= 10:  # plotly would otherwise put ticks at 0.5, 1.5, …
        axis.update(dtick=1, range=[0, max(1, max_count) * 1.05])
    return axis


def _round(values: Iterable[float], digits: int) -> np.ndarray:
    # fewer digits: the figure data is sent base64-packed, but rounding keeps hover text short
    return np.round(np.asarray(values, dtype=float), digits)


# -------------------------------------------------------------------------- sections


@dataclass
class Section:
    """One part of the page: an anchor, a title and its HTML body."""

    anchor: str
    title: str
    body: str


def header_section(run: RunData) -> Section:
    """The run at a glance (run.json, scenario.yaml)."""
    info, scenario = run.run_info, run.scenario
    recording = info.get("recording") or {}
    rows = [
        ("scenario", info.get("scenario") or scenario.get("name")),
        ("description", " ".join(str(scenario.get("description") or "").split())),
        ("start (UTC)", info.get("start")),
        ("duration simulated", _duration_text(info.get("simulated_s"))
         + (f" (scenario: {scenario['duration']})" if scenario.get("duration") else "")),
        ("power-flow step", _duration_text(info.get("step_s"))),
        ("seed", info.get("seed")),
        ("overrides", ", ".join(info.get("overrides") or []) or "none"),
        ("run id", info.get("run_id")),
        ("grid steps / power flows", f"{info.get('grid_steps', 'n/a')} / "
                                     f"{info.get('grid_solves', 'n/a')}"),
        ("points recorded", format_value("", info.get("points_recorded"))),
        ("recording", recording.get("summary") or recording.get("target") or recording.get("kind")),
        ("wall time [s]", f"{info.get('wall_time_s', 'n/a')} "
                          f"(+ {info.get('prepare_wall_time_s', 'n/a')} preparing)"),
        ("speed-up", f"{info['speed_up']}× real time" if info.get("speed_up") else "n/a"),
        ("created (UTC)", info.get("created_utc")),
        ("versions", ", ".join(f"{k} {v}" for k, v in (info.get("versions") or {}).items())),
    ]
    body = _table(["", ""], [(k, v) for k, v in rows if v not in (None, "")], css="facts")
    events = info.get("events") or []
    if events:
        body += "<h3>Events (power-flow failures and the like)</h3>" + _table(
            ["time", "event"],
            [(_cell(pd.Timestamp(e.get("time_ns", 0), unit="ns")),
              ", ".join(f"{k}={v}" for k, v in e.items() if k != "time_ns"))
             for e in events])
    if run.store_dir is None:
        body += ('<p class="note">This run has no file store (it recorded to InfluxDB and '
                 "spilled nothing), so the report shows its KPIs only; the time series are in "
                 f"the database ({_esc(recording.get('target'))}).</p>")
    return Section("run", f"Run {info.get('run_id', '')}", body)


def kpi_section(kpis: dict) -> Section | None:
    """Every KPI of kpis.json, grouped, with its unit (from its name)."""
    if not kpis:
        return None
    groups: dict[str, list[str]] = {}
    for key in kpis:
        groups.setdefault(kpi_group(key), []).append(key)
    order = [title for title, _ in _KPI_GROUPS] + ["Other"]
    parts = []
    for title in order:
        keys = groups.get(title)
        if not keys:
            continue
        rows = "".join(
            f'<tr><td>{_esc(_label(key))}<span class="key">{_esc(key)}</span></td>'
            f'<td class="num" title="{_esc(json.dumps(kpis[key]))}">'
            f"{_esc(format_value(key, kpis[key]))}</td><td>{_esc(kpi_unit(key))}</td></tr>"
            for key in keys)
        parts.append(f'<div class="kpi-group"><h3>{_esc(title)}</h3><table class="kpis">'
                     f"<thead><tr><th>KPI</th><th>value</th><th>unit</th></tr></thead>"
                     f"<tbody>{rows}</tbody></table></div>")
    return Section("kpis", "Key performance indicators", '<div class="kpi-grid">'
                   + "".join(parts) + "</div>")


def voltage_band_section(run: RunData, figs: _Figures) -> Section | None:
    """Min / mean / max bus voltage per step with the allowed band shaded."""
    bus = run.read("bus")
    if bus is None or "vm_pu" not in bus:
        return None
    step = per_step(bus, "vm_pu", ("min", "mean", "max"))
    if step.empty:
        return None
    x = _xs(step.index)
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=x, y=_round(step["max"], 5), name="max", mode="lines",
                             line=dict(color="#d62728", width=1.5)))
    fig.add_trace(go.Scatter(x=x, y=_round(step["mean"], 5), name="mean", mode="lines",
                             line=dict(color="#2ca02c", width=1.5)))
    fig.add_trace(go.Scatter(x=x, y=_round(step["min"], 5), name="min", mode="lines",
                             line=dict(color="#1f77b4", width=1.5)))
    band = run.kpis.get("voltage_band_pu")
    note = ""
    if isinstance(band, (list, tuple)) and len(band) == 2:
        fig.add_hrect(y0=band[0], y1=band[1], fillcolor="#2ca02c", opacity=0.10, line_width=0,
                      layer="below")
        note = (f"<p>Shaded: the allowed band {band[0]:g}–{band[1]:g} p.u.; "
                f"violation: {format_value('', run.kpis.get('voltage_violation_minutes'))} min "
                f"(bus·min: {format_value('', run.kpis.get('voltage_violation_bus_minutes'))}).</p>")
    fig.update_layout(yaxis_title="bus voltage [p.u.]", xaxis_title="time (UTC)")
    return Section("voltage", "Voltage band", note + figs.html(fig))


def voltage_heatmap_section(run: RunData, figs: _Figures) -> Section | None:
    """Bus × time heatmap of vm_pu (buses furthest from 1 p.u. first if there are many)."""
    bus = run.read("bus")
    if bus is None or "vm_pu" not in bus:
        return None
    data = bus[["time", "element", "vm_pu"]].dropna()
    if data.empty:
        return None
    buses = sorted(data["element"].unique(), key=natural_key)
    note = ""
    if len(buses) > MAX_HEATMAP_BUSES:
        deviation = (data["vm_pu"] - 1.0).abs().groupby(data["element"]).max()
        keep = set(deviation.nlargest(MAX_HEATMAP_BUSES).index)
        note = (f'<p class="note">{MAX_HEATMAP_BUSES} of {len(buses)} buses: those that went '
                "furthest from 1 p.u.</p>")
        buses = [b for b in buses if b in keep]
        data = data[data["element"].isin(keep)]
    max_steps = max(10, min(MAX_POINTS, MAX_HEATMAP_CELLS // len(buses)))
    grid = per_element(data, "vm_pu", buses, max_points=max_steps).reindex(columns=buses)
    band = run.kpis.get("voltage_band_pu") or [0.95, 1.05]
    # a colour scale centred on 1 p.u. that reaches at least the band edges, so red and blue
    # mean "outside the band" when they are saturated
    half = max(abs(float(band[0]) - 1.0), abs(float(band[1]) - 1.0),
               float(np.nanmax(np.abs(grid.to_numpy() - 1.0))))
    fig = go.Figure(go.Heatmap(
        x=_xs(grid.index), y=list(grid.columns), z=_round(grid.to_numpy().T, 4),
        colorscale="RdBu_r", zmid=1.0, zmin=1.0 - half, zmax=1.0 + half,
        colorbar=dict(title="vm [p.u.]"), hoverongaps=False))
    fig.update_layout(xaxis_title="time (UTC)", yaxis=dict(autorange="reversed", type="category"))
    height = int(min(900, max(300, 120 + 18 * len(buses))))
    return Section("heatmap", "Bus voltage heatmap", note + figs.html(fig, height))


def loading_section(run: RunData, figs: _Figures) -> Section | None:
    """Max line and trafo loading per step, and the most loaded elements one by one."""
    kinds = [(name, run.read(name)) for name in ("line", "trafo")]
    kinds = [(name, frame) for name, frame in kinds
             if frame is not None and "loading_percent" in frame
             and frame["loading_percent"].notna().any()]
    if not kinds:
        return None
    fig = make_subplots(rows=len(kinds), cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=[f"{name}s" for name, _ in kinds])
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2"]
    for row, (name, frame) in enumerate(kinds, start=1):
        step = per_step(frame, "loading_percent", ("max",))
        group = dict(legendgroup=name, legendgrouptitle_text=f"{name}s")
        fig.add_trace(go.Scatter(x=_xs(step.index), y=_round(step["max"], 2), mode="lines",
                                 name=f"max over all {name}s", line=dict(color="#d62728",
                                                                         width=2.5), **group),
                      row=row, col=1)
        peak = frame.groupby("element")["loading_percent"].max().dropna()
        top = peak.nlargest(TOP_ELEMENTS).index
        series = per_element(frame, "loading_percent", top, how="max")
        for i, element in enumerate(top):
            fig.add_trace(go.Scatter(x=_xs(series.index), y=_round(series[element], 2),
                                     mode="lines", name=f"{element} (peak {peak[element]:.1f} %)",
                                     line=dict(width=1.2, dash="dot",
                                               color=palette[i % len(palette)]), **group),
                          row=row, col=1)
        fig.add_hline(y=100, line=dict(color="#7f7f7f", dash="dash", width=1), row=row, col=1)
        fig.update_yaxes(title_text="loading [%]", row=row, col=1)
    fig.update_xaxes(title_text="time (UTC)", row=len(kinds), col=1)
    fig.update_layout(legend=dict(orientation="v", x=1.01, y=1, groupclick="toggleitem"))
    return Section("loading", "Line and transformer loading",
                   f"<p>Bold: the maximum over all elements per step; dotted: the "
                   f"{TOP_ELEMENTS} elements with the highest peak.</p>"
                   + figs.html(fig, 300 * len(kinds) + 80))


def der_section(run: RunData, figs: _Figures) -> Section | None:
    """PV and wind output and curtailment, battery SOC and power, EV charging."""
    parts = []
    plants = [(name, run.read(name)) for name in ("pv", "wind")]
    plants = [(name, frame) for name, frame in plants if frame is not None]
    if plants:
        fig = go.Figure()
        colours = {"pv": ("#ff9f1c", "#b35c00"), "wind": ("#1f77b4", "#0b3d66")}
        for name, frame in plants:
            label = "PV" if name == "pv" else "wind"
            n_plants = frame["element"].nunique()
            for column, text, colour, dash in (
                    ("p_mw", "P", colours[name][0], None),
                    ("p_available_mw", "available", colours[name][0], "dot"),
                    ("curtailed_mw", "curtailed", colours[name][1], "dash")):
                if column not in frame or frame[column].isna().all():
                    continue
                step = per_step(frame, column, ("sum",))
                fig.add_trace(go.Scatter(
                    x=_xs(step.index), y=_round(step["sum"], 4), mode="lines",
                    name=f"{label} {text} ({n_plants} plants) [MW]",
                    line=dict(color=colour, dash=dash, width=2 if dash is None else 1.2),
                    visible=True if column != "p_available_mw" else "legendonly"))
        fig.update_layout(yaxis_title="power [MW]", xaxis_title="time (UTC)")
        parts.append("<h3>PV and wind</h3><p>Sums over all plants; curtailed = available − "
                     "delivered (the available power shows when its legend entry is clicked)."
                     "</p>" + figs.html(fig))
    battery = run.read("battery")
    if battery is not None and {"soc", "p_mw"} <= set(battery.columns):
        throughput = battery.groupby("element")["p_mw"].apply(lambda p: p.abs().sum())
        units = sorted(throughput.nlargest(TOP_ELEMENTS * 2).index, key=natural_key)
        fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08)
        soc = per_element(battery, "soc", units)
        power = per_element(battery, "p_mw", units)
        palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
                   "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
        for i, unit in enumerate(units):
            colour = palette[i % len(palette)]
            fig.add_trace(go.Scatter(x=_xs(soc.index), y=_round(soc[unit], 4), mode="lines",
                                     name=str(unit), legendgroup=str(unit),
                                     line=dict(color=colour)), row=1, col=1)
            fig.add_trace(go.Scatter(x=_xs(power.index), y=_round(power[unit], 4), mode="lines",
                                     name=str(unit), legendgroup=str(unit), showlegend=False,
                                     line=dict(color=colour)), row=2, col=1)
        fig.update_yaxes(title_text="SOC [–]", row=1, col=1)
        fig.update_yaxes(title_text="P [MW] (+ charging)", row=2, col=1)
        fig.update_xaxes(title_text="time (UTC)", row=2, col=1)
        shown = "" if len(units) == len(throughput) else (
            f" ({len(units)} of {len(throughput)} units: the most used)")
        parts.append(f"<h3>Batteries{shown}</h3>" + figs.html(fig, 560))
    ev = run.read("ev")
    if ev is not None and "p_mw" in ev:
        fig = make_subplots(specs=[[{"secondary_y": True}]])
        step = per_step(ev, "p_mw", ("sum",))
        fig.add_trace(go.Scatter(x=_xs(step.index), y=_round(step["sum"], 4), mode="lines",
                                 name="EV charging P, all buses [MW]",
                                 line=dict(color="#9467bd", width=2)), secondary_y=False)
        if "n_connected" in ev:
            connected = per_step(ev.assign(n_connected=ev["n_connected"].astype(float)),
                                 "n_connected", ("sum",))
            fig.add_trace(go.Scatter(x=_xs(connected.index), y=_round(connected["sum"], 1),
                                     mode="lines", name="EVs connected",
                                     line=dict(color="#7f7f7f", width=1, dash="dot")),
                          secondary_y=True)
            fig.update_yaxes(title_text="EVs connected", secondary_y=True, showgrid=False,
                             rangemode="tozero")
        fig.update_yaxes(title_text="P [MW] (+ charging)", secondary_y=False)
        fig.update_xaxes(title_text="time (UTC)")
        parts.append(f"<h3>EV fleet ({ev['element'].nunique()} charging buses)</h3>"
                     + figs.html(fig))
    if not parts:
        return None
    return Section("der", "DER, EV and battery", "".join(parts))


def comm_section(run: RunData, figs: _Figures) -> Section | None:
    """Telemetry latency per RTU, messages lost per RTU, command outcomes."""
    parts = []
    telemetry = run.read("telemetry")
    if telemetry is not None and "latency_s" in telemetry:
        latency_ms = telemetry[["element", "latency_s"]].dropna()
        latency_ms = latency_ms.assign(ms=latency_ms["latency_s"] * 1000.0)
        # the box is drawn from precomputed quantiles: 100k+ raw values would make the
        # page large and slow, and the quantiles are what the eye reads off a box anyway
        stats = latency_ms.groupby("element")["ms"].describe(percentiles=[0.01, 0.25, 0.5,
                                                                          0.75, 0.95, 0.99])
        stats = stats.loc[sorted(stats.index, key=natural_key)]
        names = [str(n) for n in stats.index]
        fig = go.Figure(go.Box(
            x=names, q1=_round(stats["25%"], 3), median=_round(stats["50%"], 3),
            q3=_round(stats["75%"], 3), lowerfence=_round(stats["1%"], 3),
            upperfence=_round(stats["99%"], 3), mean=_round(stats["mean"], 3),
            name="latency", marker_color="#1f77b4", boxpoints=False))
        ticks = [v * 10.0 ** e for e in range(-1, 5) for v in (1, 2, 5)]
        fig.update_layout(yaxis=dict(title="latency [ms] (log)", type="log", tickvals=ticks),
                          showlegend=False)
        table = _table(["RTU", "values", "mean [ms]", "median [ms]", "95 % [ms]", "99 % [ms]",
                        "max [ms]"],
                       [(name, f"{int(row['count']):,}", _cell(row["mean"]),
                         _cell(row["50%"]), _cell(row["95%"]), _cell(row["99%"]),
                         _cell(row["max"]))
                        for name, row in zip(names, stats.to_dict("records"))])
        parts.append("<h3>Telemetry latency per RTU</h3><p>Box: quartiles; whiskers: 1 % and "
                     "99 % quantiles; dashed: mean.</p>" + figs.html(fig, time_x=False, height_px=380) + table)
    comm = run.read("comm")
    if comm is not None and {"sent", "delivered"} <= set(comm.columns):
        # the counters are cumulative over the run: the last sample of each RTU is the total
        last = comm.sort_values("time", kind="stable").groupby("element").tail(1)
        last = last.set_index("element").loc[sorted(last["element"], key=natural_key)]
        lost = {column: last[column].fillna(0).astype(int)
                for column in ("lost_random", "lost_outage") if column in last}
        fig = go.Figure()
        for column, colour in (("lost_random", "#ff7f0e"), ("lost_outage", "#d62728")):
            if column in lost:
                fig.add_trace(go.Bar(x=[str(n) for n in last.index], y=lost[column].to_numpy(),
                                     name=column.replace("_", " "), marker_color=colour))
        fig.update_layout(barmode="stack", yaxis=_count_axis(
            "messages lost", max(int(sum(v.max() for v in lost.values())), 0)))
        rows = []
        for name, row in last.iterrows():
            sent = int(row["sent"]) if pd.notna(row["sent"]) else 0
            n_lost = sum(int(lost[c][name]) for c in lost)
            rows.append((name, f"{sent:,}", f"{int(row['delivered']):,}",
                         *(f"{int(lost[c][name]):,}" for c in lost),
                         f"{100.0 * n_lost / sent:.2f}" if sent else ""))
        table = _table(["RTU", "sent", "delivered", *(c.replace("_", " ") for c in lost),
                        "lost [%]"], rows)
        parts.append("<h3>Messages lost per RTU</h3><p>Both directions, whole run.</p>"
                     + figs.html(fig, time_x=False, height_px=340) + table)
    command = run.read("command")
    if command is not None and "status" in command:
        via = command["via"].fillna("?") if "via" in command else pd.Series("?", command.index)
        counts = command.assign(via=via).groupby(["via", "status"]).size().unstack(fill_value=0)
        fig = go.Figure()
        status_colours = {"success": "#2ca02c", "failed": "#d62728", "timeout": "#ff7f0e"}
        for status in counts.columns:
            fig.add_trace(go.Bar(x=[str(v) for v in counts.index], y=counts[status].to_numpy(),
                                 name=str(status), marker_color=status_colours.get(status)))
        fig.update_layout(barmode="stack", xaxis_title="via",
                          yaxis=_count_axis("commands", int(counts.sum(axis=1).max())))
        headers = {"time": "result time", "element": "target", "action": "action",
                   "value": "value", "status": "status", "via": "via",
                   "applied_delay_s": "applied after [s]", "result_delay_s": "result after [s]",
                   "reason": "reason"}
        columns = [c for c in headers if c in command]
        shown, note = _limited(command.sort_values("time", kind="stable"), "commands")
        table = _table([headers[c] for c in columns],
                       [[_cell(row[c]) for c in columns] for row in shown.to_dict("records")])
        parts.append(f"<h3>Command outcomes ({len(command):,} commands)</h3>"
                     + figs.html(fig, time_x=False, height_px=320) + note + table)
    if not parts:
        return None
    return Section("comm", "Communication health", "".join(parts))


def decisions_section(run: RunData, figs: _Figures) -> Section | None:
    """DMS decisions and protection events on one timeline; both as tables too."""
    decisions = run.read("dms_decision")
    protection = run.read("protection")
    cycles = run.read("dms_cycle")
    failed = None
    if cycles is not None and "success" in cycles:
        failed = cycles[cycles["success"].fillna(1).astype(int) == 0]
    if decisions is None and protection is None and (failed is None or failed.empty):
        return None
    parts = []
    fig = go.Figure()
    symbols = {"direct": "circle", "remote": "diamond", "manual": "square",
               "advisory": "circle-open"}
    if decisions is not None:
        decisions = decisions.sort_values("time", kind="stable")
        for mode, group in decisions.groupby(decisions.get("mode", pd.Series("", decisions.index))
                                             .fillna(""), sort=True):
            hover = [f"{_cell(t)}<br>{html.escape(str(a))} {html.escape(str(e))}<br>"
                     f"{html.escape(_wrap(str(r)))}"
                     for t, a, e, r in zip(group["time"], group.get("action", ""),
                                           group["element"], group.get("reason", ""))]
            fig.add_trace(go.Scatter(
                x=_xs(group["time"]), y=group.get("function", "dms").astype(str).to_numpy(),
                mode="markers", name=f"decision ({mode or 'no mode'})",
                marker=dict(symbol=symbols.get(mode, "circle"), size=10),
                hovertext=hover, hoverinfo="text"))
    if protection is not None:
        kinds = protection.get("kind", pd.Series("event", protection.index)).fillna("event")
        hover = [f"{_cell(t)}<br>{html.escape(str(k))} {html.escape(str(e))}"
                 for t, k, e in zip(protection["time"], kinds, protection["element"])]
        fig.add_trace(go.Scatter(
            x=_xs(protection["time"]), y=["protection: " + k for k in kinds],
            mode="markers", name="protection", hovertext=hover, hoverinfo="text",
            marker=dict(symbol="x", size=11, color="#d62728")))
    if run.start is not None and run.end is not None:
        fig.update_xaxes(range=[_xs([run.start])[0], _xs([run.end])[0]])
    fig.update_layout(xaxis_title="time (UTC)", yaxis=dict(type="category"))
    n_rows = len(set(trace.y[i] for trace in fig.data for i in range(len(trace.y))))
    parts.append(figs.html(fig, int(min(600, 200 + 40 * n_rows))))
    if decisions is not None:
        columns = [c for c in ("time", "function", "action", "element", "value", "mode",
                               "reason") if c in decisions]
        inputs = [c for c in decisions.columns if c.startswith("in_")]
        shown, note = _limited(decisions, "decisions")
        rows = [[_cell(row[c], None) for c in columns]
                + ["; ".join(f"{c[3:]} = {_cell(row[c], None)}" for c in inputs
                             if _cell(row[c], None) != "")]
                for row in shown.to_dict("records")]
        parts.append(f"<h3>Decisions ({len(decisions):,})</h3>" + note
                     + _table(columns + ["inputs"], rows, css="log"))
    if protection is not None:
        columns = [c for c in ("time", "element", "kind", "fault", "type", "i_fault_ka",
                               "ikss_ka", "pickup_ka", "delay_s") if c in protection]
        shown, note = _limited(protection.sort_values("time", kind="stable"),
                               "protection events")
        parts.append(f"<h3>Protection events ({len(protection):,})</h3>" + note + _table(
            columns, [[_cell(row[c]) for c in columns] for row in shown.to_dict("records")]))
    if failed is not None and not failed.empty:
        columns = [c for c in ("time", "function", "message") if c in failed]
        shown, note = _limited(failed, "failed DMS cycles")
        parts.append(f"<h3>Failed DMS cycles ({len(failed):,})</h3>" + note + _table(
            columns, [[_cell(row[c]) for c in columns] for row in shown.to_dict("records")]))
    return Section("decisions", "DMS decisions and protection", "".join(parts))


def _wrap(text: str, width: int = 90) -> str:
    """Break a long reason into lines for a hover label."""
    words, lines, line = text.split(), [], ""
    for word in words:
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    lines.append(line)
    return "<br>".join(html.escape(part) for part in lines)


def reliability_section(run: RunData, figs: _Figures) -> Section | None:
    """Which loads were off when, and the IEEE 1366 indices of kpis.json."""
    load = run.read("load")
    keys = [k for k in _RELIABILITY_KEYS if k in run.kpis]
    has_supply = load is not None and "supplied" in load and load["supplied"].notna().any()
    if not keys and not has_supply:
        return None
    parts = []
    if keys:
        parts.append(_table(["index", "value", "unit"],
                            [(_label(k), format_value(k, run.kpis[k]), kpi_unit(k))
                             for k in keys], css="kpis"))
    if has_supply:
        off = interruptions(load, run.end)
        momentary_s = MOMENTARY_S
        reliability = run.scenario.get("reliability") or {}
        if isinstance(reliability, dict) and reliability.get("momentary") is not None:
            try:
                momentary_s = parse_duration_s(reliability["momentary"])
            except (TypeError, ValueError):
                pass  # the run validated it; fall back to IEEE 1366's 5 min for the label
        if off.empty:
            parts.append("<p>Every load was supplied throughout the run.</p>")
        else:
            off["kind"] = np.where(off["duration_min"] * 60.0 > momentary_s, "sustained",
                                   "momentary")
            fig = go.Figure()
            for kind, colour in (("sustained", "#d62728"), ("momentary", "#ff7f0e")):
                group = off[off["kind"] == kind]
                if group.empty:
                    continue
                # a Gantt bar on a date axis: base = start, length in milliseconds
                fig.add_trace(go.Bar(
                    y=group["element"].astype(str).to_numpy(), base=_xs(group["off"]),
                    x=_round(group["duration_min"] * 60_000.0, 0), orientation="h",
                    name=kind, marker_color=colour,
                    hovertext=[f"{e}: off {_cell(a)} for {d:.2f} min"
                               for e, a, d in zip(group["element"], group["off"],
                                                  group["duration_min"])],
                    hoverinfo="text"))
            loads = sorted(off["element"].unique(), key=natural_key)
            fig.update_layout(
                barmode="overlay", xaxis=dict(type="date", title="time (UTC)"),
                yaxis=dict(type="category", categoryorder="array", categoryarray=loads[::-1]))
            if run.start is not None and run.end is not None:
                fig.update_xaxes(range=[_xs([run.start])[0], _xs([run.end])[0]])
            shown, note = _limited(off, "interruptions")
            parts.append(
                f"<h3>Interruptions ({len(off):,}; momentary: {momentary_s / 60:g} min or "
                "less)</h3>"
                + figs.html(fig, int(min(700, 160 + 30 * len(loads)))) + note
                + _table(["load", "off", "back", "duration [min]", "kind"],
                         [(r["element"], _cell(r["off"]),
                           _cell(r["back"]) if pd.notna(r["back"]) else "not back",
                           _cell(r["duration_min"], 2), r["kind"])
                          for r in shown.to_dict("records")]))
    return Section("reliability", "Reliability", "".join(parts))


# ------------------------------------------------------------------------------- page

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
       margin: 0 auto; max-width: 1360px; padding: 0 20px 40px; color: #222; }
h1 { margin: 18px 0 4px; } h2 { margin-top: 36px; border-bottom: 2px solid #ddd; }
nav a { margin-right: 14px; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 13px; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f3f5f8; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
table.facts td:first-child { font-weight: 600; white-space: nowrap; }
table.log td:first-child { white-space: nowrap; }
.wide { overflow-x: auto; }
.kpi-grid { display: flex; flex-wrap: wrap; gap: 0 24px; align-items: flex-start; }
.kpi-group h3 { margin: 12px 0 0; font-size: 15px; }
.key { display: block; color: #888; font-size: 11px; font-family: monospace; }
.note { color: #666; font-size: 13px; }
"""


def build_report(run: RunData) -> str:
    """The whole page as one HTML string (plotly.js inlined once).

    Parameters
    ----------
    run : RunData
        From :func:`load_run`.

    Returns
    -------
    str
        A complete HTML document.
    """
    figs = _Figures()
    sections = [header_section(run), kpi_section(run.kpis)]
    if run.store_dir is not None:
        sections += [voltage_band_section(run, figs), voltage_heatmap_section(run, figs),
                     loading_section(run, figs), der_section(run, figs),
                     comm_section(run, figs), decisions_section(run, figs)]
    sections.append(reliability_section(run, figs))
    sections = [s for s in sections if s is not None]
    title = f"dms-twin report — {run.run_info.get('scenario', '')} ({run.run_info.get('run_id', '')})"
    nav = " ".join(f'<a href="#{s.anchor}">{_esc(s.title)}</a>' for s in sections)
    body = "".join(f'<section id="{s.anchor}"><h2>{_esc(s.title)}</h2>{s.body}</section>'
                   for s in sections)
    plotly_js = plotly.offline.get_plotlyjs() if figs.count else ""
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{_esc(title)}</title><style>{_CSS}</style>"
        # plotly.js once for the whole page, inline: the report must work offline
        + (f'<script type="text/javascript">{plotly_js}</script>' if plotly_js else "")
        + f"</head><body><h1>{_esc(title)}</h1><nav>{nav}</nav>{body}</body></html>\n")


def write_report(run_dir: str | Path) -> Path:
    """Write ``run_dir / "report.html"``, the run's self-contained report.

    Parameters
    ----------
    run_dir : str or Path
        A run directory (``twin run --out DIR``: ``run.json``, ``kpis.json``, ``store/``).

    Returns
    -------
    Path
        The report's path.

    Raises
    ------
    RunDirectoryError
        (a ``FileNotFoundError``) if ``run_dir`` is not a run directory.
    """
    run = load_run(run_dir)
    path = run.run_dir / REPORT_NAME
    tmp = path.with_suffix(".html.tmp")
    # written aside and renamed, so a browser never opens half a report
    tmp.write_text(build_report(run), encoding="utf-8")
    tmp.replace(path)
    return path
