"""The report's section on the synchronous area's frequency (scenario section ``frequency``)."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from twin.recording import schema
from twin.report.figures import Figures, Section, rounded, xs_ms
from twin.report.formatting import cell_text, html_table
from twin.report.run_data import RunData

#: FCR's full-activation deviation [Hz]: drawn as the band it is sized for.
FCR_FULL_HZ = 0.2


def frequency_section(run: RunData, figs: Figures) -> Section | None:
    """Frequency and RoCoF around each disturbance, the reserves that answered, and the
    nadir, the largest RoCoF and when the area came to rest."""
    rec = run.read(schema.FREQUENCY)
    if rec is None or not len(rec) or "f_hz" not in rec:
        return None
    rec = rec.sort_values("time", kind="stable")
    x = xs_ms(rec["time"])
    f0 = float(rec["f_hz"].iloc[0])  # recorded first at rest: the nominal frequency
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        row_heights=[0.65, 0.35])
    fig.add_trace(go.Scatter(x=x, y=rounded(rec["f_hz"], 6), name="frequency",
                             line=dict(color="#1f77b4")), row=1, col=1)
    for level, name in ((f0 - FCR_FULL_HZ, "FCR fully activated"), (f0 + FCR_FULL_HZ, None)):
        fig.add_trace(go.Scatter(x=[x[0], x[-1]], y=[level, level], mode="lines",
                                 name=name or "", showlegend=name is not None,
                                 line=dict(color="#d62728", dash="dot", width=1)),
                      row=1, col=1)
    fig.add_trace(go.Scatter(x=x, y=rounded(rec["rocof_hz_s"], 6), name="RoCoF",
                             line=dict(color="#ff7f0e")), row=2, col=1)
    fig.update_yaxes(title_text="f [Hz]", row=1, col=1)
    fig.update_yaxes(title_text="RoCoF [Hz/s]", row=2, col=1)
    parts = [figs.html(fig, height_px=520)]

    power = go.Figure()
    for column, name, colour in (("p_disturbance_mw", "disturbance", "#7f7f7f"),
                                 ("p_fcr_mw", "FCR", "#2ca02c"), ("p_afrr_mw", "aFRR", "#9467bd")):
        if column in rec:
            power.add_trace(go.Scatter(x=x, y=rounded(rec[column], 3), name=name,
                                       line=dict(color=colour)))
    power.update_layout(yaxis_title="power into the area [MW]")
    parts.append("<h3>Reserves</h3>" + figs.html(power, height_px=360))

    kpis = run.kpis or {}
    if "twin_fcr_battery_mw" in rec:
        parts.append(_twin_response(rec, x, figs, kpis))

    def value(key: str, unit: str) -> str:
        v = kpis.get(key)
        return f"{v:.4f} {unit}" if isinstance(v, (int, float)) else "n/a"

    nadir_at = rec["time"].iloc[int(np.argmin(rec["f_min_hz"].to_numpy()))] \
        if "f_min_hz" in rec else None
    parts.append(html_table(["", "value", "time"], [
        ("nadir", value("frequency_nadir_hz", "Hz"), cell_text(nadir_at)),
        ("highest frequency", value("frequency_max_hz", "Hz"), ""),
        ("largest |RoCoF|", value("rocof_max_hz_s", "Hz/s"), ""),
        ("last step (the area at rest after it)", "", cell_text(rec["time"].iloc[-1]))],
        css="log"))
    return Section("frequency", "Frequency", "".join(parts))


#: The twin's responses in the records: field, legend, colour, KPI key.
_SOURCES = (("twin_fcr_battery_mw", "batteries' FCR", "#2ca02c", "fcr_battery"),
            ("twin_fcr_ev_mw", "V2G FCR", "#17becf", "fcr_ev"),
            ("twin_inertia_mw", "synthetic inertia", "#ff7f0e", "synthetic_inertia"),
            ("twin_pf_mw", "P(f) withheld", "#d62728", "pf"))


def _twin_response(rec, x, figs: Figures, kpis: dict) -> str:
    """The twin's own units' response per source [MW, unscaled] and its energy."""
    fig = go.Figure()
    for column, name, colour, _key in _SOURCES:
        if column in rec:
            fig.add_trace(go.Scatter(x=x, y=rounded(rec[column].fillna(0.0), 4), name=name,
                                     line=dict(color=colour)))
    fig.update_layout(yaxis_title="the twin's response [MW, + = injection]")
    energy = kpis.get("frequency_response_mwh") or {}
    rows = [(name, f"{energy[key] * 1000.0:.2f} kWh" if key in energy else "n/a")
            for _c, name, _colour, key in _SOURCES]
    return ("<h3>The twin's units</h3><p>What the twin's own batteries, EVs and converters "
            "gave (each of the area's copies of this grid gives the same).</p>"
            + figs.html(fig, height_px=320)
            + html_table(["source", "energy"], rows, css="log"))
