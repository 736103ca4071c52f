"""``sweep.html``: each KPI against each parameter, and the results table; one self-contained
page (plotly.js inlined once, as the run report does), written aside and renamed."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import plotly.graph_objects as go
import plotly.offline
from plotly.subplots import make_subplots

from twin.report.figures import Figures
from twin.report.formatting import cell_text, esc, html_table

if TYPE_CHECKING:
    from twin.study.sweep import Study

#: Columns of the table that are no KPI.
_FIXED = ("key", "seed", "status", "expectations_passed", "expectations_failed", "error",
          "wall_time_s", "run_dir")

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
       margin: 0 auto; max-width: 1360px; padding: 0 20px 40px; color: #222; }
h1 { margin: 18px 0 4px; } h2 { margin-top: 36px; border-bottom: 2px solid #ddd; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 13px; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f3f5f8; }
.wide { overflow-x: auto; }
p.note { color: #555; }
"""


def kpi_names(study: Study, frame: pd.DataFrame) -> list[str]:
    """The table's KPI columns, in its order."""
    return [c for c in frame.columns if c not in _FIXED and c not in study.parameters]


def _kpi_figure(study: Study, frame: pd.DataFrame, kpi: str) -> go.Figure | None:
    """One row of panels: ``kpi`` against each parameter, a marker per completed run,
    coloured by seed."""
    done = frame[(frame["status"] == "completed") & frame[kpi].notna()]
    if done.empty:
        return None
    names = list(study.parameters)
    fig = make_subplots(rows=1, cols=len(names), shared_yaxes=True, horizontal_spacing=0.04,
                        subplot_titles=names)
    labels = done["seed"].map(lambda s: "scenario seed" if pd.isna(s) else f"seed {int(s)}")
    for j, name in enumerate(names, start=1):
        categories = None if study.design == "lhs" else list(study.parameters[name])
        for k, label in enumerate(dict.fromkeys(labels.tolist())):
            part = done[labels == label]
            fig.add_trace(go.Scatter(
                x=part[name].tolist(), y=part[kpi].tolist(), mode="markers", name=label,
                legendgroup=label, showlegend=j == 1,
                marker={"size": 9, "opacity": 0.8, "color": _COLOURS[k % len(_COLOURS)]},
                text=part["key"].tolist(),
                hovertemplate="%{text}<br>" + esc(name) + " = %{x}<br>" + esc(kpi)
                + " = %{y}<extra></extra>"), row=1, col=j)
        if categories is not None:
            fig.update_xaxes(type="category", categoryorder="array", categoryarray=categories,
                             row=1, col=j)
    fig.update_yaxes(title_text=kpi, row=1, col=1)
    fig.update_layout(title={"text": kpi, "x": 0, "font": {"size": 14}})
    return fig


_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
            "#7f7f7f", "#bcbd22", "#17becf")


def _cell(value) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else cell_text(value, 4)
    return "" if value is None else str(value)


def build_html(study: Study, frame: pd.DataFrame) -> str:
    """The whole page as one HTML string."""
    figs = Figures()
    plots = []
    for kpi in kpi_names(study, frame):
        fig = _kpi_figure(study, frame, kpi)
        if fig is not None:
            plots.append(figs.html(fig, height_px=320, time_x=False))
    counts = frame["status"].value_counts().to_dict() if len(frame) else {}
    facts = (f"{len(frame)} runs ({', '.join(f'{n} {s}' for s, n in sorted(counts.items()))})"
             f"; design {study.design}; scenario {study.scenario.name}"
             + (f"; until {study.until}" if study.until else ""))
    title = f"dms-twin sweep — {study.file.name}"
    table = html_table(list(frame.columns),
                       ([_cell(v) for v in rec] for rec in frame.itertuples(index=False)))
    plotly_js = plotly.offline.get_plotlyjs() if figs.count else ""
    body = (f"<h1>{esc(title)}</h1><p class=\"note\">{esc(facts)}</p>"
            + (f"<p>{esc(study.description)}</p>" if study.description else "")
            + "<h2>KPIs against the parameters</h2>"
            + ("".join(plots) or "<p class=\"note\">No completed run yet.</p>")
            + "<h2>Results</h2>" + table)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{esc(title)}</title><style>{_CSS}</style>"
            + (f'<script type="text/javascript">{plotly_js}</script>' if plotly_js else "")
            + f"</head><body>{body}</body></html>\n")


def write_html(study: Study, frame: pd.DataFrame, path: str | Path) -> Path:
    """Write the page to ``path`` (aside and renamed); returns the path."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(build_html(study, frame), encoding="utf-8")
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
