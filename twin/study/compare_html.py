"""``compare.html``: the comparison of ``twin compare`` as one self-contained, offline page.

Built from compare.json's content (:func:`twin.study.compare.compare_results`) and the run
directories it names, with the report's pieces (:mod:`twin.report`: the run directory
reader, the per-step aggregates, the plotly fragments, the tables; plotly.js inlined once):

1. the verdict banner, both sides' settings, the rule;
2. per scenario, the KPI delta table (better green, worse red; information KPIs folded);
3. per scenario, from each side's first seed: the voltage band of both sides overlaid (min
   and max bus voltage per step), the highest line and transformer loading per step, the
   unserved power (demand of loads not supplied) per step, both decision logs side by side
   from the first divergence on highlighted, each side's expectation results, the runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import plotly.offline
from plotly.subplots import make_subplots

from twin.recording import schema
from twin.report.extremes_sections import band_per_step
from twin.report.figures import Figures, Section, rounded, xs_ms
from twin.report.formatting import cell_text, esc, format_value, html_table
from twin.report.frames import per_step
from twin.report.page import CSS as REPORT_CSS
from twin.report.run_data import RunData, RunDirectoryError, load_run
from twin.study.compare import SIDES, Decision, load_decisions

COMPARE_NAME = "compare.html"
#: Most rows of the side-by-side decision log.
MAX_DECISION_ROWS = 500

#: A colour per side, the same in every figure.
COLOURS = {"baseline": "#ff7f0e", "candidate": "#1f77b4"}

_CSS = REPORT_CSS + """
.verdict { padding: 12px 18px; border-radius: 6px; font-size: 20px; font-weight: 600;
           margin: 12px 0; }
.verdict.better { background: #dff3e0; border: 2px solid #2ca02c; }
.verdict.worse { background: #fbe0e0; border: 2px solid #d62728; }
.verdict.mixed { background: #fff1d6; border: 2px solid #ff7f0e; }
.verdict.same { background: #eef1f5; border: 2px solid #7f7f7f; }
tr.better td { background: #e8f6e9; } tr.worse td { background: #fbe7e7; }
td.better { color: #1a7f1a; font-weight: 600; } td.worse { color: #c01c1c; font-weight: 600; }
tr.diverged td { background: #fff6e0; } tr.first-divergence td { background: #ffe2a8;
  font-weight: 600; }
td.side-gap { border-left: 3px solid #bbb; }
.pass { color: #1a7f1a; } .fail { color: #c01c1c; font-weight: 600; }
"""


# ------------------------------------------------------------------------------ header


def header_section(result: dict) -> Section:
    """The verdict banner, the sides and the rule."""
    verdict = str(result.get("verdict", ""))
    sides = []
    for side in SIDES:
        spec = result.get(side) or {}
        applied = spec.get("applied") or []
        sides.append((side, ", ".join(applied) if applied else "the scenario as it is"))
    incomplete = result.get("runs_not_completed") or []
    facts = [
        *sides,
        ("scenarios", ", ".join(s["label"] for s in result.get("scenarios", []))),
        ("seeds per scenario", result.get("seeds_per_scenario")),
        ("until", result.get("until") or "the scenario's whole duration"),
        ("critical KPIs", ", ".join(result.get("critical", []))),
        ("relative tolerance", f"{result.get('rtol', 0):g}"),
        ("rule", result.get("rule", "")),
        ("exit code", result.get("exit_code")),
    ]
    if incomplete:
        facts.append(("runs not completed", "; ".join(
            f"{r['key']}: {r['status']} {r.get('error', '')}".strip() for r in incomplete)))
    body = (f'<div class="verdict {esc(verdict)}">{esc(result.get("summary", verdict))}</div>'
            + html_table(["", ""], facts, css="facts"))
    return Section("verdict", "Verdict", body)


# ------------------------------------------------------------------------------ KPI table


def _number(key: str, value: Any) -> str:
    return format_value(key, value)


def _relative(value: Any) -> str:
    return "" if value is None else f"{100.0 * value:+.1f} %"


def _interval(key: str, ci: Any) -> str:
    if not ci:
        return ""
    return f"[{format_value(key, ci[0])}, {format_value(key, ci[1])}]"


def kpi_table(scenario: dict) -> str:
    """The critical KPIs and every change; folded: the unchanged judged KPIs and the
    information ones."""
    kpis = scenario.get("kpis", {})
    judged = [k for k in kpis.values() if k.get("direction")]
    judged.sort(key=lambda k: not k.get("critical"))
    # first the critical KPIs and every change; the unchanged rest folded
    shown = [k for k in judged if k.get("critical") or k.get("judgement") in ("better", "worse")]
    unchanged = [k for k in judged if k not in shown]
    info = [k for k in kpis.values() if not k.get("direction")]
    return (_judged_table(shown)
            + (f"<details><summary>{len(unchanged)} other judged KPIs, all the same or without "
               "a value</summary>" + _judged_table(unchanged) + "</details>" if unchanged
               else "")
            + _info_table(info))


def _judged_table(judged: list[dict]) -> str:
    head = ("<tr><th>KPI</th><th>unit</th><th>good</th><th>critical</th><th>baseline</th>"
            "<th>candidate</th><th>delta</th><th>relative</th><th>95 % interval</th>"
            "<th>per seed (baseline → candidate)</th><th>judgement</th></tr>")
    rows = []
    for k in judged:
        key, judgement = k["key"], k.get("judgement") or ""
        seeds = "; ".join(f"{format_value(key, b)} → {format_value(key, c)}"
                          for b, c in zip(k.get("baseline_values", []),
                                          k.get("candidate_values", [])))
        why = k.get("why") or ""
        if judgement == "same" and k.get("seeds_worse"):
            why += "; worse in seed " + ", ".join(str(s) for s in k["seeds_worse"])
        why = f" ({why})" if why else ""
        rows.append(
            f'<tr class="{esc(judgement)}"><td>{esc(key)}</td><td>{esc(k.get("unit"))}</td>'
            f"<td>{esc(k.get('direction'))}</td><td>{'yes' if k.get('critical') else ''}</td>"
            f'<td class="num">{esc(_number(key, k.get("baseline")))}</td>'
            f'<td class="num">{esc(_number(key, k.get("candidate")))}</td>'
            f'<td class="num">{esc(_number(key, k.get("delta")))}</td>'
            f'<td class="num">{esc(_relative(k.get("relative_delta")))}</td>'
            f'<td class="num">{esc(_interval(key, k.get("ci95")))}</td>'
            f"<td>{esc(seeds)}</td>"
            f'<td class="{esc(judgement)}">{esc(judgement or "n/a")}{esc(why)}</td></tr>')
    return (f'<div class="wide"><table class="kpis"><thead>{head}</thead><tbody>'
            + "".join(rows) + "</tbody></table></div>")


def _info_table(info: list[dict]) -> str:
    rows = [(k["key"], k.get("unit", ""), _number(k["key"], k.get("baseline")),
             _number(k["key"], k.get("candidate")),
             "" if k.get("delta") is None else _number(k["key"], k.get("delta")))
            for k in info]
    return ("<details><summary>Information (not judged: no good direction; the first seed's "
            "value where it is no number)</summary>"
            + html_table(["KPI", "unit", "baseline", "candidate", "delta"], rows)
            + "</details>") if rows else ""


def kpi_section(result: dict) -> Section:
    parts = []
    for scenario in result.get("scenarios", []):
        critical = ", ".join(f"{key} {j or 'n/a'}" for key, j in scenario["critical"].items())
        parts.append(f"<h3>{esc(scenario['label'])}: {esc(scenario['verdict'])}</h3>"
                     f'<p class="note">critical: {esc(critical)}; seeds '
                     f"{esc(', '.join(str(s) for s in scenario['seeds']))}; mean over seeds, "
                     "delta = candidate − baseline.</p>" + kpi_table(scenario))
    return Section("kpis", "KPI deltas", "".join(parts))


# ------------------------------------------------------------------------------ figures


def _first_runs(scenario: dict) -> dict[str, RunData | None]:
    """Each side's run of the scenario's first seed, or None if it cannot be read."""
    first = scenario["seeds"][0] if scenario.get("seeds") else None
    out: dict[str, RunData | None] = {}
    for side in SIDES:
        row = next((r for r in scenario.get("runs", [])
                    if r.get("side") == side and r.get("seed") == first), None)
        try:
            out[side] = load_run(row["run_dir"]) if row and row.get("run_dir") else None
        except RunDirectoryError:
            out[side] = None
    return out


def voltage_figure(runs: dict[str, RunData | None], figs: Figures) -> str:
    """Min and max bus voltage per step of both sides, the band shaded."""
    fig = go.Figure()
    band = None
    for side in SIDES:
        run = runs.get(side)
        # the grid summary's min/max over all buses at every solve: whole under every
        # recording policy (a summary-mode bus table holds only the violations)
        step = band_per_step(run) if run else None
        if step is None and run is not None and run.tables_whole:  # no grid summary stored
            bus = run.read(schema.BUS)
            step = per_step(bus, "vm_pu", ("min", "max")) \
                if bus is not None and "vm_pu" in bus else None
        if step is None:
            continue
        band = band or run.kpis.get("voltage_band_pu")
        for column, dash in (("max", "solid"), ("min", "dash")):
            fig.add_trace(go.Scatter(x=xs_ms(step.index), y=rounded(step[column], 5),
                                     mode="lines", name=f"{side} {column}",
                                     line={"color": COLOURS[side], "width": 1.8, "dash": dash}))
    if not fig.data:
        return '<p class="note">No bus voltages recorded.</p>'
    if isinstance(band, (list, tuple)) and len(band) == 2:
        fig.add_hrect(y0=band[0], y1=band[1], fillcolor="#2ca02c", opacity=0.10, line_width=0,
                      layer="below")
    fig.update_layout(yaxis_title="bus voltage [p.u.]", xaxis_title="time (UTC)")
    return ("<h3>Voltage band</h3><p>Solid: the highest bus voltage per step; dashed: the "
            "lowest; shaded: the allowed band.</p>" + figs.html(fig))


def loading_figure(runs: dict[str, RunData | None], figs: Figures) -> str:
    """The highest line and transformer loading per step of both sides."""
    partial = [side for side in SIDES if runs.get(side) and not runs[side].tables_whole]
    if partial:  # the per-step maximum over the rows kept would understate it
        return ('<p class="note">Per-step loading is not shown: the element tables of '
                f'{" and ".join(partial)} hold only violations and selected elements '
                "(recording.elements); see each run's report for the loading over the run.</p>")
    kinds = [k for k in (schema.LINE, schema.TRAFO)
             if any(_has(runs.get(side), k, "loading_percent") for side in SIDES)]
    if not kinds:
        return '<p class="note">No line or transformer loading recorded.</p>'
    fig = make_subplots(rows=len(kinds), cols=1, shared_xaxes=True, vertical_spacing=0.1,
                        subplot_titles=[f"highest {k} loading" for k in kinds])
    for row, kind in enumerate(kinds, start=1):
        for side in SIDES:
            run = runs.get(side)
            if not _has(run, kind, "loading_percent"):
                continue
            step = per_step(run.read(kind), "loading_percent", ("max",))
            fig.add_trace(go.Scatter(x=xs_ms(step.index), y=rounded(step["max"], 2),
                                     mode="lines", name=f"{side} ({kind}s)",
                                     line={"color": COLOURS[side], "width": 1.8,
                                           "dash": "solid" if row == 1 else "dot"}),
                          row=row, col=1)
        fig.add_hline(y=100, line={"color": "#7f7f7f", "dash": "dash", "width": 1}, row=row,
                      col=1)
        fig.update_yaxes(title_text="loading [%]", row=row, col=1)
    fig.update_xaxes(title_text="time (UTC)", row=len(kinds), col=1)
    return ("<h3>Line and transformer loading</h3><p>The highest loading over all elements "
            "per step; dashed grey: 100 %.</p>" + figs.html(fig, 280 * len(kinds) + 80))


def _has(run: RunData | None, measurement: str, column: str) -> bool:
    frame = run.read(measurement) if run else None
    return frame is not None and column in frame and bool(frame[column].notna().any())


def unserved_mw(load: pd.DataFrame) -> pd.DataFrame:
    """Demand of the loads not supplied, summed per step [MW] (column ``sum``)."""
    data = load[["time", "supplied", "p_demand_mw"]].dropna(subset=["supplied"])
    off = ~data["supplied"].astype(bool)
    frame = pd.DataFrame({"time": data["time"],
                          "unserved_mw": data["p_demand_mw"].fillna(0.0).where(off, 0.0)})
    return per_step(frame, "unserved_mw", ("sum",))


def unserved_figure(runs: dict[str, RunData | None], figs: Figures) -> str:
    """Unserved power per step of both sides."""
    fig = go.Figure()
    peak = 0.0
    for side in SIDES:
        run = runs.get(side)
        load = run.read(schema.LOAD) if run else None
        if load is None or not {"supplied", "p_demand_mw"} <= set(load.columns):
            continue
        step = unserved_mw(load)
        peak = max(peak, float(step["sum"].max()) if len(step) else 0.0)
        fig.add_trace(go.Scatter(x=xs_ms(step.index), y=rounded(step["sum"], 4), mode="lines",
                                 name=side, line={"color": COLOURS[side], "width": 2,
                                                      "shape": "hv"}))
    if not fig.data:
        return '<p class="note">No load supply states recorded.</p>'
    note = "" if peak > 0 else " No load went unsupplied in either run."
    axis: dict[str, Any] = {"title": "unserved power [MW]"}
    if peak <= 0:  # a flat zero line stays visible above the axis
        axis["range"] = [-0.05, 1.0]
    fig.update_layout(yaxis=axis, xaxis_title="time (UTC)")
    return (f"<h3>Unserved power</h3><p>The demand of loads without supply, summed per "
            f"step.{esc(note)}</p>" + figs.html(fig, 320))


# ------------------------------------------------------------------------------ decisions


def _clock(start: pd.Timestamp | None, t_s: float) -> str:
    if start is None:
        return f"t+{t_s:g} s"
    return cell_text(start + pd.Timedelta(seconds=t_s))


def _decision_cells(d: Decision | None, start: pd.Timestamp | None) -> str:
    if d is None:
        return '<td class="side-gap"></td>' + "<td></td>" * 5
    value = cell_text(d.value, None) if d.value is not None else ""
    title = f' title="{esc(d.reason)}"' if d.reason else ""
    return (f'<td class="side-gap"{title}>{esc(_clock(start, d.t_s))}</td>'
            f"<td{title}>{esc(d.function)}</td><td{title}>{esc(d.action)}</td>"
            f"<td{title}>{esc(d.target)}</td><td{title}>{esc(value)}</td>"
            f"<td{title}>{esc(d.mode)}</td>")


def decisions_html(scenario: dict, runs: dict[str, RunData | None]) -> str:
    """Both decision logs of the first seed side by side, aligned by index."""
    logs = {side: load_decisions(runs[side].run_dir) if runs.get(side) else []
            for side in SIDES}
    divergence = scenario.get("first_divergence")
    start = next((runs[s].start for s in SIDES if runs.get(s) is not None), None)
    seed = scenario["seeds"][0] if scenario.get("seeds") else ""
    if divergence is None:
        text = ("The two DMSs made the same decisions." if any(logs.values())
                else "Neither DMS made a decision.")
    else:
        text = (f"First divergence at decision #{divergence['index'] + 1}, "
                f"{_clock(start, divergence['t_s'])}: baseline "
                f"{_describe(divergence.get('baseline'))}; candidate "
                f"{_describe(divergence.get('candidate'))}.")
    n = max(len(logs["baseline"]), len(logs["candidate"]))
    first = divergence["index"] if divergence else n
    rows = []
    for i in range(min(n, MAX_DECISION_ROWS)):
        b = logs["baseline"][i] if i < len(logs["baseline"]) else None
        c = logs["candidate"][i] if i < len(logs["candidate"]) else None
        css = "first-divergence" if i == first else ("diverged" if i > first else "")
        rows.append(f'<tr class="{css}"><td class="num">{i + 1}</td>'
                    + _decision_cells(b, start) + _decision_cells(c, start) + "</tr>")
    note = (f'<p class="note">The first {MAX_DECISION_ROWS} of {n} decisions are listed.</p>'
            if n > MAX_DECISION_ROWS else "")
    columns = "<th>time</th><th>function</th><th>action</th><th>target</th><th>value</th>" \
              "<th>mode</th>"
    table = ("" if not n else
             '<div class="wide"><table class="log"><thead><tr><th></th>'
             '<th colspan="6">baseline</th><th colspan="6">candidate</th></tr>'
             f"<tr><th>#</th>{columns}{columns}</tr></thead><tbody>" + "".join(rows)
             + "</tbody></table></div>")
    return (f"<h3>DMS decisions, seed {esc(seed)} ({len(logs['baseline'])} baseline, "
            f"{len(logs['candidate'])} candidate)</h3><p>{esc(text)} Hover a row for the "
            "decision's reason; from the first divergence on the rows are highlighted.</p>"
            + note + table)


def _describe(decision: dict | None) -> str:
    if not decision:
        return "no further decision"
    value = decision.get("value")
    return (f"{decision.get('function')} {decision.get('action')} {decision.get('target')}"
            + ("" if value is None else f" = {cell_text(value, None)}"))


# ------------------------------------------------------------------------------ the rest


def expectations_html(scenario: dict) -> str:
    """Each side's expectation results per seed."""
    names: list[tuple[str, str]] = []
    results: dict[tuple[str, int, str], bool] = {}
    for side in SIDES:
        for entry in scenario.get("expectations", {}).get(side, []):
            for item in entry.get("results", []):
                name = (str(item.get("name", "")), str(item.get("kind", "")))
                if name not in names:
                    names.append(name)
                results[(side, entry["seed"], name[0])] = bool(item.get("passed"))
    if not names:
        return ""
    columns = [(side, seed) for side in SIDES for seed in scenario.get("seeds", [])]
    head = "".join(f"<th>{esc(side)} seed {esc(seed)}</th>" for side, seed in columns)
    rows = []
    for name, kind in names:
        cells = []
        for side, seed in columns:
            passed = results.get((side, seed, name))
            cells.append("<td></td>" if passed is None else
                         f'<td class="{"pass" if passed else "fail"}">'
                         f'{"passed" if passed else "failed"}</td>')
        rows.append(f"<tr><td>{esc(name)}</td><td>{esc(kind)}</td>{''.join(cells)}</tr>")
    return ("<h3>Expectations</h3><div class=\"wide\"><table><thead><tr><th>expectation</th>"
            f"<th>kind</th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>")


def runs_html(scenario: dict, page_dir: Path) -> str:
    """The scenario's runs, each linked to its report."""
    rows = []
    for run in scenario.get("runs", []):
        link = ""
        run_dir = run.get("run_dir")
        if run_dir and (Path(run_dir) / "report.html").is_file():
            try:
                href = (Path(run_dir) / "report.html").resolve().relative_to(page_dir.resolve())
            except ValueError:
                href = (Path(run_dir) / "report.html").resolve()
            link = f'<a href="{esc(href.as_posix())}">report</a>'
        passed = (f"{run['expectations_passed']}/{run['expectations_total']}"
                  if run.get("expectations_total") else "")
        rows.append(f"<tr><td>{esc(run.get('side'))}</td><td>{esc(run.get('seed'))}</td>"
                    f"<td>{esc(run.get('status'))}</td><td>{esc(run.get('error', ''))}</td>"
                    f'<td class="num">{esc(cell_text(run.get("wall_time_s"), 1))}</td>'
                    f"<td>{esc(passed)}</td><td>{link}</td></tr>")
    return ("<h3>Runs</h3><div class=\"wide\"><table><thead><tr><th>side</th><th>seed</th>"
            "<th>status</th><th>error</th><th>wall time [s]</th><th>expectations passed</th>"
            f"<th></th></tr></thead><tbody>{''.join(rows)}</tbody></table></div>")


def scenario_section(scenario: dict, figs: Figures, page_dir: Path) -> Section:
    """One scenario: figures of the first seed, decisions, expectations, runs."""
    runs = _first_runs(scenario)
    seed = scenario["seeds"][0] if scenario.get("seeds") else ""
    missing = [side for side in SIDES if runs.get(side) is None]
    parts = [(f'<p class="note">Figures and decisions of seed {esc(seed)}; baseline in orange, '
              "candidate in blue.</p>")]
    if missing:
        parts.append(f'<p class="note">No run directory to read for: '
                     f"{esc(', '.join(missing))}.</p>")
    parts += [voltage_figure(runs, figs), loading_figure(runs, figs),
              unserved_figure(runs, figs), decisions_html(scenario, runs),
              expectations_html(scenario), runs_html(scenario, page_dir)]
    return Section(f"scenario-{scenario['label']}", f"Scenario {scenario['label']}",
                   "".join(parts))


def build_compare_page(result: dict, page_dir: str | Path = ".") -> str:
    """The whole page as one HTML string (plotly.js inlined once).

    Parameters
    ----------
    result : dict
        compare.json's content.
    page_dir : str or Path
        Where the page will be (links to the runs' reports are relative to it).
    """
    figs = Figures()
    sections = [header_section(result), kpi_section(result)]
    sections += [scenario_section(s, figs, Path(page_dir)) for s in result.get("scenarios", [])]
    title = f"dms-twin comparison — {result.get('verdict', '')}"
    nav = " ".join(f'<a href="#{esc(s.anchor)}">{esc(s.title)}</a>' for s in sections)
    body = "".join(f'<section id="{esc(s.anchor)}"><h2>{esc(s.title)}</h2>{s.body}</section>'
                   for s in sections)
    plotly_js = plotly.offline.get_plotlyjs() if figs.count else ""
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{esc(title)}</title><style>{_CSS}</style>"
            + (f'<script type="text/javascript">{plotly_js}</script>' if plotly_js else "")
            + f"</head><body><h1>{esc(title)}</h1><nav>{nav}</nav>{body}</body></html>\n")


def write_compare_html(result: dict, out_dir: str | Path) -> Path:
    """Write ``out_dir / "compare.html"`` (aside, then renamed); returns its path."""
    out_dir = Path(out_dir)
    path = out_dir / COMPARE_NAME
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(build_compare_page(result, out_dir), encoding="utf-8")
    tmp.replace(path)
    return path
