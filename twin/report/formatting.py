"""Text of the report: KPI units, groups and labels from the names, HTML tables."""

from __future__ import annotations

import html
import math
from typing import Any, Iterable

import numpy as np
import pandas as pd

#: Most rows a table lists (the store holds all of them).
MAX_TABLE_ROWS = 1000


UNITS = (  # name suffix -> unit, and what of the name the label drops; first match wins
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

KPI_GROUPS = (  # group title, key prefixes; first match wins
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

RELIABILITY_KEYS = ("customers_served", "customers_interrupted", "customer_minutes_interrupted",
                     "saifi", "saidi_min", "caidi_min", "momentary_interruptions", "maifi",
                     "energy_not_supplied_mwh", "interruptions", "interruptions_momentary",
                     "switching_operations", "protection_trips", "protection_recloses",
                     "crew_jobs")


def kpi_unit(key: str) -> str:
    """Unit of a KPI from its name (units are in the names: ``_mwh``, ``_pu``, …)."""
    for suffix, unit, _ in UNITS:
        if key.endswith(suffix):
            return unit
    return ""


def kpi_group(key: str) -> str:
    """The report's group for a KPI key."""
    for title, prefixes in KPI_GROUPS:
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


def kpi_label(key: str) -> str:
    """A KPI's name without its unit suffix (the unit has a column of its own)."""
    for suffix, _, strip in UNITS:
        if key.endswith(suffix):
            key = key[: -len(strip)] if strip else key
            break
    return key.replace("_", " ")


def duration_text(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    seconds = float(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g} {unit}"
    if seconds >= 3600:
        return f"{seconds / 3600:.2f} h"
    return f"{seconds:g} s"


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def html_table(header: list[str], rows: Iterable[Iterable[Any]], css: str = "") -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{esc(cell)}</td>" for cell in row) + "</tr>"
                   for row in rows)
    return (f'<div class="wide"><table class="{css}"><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table></div>")


def cell_text(value: Any, digits: int | None = 3) -> str:
    """A table cell's text: floats to ``digits`` decimals, or 6 significant digits if None."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return ""
    if isinstance(value, (pd.Timestamp, np.datetime64)):
        return pd.Timestamp(value).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    if isinstance(value, (float, np.floating)):
        return f"{value:.6g}" if digits is None else f"{value:,.{digits}f}"
    return str(value)


def limited(frame: pd.DataFrame, what: str) -> tuple[pd.DataFrame, str]:
    """At most MAX_TABLE_ROWS rows, and a note saying how many were left out."""
    if len(frame) <= MAX_TABLE_ROWS:
        return frame, ""
    return frame.head(MAX_TABLE_ROWS), (
        f'<p class="note">The first {MAX_TABLE_ROWS:,} of {len(frame):,} {what} are listed; '
        "the store holds all of them.</p>")
