"""Grafana dashboards as code: the one source of the JSON files in ``dashboards/``.

Each dashboard is a plain dict in Grafana's dashboard JSON model, built here and written
by ``python -m twin.dashboards`` (run from the repository root; ``--check`` exits 1 when
the committed files differ from what this module builds). Queries are InfluxQL only, so the
same files work on InfluxDB 1.x, 2.x (through a DBRP mapping) and 3.x; every query filters
``"run" =~ /^$run$/`` and ``$timeFilter``. All queries name the datasource provisioned by
``dashboards/provisioning/datasources/influxdb.yaml`` by its fixed uid.

Conventions
-----------
Energies [MWh] are *step-sampled*: the first value in each power-flow step (``$step_s``,
a constant variable, 60 s like every shipped scenario) times the step. Where the grid
re-solves between steps (switching, faults) the value of the step start holds for the
whole step, so an interruption of a few seconds counts as one step; ``kpis.json`` (and the
``kpi`` point, :func:`twin.evaluation.kpis.kpi_point`) integrate every solve exactly.

The network picture on *Overview* is an XY chart over the twin's geodata (km on a plane, so
no lat/lon for a Geomap; the Node Graph panel ignores positions). The runner records every
run's geometry once as ``grid_geo`` (:mod:`twin.grid.geo`: buses, and dots along each line and
transformer); the panel joins it on ``element`` with each element's last voltage or
loading in the range, so any grid is drawn without the dashboards knowing it.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any, Iterable, Mapping

from twin.grid.geo import GEO_MEASUREMENT

#: The InfluxDB datasource provisioned for Grafana (dashboards/provisioning/datasources).
DATASOURCE_UID = "dms-twin-influxdb"
DATASOURCE = {"type": "influxdb", "uid": DATASOURCE_UID}
GRAFANA_BUILTIN = {"type": "grafana", "uid": "-- Grafana --"}

OVERVIEW_UID = "dms-twin-overview"
VOLTAGES_UID = "dms-twin-voltages"
LOADING_UID = "dms-twin-loading"
DER_UID = "dms-twin-der"
COMMS_UID = "dms-twin-comms"
DECISIONS_UID = "dms-twin-decisions"
RELIABILITY_UID = "dms-twin-reliability"

#: File name (in ``dashboards/``) → dashboard uid.
FILES = {
    "overview.json": OVERVIEW_UID,
    "voltages.json": VOLTAGES_UID,
    "loading.json": LOADING_UID,
    "der.json": DER_UID,
    "communications.json": COMMS_UID,
    "decisions.json": DECISIONS_UID,
    "reliability.json": RELIABILITY_UID,
}

DEFAULT_SCENARIO = Path("scenarios/cigre_mv_day.yaml")
DEFAULT_OUT = Path("dashboards")

TAG = "dms-twin"
SCHEMA_VERSION = 39
PLUGIN_VERSION = "11.3.0"  # the Grafana the compose file runs; panels carry it (xychart v2)

RUN = '"run" =~ /^$run$/'
WHERE = f"{RUN} AND $timeFilter"
STEP = "${step_s}s"  # inside GROUP BY time(...)


def _step_energy(measurement: str, field: str, extra: str = "") -> str:
    """Step-sampled energy [MWh] of ``field`` [MW] summed over the elements."""
    return (f'SELECT sum("p") * $step_s / 3600 FROM (SELECT first("{field}") AS "p" '
            f'FROM "{measurement}" WHERE {WHERE}{extra} GROUP BY time({STEP}), "element") '
            f"WHERE $timeFilter")


# --------------------------------------------------------------------------- building blocks

def target(query: str, ref: str = "A", fmt: str = "time_series", alias: str | None = None
           ) -> dict[str, Any]:
    """One raw InfluxQL query of a panel."""
    t: dict[str, Any] = {"refId": ref, "datasource": DATASOURCE, "query": query,
                         "rawQuery": True, "resultFormat": fmt}
    if alias:
        t["alias"] = alias
    return t


def _thresholds(*steps: tuple[float | None, str]) -> dict[str, Any]:
    return {"mode": "absolute", "steps": [{"color": c, "value": v} for v, c in steps]}


def band_thresholds(band: tuple[float, float]) -> dict[str, Any]:
    """Blue below the voltage band, green inside, red above."""
    return _thresholds((None, "blue"), (band[0], "green"), (band[1], "red"))


def _field_config(unit: str | None = None, decimals: int | None = None,
                  thresholds: dict | None = None, no_value: str | None = None,
                  color: str | None = None, custom: dict | None = None,
                  overrides: list | None = None, mappings: list | None = None,
                  min_: float | None = None, max_: float | None = None) -> dict[str, Any]:
    d: dict[str, Any] = {}
    if unit:
        d["unit"] = unit
    if decimals is not None:
        d["decimals"] = decimals
    if thresholds:
        d["thresholds"] = thresholds
    if no_value is not None:
        d["noValue"] = no_value
    if color:
        d["color"] = {"mode": color}
    if custom:
        d["custom"] = custom
    if mappings:
        d["mappings"] = mappings
    if min_ is not None:
        d["min"] = min_
    if max_ is not None:
        d["max"] = max_
    return {"defaults": d, "overrides": overrides or []}


def _override(name: str, **props: Any) -> dict[str, Any]:
    return {"matcher": {"id": "byName", "options": name},
            "properties": [{"id": k, "value": v} for k, v in props.items()]}


def panel(kind: str, title: str, targets: list[dict], w: int, h: int, description: str = "",
          field_config: dict | None = None, options: dict | None = None,
          transformations: list | None = None) -> dict[str, Any]:
    """A panel; ``gridPos`` x/y and ``id`` are set when the dashboard lays it out."""
    p: dict[str, Any] = {"type": kind, "title": title, "datasource": DATASOURCE,
                         "gridPos": {"h": h, "w": w, "x": 0, "y": 0}, "targets": targets,
                         "fieldConfig": field_config or _field_config(),
                         "options": options or {}, "pluginVersion": PLUGIN_VERSION}
    if description:
        p["description"] = description
    if transformations:
        p["transformations"] = transformations
    return p


def timeseries(title: str, targets: list[dict], unit: str, w: int = 12, h: int = 8,
               description: str = "", thresholds: dict | None = None,
               threshold_style: str = "off", draw: str = "line",
               interpolation: str = "linear", stack: bool = False,
               overrides: list | None = None) -> dict[str, Any]:
    custom = {"drawStyle": draw, "lineInterpolation": interpolation, "lineWidth": 1,
              "fillOpacity": 80 if draw == "bars" else 0, "pointSize": 4,
              "showPoints": "always" if draw == "points" else "never", "spanNulls": False,
              "thresholdsStyle": {"mode": threshold_style},
              "stacking": {"mode": "normal" if stack else "none", "group": "A"}}
    return panel("timeseries", title, targets, w, h, description,
                 _field_config(unit=unit, thresholds=thresholds, color="palette-classic",
                               custom=custom, overrides=overrides),
                 {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                  "tooltip": {"mode": "multi", "sort": "desc"}})


def stat(title: str, query: str, unit: str, decimals: int | None = None, w: int = 4,
         h: int = 4, description: str = "", thresholds: dict | None = None,
         no_value: str | None = None, calc: str = "lastNotNull", fmt: str = "time_series",
         overrides: list | None = None, alias: str | None = None) -> dict[str, Any]:
    return panel("stat", title, [target(query, fmt=fmt, alias=alias)], w, h, description,
                 _field_config(unit=unit, decimals=decimals,
                               thresholds=thresholds or _thresholds((None, "text")),
                               no_value=no_value, color="thresholds", overrides=overrides),
                 {"reduceOptions": {"calcs": [calc], "fields": "", "values": False},
                  "colorMode": "value", "graphMode": "none", "textMode": "auto",
                  "justifyMode": "auto", "orientation": "auto"})


def table(title: str, targets: list[dict], w: int = 24, h: int = 8, description: str = "",
          sort_by: str | None = None, overrides: list | None = None,
          transformations: list | None = None) -> dict[str, Any]:
    options: dict[str, Any] = {"showHeader": True, "cellHeight": "sm",
                               "footer": {"show": False, "reducer": ["sum"], "fields": ""}}
    if sort_by:
        options["sortBy"] = [{"displayName": sort_by, "desc": True}]
    return panel("table", title, targets, w, h, description,
                 _field_config(custom={"align": "auto", "cellOptions": {"type": "auto"},
                                       "inspect": True}, overrides=overrides),
                 options, transformations)


def state_timeline(title: str, query: str, w: int = 24, h: int = 10, description: str = "",
                   thresholds: dict | None = None, mappings: list | None = None,
                   unit: str = "none") -> dict[str, Any]:
    return panel("state-timeline", title, [target(query, alias="$tag_element")], w, h,
                 description,
                 _field_config(unit=unit, thresholds=thresholds, mappings=mappings,
                               color="thresholds",
                               custom={"fillOpacity": 80, "lineWidth": 0}),
                 {"showValue": "never", "mergeValues": False, "rowHeight": 0.9,
                  "alignValue": "left",
                  "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                  "tooltip": {"mode": "single"}})


def bargauge(title: str, query: str, unit: str, w: int = 12, h: int = 8,
             description: str = "", thresholds: dict | None = None) -> dict[str, Any]:
    return panel("bargauge", title, [target(query, alias="$tag_element")], w, h, description,
                 _field_config(unit=unit, thresholds=thresholds, color="thresholds", min_=0),
                 {"reduceOptions": {"calcs": ["max"], "fields": "", "values": False},
                  "orientation": "horizontal", "displayMode": "gradient",
                  "showUnfilled": True, "valueMode": "color"})


def text(title: str, content: str, w: int = 24, h: int = 3) -> dict[str, Any]:
    return {"type": "text", "title": title, "gridPos": {"h": h, "w": w, "x": 0, "y": 0},
            "options": {"mode": "markdown", "content": content}}


def run_variable() -> dict[str, Any]:
    q = 'SHOW TAG VALUES WITH KEY = "run"'
    return {"type": "query", "name": "run", "label": "Run", "datasource": DATASOURCE,
            "query": q, "definition": q, "refresh": 2, "sort": 2, "multi": False,
            "includeAll": False, "regex": "", "hide": 0, "current": {}, "options": []}


def element_variable(name: str, label: str, measurement: str) -> dict[str, Any]:
    """Elements of ``measurement`` in the chosen run; multi-select, 'All' = ``.*``."""
    q = f'SHOW TAG VALUES FROM "{measurement}" WITH KEY = "element" WHERE {RUN}'
    return {"type": "query", "name": name, "label": label, "datasource": DATASOURCE,
            "query": q, "definition": q, "refresh": 2, "sort": 1, "multi": True,
            "includeAll": True, "allValue": ".*", "regex": "", "hide": 0,
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
            "options": []}


def tag_variable(name: str, label: str, measurement: str, key: str) -> dict[str, Any]:
    v = element_variable(name, label, measurement)
    q = f'SHOW TAG VALUES FROM "{measurement}" WITH KEY = "{key}" WHERE {RUN}'
    v.update(query=q, definition=q)
    return v


def step_variable(step_s: float) -> dict[str, Any]:
    value = f"{step_s:g}"
    return {"type": "constant", "name": "step_s", "label": "power-flow step [s]",
            "query": value, "hide": 2, "skipUrlSync": True,
            "current": {"text": value, "value": value}, "options": []}


DECISIONS_QUERY = ('SELECT "reason", "function", "action", "mode", "element" '
                   f'FROM "dms_decision" WHERE {WHERE}')
PROTECTION_QUERY = ('SELECT "element", "kind", "fault", "name" '
                    f'FROM "protection" WHERE {WHERE}')


def influx_annotation(name: str, query: str, text_column: str, tags_column: str,
                      color: str, enable: bool = True) -> dict[str, Any]:
    """An annotation from an InfluxQL query (shown on every time-series panel)."""
    columns = {"textColumn": text_column, "tagsColumn": tags_column, "titleColumn": ""}
    return {"name": name, "datasource": DATASOURCE, "enable": enable, "hide": False,
            "iconColor": color, "query": query, **columns,  # legacy form, older Grafana
            "target": {"refId": "Anno", "query": query, "rawQuery": True,
                       "fromAnnotations": True, "textEditor": True, **columns}}


def annotations(extra: Iterable[dict] = ()) -> dict[str, Any]:
    return {"list": [
        {"builtIn": 1, "datasource": GRAFANA_BUILTIN, "enable": True, "hide": True,
         "iconColor": "rgba(0, 211, 255, 1)", "name": "Annotations & Alerts",
         "type": "dashboard", "target": {"type": "dashboard", "limit": 100,
                                          "matchAny": False, "tags": []}},
        influx_annotation("DMS decisions", DECISIONS_QUERY, "reason",
                          "function,action,mode,element", "purple"),
        # Posted by the twin itself when GRAFANA_URL/GRAFANA_TOKEN are set (the same
        # decisions as above, so off by default).
        {"name": "DMS decisions (posted by the twin)", "datasource": GRAFANA_BUILTIN,
         "enable": False, "hide": False, "iconColor": "orange",
         "target": {"type": "tags", "tags": ["dms", "run:$run"], "matchAny": False,
                    "limit": 1000}},
        *extra,
    ]}


def flow(rows: list[list[dict]], x0: int = 0, y0: int = 0, width: int = 24) -> int:
    """Place ``rows`` of panels left to right from (x0, y0), each row as high as its tallest
    panel; returns the y below the last row."""
    y = y0
    for row in rows:
        x = x0
        for p in row:
            w = p["gridPos"]["w"]
            if x + w > x0 + width:
                raise ValueError(f"row wider than {width}: {p['title']}")
            p["gridPos"].update(x=x, y=y)
            x += w
        y += max(p["gridPos"]["h"] for p in row)
    return y


def dashboard(uid: str, title: str, description: str, panels: list[dict],
              variables: list[dict], time_range: tuple[str, str],
              extra_annotations: Iterable[dict] = ()) -> dict[str, Any]:
    """The dashboard around ``panels`` (placed with :func:`flow`); panel ids in order."""
    panels = sorted(panels, key=lambda p: (p["gridPos"]["y"], p["gridPos"]["x"]))
    for i, p in enumerate(panels, start=1):
        p["id"] = i
    return {
        "uid": uid, "title": title, "description": description, "tags": [TAG],
        "timezone": "utc", "editable": True, "graphTooltip": 1, "schemaVersion": SCHEMA_VERSION,
        "version": 1, "refresh": "10s", "liveNow": False, "fiscalYearStartMonth": 0,
        "time": {"from": time_range[0], "to": time_range[1]},
        "timepicker": {"refresh_intervals": ["5s", "10s", "30s", "1m", "5m"]},
        "links": [{"title": "dms-twin", "type": "dashboards", "tags": [TAG], "asDropdown": True,
                   "includeVars": True, "keepTime": True, "icon": "external link",
                   "targetBlank": False, "tooltip": "", "url": ""}],
        "annotations": annotations(extra_annotations),
        "templating": {"list": variables},
        "panels": panels,
    }


def _rows(rows: list[list[dict]]) -> list[dict]:
    flow(rows)
    return [p for row in rows for p in row]


# --------------------------------------------------------------------------- the dashboards

class Context:
    """What the dashboards take from the default scenario: its voltage band, its step and
    its time range (the dashboards' default range)."""

    def __init__(self, band: tuple[float, float], step_s: float, time_range: tuple[str, str]):
        self.band, self.step_s, self.time_range = band, step_s, time_range

    @classmethod
    def from_scenario(cls, path: Path) -> "Context":
        from twin.scenario import load_scenario

        sc = load_scenario(path)
        end = sc.start + timedelta(seconds=sc.duration)
        fmt = "%Y-%m-%dT%H:%M:%S.000Z"
        band = tuple(sc.kpis.voltage_band_pu)
        return cls((float(band[0]), float(band[1])), float(sc.step),
                   (sc.start.strftime(fmt), end.strftime(fmt)))


LOADING_THRESHOLDS = _thresholds((None, "green"), (80, "orange"), (100, "red"))
NETWORK_TITLE = "Network: voltages and loadings at the end of the range"


def network_panel(ctx: Context) -> dict[str, Any]:
    """Buses coloured by voltage, lines and transformers (dotted) by loading, at their
    recorded positions [km]: ``grid_geo`` joined on ``element`` with last values.

    Two joins, each on the frames of two queries (buses: A with B; branches: C with D), so
    each join is one-to-one or one-to-many, and no query returns a row with an empty cell
    (Grafana before 10.2 dropped such rows from InfluxQL tables)."""
    # the y of each layer has its own name so that its points get their own size; both
    # layers span the same box (lines run from bus to bus), so they line up either way
    geo = (f'SELECT last("x_km") AS "x_km", last("y_km") AS "{{}}" FROM "{GEO_MEASUREMENT}" '
           f"WHERE {RUN} AND \"kind\" {{}} 'bus' GROUP BY {{}}")  # once per run: no time filter
    targets = [
        target(geo.format("y_bus_km", "=", '"element"'), ref="A", fmt="table"),
        target(f'SELECT last("vm_pu") AS "vm_pu" FROM "bus" WHERE {WHERE} GROUP BY "element"',
               ref="B", fmt="table"),
        target(geo.format("y_branch_km", "!=", '"element", "dot"'), ref="C", fmt="table"),
        target('SELECT last("loading_percent") AS "loading_percent" FROM "line", "trafo" '
               f'WHERE {WHERE} GROUP BY "element"', ref="D", fmt="table")]
    overrides = [_override("x_km", unit="lengthkm", **{"custom.axisLabel": "x [km]"}),
                 *(_override(y, unit="lengthkm", **{"custom.axisLabel": "y [km]",
                                                     "custom.pointSize": {"fixed": size}})
                   for y, size in (("y_bus_km", 14), ("y_branch_km", 6))),
                 _override("vm_pu", displayName="voltage [p.u.]", decimals=4,
                           thresholds=band_thresholds(ctx.band)),
                 _override("loading_percent", displayName="loading", unit="percent",
                           decimals=1, thresholds=LOADING_THRESHOLDS)]
    fc = _field_config(unit="none", color="thresholds",
                       custom={"show": "points", "pointSize": {"fixed": 6},
                               "pointShape": "circle", "fillOpacity": 90,
                               "pointStrokeWidth": 1, "axisPlacement": "auto",
                               "axisCenteredZero": False, "hideFrom": {"legend": False,
                                                                      "tooltip": False,
                                                                      "viz": False}},
                       overrides=overrides)

    def series(name: str, frame: int, y: str, color: str) -> dict[str, Any]:
        return {"name": {"fixed": name}, "frame": {"matcher": {"id": "byIndex", "options": frame}},
                "x": {"matcher": {"id": "byName", "options": "x_km"}},
                "y": {"matcher": {"id": "byName", "options": y}},
                "color": {"matcher": {"id": "byName", "options": color}}}

    def join(refs: str) -> dict[str, Any]:
        return {"id": "joinByField", "options": {"byField": "element", "mode": "outerTabular"},
                "filter": {"id": "byRefId", "options": f"/^[{refs}]$/"}}

    # frame 0: buses (A ⋈ B), frame 1: line and transformer dots (C ⋈ D); buses drawn last,
    # on top of the dots that end in them
    options = {"mapping": "manual",
               "series": [series("lines and transformers", 1, "y_branch_km", "loading_percent"),
                          series("buses", 0, "y_bus_km", "vm_pu")],
               "legend": {"showLegend": True, "displayMode": "list", "placement": "bottom"},
               "tooltip": {"mode": "single", "sort": "none"}}
    return panel("xychart", NETWORK_TITLE, targets, 12, 16,
                 "The run's grid at its recorded positions (km): buses coloured blue below "
                 f"{ctx.band[0]}, green inside the band, red above {ctx.band[1]} p.u.; lines "
                 "and transformers (dots) green below 80 %, orange, red from 100 % loading. "
                 "Values are each element's last in the time range: move the end of the "
                 "range to replay the day. Hover for the element and its value.",
                 fc, options, [join("AB"), join("CD")])


def _violation_minutes_query(band: tuple[float, float]) -> str:
    return ('SELECT count("lo") * $step_s / 60 FROM (SELECT first("vm_min_pu") AS "lo", '
            f'first("vm_max_pu") AS "hi" FROM "grid" WHERE {WHERE} GROUP BY time({STEP})) '
            f'WHERE ("lo" < {band[0]:g} OR "hi" > {band[1]:g}) AND $timeFilter')


def overview(ctx: Context) -> dict[str, Any]:
    band = band_thresholds(ctx.band)
    kpis = [
        stat("Lowest voltage", f'SELECT min("vm_min_pu") FROM "grid" WHERE {WHERE}', "none", 4,
             w=3, thresholds=band),
        stat("Highest voltage", f'SELECT max("vm_max_pu") FROM "grid" WHERE {WHERE}', "none", 4,
             w=3, thresholds=band),
        stat("Voltage-violation minutes", _violation_minutes_query(ctx.band), "m", 0, w=3,
             no_value="0", description="Steps with any bus outside the band × the step "
             "(step-sampled).", thresholds=_thresholds((None, "green"), (1, "red"))),
        stat("Highest line loading", f'SELECT max("loading_percent") FROM "line" WHERE {WHERE}',
             "percent", 1, w=3, thresholds=_thresholds((None, "green"), (80, "orange"),
                                                        (100, "red"))),
    ]
    energy = [
        stat("Losses", _step_energy("grid", "p_loss_mw"), "MWh", 3, w=3,
             description="Step-sampled energy of the network losses."),
        stat("Grid import", _step_energy("grid", "p_ext_grid_mw"), "MWh", 3, w=3,
             description="Step-sampled energy from the external grid (negative: export)."),
        stat("PV energy", _step_energy("pv", "p_mw"), "MWh", 3, w=3),
        stat("Wind energy", _step_energy("wind", "p_mw"), "MWh", 3, w=3),
    ]
    events = [
        stat("DMS decisions", f'SELECT count("reason") FROM "dms_decision" WHERE {WHERE}',
             "none", 0, w=3, no_value="0"),
        stat("Protection trips", f'SELECT count("delay_s") FROM "protection" WHERE {WHERE} '
             "AND \"kind\" = 'trip'", "none", 0, w=3, no_value="0",
             thresholds=_thresholds((None, "green"), (1, "red"))),
        stat("Loads not supplied at the end", 'SELECT count("s") FROM (SELECT last("supplied") '
             f'AS "s" FROM "load" WHERE {WHERE} GROUP BY "element") WHERE "s" = false',
             "none", 0, w=3, no_value="0", thresholds=_thresholds((None, "green"), (1, "red"))),
        stat("Commands by outcome", f'SELECT count("id") FROM "command" WHERE {WHERE} '
             'GROUP BY "status"', "none", 0, w=3, no_value="0", alias="$tag_status",
             description="Commands through the field (RTU links or crews) by their outcome."),
    ]
    balance = timeseries(
        "Power balance", [target('SELECT mean("p_load_mw") AS "load", mean("p_sgen_mw") AS '
                                 '"generation", mean("p_ext_grid_mw") AS "grid import", '
                                 'mean("p_storage_mw") AS "storage", mean("p_loss_mw") AS '
                                 f'"losses" FROM "grid" WHERE {WHERE} GROUP BY '
                                 "time($__interval) fill(none)", alias="$col")],
        "MW", w=24, h=8, description="Whole-network totals from the power flow.")
    help_text = text("How to use", (
        "Pick a **run** above. Time is *scenario* time (UTC): the default range is the default "
        "scenario's day; for another run set the range to its start and duration. Purple "
        "marks are DMS decisions. The other dashboards are in the *dms-twin* menu above."),
        w=12, h=4)
    net = network_panel(ctx)
    stats = [help_text] + kpis + energy + events
    # the network on the left half, the stats beside it in rows of four, the balance below
    flow([[net]])
    y = flow([stats[:1]] + [stats[i:i + 4] for i in range(1, len(stats), 4)], x0=12,
             width=12)
    flow([[balance]], y0=max(y, net["gridPos"]["h"]))
    return dashboard(OVERVIEW_UID, "dms-twin: Overview",
                     "The network, key figures and the power balance of one run.",
                     [net, *stats, balance], [run_variable(), step_variable(ctx.step_s)],
                     ctx.time_range)


def voltages(ctx: Context) -> dict[str, Any]:
    band = band_thresholds(ctx.band)
    bus_q = (f'SELECT mean("vm_pu") FROM "bus" WHERE {WHERE} AND "element" =~ /^$bus$/ '
             'GROUP BY time($__interval), "element" fill(none)')
    timeline = state_timeline(
        "Bus voltage against the band", bus_q, h=12, thresholds=band,
        description=f"Each row a bus; blue below {ctx.band[0]}, green inside, red above "
                    f"{ctx.band[1]} p.u. (mean per interval).")
    extremes = timeseries(
        "Lowest and highest bus voltage",
        [target('SELECT min("vm_min_pu") AS "lowest", max("vm_max_pu") AS "highest" FROM "grid" '
                f"WHERE {WHERE} GROUP BY time($__interval) fill(none)", alias="$col")],
        "none", thresholds=band, threshold_style="dashed",
        description="The band's limits are the dashed lines.")
    per_bus = timeseries("Bus voltages", [target(bus_q, alias="$tag_element")], "none",
                         thresholds=band, threshold_style="dashed")
    minutes = table(
        "Violation minutes per bus",
        [target('SELECT count("vm") * $step_s / 60 AS "minutes" FROM (SELECT first("vm_pu") '
                f'AS "vm" FROM "bus" WHERE {WHERE} AND "element" =~ /^$bus$/ GROUP BY '
                f'time({STEP}), "element") WHERE ("vm" < {ctx.band[0]:g} OR "vm" > '
                f'{ctx.band[1]:g}) AND $timeFilter GROUP BY "element"', fmt="table")],
        w=8, h=8, sort_by="minutes",
        description="Steps outside the band × the step, per bus (step-sampled).")
    estimate = timeseries(
        "DMS state estimate and truth",
        [target(bus_q, "A", alias="truth $tag_element"),
         target(f'SELECT mean("vm_pu") FROM "dms_estimate" WHERE {WHERE} AND "element" =~ '
                '/^$bus$/ GROUP BY time($__interval), "element" fill(none)', "B",
                alias="estimate $tag_element")],
        "none", w=8, description="Pick one bus to compare the DMS's estimate with the truth.")
    devices = timeseries(
        "OLTC taps and capacitor steps",
        [target(f'SELECT last("tap_pos") FROM "trafo" WHERE {WHERE} GROUP BY '
                'time($__interval), "element" fill(previous)', "A", alias="tap $tag_element"),
         target(f'SELECT last("step") FROM "shunt" WHERE {WHERE} GROUP BY time($__interval), '
                '"element" fill(previous)', "B", alias="step $tag_element")],
        "none", w=8, interpolation="stepAfter")
    return dashboard(VOLTAGES_UID, "dms-twin: Voltages",
                     "Bus voltages against the band, the DMS's estimate and its controls.",
                     _rows([[timeline], [extremes, per_bus], [minutes, estimate, devices]]),
                     [run_variable(), element_variable("bus", "Bus", "bus"),
                      step_variable(ctx.step_s)], ctx.time_range)


def loading(ctx: Context) -> dict[str, Any]:
    limits = _thresholds((None, "green"), (80, "orange"), (100, "red"))
    lines = timeseries(
        "Line loading", [target(f'SELECT mean("loading_percent") FROM "line" WHERE {WHERE} AND '
                                '"element" =~ /^$line$/ GROUP BY time($__interval), "element" '
                                "fill(none)", alias="$tag_element")],
        "percent", thresholds=limits, threshold_style="dashed")
    trafos = timeseries(
        "Transformer loading", [target(f'SELECT mean("loading_percent") FROM "trafo" WHERE '
                                       f'{WHERE} AND "element" =~ /^$trafo$/ GROUP BY '
                                       'time($__interval), "element" fill(none)',
                                       alias="$tag_element")],
        "percent", thresholds=limits, threshold_style="dashed")
    line_max = bargauge("Highest line loading in the range",
                        f'SELECT max("loading_percent") FROM "line" WHERE {WHERE} AND '
                        '"element" =~ /^$line$/ GROUP BY "element"', "percent", h=10,
                        thresholds=limits)
    trafo_max = bargauge("Highest transformer loading in the range",
                         f'SELECT max("loading_percent") FROM "trafo" WHERE {WHERE} AND '
                         '"element" =~ /^$trafo$/ GROUP BY "element"', "percent", h=10,
                         thresholds=limits)
    losses = timeseries("Losses", [target(f'SELECT mean("p_loss_mw") AS "losses" FROM "grid" '
                                          f"WHERE {WHERE} GROUP BY time($__interval) fill(none)",
                                          alias="$col")], "MW", w=18)
    losses_e = stat("Energy losses", _step_energy("grid", "p_loss_mw"), "MWh", 3, w=6, h=8)
    return dashboard(LOADING_UID, "dms-twin: Loading",
                     "Line and transformer loading and the network losses.",
                     _rows([[lines, trafos], [line_max, trafo_max], [losses, losses_e]]),
                     [run_variable(), element_variable("line", "Line", "line"),
                      element_variable("trafo", "Transformer", "trafo"),
                      step_variable(ctx.step_s)], ctx.time_range)


def der(ctx: Context) -> dict[str, Any]:
    def per_element(measurement: str, field: str, extra: str = "") -> str:
        return (f'SELECT mean("{field}") FROM "{measurement}" WHERE {WHERE}{extra} GROUP BY '
                'time($__interval), "element" fill(none)')

    pv = timeseries("PV output", [target(per_element("pv", "p_mw", ' AND "element" =~ /^$pv$/'),
                                         alias="$tag_element")], "MW", stack=True)
    wind = timeseries(
        "Wind output and available power",
        [target('SELECT mean("p_mw") AS "output", mean("p_available_mw") AS "available" FROM '
                f'"wind" WHERE {WHERE} GROUP BY time($__interval), "element" fill(none)',
                alias="$tag_element $col")], "MW")
    curtailed = timeseries(
        "Curtailed power",
        [target(per_element("pv", "curtailed_mw"), "A", alias="PV $tag_element"),
         target(per_element("wind", "curtailed_mw"), "B", alias="wind $tag_element")],
        "MW", stack=True, description="Available minus delivered power, per plant.")
    soc = timeseries("Battery state of charge",
                     [target(per_element("battery", "soc"), alias="$tag_element")],
                     "percentunit")
    battery_p = timeseries(
        "Battery power (charging +)",
        [target('SELECT mean("p_mw") AS "power", mean("p_schedule_mw") AS "schedule" FROM '
                f'"battery" WHERE {WHERE} GROUP BY time($__interval), "element" fill(none)',
                alias="$tag_element $col")], "MW")
    ev_p = timeseries("EV charging power per bus",
                      [target(per_element("ev", "p_mw"), alias="$tag_element")], "MW",
                      stack=True)
    ev_flex = timeseries(
        "EV fleet: power, flexibility and connected EVs",
        [target('SELECT sum("p") AS "power", sum("up") AS "flexibility up", sum("down") AS '
                '"flexibility down" FROM (SELECT mean("p_mw") AS "p", mean("flex_up_mw") AS '
                '"up", mean("flex_down_mw") AS "down" FROM "ev" WHERE ' + WHERE + ' GROUP BY '
                'time($__interval), "element") WHERE $timeFilter GROUP BY time($__interval) '
                "fill(none)", "A", alias="$col"),
         target('SELECT sum("n") AS "connected EVs" FROM (SELECT mean("n_connected") AS "n" '
                f'FROM "ev" WHERE {WHERE} GROUP BY time($__interval), "element") WHERE '
                "$timeFilter GROUP BY time($__interval) fill(none)", "B", alias="$col")],
        "MW", overrides=[_override("connected EVs", unit="none",
                                   **{"custom.axisPlacement": "right"})])
    energies = [
        stat("PV energy", _step_energy("pv", "p_mw"), "MWh", 3, w=4),
        stat("PV curtailed", _step_energy("pv", "curtailed_mw"), "MWh", 3, w=4),
        stat("Wind energy", _step_energy("wind", "p_mw"), "MWh", 3, w=4),
        stat("Wind curtailed", _step_energy("wind", "curtailed_mw"), "MWh", 3, w=4),
        stat("EV energy", _step_energy("ev", "p_mw"), "MWh", 3, w=4),
        stat("EV energy short at departure",
             f'SELECT sum("e") FROM (SELECT last("energy_short_mwh") AS "e" FROM "ev" WHERE '
             f'{WHERE} GROUP BY "element")', "MWh", 3, w=4),
    ]
    return dashboard(DER_UID, "dms-twin: DER, storage and EVs",
                     "PV and wind output and curtailment, batteries and the EV fleet.",
                     _rows([energies, [pv, wind], [curtailed, soc], [battery_p, ev_p],
                            [ev_flex]]),
                     [run_variable(), element_variable("pv", "PV plant", "pv"),
                      step_variable(ctx.step_s)], ctx.time_range)


def communications(ctx: Context) -> dict[str, Any]:
    rtu = ' AND "element" =~ /^$rtu$/'
    latency = timeseries(
        "Telemetry latency per RTU (mean)",
        [target(f'SELECT mean("latency_s") FROM "telemetry" WHERE {WHERE}{rtu} GROUP BY '
                'time($__interval), "element" fill(none)', alias="$tag_element")], "s",
        description="From scan to delivery at the DMS.")
    latency_table = table(
        "Telemetry per RTU",
        [target('SELECT count("latency_s") AS "values", mean("latency_s") AS "mean [s]", '
                'percentile("latency_s", 95) AS "p95 [s]", max("latency_s") AS "max [s]" FROM '
                f'"telemetry" WHERE {WHERE}{rtu} GROUP BY "element"', fmt="table")], w=12)
    counters = table(
        "Messages per RTU (both directions)",
        [target('SELECT last("sent") AS "sent", last("delivered") AS "delivered", '
                'last("lost_random") AS "lost (random)", last("lost_outage") AS "lost (outage)" '
                f'FROM "comm" WHERE {WHERE}{rtu} GROUP BY "element"', fmt="table")], w=12)
    lost = timeseries(
        "Messages lost (cumulative)",
        [target('SELECT last("lost_random") + last("lost_outage") AS "lost" FROM "comm" WHERE '
                f'{WHERE}{rtu} GROUP BY time($__interval), "element" fill(previous)',
                alias="$tag_element")], "none", interpolation="stepAfter")
    outcomes = table(
        "Command outcomes per RTU and status",
        [target(f'SELECT count("id") AS "commands" FROM "command" WHERE {WHERE} GROUP BY "via", '
                '"status"', fmt="table")], w=8, sort_by="commands",
        description="'via' is the RTU whose link carried the command, or the crew.")
    delay = timeseries(
        "Command result delay",
        [target(f'SELECT "result_delay_s" FROM "command" WHERE {WHERE} GROUP BY "via"',
                alias="$tag_via")], "s", w=8, draw="points",
        description="From sending to the acknowledgement (or timeout, or the crew's report).")
    delivered = timeseries(
        "Telemetry values delivered per interval",
        [target(f'SELECT count("value") FROM "telemetry" WHERE {WHERE}{rtu} GROUP BY '
                'time($__interval), "element" fill(0)', alias="$tag_element")], "none", w=8,
        draw="bars", stack=True)
    commands = table(
        "Commands",
        [target('SELECT "element", "action", "status", "via", "value", "applied_delay_s", '
                f'"result_delay_s", "reason" FROM "command" WHERE {WHERE}', fmt="table")],
        h=8, sort_by="Time")
    return dashboard(COMMS_UID, "dms-twin: Communications",
                     "Telemetry latency, message counters and command outcomes per RTU.",
                     _rows([[latency, lost], [latency_table, counters],
                            [outcomes, delay, delivered], [commands]]),
                     [run_variable(), element_variable("rtu", "RTU", "comm")], ctx.time_range)


def decisions(ctx: Context) -> dict[str, Any]:
    fn = ' AND "function" =~ /^$function$/'
    log = table(
        "Decisions",
        [target('SELECT "function", "action", "mode", "element", "reason", "value" FROM '
                f'"dms_decision" WHERE {WHERE}{fn}', fmt="table")],
        h=12, sort_by="Time", overrides=[_override("reason", **{"custom.width": 900})],
        description="Every DMS decision: function, action, mode (direct, remote, manual, "
                    "advisory), target element and the reason in one sentence.")
    by_kind = table(
        "Decisions by function, action and mode",
        [target(f'SELECT count("reason") AS "decisions" FROM "dms_decision" WHERE {WHERE}{fn} '
                'GROUP BY "function", "action", "mode"', fmt="table")], w=8, h=8,
        sort_by="decisions")
    per_interval = timeseries(
        "Decisions per interval",
        [target(f'SELECT count("reason") FROM "dms_decision" WHERE {WHERE}{fn} GROUP BY '
                'time($__interval), "function" fill(0)', alias="$tag_function")], "none", w=8,
        draw="bars", stack=True)
    cycles = timeseries(
        "DMS cycles: failures, bad data, stale values",
        [target('SELECT count("success") - sum("success") AS "failed cycles", sum("bad_data") '
                'AS "bad data removed", sum("stale") AS "stale values" FROM "dms_cycle" WHERE '
                f"{WHERE} GROUP BY time($__interval) fill(none)", alias="$col")], "none", w=8,
        draw="bars")
    short_circuit = table(
        "Short-circuit check (latest per switch)",
        [target('SELECT last("ikss_max_ka") AS "ikss_max_ka", last("ip_max_ka") AS "ip_max_ka", '
                'last("breaking_ka") AS "breaking_ka", last("making_ka") AS "making_ka", '
                f'last("ok") AS "ok" FROM "dms_short_circuit" WHERE {WHERE} GROUP BY "element"',
                fmt="table")], h=8,
        description="IEC 60909 currents at each switch against its breaking and making "
                    "capability, as the DMS last computed them (ok = 1).")
    return dashboard(DECISIONS_UID, "dms-twin: DMS decisions",
                     "The DMS's decision log, its cycles and its short-circuit check.",
                     _rows([[log], [by_kind, per_interval, cycles], [short_circuit]]),
                     [run_variable(), tag_variable("function", "Function", "dms_decision",
                                                   "function")], ctx.time_range)


#: The run's KPIs the Reliability dashboard reads from the ``kpi`` point (:func:`twin.evaluation.kpis.kpi_point`).
RELIABILITY_KPIS = {"saifi": ("SAIFI", "none", 4), "saidi_min": ("SAIDI", "m", 2),
                    "caidi_min": ("CAIDI", "m", 1), "maifi": ("MAIFI", "none", 4),
                    "energy_not_supplied_mwh": ("ENS", "MWh", 3),
                    "customers_interrupted": ("Customers interrupted", "none", 0)}


def reliability(ctx: Context) -> dict[str, Any]:
    fields = ", ".join(f'last("{k}") AS "{k}"' for k in RELIABILITY_KPIS)
    kpi = panel(
        "stat", "Reliability (IEEE 1366) as the run computed it",
        [target(f'SELECT {fields} FROM "kpi" WHERE {WHERE}')], 24, 4,
        "From the run's kpi point, written when the run ends (customers per load from the "
        "scenario; sustained = longer than 'momentary').",
        _field_config(color="fixed", no_value="–",
                      overrides=[_override(k, displayName=f"{label}", unit=unit, decimals=dec)
                                 for k, (label, unit, dec) in RELIABILITY_KPIS.items()]),
        {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
         "colorMode": "none", "graphMode": "none", "textMode": "value_and_name",
         "justifyMode": "auto", "orientation": "vertical"})
    unserved = timeseries(
        "Unserved power",
        [target('SELECT sum("u") AS "unserved" FROM (SELECT last("p_demand_mw") - last("p_mw") '
                f'AS "u" FROM "load" WHERE {WHERE} GROUP BY time($__interval), "element" '
                'fill(none)) WHERE $timeFilter GROUP BY time($__interval) fill(0)',
                alias="$col")], "MW", w=9, interpolation="stepAfter",
        description="What the loads would draw minus what they get (at the end of each "
                    "interval).")
    not_supplied = timeseries(
        "Loads not supplied",
        [target('SELECT count("s") AS "loads" FROM (SELECT last("supplied") AS "s" FROM "load" '
                f'WHERE {WHERE} GROUP BY time($__interval), "element" fill(none)) WHERE '
                '"s" = false AND $timeFilter GROUP BY time($__interval) fill(0)',
                alias="$col")], "none", w=9, interpolation="stepAfter")
    ens = stat(
        "Energy not supplied (step-sampled)",
        'SELECT sum("u") * $step_s / 3600 FROM (SELECT first("p_demand_mw") - first("p_mw") AS '
        f'"u" FROM "load" WHERE {WHERE} GROUP BY time({STEP}), "element") WHERE $timeFilter',
        "MWh", 3, w=6, h=8, no_value="0",
        description="While the run goes on. An interruption shorter than a step counts as "
                    "one step; the exact figure is ENS above, once the run has ended.")
    switches = state_timeline(
        "Switch states",
        f'SELECT last("closed") FROM "switch" WHERE {WHERE} AND "element" =~ /^$switch$/ '
        'GROUP BY time($__interval), "element" fill(previous)', h=10,
        mappings=[{"type": "value", "options": {
            "true": {"text": "closed", "color": "green", "index": 0},
            "false": {"text": "open", "color": "red", "index": 1}}}])
    protection = table(
        "Protection events",
        [target('SELECT "kind", "element", "fault", "name", "type", "i_fault_ka", "ikss_ka", '
                f'"pickup_ka", "delay_s" FROM "protection" WHERE {WHERE}', fmt="table")],
        w=14, h=8, sort_by="Time")
    crews = table(
        "Crew jobs",
        [target(f'SELECT "crew", "element", "wait_s", "travel_s", "work_s" FROM "crew" WHERE '
                f"{WHERE}", fmt="table")], w=10, h=8, sort_by="Time",
        description="Time = the job's completion.")
    return dashboard(
        RELIABILITY_UID, "dms-twin: Reliability",
        "Supply interruptions, energy not supplied, protection, switching and crews.",
        _rows([[kpi], [unserved, not_supplied, ens], [switches], [protection, crews]]),
        [run_variable(), element_variable("switch", "Switch", "switch"),
         step_variable(ctx.step_s)], ctx.time_range,
        [influx_annotation("Protection", PROTECTION_QUERY, "fault", "kind,element", "red")])


BUILDERS = {
    "overview.json": overview,
    "voltages.json": voltages,
    "loading.json": loading,
    "der.json": der,
    "communications.json": communications,
    "decisions.json": decisions,
    "reliability.json": reliability,
}


def build_all(ctx: Context) -> dict[str, dict[str, Any]]:
    """File name → dashboard JSON model."""
    return {name: build(ctx) for name, build in BUILDERS.items()}


def render(model: Mapping[str, Any]) -> str:
    """The file text of a dashboard (stable: same model, same bytes)."""
    return json.dumps(model, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m twin.dashboards", description=__doc__.split(
        "\n")[0])
    ap.add_argument("--scenario", type=Path, default=DEFAULT_SCENARIO,
                    help="scenario whose grid, band, step and day the dashboards use")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder of the JSON files")
    ap.add_argument("--check", action="store_true",
                    help="write nothing; exit 1 if a file differs from what would be written")
    args = ap.parse_args(argv)
    ctx = Context.from_scenario(args.scenario)
    stale = []
    for name, model in build_all(ctx).items():
        path = args.out / name
        content = render(model)
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != content:
                stale.append(str(path))
            continue
        args.out.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
        print(f"wrote {path}")
    if stale:
        print("out of date (run python -m twin.dashboards): " + ", ".join(stale),
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
