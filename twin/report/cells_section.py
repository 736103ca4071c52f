"""The report's section on the DMS's supervisory layer (scenario sections ``dms.cells``,
``dms.monitoring`` and ``dms.tso_dso``): each cell's tie line against its schedule, the
inertia per cell, the storage monitoring and the TSO–DSO interface.

Everything comes from what the DMS recorded each cycle (``dms_cell``, ``dms_storage``,
``dms_interface``); the tolerances are the scenario's (with the run's ``--set``
overrides). Signs: a cell's export is + out of the cell over its ties; a battery's power is
+ when charging; ``up``/``down`` are more / less injection it can hold for 15 minutes; the
interface's Q is + when the DSO draws it from the TSO.
"""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from twin.recording import schema
from twin.report.figures import Figures, Section, rounded, xs_ms
from twin.report.formatting import cell_text, esc, html_table
from twin.report.frames import natural_key, time_bins
from twin.report.run_data import RunData

#: The inertia a cell holds and shares (``dms_cell`` fields [MWs]): field, legend, colour.
INERTIA = (("rotating_mws", "rotating", "#1f77b4"), ("synthetic_mws", "synthetic", "#ff7f0e"),
           ("deliverable_mws", "deliverable to neighbours", "#2ca02c"),
           ("receivable_mws", "receivable from neighbours", "#9467bd"))

#: The storage monitoring table's columns: field, header, decimals.
STORAGE_COLUMNS = (("e_mwh", "energy [MWh]", 3), ("p_mw", "power [MW, + = charging]", 3),
                   ("up_mw", "up [MW]", 3), ("down_mw", "down [MW]", 3),
                   ("price_eur_mwh", "price [€/MWh]", 1))

_BAND = "rgba(44, 160, 44, 0.15)"


def scenario_tolerances(run: RunData) -> tuple[dict[str, float], float | None]:
    """Each cell's tie-line tolerance [MW] and the TSO–DSO interface's Q tolerance [Mvar]
    from the run's scenario with its ``--set`` overrides (empty / None if it cannot be
    read back)."""
    from twin.scenario import ScenarioError, apply_overrides, parse_scenario

    if not run.scenario:
        return {}, None
    try:
        data = apply_overrides(copy.deepcopy(run.scenario),
                               list(run.run_info.get("overrides") or []), "scenario.yaml")
        dms = parse_scenario(data, "scenario.yaml").dms
    except ScenarioError:
        return {}, None
    return ({c.name: float(c.tolerance_mw) for c in dms.cells.cells},
            float(dms.tso_dso.tolerance_mvar) if dms.tso_dso.interface else None)


def _binned(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """``columns`` per time (binned to at most MAX_POINTS times, by the mean)."""
    present = [c for c in columns if c in frame]
    return frame.assign(time=time_bins(frame["time"]))[["time", *present]].groupby(
        "time").mean()


def _spacing(rows: int) -> float:
    """Vertical space between subplot rows, as a share of the figure (plotly allows at most
    1 / (rows − 1))."""
    return min(0.08, 0.5 / rows)


def _cell_order(rec: pd.DataFrame, tolerances: dict[str, float]) -> list[str]:
    """The scenario's order, then any other cell recorded by name."""
    recorded = set(rec["element"])
    known = [c for c in tolerances if c in recorded]
    return known + sorted(recorded - set(known), key=natural_key)


def cells_section(run: RunData, figs: Figures) -> Section | None:
    """Per cell the export against its schedule and tolerance and what the cell could not
    cover (residual), its inertia over time, each battery's last monitored state, and the
    interface's Q against the TSO's request and the DSO's capability."""
    rec = run.read(schema.DMS_CELL)
    if rec is None or not len(rec) or "export_mw" not in rec:
        return None
    rec = rec.sort_values("time", kind="stable")
    tolerances, q_tolerance = scenario_tolerances(run)
    cells = _cell_order(rec, tolerances)
    parts = [_tie_lines(rec, cells, tolerances, figs)]
    if "rotating_mws" in rec:
        parts.append(_inertia(rec, cells, figs))
    storage = run.read(schema.DMS_STORAGE)
    if storage is not None and len(storage):
        parts.append(_storage(storage))
    interface = run.read(schema.DMS_INTERFACE)
    if interface is not None and len(interface):
        parts.append(_interface(interface.sort_values("time", kind="stable"), q_tolerance,
                                figs))
    return Section("cells", "Cells", "".join(parts))


def _tie_lines(rec: pd.DataFrame, cells: list[str], tolerances: dict[str, float],
               figs: Figures) -> str:
    """Export and schedule (left), deviation and residual against the tolerance (right)."""
    fig = make_subplots(rows=len(cells), cols=2, shared_xaxes=True,
                        vertical_spacing=_spacing(len(cells)), horizontal_spacing=0.07,
                        subplot_titles=[f"{cell}: {what}" for cell in cells for what in
                                        ("export and schedule", "deviation and residual")])
    rows = []
    for i, cell in enumerate(cells, start=1):
        mine = rec[rec["element"] == cell]
        data = _binned(mine, ["export_mw", "schedule_mw", "deviation_mw", "residual_mw"])
        x, first = xs_ms(data.index), i == 1
        tol = tolerances.get(cell)
        if tol is not None:
            for col, centre in ((1, data["schedule_mw"]), (2, pd.Series(0.0, data.index))):
                fig.add_trace(go.Scatter(x=x, y=rounded(centre + tol, 4), mode="lines",
                                         line=dict(width=0), hoverinfo="skip",
                                         showlegend=False), row=i, col=col)
                fig.add_trace(go.Scatter(x=x, y=rounded(centre - tol, 4), mode="lines",
                                         line=dict(width=0), fill="tonexty", fillcolor=_BAND,
                                         name="tolerance", legendgroup="tolerance",
                                         showlegend=first and col == 1), row=i, col=col)
        for column, name, colour, dash, col in (
                ("schedule_mw", "schedule", "#7f7f7f", "dash", 1),
                ("export_mw", "export", "#1f77b4", None, 1),
                ("deviation_mw", "deviation", "#9467bd", None, 2),
                ("residual_mw", "residual (not covered in the cell)", "#d62728", "dot", 2)):
            if column in data:
                fig.add_trace(go.Scatter(x=x, y=rounded(data[column], 4), name=name,
                                         legendgroup=name, showlegend=first,
                                         line=dict(color=colour, dash=dash)), row=i, col=col)
        fig.update_yaxes(title_text="MW", row=i, col=1)
        dev = mine["deviation_mw"].dropna()
        residual = mine["residual_mw"].abs().max() if "residual_mw" in mine else None
        within = (f"{100.0 * float(np.mean(np.abs(dev) <= tol)):.1f} %"
                  if tol is not None and len(dev) else "n/a")
        rows.append((cell, cell_text(mine["schedule_mw"].iloc[-1]),
                     cell_text(tol) if tol is not None else "n/a", len(dev),
                     cell_text(float(np.abs(dev).mean()) if len(dev) else None, 6), within,
                     cell_text(float(residual) if residual is not None else None),
                     cell_text(mine["export_mw"].iloc[-1])))
    table = html_table(["cell", "schedule [MW]", "tolerance [MW]", "cycles",
                        "mean |deviation| [MW]", "cycles within tolerance",
                        "largest |residual| [MW]", "last export [MW]"], rows, css="log")
    return ("<h3>Tie lines: export against schedule</h3><p>Each cell's export over its tie "
            "branches (+ = out of the cell) as the DMS saw it each cycle; shaded: the "
            "scenario's tolerance around the schedule. The residual is what the cell's own "
            "batteries, EVs and DER could not cover.</p>"
            + figs.html(fig, height_px=120 + 260 * len(cells)) + table)


def _inertia(rec: pd.DataFrame, cells: list[str], figs: Figures) -> str:
    """The inertia each cell holds and could share, over time, and at the end."""
    fig = make_subplots(rows=len(cells), cols=1, shared_xaxes=True,
                        vertical_spacing=_spacing(len(cells)), subplot_titles=cells)
    rows = []
    for i, cell in enumerate(cells, start=1):
        mine = rec[rec["element"] == cell]
        data = _binned(mine, [f for f, _n, _c in INERTIA])
        x = xs_ms(data.index)
        for column, name, colour in INERTIA:
            if column in data:
                fig.add_trace(go.Scatter(x=x, y=rounded(data[column], 3), name=name,
                                         legendgroup=name, showlegend=i == 1,
                                         line=dict(color=colour)), row=i, col=1)
        fig.update_yaxes(title_text="MWs", rangemode="tozero", row=i, col=1)
        last = mine.iloc[-1]
        rows.append((cell, *(cell_text(last.get(f)) for f, _n, _c in INERTIA)))
    table = html_table(["cell (last cycle)", *(f"{n} [MWs]" for _f, n, _c in INERTIA)], rows,
                       css="log")
    return ("<h3>Inertia per cell</h3><p>Kinetic energy at nominal speed: of the cell's "
            "synchronous machines (rotating) and of its converters emulating inertia as far "
            "as their headroom pays for it (synthetic); what it could deliver to and receive "
            "from its neighbours over its ties' spare capacity.</p>"
            + figs.html(fig, height_px=120 + 240 * len(cells)) + table)


def _storage(storage: pd.DataFrame) -> str:
    """Each battery's last monitored state, by cell."""
    last = storage.sort_values("time", kind="stable").groupby("element").tail(1)
    cell = last["cell"].fillna("") if "cell" in last else pd.Series("", last.index)
    last = last.assign(cell=cell)
    rows = [(r["element"], r["cell"] or "(none)",
             cell_text(100.0 * r["soc"], 1) if pd.notna(r.get("soc")) else "",
             *(cell_text(r.get(f), d) for f, _h, d in STORAGE_COLUMNS), cell_text(r["time"]))
            for _i, r in last.iterrows()]
    # by cell (batteries in none last), then by name
    rows.sort(key=lambda r: (r[1] == "(none)", natural_key(r[1]), natural_key(r[0])))
    return ("<h3>Storage monitoring</h3><p>Each battery as the DMS's storage monitoring last "
            "saw it: state of charge and energy counted from metered power, what it can hold "
            "for 15 minutes up (more injection) and down, and its energy price.</p>"
            + html_table(["battery", "cell", "SOC [%]", *(h for _f, h, _d in STORAGE_COLUMNS),
                          "at"], rows, css="log"))


def _interface(rec: pd.DataFrame, tolerance: float | None, figs: Figures) -> str:
    """Q at each interface against the TSO's request inside the DSO's capability."""
    parts, rows = [], []
    for trafo in sorted(set(rec["element"]), key=natural_key):
        mine = rec[rec["element"] == trafo]
        data = _binned(mine, ["q_mvar", "q_request_mvar", "q_min_mvar", "q_max_mvar"])
        x = xs_ms(data.index)
        fig = go.Figure()
        fig.add_trace(go.Scatter(x=x, y=rounded(data["q_max_mvar"], 4), mode="lines",
                                 line=dict(width=0, color="#9a9a9a"), name="Q max",
                                 showlegend=False))
        fig.add_trace(go.Scatter(x=x, y=rounded(data["q_min_mvar"], 4), mode="lines",
                                 line=dict(width=0, color="#9a9a9a"), fill="tonexty",
                                 fillcolor="rgba(127, 127, 127, 0.2)",
                                 name="the DSO's Q capability"))
        fig.add_trace(go.Scatter(x=x, y=rounded(data["q_mvar"], 4), name="Q at the interface",
                                 line=dict(color="#1f77b4")))
        if "q_request_mvar" in data and data["q_request_mvar"].notna().any():
            fig.add_trace(go.Scatter(x=x, y=rounded(data["q_request_mvar"], 4),
                                     name="the TSO's request", connectgaps=False,
                                     line=dict(color="#d62728", dash="dash", shape="hv")))
        fig.update_layout(yaxis_title="Q [Mvar, + = drawn from the TSO]")
        parts.append(f"<h4>{esc(trafo)}</h4>" + figs.html(fig, height_px=340))
        asked = mine.dropna(subset=["q_request_mvar"]) if "q_request_mvar" in mine else \
            mine.iloc[:0]
        miss = (asked["q_mvar"] - asked["q_request_mvar"]).abs()
        outside = int(((mine["q_mvar"] < mine["q_min_mvar"])
                       | (mine["q_mvar"] > mine["q_max_mvar"])).sum())
        within = (f"{100.0 * float(np.mean(miss <= tolerance)):.1f} %"
                  if tolerance is not None and len(miss) else "n/a")
        rows.append((trafo, len(mine), len(asked),
                     cell_text(float(miss.mean()) if len(miss) else None), within, outside))
    table = html_table(["interface", "cycles", "cycles with a request",
                        "mean |Q − request| [Mvar]",
                        "within tolerance" + (f" (±{tolerance:g} Mvar)" if tolerance else ""),
                        "cycles with Q outside the capability"], rows, css="log")
    return ("<h3>TSO–DSO interface</h3><p>Reactive power at the interface transformer (HV "
            "side) as the DMS metered it each cycle, the TSO's request while there is one, "
            "and the range of Q the DSO can realise there (shaded).</p>"
            + "".join(parts) + table)
