"""Sections about the run and its grid: header, KPIs, voltages, loadings, DER."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from twin.grid.geo import (
    ROLE_FEED,
    ROLE_FEEDER_HEAD,
    ROLE_SUBSTATION,
    axis_titles,
    looks_lonlat,
    web_mercator_km,
    web_mercator_lonlat,
)
from twin.recording import schema
from twin.report import extremes_sections
from twin.report.figures import Figures, Section, rounded, xs_ms
from twin.report.formatting import (
    KPI_GROUPS,
    cell_text,
    duration_text,
    esc,
    format_value,
    html_table,
    kpi_group,
    kpi_label,
    kpi_unit,
)
from twin.report.frames import MAX_POINTS, furthest_buses, natural_key, per_element, per_step
from twin.report.run_data import RunData
from twin.report.streams import (
    bin_width_s,
    binned_steps,
    element_any,
    element_furthest,
    element_max,
    element_series,
    step_stats,
)

#: Most heatmap cells (buses × time points) in one figure.
MAX_HEATMAP_CELLS = 150_000
#: Most buses in the heatmap: those furthest from 1 p.u. beyond this.
MAX_HEATMAP_BUSES = 150
#: Elements drawn one by one (the most loaded, the most used).
TOP_ELEMENTS = 5


def header_section(run: RunData) -> Section:
    """The run at a glance (run.json, scenario.yaml)."""
    info, scenario = run.run_info, run.scenario
    recording = info.get("recording") or {}
    rows = [
        ("scenario", info.get("scenario") or scenario.get("name")),
        ("description", " ".join(str(scenario.get("description") or "").split())),
        ("start (UTC)", info.get("start")),
        ("duration simulated", duration_text(info.get("simulated_s"))
         + (f" (scenario: {scenario['duration']})" if scenario.get("duration") else "")),
        ("power-flow step", duration_text(info.get("step_s"))),
        ("seed", info.get("seed")),
        ("overrides", ", ".join(info.get("overrides") or []) or "none"),
        ("DMS", dms_text(info.get("dms"))),
        ("run id", info.get("run_id")),
        ("grid steps / power flows", f"{info.get('grid_steps', 'n/a')} / "
                                     f"{info.get('grid_solves', 'n/a')}"),
        ("points recorded", format_value("", info.get("points_recorded"))),
        ("recording", recording.get("summary") or recording.get("target") or recording.get("kind")),
        ("element tables", tables_text(run.recording_policy)),
        ("wall time [s]", f"{info.get('wall_time_s', 'n/a')} "
                          f"(+ {info.get('prepare_wall_time_s', 'n/a')} preparing)"),
        ("speed-up", f"{info['speed_up']}× real time" if info.get("speed_up") else "n/a"),
        ("created (UTC)", info.get("created_utc")),
        ("versions", ", ".join(f"{k} {v}" for k, v in (info.get("versions") or {}).items())),
    ]
    if run.status != "completed":  # say first that the run is not whole
        reason = str(info.get("reason") or "")
        rows.insert(0, ("status", reason if reason.startswith(run.status)
                        else f"{run.status}: {reason}" if reason else run.status))
    body = html_table(["", ""], [(k, v) for k, v in rows if v not in (None, "")], css="facts")
    if run.status != "completed":
        body += ('<p class="note">This run did not complete: what is shown covers the part '
                 "simulated" + (" up to the store's last flush (the run is still going, or was "
                               "killed)" if run.status == "running" else "") + ".</p>")
    events = info.get("events") or []
    if events:
        body += "<h3>Events (power-flow failures and the like)</h3>" + html_table(
            ["time", "event"],
            [(cell_text(pd.Timestamp(e.get("time_ns", 0), unit="ns")),
              ", ".join(f"{k}={v}" for k, v in e.items() if k != "time_ns"))
             for e in events])
    if run.store_dir is None:
        body += ('<p class="note">This run has no file store (it recorded to InfluxDB and '
                 "spilled nothing), so the report shows its KPIs only; the time series are in "
                 f"the database ({esc(recording.get('target'))}).</p>")
    return Section("run", f"Run {info.get('run_id', '')}", body)


def tables_text(policy: dict) -> str:
    """What of the element tables the run stored (``recording.elements``, ``.every``)."""
    elements, every_s = policy.get("elements", "all"), policy.get("every_s")
    what = ("every element" if elements == "all" else
            "summary: violations, per-element extremes" if elements == "summary" else
            f"summary plus {', '.join(map(str, elements))}")
    return f"{what}, " + ("at every solve" if every_s is None
                          else f"snapshots every {duration_text(every_s)}")


def dms_text(dms: dict | None) -> str:
    """The DMS that ran: class, version, interface version, transport and params."""
    if not dms:
        return "none"
    params = json.dumps(dms.get("params") or {}, sort_keys=True)
    return (f"{dms.get('class', '?')} {dms.get('version', '')} (DMS API "
            f"{dms.get('api_version', '?')}, {dms.get('transport', 'in-process')}); "
            f"params {params}")


def kpi_section(kpis: dict) -> Section | None:
    """Every KPI of kpis.json, grouped, with its unit (from its name)."""
    if not kpis:
        return None
    groups: dict[str, list[str]] = {}
    for key in kpis:
        if key == "dms":
            continue  # which DMS the KPIs judge: in the header
        groups.setdefault(kpi_group(key), []).append(key)
    order = [title for title, _ in KPI_GROUPS] + ["Other"]
    parts = []
    for title in order:
        keys = groups.get(title)
        if not keys:
            continue
        rows = "".join(
            f'<tr><td>{esc(kpi_label(key))}<span class="key">{esc(key)}</span></td>'
            f'<td class="num" title="{esc(json.dumps(kpis[key]))}">'
            f"{esc(format_value(key, kpis[key]))}</td><td>{esc(kpi_unit(key))}</td></tr>"
            for key in keys)
        parts.append(f'<div class="kpi-group"><h3>{esc(title)}</h3><table class="kpis">'
                     f"<thead><tr><th>KPI</th><th>value</th><th>unit</th></tr></thead>"
                     f"<tbody>{rows}</tbody></table></div>")
    return Section("kpis", "Key performance indicators", '<div class="kpi-grid">'
                   + "".join(parts) + "</div>")


def voltage_band_section(run: RunData, figs: Figures) -> Section | None:
    """Min / mean / max bus voltage per step with the allowed band shaded (min / max from
    the grid summary when the bus table is not whole)."""
    if not run.tables_whole:
        return extremes_sections.band_section(run, figs)
    stats = step_stats(run.chunks(schema.BUS, ["time", "vm_pu"]), "vm_pu")
    if stats.empty:
        return None
    step = binned_steps(stats, ("min", "mean", "max"))
    x = xs_ms(step.index)
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=x, y=rounded(step["max"], 5), name="max", mode="lines",
                             line=dict(color="#d62728", width=1.5)))
    fig.add_trace(go.Scatter(x=x, y=rounded(step["mean"], 5), name="mean", mode="lines",
                             line=dict(color="#2ca02c", width=1.5)))
    fig.add_trace(go.Scatter(x=x, y=rounded(step["min"], 5), name="min", mode="lines",
                             line=dict(color="#1f77b4", width=1.5)))
    band = run.kpis.get("voltage_band_pu")
    note = ""
    if isinstance(band, (list, tuple)) and len(band) == 2:
        fig.add_hrect(y0=band[0], y1=band[1], fillcolor="#2ca02c", opacity=0.10, line_width=0,
                      layer="below")
        note = (f"<p>Shaded: the allowed band {band[0]:g}–{band[1]:g} p.u.; "
                f"violation: {format_value('', run.kpis.get('voltage_violation_minutes'))} min "
                f"(bus·min: {format_value('', run.kpis.get('voltage_violation_bus_minutes'))})"
                ".</p>")
    fig.update_layout(yaxis_title="bus voltage [p.u.]", xaxis_title="time (UTC)")
    return Section("voltage", "Voltage band", note + figs.html(fig))


def voltage_heatmap_section(run: RunData, figs: Figures) -> Section | None:
    """Bus × time heatmap of vm_pu (buses furthest from 1 p.u. first if there are many);
    each bus's extremes over the run when the bus table is not whole."""
    if not run.tables_whole:
        return extremes_sections.heatmap_section(run, figs, MAX_HEATMAP_BUSES)
    columns = ["time", "element", "vm_pu"]
    # one pass for each bus's deviation, one for the series of the buses shown
    deviation = element_max(run.chunks(schema.BUS, columns), "vm_pu", deviation_from=1.0)
    if deviation.empty:
        return None
    buses, note = furthest_buses(deviation, MAX_HEATMAP_BUSES)
    max_steps = max(10, min(MAX_POINTS, MAX_HEATMAP_CELLS // len(buses)))
    times = _step_times(run, schema.BUS, "vm_pu")
    grid = element_series(run.chunks(schema.BUS, columns), "vm_pu", buses,
                          bin_width_s(times, max_steps)).reindex(columns=buses)
    band = run.kpis.get("voltage_band_pu") or [0.95, 1.05]
    # a colour scale centred on 1 p.u. that reaches at least the band edges, so red and blue
    # mean "outside the band" when they are saturated
    half = max(abs(float(band[0]) - 1.0), abs(float(band[1]) - 1.0),
               float(np.nanmax(np.abs(grid.to_numpy() - 1.0))))
    fig = go.Figure(go.Heatmap(
        x=xs_ms(grid.index), y=list(grid.columns), z=rounded(grid.to_numpy().T, 4),
        colorscale="RdBu_r", zmid=1.0, zmin=1.0 - half, zmax=1.0 + half,
        colorbar=dict(title="vm [p.u.]"), hoverongaps=False))
    fig.update_layout(xaxis_title="time (UTC)", yaxis=dict(autorange="reversed", type="category"))
    height = int(min(900, max(300, 120 + 18 * len(buses))))
    return Section("heatmap", "Bus voltage heatmap", note + figs.html(fig, height))


def _step_times(run: RunData, measurement: str, column: str) -> pd.Index:
    """The times at which ``column`` of ``measurement`` was recorded."""
    return step_stats(run.chunks(measurement, ["time", column]), column).index


def loading_section(run: RunData, figs: Figures) -> Section | None:
    """Max line and trafo loading per step, and the most loaded elements one by one (their
    highest loading over the run when the tables are not whole)."""
    if not run.tables_whole:
        return extremes_sections.loading_section(run, figs)
    columns = ["time", "element", "loading_percent"]
    kinds = [(name, step_stats(run.chunks(name, columns), "loading_percent"))
             for name in ("line", "trafo")]
    kinds = [(name, stats) for name, stats in kinds if not stats.empty]
    if not kinds:
        return None
    fig = make_subplots(rows=len(kinds), cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=[f"{name}s" for name, _ in kinds])
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2"]
    for row, (name, stats) in enumerate(kinds, start=1):
        step = binned_steps(stats, ("max",))
        group = dict(legendgroup=name, legendgrouptitle_text=f"{name}s")
        fig.add_trace(go.Scatter(x=xs_ms(step.index), y=rounded(step["max"], 2), mode="lines",
                                 name=f"max over all {name}s", line=dict(color="#d62728",
                                                                         width=2.5), **group),
                      row=row, col=1)
        peak = element_max(run.chunks(name, columns), "loading_percent")
        top = peak.nlargest(TOP_ELEMENTS).index
        series = element_series(run.chunks(name, columns), "loading_percent", top,
                                bin_width_s(stats.index), how="max")
        for i, element in enumerate(top):
            fig.add_trace(go.Scatter(x=xs_ms(series.index), y=rounded(series[element], 2),
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


def der_section(run: RunData, figs: Figures) -> Section | None:
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
                    x=xs_ms(step.index), y=rounded(step["sum"], 4), mode="lines",
                    name=f"{label} {text} ({n_plants} plants) [MW]",
                    line=dict(color=colour, dash=dash, width=2 if dash is None else 1.2),
                    visible=True if column != "p_available_mw" else "legendonly"))
        fig.update_layout(yaxis_title="power [MW]", xaxis_title="time (UTC)")
        parts.append("<h3>PV and wind</h3><p>Sums over all plants; curtailed = available − "
                     "delivered (the available power shows when its legend entry is clicked)."
                     "</p>" + figs.html(fig))
    battery = run.read(schema.BATTERY)
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
            fig.add_trace(go.Scatter(x=xs_ms(soc.index), y=rounded(soc[unit], 4), mode="lines",
                                     name=str(unit), legendgroup=str(unit),
                                     line=dict(color=colour)), row=1, col=1)
            fig.add_trace(go.Scatter(x=xs_ms(power.index), y=rounded(power[unit], 4), mode="lines",
                                     name=str(unit), legendgroup=str(unit), showlegend=False,
                                     line=dict(color=colour)), row=2, col=1)
        fig.update_yaxes(title_text="SOC [–]", row=1, col=1)
        fig.update_yaxes(title_text="P [MW] (+ charging)", row=2, col=1)
        fig.update_xaxes(title_text="time (UTC)", row=2, col=1)
        shown = "" if len(units) == len(throughput) else (
            f" ({len(units)} of {len(throughput)} units: the most used)")
        parts.append(f"<h3>Batteries{shown}</h3>" + figs.html(fig, 560))
    ev = run.read(schema.EV)
    if ev is not None and "p_mw" in ev:
        fig = make_subplots(specs=[[{"secondary_y": True}]])
        step = per_step(ev, "p_mw", ("sum",))
        fig.add_trace(go.Scatter(x=xs_ms(step.index), y=rounded(step["sum"], 4), mode="lines",
                                 name="EV charging P, all buses [MW]",
                                 line=dict(color="#9467bd", width=2)), secondary_y=False)
        if "n_connected" in ev:
            connected = per_step(ev.assign(n_connected=ev["n_connected"].astype(float)),
                                 "n_connected", ("sum",))
            fig.add_trace(go.Scatter(x=xs_ms(connected.index), y=rounded(connected["sum"], 1),
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


def network_section(run: RunData, figs: Figures) -> Section | None:
    """The grid at its recorded positions: see :func:`network_figure`."""
    fig = network_figure(run)
    if fig is None:
        return None
    source = "" if run.tables_whole else (
        " Colours from the per-element extremes over the run (every solve): the element "
        "tables were not stored whole, so which lines were out of service is not known here "
        "(none is drawn dashed).")
    where = "The grid at its geodata positions."
    if fig.layout.meta and fig.layout.meta.get("projection") == "web_mercator":
        where = ("The grid at its geodata positions (longitude/latitude), drawn on Web "
                 "Mercator: east and north at one scale, the axes in degrees, the scale bar "
                 "in km on the ground. Labelled, as many as fit: the substations (their "
                 "transformers), feeds, the first bus of each feeder and the buses with the "
                 "lowest and the highest voltage.")
    return Section("network", "Network", (
        f"<p>{where} Buses: the voltage furthest from 1 p.u. each "
        "reached in the run (red above, blue below; saturated colours are outside the band). "
        "Lines and transformers: their peak loading (green, amber from 80 %, red from "
        "100 %); dashed grey: lines out of service throughout the run (e.g. open ties). "
        f"Hover for names and values.{source}</p>") + figs.html(fig, 620, time_x=False))


#: Most labels on a map of a lon/lat grid (those that fit, in the order of :data:`_LABEL_KINDS`).
MAX_MAP_LABELS = 12
#: What a map labels, in the order labels are kept, and the marker drawn at each.
_LABEL_KINDS = {ROLE_SUBSTATION: "square-open", ROLE_FEED: "diamond-open",
                "extreme": "circle-open", ROLE_FEEDER_HEAD: "triangle-up-open"}
#: A label's box as a share of the map's larger extent: per character wide, and high.
_LABEL_CHAR_WIDTH = 0.012
_LABEL_HEIGHT = 0.04


def network_figure(run: RunData) -> go.Figure | None:
    """The grid at its recorded positions (``grid_geo``): each bus coloured by the voltage
    furthest from 1 p.u. it reached, lines and transformers by their peak loading.

    Traces: the routes (grey, one trace), the branch dots coloured by peak loading (named
    ``lines, transformers``) and the buses (named ``buses``), each where recorded. Positions
    in km are drawn as they are; longitude/latitude (:func:`twin.grid.geo.looks_lonlat`) on
    Web Mercator (:func:`twin.grid.geo.web_mercator_km`), with the axes in degrees, a
    ``scale bar`` and ``labels`` (:func:`map_label_points`); ``layout.meta["projection"]`` is
    then ``"web_mercator"``."""
    geo = run.read(schema.GRID_GEO)
    if geo is None or not {"x_km", "y_km", "kind"} <= set(geo.columns):
        return None
    if "dot" in geo:  # "0".."8" as tags: sort them as numbers
        geo = geo.assign(dot=pd.to_numeric(geo["dot"], errors="coerce"))
    # positions are km, or longitude/latitude in degrees: then drawn where Web Mercator puts
    # them (km east and north, one scale both ways, so the map keeps its shape)
    lonlat = looks_lonlat(geo["x_km"], geo["y_km"])
    if lonlat:
        px, py = web_mercator_km(geo["x_km"], geo["y_km"])
        geo = geo.assign(px=px, py=py)
    else:
        geo = geo.assign(px=geo["x_km"], py=geo["y_km"])
    fig = go.Figure()
    whole = run.tables_whole
    # tables not whole: the rows kept are a few elements' only, the extremes cover them all
    peaks = {} if whole else extremes_sections.branch_peaks(run)
    off_lines: set = set()  # lines out of service the whole run (e.g. case33bw's ties)
    for kind in ("line", "trafo"):
        if whole:
            peaks.update(element_max(run.chunks(kind, ["element", "loading_percent"]),
                                     "loading_percent").to_dict())
        if kind == "line" and whole:  # (unknown otherwise: no line is drawn dashed)
            ever_on = element_any(run.chunks(kind, ["element", "in_service"]), "in_service")
            off_lines = set(ever_on.index[~ever_on])
    branch = geo[geo["kind"].isin(["line", "trafo"])].copy()
    if not branch.empty:
        branch = branch.sort_values(["kind", "element", "dot"], kind="stable")
        is_off = (branch["kind"] == "line") & branch["element"].isin(off_lines)
        # every route in one trace, broken by None: grey, dashed when out of service
        for part, style in ((branch[~is_off], dict(color="#c8c8c8", width=2)),
                            (branch[is_off], dict(color="#9a9a9a", width=1.5, dash="dash"))):
            if part.empty:
                continue
            xs, ys, text = [], [], []
            for (_, element), route in part.groupby(["kind", "element"], sort=False):
                xs += list(route["px"]) + [None]
                ys += list(route["py"]) + [None]
                text += [f"{element}: out of service"] * len(route) + [None]
            off = style.get("dash") is not None
            fig.add_trace(go.Scatter(
                x=xs, y=ys, mode="lines", showlegend=False, line=style,
                name="out of service" if off else "routes",
                hovertext=text if off else None, hoverinfo="text" if off else "skip"))
        branch = branch[~is_off]
        loaded = branch.assign(peak=branch["element"].map(peaks)).dropna(subset=["peak"])
        if not loaded.empty:
            top = max(100.0, float(loaded["peak"].max()))
            fig.add_trace(go.Scatter(
                x=loaded["px"], y=loaded["py"], mode="markers", name="lines, transformers",
                marker=dict(size=7, color=rounded(loaded["peak"], 1), cmin=0.0, cmax=top,
                            colorscale=[[0.0, "#2ca02c"], [min(0.8, 80 / top), "#ffbf00"],
                                        [min(1.0, 100 / top), "#d62728"], [1.0, "#7f0000"]],
                            colorbar=dict(title="peak loading [%]", x=1.0, len=0.9)),
                hovertext=[f"{e}: peak {p:.1f} %" for e, p in zip(loaded["element"],
                                                                  loaded["peak"])],
                hoverinfo="text"))
    buses = geo[geo["kind"] == "bus"]
    values = pd.Series(dtype=float)
    if not buses.empty:
        worst = (element_furthest(run.chunks(schema.BUS, ["element", "vm_pu"]), "vm_pu", 1.0)
                 if whole else extremes_sections.bus_worst(run))
        values = buses["element"].map(worst)
        band = run.kpis.get("voltage_band_pu") or [0.95, 1.05]
        half = max(abs(float(band[0]) - 1.0), abs(float(band[1]) - 1.0),
                   float(np.nanmax(np.abs(values - 1.0))) if values.notna().any() else 0.0)
        fig.add_trace(go.Scatter(
            x=buses["px"], y=buses["py"], mode="markers", name="buses",
            marker=dict(size=13, color=rounded(values, 4), colorscale="RdBu_r", cmid=1.0,
                        cmin=1.0 - half, cmax=1.0 + half, line=dict(color="#333", width=1),
                        colorbar=dict(title="worst vm [p.u.]", x=1.12, len=0.9)),
            hovertext=[f"{e}: {v:.4f} p.u." if pd.notna(v) else f"{e}: no voltage"
                       for e, v in zip(buses["element"], values)],
            hoverinfo="text"))
    x_title, y_title = axis_titles(lonlat)
    if not lonlat:
        fig.update_layout(xaxis=dict(title=x_title, zeroline=False),
                          yaxis=dict(title=y_title, scaleanchor="x", scaleratio=1.0,
                                     zeroline=False),
                          showlegend=False)
        return fig
    labels = map_label_points(buses, values)
    if not labels.empty:
        fig.add_trace(go.Scatter(
            x=labels["px"], y=labels["py"], mode="markers+text", name="labels",
            text=labels["text"], textposition="top center",
            textfont=dict(size=11, color="#222", shadow="auto"),
            marker=dict(symbol=list(labels["symbol"]), size=17, color="#222",
                        line=dict(width=1.5)),
            hoverinfo="skip"))
    x0, x1 = float(geo["px"].min()), float(geo["px"].max())
    y0, y1 = float(geo["py"].min()), float(geo["py"].max())
    bar = scale_bar(x0, x1, y0, y1)
    fig.add_trace(go.Scatter(x=bar["x"], y=bar["y"], text=bar["text"], mode="lines+text",
                             name="scale bar", textposition="bottom center",
                             line=dict(color="#222", width=2), hoverinfo="skip"))
    lon0, lat0 = web_mercator_lonlat(x0, y0)
    lon1, lat1 = web_mercator_lonlat(x1, y1)
    lon_ticks, lat_ticks = degree_ticks(float(lon0), float(lon1)), degree_ticks(
        float(lat0), float(lat1))
    fig.update_layout(
        xaxis=dict(title=x_title, zeroline=False, showgrid=True,
                   tickvals=web_mercator_km(lon_ticks["deg"], 0.0)[0],
                   ticktext=[f"{t}°{'E' if d >= 0 else 'W'}"
                             for t, d in zip(lon_ticks["text"], lon_ticks["deg"])]),
        yaxis=dict(title=y_title, scaleanchor="x", scaleratio=1.0, zeroline=False,
                   showgrid=True, tickvals=web_mercator_km(0.0, lat_ticks["deg"])[1],
                   ticktext=[f"{t}°{'N' if d >= 0 else 'S'}"
                             for t, d in zip(lat_ticks["text"], lat_ticks["deg"])]),
        showlegend=False, meta={"projection": "web_mercator"})
    return fig


def map_label_points(buses: pd.DataFrame, values: pd.Series) -> pd.DataFrame:
    """The labels a lon/lat map writes, those that fit: columns ``element``, ``px``, ``py``
    (where they stand), ``text``, ``kind`` and ``symbol``.

    Candidates, in the order they are kept: the buses :func:`twin.grid.geo.map_labels` named
    when the run was recorded (``role``/``label`` of ``grid_geo``: substations, feeds), the
    buses with the lowest and the highest of ``values`` (each bus's worst voltage), then the
    feeder heads; named ones by bus name. A label is left out when its box
    (:data:`_LABEL_CHAR_WIDTH` per character by :data:`_LABEL_HEIGHT`, shares of the map's
    larger extent) overlaps one kept already, and beyond :data:`MAX_MAP_LABELS`; every bus
    still shows its name on hover."""
    empty = pd.DataFrame(columns=["element", "px", "py", "text", "kind", "symbol"])
    if buses.empty:
        return empty
    candidates = []
    if {"role", "label"} <= set(buses.columns):
        named = buses.dropna(subset=["role", "label"])
        for row in named.itertuples():
            candidates.append((row.role, row.element, row.px, row.py, str(row.label)))
    if values.notna().any():
        for which, idx in (("lowest", values.idxmin()), ("highest", values.idxmax())):
            row = buses.loc[idx]
            candidates.append(("extreme", row["element"], row["px"], row["py"],
                               f"{which} {values[idx]:.3f} p.u. ({row['element']})"))
    order = list(_LABEL_KINDS)
    candidates = [c for c in candidates if c[0] in _LABEL_KINDS]
    # stable: the lowest before the highest
    candidates.sort(key=lambda c: (order.index(c[0]),
                                   [] if c[0] == "extreme" else natural_key(str(c[1]))))
    extent = max(float(buses["px"].max() - buses["px"].min()),
                 float(buses["py"].max() - buses["py"].min()), 1e-6)
    kept: list[tuple] = []
    for kind, element, x, y, text in candidates:
        if len(kept) >= MAX_MAP_LABELS:
            break
        width = _LABEL_CHAR_WIDTH * len(text) * extent
        clash = any(abs(x - kx) < (width + _LABEL_CHAR_WIDTH * len(kt) * extent) / 2
                    and abs(y - ky) < _LABEL_HEIGHT * extent
                    for _, _, kx, ky, kt in kept)
        if not clash:
            kept.append((kind, element, x, y, text))
    if not kept:
        return empty
    out = pd.DataFrame(kept, columns=["kind", "element", "px", "py", "text"])
    return out.assign(symbol=out["kind"].map(_LABEL_KINDS))[
        ["element", "px", "py", "text", "kind", "symbol"]]


#: Ground lengths [km] a scale bar may have.
_SCALE_KM = (0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0)


def scale_bar(x0: float, x1: float, y0: float, y1: float) -> dict:
    """A scale bar under a Web Mercator map spanning x0..x1, y0..y1 [map km]: a bracket from
    its lower left corner, as long on the map as a round ground length (the longest of
    :data:`_SCALE_KM` within a quarter of the map's larger extent on the ground), with that
    length as text.

    Returns
    -------
    dict
        ``x``, ``y``: the bracket's five points [map km] (the middle one carries the text),
        ``text``: five strings, ``ground_km`` and ``map_km``: its length on the ground and on
        the map.

    Notes
    -----
    Web Mercator's scale factor is :math:`1/\\cos\\varphi` (:func:`web_mercator_km`): a
    ground length :math:`L` at the bar's latitude :math:`\\varphi` is :math:`L/\\cos\\varphi`
    long on the map."""
    height = max(y1 - y0, 1e-6)
    y = y0 - 0.05 * height
    lat = float(web_mercator_lonlat(0.0, y)[1])
    k = 1.0 / math.cos(math.radians(lat))
    ground_width = max(x1 - x0, height) / k
    ground = max([km for km in _SCALE_KM if km <= ground_width / 4] or [_SCALE_KM[0]])
    length = ground * k
    tick = 0.015 * height
    text = f"{ground:g} km" if ground >= 1 else f"{ground * 1000:g} m"
    return {"x": [x0, x0, x0 + length / 2, x0 + length, x0 + length],
            "y": [y + tick, y, y, y, y + tick], "text": ["", "", text, "", ""],
            "ground_km": ground, "map_km": length}


#: Spacings [°] of a map's graticule.
_DEGREE_STEPS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)


def degree_ticks(lo: float, hi: float, most: int = 6) -> dict:
    """Round degrees for the ticks (and grid lines) of one map axis spanning lo..hi [°]:
    the finest of :data:`_DEGREE_STEPS` with at most ``most`` ticks inside, continued one
    span beyond either end so that a zoomed-out map keeps its graticule.

    Returns
    -------
    dict
        ``deg``: the ticks [°] (numpy array), ``text``: each formatted with the step's
        decimals (no sign: the caller adds E/W or N/S)."""
    span = max(hi - lo, 1e-9)
    step = next((s for s in _DEGREE_STEPS if span / s <= most), _DEGREE_STEPS[-1])
    first, last = math.floor((lo - span) / step), math.ceil((hi + span) / step)
    deg = np.arange(first, last + 1) * step
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    return {"deg": deg, "text": [f"{abs(d):.{decimals}f}" for d in deg]}
