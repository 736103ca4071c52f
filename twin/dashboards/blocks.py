"""Building blocks of the Grafana dashboards: queries, panels, variables, annotations, layout.

Queries are InfluxQL only, so the same files work on InfluxDB 1.x, 2.x (through a DBRP
mapping) and 3.x; every query filters ``"run" =~ /^$run$/`` and ``$timeFilter``. All queries
name the datasource provisioned by ``dashboards/provisioning/datasources/influxdb.yaml`` by
its fixed uid.

Conventions
-----------
Energies [MWh] are *step-sampled*: the first value in each power-flow step (``$step_s``,
a constant variable, 60 s like every shipped scenario) times the step. Where the grid
re-solves between steps (switching, faults) the value of the step start holds for the
whole step, so an interruption of a few seconds counts as one step; ``kpis.json`` (and the
``kpi`` point, :func:`twin.evaluation.kpis.kpi_point`) integrate every solve exactly.
"""

from __future__ import annotations

from typing import Any, Iterable

#: The InfluxDB datasource provisioned for Grafana (dashboards/provisioning/datasources).
DATASOURCE_UID = "dms-twin-influxdb"
DATASOURCE = {"type": "influxdb", "uid": DATASOURCE_UID}
GRAFANA_BUILTIN = {"type": "grafana", "uid": "-- Grafana --"}

TAG = "dms-twin"
SCHEMA_VERSION = 39
PLUGIN_VERSION = "11.3.0"  # the Grafana the compose file runs; panels carry it (xychart v2)

RUN = '"run" =~ /^$run$/'
WHERE = f"{RUN} AND $timeFilter"
STEP = "${step_s}s"  # inside GROUP BY time(...)


def step_energy_query(measurement: str, field: str, extra: str = "") -> str:
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


def threshold_steps(*steps: tuple[float | None, str]) -> dict[str, Any]:
    return {"mode": "absolute", "steps": [{"color": c, "value": v} for v, c in steps]}


def band_thresholds(band: tuple[float, float]) -> dict[str, Any]:
    """Blue below the voltage band, green inside, red above."""
    return threshold_steps((None, "blue"), (band[0], "green"), (band[1], "red"))


def make_field_config(unit: str | None = None, decimals: int | None = None,
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


def field_override(name: str, **props: Any) -> dict[str, Any]:
    return {"matcher": {"id": "byName", "options": name},
            "properties": [{"id": k, "value": v} for k, v in props.items()]}


def panel(kind: str, title: str, targets: list[dict], w: int, h: int, description: str = "",
          field_config: dict | None = None, options: dict | None = None,
          transformations: list | None = None) -> dict[str, Any]:
    """A panel; ``gridPos`` x/y and ``id`` are set when the dashboard lays it out."""
    p: dict[str, Any] = {"type": kind, "title": title, "datasource": DATASOURCE,
                         "gridPos": {"h": h, "w": w, "x": 0, "y": 0}, "targets": targets,
                         "fieldConfig": field_config or make_field_config(),
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
               overrides: list | None = None, decimals: int | None = None) -> dict[str, Any]:
    custom = {"drawStyle": draw, "lineInterpolation": interpolation, "lineWidth": 1,
              "fillOpacity": 80 if draw == "bars" else 0, "pointSize": 4,
              "showPoints": "always" if draw == "points" else "never", "spanNulls": False,
              "thresholdsStyle": {"mode": threshold_style},
              "stacking": {"mode": "normal" if stack else "none", "group": "A"}}
    return panel("timeseries", title, targets, w, h, description,
                 make_field_config(unit=unit, decimals=decimals, thresholds=thresholds,
                                   color="palette-classic", custom=custom, overrides=overrides),
                 {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                  "tooltip": {"mode": "multi", "sort": "desc"}})


def stat(title: str, query: str, unit: str, decimals: int | None = None, w: int = 4,
         h: int = 4, description: str = "", thresholds: dict | None = None,
         no_value: str | None = None, calc: str = "lastNotNull", fmt: str = "time_series",
         overrides: list | None = None, alias: str | None = None) -> dict[str, Any]:
    return panel("stat", title, [target(query, fmt=fmt, alias=alias)], w, h, description,
                 make_field_config(unit=unit, decimals=decimals,
                               thresholds=thresholds or threshold_steps((None, "text")),
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
                 make_field_config(custom={"align": "auto", "cellOptions": {"type": "auto"},
                                       "inspect": True}, overrides=overrides),
                 options, transformations)


def state_timeline(title: str, query: str, w: int = 24, h: int = 10, description: str = "",
                   thresholds: dict | None = None, mappings: list | None = None,
                   unit: str = "none") -> dict[str, Any]:
    return panel("state-timeline", title, [target(query, alias="$tag_element")], w, h,
                 description,
                 make_field_config(unit=unit, thresholds=thresholds, mappings=mappings,
                               color="thresholds",
                               custom={"fillOpacity": 80, "lineWidth": 0}),
                 {"showValue": "never", "mergeValues": False, "rowHeight": 0.9,
                  "alignValue": "left",
                  "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                  "tooltip": {"mode": "single"}})


def bargauge(title: str, query: str, unit: str, w: int = 12, h: int = 8,
             description: str = "", thresholds: dict | None = None) -> dict[str, Any]:
    return panel("bargauge", title, [target(query, alias="$tag_element")], w, h, description,
                 make_field_config(unit=unit, thresholds=thresholds, color="thresholds", min_=0),
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


def stack_rows(rows: list[list[dict]]) -> list[dict]:
    flow(rows)
    return [p for row in rows for p in row]
