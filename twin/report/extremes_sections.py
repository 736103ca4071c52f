"""The grid sections of a run whose element tables are incomplete (``recording.elements:
summary`` or a list of refs, or ``recording.every``; see :mod:`twin.recording.policy`).

Such a table holds, between snapshots or throughout, only the rows of elements in violation
and of the selected elements: a minimum, mean or ranking over those rows would pass for one
over the grid while it is one over the few rows that were kept. So every number here comes
from a measurement that covers every element at every solve:

* per step: the ``grid`` summary (``vm_min_pu``, ``vm_max_pu`` over all buses, every solve);
* per element: the ``*_extremes`` (each bus's min/max voltage, each line's and transformer's
  highest loading over every solve), written at the run's end;
* the rows that were kept serve only as what they are: the selected elements' own series,
  and the elements in violation at a step (all of them are kept at every solve).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from twin.recording import schema
from twin.recording.policy import OVERLOAD_PERCENT
from twin.report.figures import Figures, Section, rounded, xs_ms
from twin.report.formatting import duration_text, esc, format_value, html_table
from twin.report.frames import furthest_buses
from twin.report.run_data import RunData
from twin.report.streams import bin_width_s, binned_steps, element_series, step_stats

_EXTREMES_OF = {schema.BUS: schema.BUS_EXTREMES, schema.LINE: schema.LINE_EXTREMES,
                schema.TRAFO: schema.TRAFO_EXTREMES}
#: Elements listed by their highest loading over the run, per kind.
TOP_LOADED = 10


def policy_note(run: RunData) -> str:
    """One paragraph: what the element tables hold, and where the numbers come from."""
    policy = run.recording_policy
    elements, every_s = policy["elements"], policy["every_s"]
    snapshots = f" (table snapshots every {duration_text(every_s)})" if every_s else ""
    if elements == "all":
        kept = (f"The element tables were recorded every {duration_text(every_s)} "
                "(recording.every) and in between only for violations")
    else:
        chosen = "; ".join(f"{table}: {', '.join(names)}"
                           for table, names in run.selected.items())
        kept = (f"Per-step element data were recorded only for violations (buses outside "
                f"the voltage band, lines and transformers above {OVERLOAD_PERCENT:g} % "
                f"loading) and the selected elements ({chosen or 'none'}; recording.elements: "
                f"{'summary' if elements == 'summary' else 'a list of refs'}){snapshots}")
    return (f'<p class="note">{esc(kept)}. Per-element values are over the run (each '
            "element's extremes at every solve); per-step values are over all buses, from "
            "the grid summary.</p>")


def extremes(run: RunData, table: str) -> pd.DataFrame | None:
    """The per-element extremes of ``table`` (bus, line, trafo) indexed by element, or None
    if the run wrote none (it did not reach its end, or the table is empty)."""
    frame = run.read(_EXTREMES_OF[table])
    if frame is None:
        return None
    return frame.drop_duplicates("element", keep="last").set_index("element")


def _missing(run: RunData, what: str) -> str:
    ended = ("the run did not complete" if run.status != "completed"
             else "the run wrote none")
    return (f'<p class="note">No {esc(what)}: the per-element extremes are written at the '
            f"run's end and {ended}.</p>")


def bus_worst(run: RunData) -> pd.Series:
    """Each bus's voltage furthest from 1 p.u. over the run [p.u.] (from ``bus_extremes``)."""
    frame = extremes(run, schema.BUS)
    if frame is None:
        return pd.Series(dtype=float)
    low, high = frame["vm_min_pu"], frame["vm_max_pu"]
    return high.where((high - 1.0).abs() >= (low - 1.0).abs(), low).dropna()


def branch_peaks(run: RunData) -> dict[str, float]:
    """Each line's and transformer's highest loading over the run [%]."""
    peaks: dict[str, float] = {}
    for table in (schema.LINE, schema.TRAFO):
        frame = extremes(run, table)
        if frame is not None and "loading_max_percent" in frame:
            peaks.update(frame["loading_max_percent"].dropna().to_dict())
    return peaks


def band_per_step(run: RunData) -> pd.DataFrame | None:
    """The lowest (``min``) and highest (``max``) bus voltage per step over all buses [p.u.],
    from the ``grid`` summary (None: not recorded)."""
    grid = run.read(schema.GRID)
    if grid is None or not {"vm_min_pu", "vm_max_pu"} <= set(grid.columns):
        return None
    per_solve = grid[["time", "vm_min_pu", "vm_max_pu"]].dropna()  # failed solves: no voltage
    if per_solve.empty:
        return None
    # an event solve shares its tick with a step: the extreme of both
    return per_solve.groupby("time").agg(min=("vm_min_pu", "min"), max=("vm_max_pu", "max"))


def band_section(run: RunData, figs: Figures) -> Section | None:
    """Min and max bus voltage per step from the ``grid`` summary, the band shaded."""
    step = band_per_step(run)
    if step is None:
        return None
    step = binned_steps(step, ("min", "max"))
    x = xs_ms(step.index)
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=x, y=rounded(step["max"], 5), name="max over all buses",
                             mode="lines", line=dict(color="#d62728", width=1.5)))
    fig.add_trace(go.Scatter(x=x, y=rounded(step["min"], 5), name="min over all buses",
                             mode="lines", line=dict(color="#1f77b4", width=1.5)))
    band = run.kpis.get("voltage_band_pu")
    note = ("<p>The lowest and highest bus voltage at every solve (the grid summary; the mean "
            "over buses needs every bus's row, which this run did not store).")
    if isinstance(band, (list, tuple)) and len(band) == 2:
        fig.add_hrect(y0=band[0], y1=band[1], fillcolor="#2ca02c", opacity=0.10, line_width=0,
                      layer="below")
        note += (f" Shaded: the allowed band {band[0]:g}–{band[1]:g} p.u.; violation: "
                 f"{format_value('', run.kpis.get('voltage_violation_minutes'))} min "
                 f"(bus·min: {format_value('', run.kpis.get('voltage_violation_bus_minutes'))}).")
    fig.update_layout(yaxis_title="bus voltage [p.u.]", xaxis_title="time (UTC)")
    return Section("voltage", "Voltage band", note + "</p>" + figs.html(fig))


def heatmap_section(run: RunData, figs: Figures, max_buses: int) -> Section | None:
    """Each bus's lowest and highest voltage over the run as a heatmap (buses furthest from
    1 p.u. first if there are more than ``max_buses``), and the selected buses over time."""
    frame = extremes(run, schema.BUS)
    title = "Bus voltage over the run"
    if frame is None:
        return Section("heatmap", title, policy_note(run) + _missing(run, "bus extremes"))
    frame = frame[["vm_min_pu", "vm_max_pu"]].dropna(how="all")
    deviation = np.fmax((frame["vm_min_pu"] - 1.0).abs(), (frame["vm_max_pu"] - 1.0).abs())
    buses, note = furthest_buses(deviation, max_buses)
    z = frame.loc[buses, ["vm_min_pu", "vm_max_pu"]].to_numpy(dtype=float)
    band = run.kpis.get("voltage_band_pu") or [0.95, 1.05]
    half = max(abs(float(band[0]) - 1.0), abs(float(band[1]) - 1.0),
               float(np.nanmax(np.abs(z - 1.0))) if np.isfinite(z).any() else 0.0)
    fig = go.Figure(go.Heatmap(
        x=["lowest over the run", "highest over the run"], y=buses, z=rounded(z, 4),
        colorscale="RdBu_r", zmid=1.0, zmin=1.0 - half, zmax=1.0 + half,
        colorbar=dict(title="vm [p.u.]"), hoverongaps=False))
    fig.update_layout(yaxis=dict(autorange="reversed", type="category"))
    height = int(min(900, max(300, 120 + 18 * len(buses))))
    body = policy_note(run) + note + figs.html(fig, height, time_x=False)
    chosen = run.selected.get(schema.BUS)
    if chosen:
        body += "<h3>Selected buses</h3>" + _selected_figure(
            run, figs, schema.BUS, "vm_pu", chosen, "bus voltage [p.u.]", 4)
    return Section("heatmap", title, body)


def loading_section(run: RunData, figs: Figures) -> Section | None:
    """The most loaded lines and transformers by their highest loading over the run, the
    elements above 100 % per step, and the selected ones over time."""
    kinds = [(table, extremes(run, table)) for table in (schema.LINE, schema.TRAFO)]
    title = "Line and transformer loading over the run"
    if all(frame is None for _, frame in kinds):
        if run.rows(schema.LINE) + run.rows(schema.TRAFO) == 0 and run.status == "completed":
            return None  # a grid without branches
        return Section("loading", title, policy_note(run)
                       + _missing(run, "line and transformer extremes"))
    body = policy_note(run)
    fig = make_subplots(rows=1, cols=len(kinds), horizontal_spacing=0.25,
                        subplot_titles=[f"{table}s" for table, _ in kinds])
    for col, (table, frame) in enumerate(kinds, start=1):
        if frame is None or "loading_max_percent" not in frame:
            continue
        peak = frame["loading_max_percent"].dropna()
        top = peak.nlargest(TOP_LOADED)
        fig.add_trace(go.Bar(x=rounded(top, 2), y=list(top.index), orientation="h",
                             name=f"{table}s", marker_color=np.where(
                                 top.to_numpy() > OVERLOAD_PERCENT, "#d62728", "#1f77b4"),
                             hovertemplate="%{y}: %{x:.1f} %<extra></extra>"),
                      row=1, col=col)
        fig.add_vline(x=OVERLOAD_PERCENT, line=dict(color="#7f7f7f", dash="dash", width=1),
                      row=1, col=col)
        fig.update_xaxes(title_text="highest loading over the run [%]", rangemode="tozero",
                         row=1, col=col)
        fig.update_yaxes(autorange="reversed", type="category", row=1, col=col)
    fig.update_layout(showlegend=False)
    body += (f"<p>The {TOP_LOADED} most loaded lines and transformers of each kind by their "
             f"highest loading over the run (every solve).</p>"
             + figs.html(fig, 80 + 26 * TOP_LOADED, time_x=False))
    rows = [(table, element, f"{value:.1f}")
            for table, frame in kinds if frame is not None and "loading_max_percent" in frame
            for element, value in frame["loading_max_percent"].dropna()
            .nlargest(TOP_LOADED).items()]
    body += html_table(["kind", "element", "highest loading over the run [%]"], rows)
    body += _overloads(run, figs)
    for table in (schema.LINE, schema.TRAFO):
        chosen = run.selected.get(table)
        if chosen:
            body += f"<h3>Selected {table}s</h3>" + _selected_figure(
                run, figs, table, "loading_percent", chosen, "loading [%]", 2)
    return Section("loading", title, body)


def _overloads(run: RunData, figs: Figures) -> str:
    """Lines and transformers above 100 % per step: every one is kept at every solve, so
    the count is over all of them."""
    fig = go.Figure()
    for table, colour in ((schema.LINE, "#d62728"), (schema.TRAFO, "#9467bd")):
        columns = ["time", "element", "loading_percent"]
        over = (frame[frame["loading_percent"] > OVERLOAD_PERCENT]
                for frame in run.chunks(table, columns) if "loading_percent" in frame)
        count = step_stats(over, "loading_percent")["count"]
        if count.empty:
            continue
        fig.add_trace(go.Scatter(x=xs_ms(count.index), y=count.to_numpy(dtype=float),
                                 mode="markers", name=f"{table}s above {OVERLOAD_PERCENT:g} %",
                                 marker=dict(color=colour, size=5)))
    if not fig.data:
        return (f"<p>No line or transformer was above {OVERLOAD_PERCENT:g} % loading at any "
                "solve.</p>")
    fig.update_layout(yaxis=dict(title="elements above the limit", rangemode="tozero"),
                      xaxis_title="time (UTC)")
    return (f"<h3>Elements above {OVERLOAD_PERCENT:g} % per step</h3>" + figs.html(fig, 300))


def _selected_figure(run: RunData, figs: Figures, table: str, column: str, chosen: list[str],
                     y_title: str, digits: int) -> str:
    """The selected elements' own rows over time (kept at every table snapshot)."""
    series = element_series(run.chunks(table, ["time", "element", column]), column, chosen,
                            None)
    if series.empty:
        return '<p class="note">No rows of the selected elements were recorded.</p>'
    width_s = bin_width_s(series.index)
    if width_s is not None:  # a long run: binned as the other series are
        series = series.groupby(series.index.floor(f"{width_s}s")).mean()
    fig = go.Figure()
    for element in [c for c in chosen if c in series.columns]:
        values = series[element].dropna()
        fig.add_trace(go.Scatter(x=xs_ms(values.index), y=rounded(values, digits),
                                 mode="lines+markers" if len(values) < 50 else "lines",
                                 name=element))
    fig.update_layout(yaxis_title=y_title, xaxis_title="time (UTC)")
    return figs.html(fig, 320)
