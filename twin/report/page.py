"""The page: every section in order, plotly.js inlined once, written atomically."""

from __future__ import annotations

from pathlib import Path

import plotly.offline

from twin.report.cells_section import cells_section
from twin.report.event_sections import comm_section, decisions_section, reliability_section
from twin.report.expectations_section import expectations_section
from twin.report.figures import Figures
from twin.report.formatting import esc
from twin.report.frequency_section import frequency_section
from twin.report.grid_sections import (
    der_section,
    header_section,
    kpi_section,
    loading_section,
    network_section,
    voltage_band_section,
    voltage_heatmap_section,
)
from twin.report.run_data import RunData, load_run

REPORT_NAME = "report.html"

#: The report's style sheet (the compare page builds on it).
CSS = """
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
    figs = Figures()
    sections = [header_section(run), expectations_section(run), kpi_section(run.kpis)]
    if run.store_dir is not None:
        sections += [network_section(run, figs), voltage_band_section(run, figs),
                     voltage_heatmap_section(run, figs), loading_section(run, figs),
                     der_section(run, figs),
                     comm_section(run, figs), decisions_section(run, figs),
                     frequency_section(run, figs), cells_section(run, figs)]
    sections.append(reliability_section(run, figs))
    sections = [s for s in sections if s is not None]
    info = run.run_info
    title = f"dms-twin report — {info.get('scenario', '')} ({info.get('run_id', '')})"
    nav = " ".join(f'<a href="#{s.anchor}">{esc(s.title)}</a>' for s in sections)
    body = "".join(f'<section id="{s.anchor}"><h2>{esc(s.title)}</h2>{s.body}</section>'
                   for s in sections)
    plotly_js = plotly.offline.get_plotlyjs() if figs.count else ""
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{esc(title)}</title><style>{CSS}</style>"
        # plotly.js once for the whole page, inline: the report must work offline
        + (f'<script type="text/javascript">{plotly_js}</script>' if plotly_js else "")
        + f"</head><body><h1>{esc(title)}</h1><nav>{nav}</nav>{body}</body></html>\n")


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
