"""Sections about what happened: communication health, DMS decisions, reliability."""

from __future__ import annotations

import html

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from twin.evaluation.reliability import MOMENTARY_S
from twin.recording import schema
from twin.report.figures import Figures, Section, count_axis, rounded, xs_ms
from twin.report.formatting import (
    RELIABILITY_KEYS,
    cell_text,
    format_value,
    html_table,
    kpi_label,
    kpi_unit,
    limited,
)
from twin.report.frames import interruptions, natural_key
from twin.report.run_data import RunData
from twin.report.streams import element_any, rows_of
from twin.timebase import parse_duration_s


def comm_section(run: RunData, figs: Figures) -> Section | None:
    """Telemetry latency per RTU, messages lost per RTU, command outcomes."""
    parts = []
    telemetry = run.read(schema.TELEMETRY)
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
            x=names, q1=rounded(stats["25%"], 3), median=rounded(stats["50%"], 3),
            q3=rounded(stats["75%"], 3), lowerfence=rounded(stats["1%"], 3),
            upperfence=rounded(stats["99%"], 3), mean=rounded(stats["mean"], 3),
            name="latency", marker_color="#1f77b4", boxpoints=False))
        ticks = [v * 10.0 ** e for e in range(-1, 5) for v in (1, 2, 5)]
        fig.update_layout(yaxis=dict(title="latency [ms] (log)", type="log", tickvals=ticks),
                          showlegend=False)
        table = html_table(["RTU", "values", "mean [ms]", "median [ms]", "95 % [ms]", "99 % [ms]",
                        "max [ms]"],
                       [(name, f"{int(row['count']):,}", cell_text(row["mean"]),
                         cell_text(row["50%"]), cell_text(row["95%"]), cell_text(row["99%"]),
                         cell_text(row["max"]))
                        for name, row in zip(names, stats.to_dict("records"))])
        parts.append("<h3>Telemetry latency per RTU</h3><p>Box: quartiles; whiskers: 1 % and "
                     "99 % quantiles; dashed: mean.</p>"
                     + figs.html(fig, time_x=False, height_px=380) + table)
    comm = run.read(schema.COMM)
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
        fig.update_layout(barmode="stack", yaxis=count_axis(
            "messages lost", max(int(sum(v.max() for v in lost.values())), 0)))
        rows = []
        for name, row in last.iterrows():
            sent = int(row["sent"]) if pd.notna(row["sent"]) else 0
            n_lost = sum(int(lost[c][name]) for c in lost)
            rows.append((name, f"{sent:,}", f"{int(row['delivered']):,}",
                         *(f"{int(lost[c][name]):,}" for c in lost),
                         f"{100.0 * n_lost / sent:.2f}" if sent else ""))
        table = html_table(["RTU", "sent", "delivered", *(c.replace("_", " ") for c in lost),
                        "lost [%]"], rows)
        parts.append("<h3>Messages lost per RTU</h3><p>Both directions, whole run.</p>"
                     + figs.html(fig, time_x=False, height_px=340) + table)
    command = run.read(schema.COMMAND)
    if command is not None and "status" in command:
        via = command["via"].fillna("?") if "via" in command else pd.Series("?", command.index)
        counts = command.assign(via=via).groupby(["via", "status"]).size().unstack(fill_value=0)
        fig = go.Figure()
        status_colours = {"success": "#2ca02c", "failed": "#d62728", "timeout": "#ff7f0e"}
        for status in counts.columns:
            fig.add_trace(go.Bar(x=[str(v) for v in counts.index], y=counts[status].to_numpy(),
                                 name=str(status), marker_color=status_colours.get(status)))
        fig.update_layout(barmode="stack", xaxis_title="via",
                          yaxis=count_axis("commands", int(counts.sum(axis=1).max())))
        headers = {"time": "result time", "element": "target", "action": "action",
                   "value": "value", "status": "status", "via": "via",
                   "applied_delay_s": "applied after [s]", "result_delay_s": "result after [s]",
                   "reason": "reason"}
        columns = [c for c in headers if c in command]
        # name targets as the decisions do: by grid element (pv:PV 3 is sgen:PV 3)
        command = command.assign(element=[grid_element_ref(e, run.scenario)
                                          for e in command["element"]])
        shown, note = limited(command.sort_values("time", kind="stable"), "commands")
        table = html_table([headers[c] for c in columns],
                       [[cell_text(row[c]) for c in columns] for row in shown.to_dict("records")])
        parts.append(f"<h3>Command outcomes ({len(command):,} commands)</h3>"
                     + figs.html(fig, time_x=False, height_px=320) + note + table)
    if not parts:
        return None
    return Section("comm", "Communication health", "".join(parts))


#: Field device kinds → the grid table holding the element they drive.
_DEVICE_TABLES = {"pv": ("sgen", "pv", "plants", "sgen"),
                  "wind": ("sgen", "wind", "plants", "sgen"),
                  "battery": ("storage", "batteries", "units", "storage")}


def grid_element_ref(ref: object, scenario: dict) -> object:
    """A field device reference as the grid element it drives, the way the DMS names its
    decisions' targets: ``pv:PV 3`` → ``sgen:PV 3`` (or the sgen a plant named otherwise
    drives, ``pv:Roof A`` → ``sgen:PV 3 (pv:Roof A)``), ``battery:B`` → ``storage:B``,
    ``ev:Bus 10`` → ``load:EV Bus 10``; grid references unchanged."""
    if not isinstance(ref, str):
        return ref
    kind, sep, name = ref.partition(":")
    if not sep:
        return ref
    if kind == "ev":
        return f"load:EV {name}"
    if kind not in _DEVICE_TABLES:
        return ref
    table, section, items, key = _DEVICE_TABLES[kind]
    spec = scenario.get(section) if isinstance(scenario, dict) else None
    for item in (spec.get(items) or []) if isinstance(spec, dict) else []:
        if isinstance(item, dict) and item.get("name") == name and item.get(key):
            if item[key] != name:
                return f"{table}:{item[key]} ({ref})"
    return f"{table}:{name}"


def decisions_section(run: RunData, figs: Figures) -> Section | None:
    """DMS decisions and protection events on one timeline; both as tables too."""
    decisions = run.read(schema.DMS_DECISION)
    protection = run.read(schema.PROTECTION)
    cycles = run.read(schema.DMS_CYCLE)
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
            hover = [f"{cell_text(t)}<br>{html.escape(str(a))} {html.escape(str(e))}<br>"
                     f"{html.escape(wrap_hover(str(r)))}"
                     for t, a, e, r in zip(group["time"], group.get("action", ""),
                                           group["element"], group.get("reason", ""))]
            fig.add_trace(go.Scatter(
                x=xs_ms(group["time"]), y=group.get("function", "dms").astype(str).to_numpy(),
                mode="markers", name=f"decision ({mode or 'no mode'})",
                marker=dict(symbol=symbols.get(mode, "circle"), size=10),
                hovertext=hover, hoverinfo="text"))
    if protection is not None:
        kinds = protection.get("kind", pd.Series("event", protection.index)).fillna("event")
        hover = [f"{cell_text(t)}<br>{html.escape(str(k))} {html.escape(str(e))}"
                 for t, k, e in zip(protection["time"], kinds, protection["element"])]
        fig.add_trace(go.Scatter(
            x=xs_ms(protection["time"]), y=["protection: " + k for k in kinds],
            mode="markers", name="protection", hovertext=hover, hoverinfo="text",
            marker=dict(symbol="x", size=11, color="#d62728")))
    if run.start is not None and run.end is not None:
        # the run's span, padded: a decision in the first cycle (seconds after the start)
        # would otherwise be half cut off at the axis
        start_ms, end_ms = xs_ms([run.start])[0], xs_ms([run.end])[0]
        pad_ms = 0.01 * (end_ms - start_ms)
        fig.update_xaxes(range=[start_ms - pad_ms, end_ms + pad_ms])
    fig.update_layout(xaxis_title="time (UTC)", yaxis=dict(type="category"))
    n_rows = len(set(trace.y[i] for trace in fig.data for i in range(len(trace.y))))
    parts.append(figs.html(fig, int(min(600, 200 + 40 * n_rows))))
    if decisions is not None:
        columns = [c for c in ("time", "function", "action", "element", "value", "mode",
                               "reason") if c in decisions]
        inputs = [c for c in decisions.columns if c.startswith("in_")]
        shown, note = limited(decisions, "decisions")
        rows = [[cell_text(row[c], None) for c in columns]
                + ["; ".join(f"{c[3:]} = {cell_text(row[c], None)}" for c in inputs
                             if cell_text(row[c], None) != "")]
                for row in shown.to_dict("records")]
        parts.append(f"<h3>Decisions ({len(decisions):,})</h3>" + note
                     + html_table(columns + ["inputs"], rows, css="log"))
    if protection is not None:
        columns = [c for c in ("time", "element", "kind", "fault", "type", "i_fault_ka",
                               "ikss_ka", "pickup_ka", "delay_s") if c in protection]
        shown, note = limited(protection.sort_values("time", kind="stable"),
                               "protection events")
        parts.append(f"<h3>Protection events ({len(protection):,})</h3>" + note + html_table(
            columns, [[cell_text(row[c]) for c in columns] for row in shown.to_dict("records")]))
    if failed is not None and not failed.empty:
        columns = [c for c in ("time", "function", "message") if c in failed]
        shown, note = limited(failed, "failed DMS cycles")
        parts.append(f"<h3>Failed DMS cycles ({len(failed):,})</h3>" + note + html_table(
            columns, [[cell_text(row[c]) for c in columns] for row in shown.to_dict("records")]))
    return Section("decisions", "DMS decisions and protection", "".join(parts))


def wrap_hover(text: str, width: int = 90) -> str:
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


def reliability_section(run: RunData, figs: Figures) -> Section | None:
    """Which loads were off when, and the IEEE 1366 indices of kpis.json."""
    columns = ["time", "element", "supplied"]
    # only the loads that were ever off are read whole (a big grid has ~10,000 loads)
    was_off = element_any((c.assign(off=~c["supplied"].astype("boolean"))
                           for c in run.chunks(schema.LOAD, columns) if "supplied" in c), "off")
    keys = [k for k in RELIABILITY_KEYS if k in run.kpis]
    has_supply = not was_off.empty
    off_loads = list(was_off.index[was_off.astype(bool)])
    load = pd.concat(list(rows_of(run.chunks(schema.LOAD, columns), off_loads))) \
        if off_loads else None
    if not keys and not has_supply:
        return None
    parts = []
    if keys:
        parts.append(html_table(["index", "value", "unit"],
                            [(kpi_label(k), format_value(k, run.kpis[k]), kpi_unit(k))
                             for k in keys], css="kpis"))
    if has_supply:
        off = interruptions(load, run.end) if load is not None else \
            pd.DataFrame(columns=["element", "off", "back", "duration_min"])
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
                    y=group["element"].astype(str).to_numpy(), base=xs_ms(group["off"]),
                    x=rounded(group["duration_min"] * 60_000.0, 0), orientation="h",
                    name=kind, marker_color=colour,
                    hovertext=[f"{e}: off {cell_text(a)} for {d:.2f} min"
                               for e, a, d in zip(group["element"], group["off"],
                                                  group["duration_min"])],
                    hoverinfo="text"))
            loads = sorted(off["element"].unique(), key=natural_key)
            fig.update_layout(
                barmode="overlay", xaxis=dict(type="date", title="time (UTC)"),
                yaxis=dict(type="category", categoryorder="array", categoryarray=loads[::-1]))
            if run.start is not None and run.end is not None:
                fig.update_xaxes(range=[xs_ms([run.start])[0], xs_ms([run.end])[0]])
            shown, note = limited(off, "interruptions")
            parts.append(
                f"<h3>Interruptions ({len(off):,}; momentary: {momentary_s / 60:g} min or "
                "less)</h3>"
                + figs.html(fig, int(min(700, 160 + 30 * len(loads)))) + note
                + html_table(["load", "off", "back", "duration [min]", "kind"],
                         [(r["element"], cell_text(r["off"]),
                           cell_text(r["back"]) if pd.notna(r["back"]) else "not back",
                           cell_text(r["duration_min"], 2), r["kind"])
                          for r in shown.to_dict("records")]))
    return Section("reliability", "Reliability", "".join(parts))
