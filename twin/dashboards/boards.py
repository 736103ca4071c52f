"""Grafana dashboards as code: the one source of the JSON files in ``dashboards/``.

Each dashboard is a plain dict in Grafana's dashboard JSON model, built here from the
building blocks of :mod:`twin.dashboards.blocks` and written by ``python -m twin.dashboards``
(run from the repository root; ``--check`` exits 1 when the committed files differ from
what is built).

The network picture on *Overview* is drawn from the run's geometry, which the runner records
once as ``grid_geo`` (:mod:`twin.grid.geo`: buses, and dots along each line and transformer);
the panel joins it on ``element`` with each element's last voltage or loading in the range,
so any grid is drawn without the dashboards knowing it. Its kind follows the scenario's grid
(:attr:`Context.lonlat`, decided when the dashboards are generated, as their time range is):

* geodata in km on a plane (CIGRE MV, the paper's grids): an XY chart (:func:`network_panel`;
  the Node Graph panel ignores positions);
* longitude/latitude (mv_oberrhein, SimBench): Grafana's Geomap (:func:`geomap_panel`) over a
  base map, from the points' ``lat_deg``/``lon_deg``.

The committed files are the default scenario's (CIGRE MV: the XY chart); the compose stack's
dashboards service generates the run's own before Grafana starts, so a SimBench run there
opens on the Geomap.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any, Mapping

from twin.dashboards.blocks import (
    PROTECTION_QUERY,
    RUN,
    STEP,
    WHERE,
    band_thresholds,
    bargauge,
    dashboard,
    element_variable,
    field_override,
    flow,
    influx_annotation,
    make_field_config,
    panel,
    run_variable,
    stack_rows,
    stat,
    state_timeline,
    step_energy_query,
    step_variable,
    table,
    tag_variable,
    target,
    text,
    threshold_steps,
    timeseries,
)
from twin.grid.geo import GEO_MEASUREMENT

OVERVIEW_UID = "dms-twin-overview"
VOLTAGES_UID = "dms-twin-voltages"
LOADING_UID = "dms-twin-loading"
DER_UID = "dms-twin-der"
COMMS_UID = "dms-twin-comms"
DECISIONS_UID = "dms-twin-decisions"
RELIABILITY_UID = "dms-twin-reliability"
FREQUENCY_CELLS_UID = "dms-twin-frequency-cells"

#: File name (in ``dashboards/``) → dashboard uid.
FILES = {
    "overview.json": OVERVIEW_UID,
    "voltages.json": VOLTAGES_UID,
    "loading.json": LOADING_UID,
    "der.json": DER_UID,
    "communications.json": COMMS_UID,
    "decisions.json": DECISIONS_UID,
    "reliability.json": RELIABILITY_UID,
    "frequency_cells.json": FREQUENCY_CELLS_UID,
}


class Context:
    """What the dashboards take from the scenario: its voltage band, its step, its time range
    (the dashboards' default range), whether its grid's geodata are longitude/latitude
    (``lonlat``: the Overview then maps the network with a Geomap, else with an XY chart),
    the area's nominal frequency ``f0_hz`` [Hz] and each cell's tie-line tolerance
    ``cell_tolerance_mw`` [MW] (``dms.cells``; none: the deviation is drawn without it)."""

    def __init__(self, band: tuple[float, float], step_s: float, time_range: tuple[str, str],
                 lonlat: bool = False, f0_hz: float = 50.0,
                 cell_tolerance_mw: Mapping[str, float] | None = None):
        self.band, self.step_s, self.time_range = band, step_s, time_range
        self.lonlat = lonlat
        self.f0_hz = f0_hz
        self.cell_tolerance_mw = dict(cell_tolerance_mw or {})

    @classmethod
    def from_scenario(cls, path: Path, overrides: list[str] | None = None,
                      until_s: float | None = None) -> "Context":
        """The scenario file with ``--set`` ``overrides``; the range ends at its end, or
        ``until_s`` [s] after its start (a run stopped early with ``twin run --until``)."""
        from twin.grid.build import build_net
        from twin.grid.geo import is_lonlat
        from twin.scenario import load_scenario

        sc = load_scenario(path, overrides)
        end = sc.start + timedelta(seconds=sc.duration if until_s is None else until_s)
        fmt = "%Y-%m-%dT%H:%M:%S.000Z"
        band = tuple(sc.kpis.voltage_band_pu)
        # the grid the run will record (grid_geo holds the same positions)
        lonlat = is_lonlat(build_net(sc.grid, Path(path)))
        tolerances = {c.name: float(c.tolerance_mw) for c in sc.dms.cells.cells}
        return cls((float(band[0]), float(band[1])), float(sc.step),
                   (sc.start.strftime(fmt), end.strftime(fmt)), lonlat,
                   float(sc.frequency.area.f0_hz), tolerances)


LOADING_THRESHOLDS = threshold_steps((None, "green"), (80, "orange"), (100, "red"))
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
    overrides = [field_override("x_km", unit="lengthkm", **{"custom.axisLabel": "x [km]"}),
                 *(field_override(y, unit="lengthkm", **{"custom.axisLabel": "y [km]",
                                                     "custom.pointSize": {"fixed": size}})
                   for y, size in (("y_bus_km", 14), ("y_branch_km", 6))),
                 field_override("vm_pu", displayName="voltage [p.u.]", decimals=4,
                           thresholds=band_thresholds(ctx.band)),
                 field_override("loading_percent", displayName="loading", unit="percent",
                           decimals=1, thresholds=LOADING_THRESHOLDS)]
    fc = make_field_config(unit="none", color="thresholds",
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


#: The Geomap's layers read their frame by refId (a layer draws the first frame it is
#: given): C the routes' dots, D the labels; the buses are the frame joined from A and B,
#: which has no refId of its own, so their layer takes every frame but C's and D's.
GEOMAP_ROUTES_REF, GEOMAP_LABELS_REF = "C", "D"
GEOMAP_BUSES_FILTER = {"id": "invertMatch", "options": {
    "id": "byRefId", "options": f"/^[{GEOMAP_ROUTES_REF}{GEOMAP_LABELS_REF}]$/"}}


def _markers_layer(name: str, frames: dict[str, Any], style: dict[str, Any],
                   legend: bool = False, tooltip: bool = True) -> dict[str, Any]:
    """A Geomap markers layer at the frame's ``lat_deg``/``lon_deg`` fields."""
    base = {"opacity": 0.9, "rotation": {"fixed": 0, "max": 360, "min": -360, "mode": "mod"},
            "symbol": {"fixed": "img/icons/marker/circle.svg", "mode": "fixed"},
            "symbolAlign": {"horizontal": "center", "vertical": "center"},
            "textConfig": {"fontSize": 12, "offsetX": 0, "offsetY": 0, "textAlign": "center",
                           "textBaseline": "middle"}}
    return {"type": "markers", "name": name, "config": {"showLegend": legend,
                                                        "style": {**base, **style}},
            "location": {"mode": "coords", "latitude": "lat_deg", "longitude": "lon_deg"},
            "filterData": frames, "tooltip": tooltip}


def geomap_panel(ctx: Context) -> dict[str, Any]:
    """The network of a grid with longitude/latitude geodata on Grafana's Geomap: ``grid_geo``
    points (``lat_deg``, ``lon_deg``) over a base map, three markers layers:

    * ``lines and transformers`` — grey dots along each route (C, as recorded);
    * ``buses`` — coloured by each bus's last voltage in the range against the band (A, the
      positions, joined on ``element`` with B, the voltages);
    * ``labels`` — the names :func:`twin.grid.geo.map_labels` recorded (D: substations, feeds,
      feeder heads), as text above their bus.

    A Geomap layer draws one frame, and only the untouched query frames keep their refId, so
    the one join is the buses' (a second join could not be told apart from it): the dots
    are not coloured by loading here (the Loading dashboard has it). As in
    :func:`network_panel`, no query returns a row with an empty cell."""
    geo = (f'SELECT last("lat_deg") AS "lat_deg", last("lon_deg") AS "lon_deg"{{}} FROM '
           f'"{GEO_MEASUREMENT}" WHERE {RUN} AND "kind" {{}} \'bus\'{{}} GROUP BY {{}}')
    targets = [
        target(geo.format("", "=", "", '"element"'), ref="A", fmt="table"),
        target(f'SELECT last("vm_pu") AS "vm_pu" FROM "bus" WHERE {WHERE} GROUP BY "element"',
               ref="B", fmt="table"),
        target(geo.format("", "!=", "", '"element", "dot"'), ref=GEOMAP_ROUTES_REF,
               fmt="table"),
        target(geo.format(', last("label") AS "label"', "=", ' AND "label" =~ /./',
                          '"element"'), ref=GEOMAP_LABELS_REF, fmt="table")]
    overrides = [field_override("vm_pu", displayName="voltage [p.u.]", decimals=4,
                                thresholds=band_thresholds(ctx.band)),
                 *(field_override(f, unit="degree", decimals=5) for f in ("lat_deg", "lon_deg"))]
    fc = make_field_config(unit="none", color="thresholds",
                           custom={"hideFrom": {"legend": False, "tooltip": False,
                                                "viz": False}},
                           overrides=overrides)
    size = {"min": 2, "max": 15}
    layers = [
        _markers_layer("lines and transformers", {"id": "byRefId",
                                                   "options": GEOMAP_ROUTES_REF},
                       {"color": {"fixed": "#9a9a9a"}, "size": {**size, "fixed": 2},
                        "opacity": 0.8}),
        _markers_layer("buses", GEOMAP_BUSES_FILTER,
                       {"color": {"field": "vm_pu", "fixed": "dark-green"},
                        "size": {**size, "fixed": 6}}, legend=True),
        # no symbol: text only, in the theme's text colour, above the bus marker
        _markers_layer("labels", {"id": "byRefId", "options": GEOMAP_LABELS_REF},
                       {"color": {"fixed": "text"}, "size": {**size, "fixed": 6},
                        "symbol": {"fixed": "", "mode": "fixed"},
                        "text": {"field": "label", "fixed": "", "mode": "field"},
                        "textConfig": {"fontSize": 12, "offsetX": 0, "offsetY": -10,
                                       "textAlign": "center", "textBaseline": "bottom"}},
                       tooltip=False)]
    options = {"view": {"id": "fit", "allLayers": True, "lastOnly": False, "padding": 5,
                        "lat": 0, "lon": 0, "zoom": 15},
               "controls": {"showZoom": True, "mouseWheelZoom": True, "showAttribution": True,
                            "showScale": True, "showMeasure": True, "showDebug": False},
               "basemap": {"type": "default", "name": "Base map", "config": {}},
               "layers": layers, "tooltip": {"mode": "details"}}
    join = {"id": "joinByField", "options": {"byField": "element", "mode": "outerTabular"},
            "filter": {"id": "byRefId", "options": "/^[AB]$/"}}
    return panel("geomap", NETWORK_TITLE, targets, 12, 16,
                 "The run's grid on a map (its geodata are longitude/latitude): buses coloured "
                 f"blue below {ctx.band[0]}, green inside the band, red above {ctx.band[1]} "
                 "p.u., each with its last voltage in the time range (move the end of the "
                 "range to replay the day); lines and transformers as grey dots along their "
                 "routes (their loading: Loading dashboard); substations, feeds and feeder "
                 "heads named. Hover for the element and its value; the scale bar is in km. "
                 "The base map's tiles are fetched by the browser.",
                 fc, options, [join])


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
             "(step-sampled).", thresholds=threshold_steps((None, "green"), (1, "red"))),
        stat("Highest line loading", f'SELECT max("loading_percent") FROM "line" WHERE {WHERE}',
             "percent", 1, w=3, thresholds=threshold_steps((None, "green"), (80, "orange"),
                                                        (100, "red"))),
    ]
    energy = [
        stat("Losses", step_energy_query("grid", "p_loss_mw"), "MWh", 3, w=3,
             description="Step-sampled energy of the network losses."),
        stat("Grid import", step_energy_query("grid", "p_ext_grid_mw"), "MWh", 3, w=3,
             description="Step-sampled energy from the external grid (negative: export)."),
        stat("PV energy", step_energy_query("pv", "p_mw"), "MWh", 3, w=3),
        stat("Wind energy", step_energy_query("wind", "p_mw"), "MWh", 3, w=3),
    ]
    events = [
        stat("DMS decisions", f'SELECT count("reason") FROM "dms_decision" WHERE {WHERE}',
             "none", 0, w=3, no_value="0"),
        stat("Protection trips", f'SELECT count("delay_s") FROM "protection" WHERE {WHERE} '
             "AND \"kind\" = 'trip'", "none", 0, w=3, no_value="0",
             thresholds=threshold_steps((None, "green"), (1, "red"))),
        stat("Loads not supplied at the end", 'SELECT count("s") FROM (SELECT last("supplied") '
             f'AS "s" FROM "load" WHERE {WHERE} GROUP BY "element") WHERE "s" = false',
             "none", 0, w=3, no_value="0", thresholds=threshold_steps((None, "green"), (1, "red"))),
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
    net = geomap_panel(ctx) if ctx.lonlat else network_panel(ctx)
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
                     stack_rows([[timeline], [extremes, per_bus], [minutes, estimate, devices]]),
                     [run_variable(), element_variable("bus", "Bus", "bus"),
                      step_variable(ctx.step_s)], ctx.time_range)


def loading(ctx: Context) -> dict[str, Any]:
    limits = threshold_steps((None, "green"), (80, "orange"), (100, "red"))
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
    losses_e = stat("Energy losses", step_energy_query("grid", "p_loss_mw"), "MWh", 3, w=6, h=8)
    return dashboard(LOADING_UID, "dms-twin: Loading",
                     "Line and transformer loading and the network losses.",
                     stack_rows([[lines, trafos], [line_max, trafo_max], [losses, losses_e]]),
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
        "MW", overrides=[field_override("connected EVs", unit="none",
                                   **{"custom.axisPlacement": "right"})])
    energies = [
        stat("PV energy", step_energy_query("pv", "p_mw"), "MWh", 3, w=4),
        stat("PV curtailed", step_energy_query("pv", "curtailed_mw"), "MWh", 3, w=4),
        stat("Wind energy", step_energy_query("wind", "p_mw"), "MWh", 3, w=4),
        stat("Wind curtailed", step_energy_query("wind", "curtailed_mw"), "MWh", 3, w=4),
        stat("EV energy", step_energy_query("ev", "p_mw"), "MWh", 3, w=4),
        stat("EV energy short at departure",
             f'SELECT sum("e") FROM (SELECT last("energy_short_mwh") AS "e" FROM "ev" WHERE '
             f'{WHERE} GROUP BY "element")', "MWh", 3, w=4),
    ]
    return dashboard(DER_UID, "dms-twin: DER, storage and EVs",
                     "PV and wind output and curtailment, batteries and the EV fleet.",
                     stack_rows([energies, [pv, wind], [curtailed, soc], [battery_p, ev_p],
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
                     stack_rows([[latency, lost], [latency_table, counters],
                            [outcomes, delay, delivered], [commands]]),
                     [run_variable(), element_variable("rtu", "RTU", "comm")], ctx.time_range)


def decisions(ctx: Context) -> dict[str, Any]:
    fn = ' AND "function" =~ /^$function$/'
    log = table(
        "Decisions",
        [target('SELECT "function", "action", "mode", "element", "reason", "value" FROM '
                f'"dms_decision" WHERE {WHERE}{fn}', fmt="table")],
        h=12, sort_by="Time", overrides=[field_override("reason", **{"custom.width": 900})],
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
                     stack_rows([[log], [by_kind, per_interval, cycles], [short_circuit]]),
                     [run_variable(), tag_variable("function", "Function", "dms_decision",
                                                   "function")], ctx.time_range)


#: The run's KPIs the Reliability dashboard reads from the ``kpi`` point
#: (:func:`twin.evaluation.kpis.kpi_point`).
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
        make_field_config(color="fixed", no_value="–",
                      overrides=[field_override(k, displayName=f"{label}", unit=unit, decimals=dec)
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
        stack_rows([[kpi], [unserved, not_supplied, ens], [switches], [protection, crews]]),
        [run_variable(), element_variable("switch", "Switch", "switch"),
         step_variable(ctx.step_s)], ctx.time_range,
        [influx_annotation("Protection", PROTECTION_QUERY, "fault", "kind,element", "red")])


#: FCR's full-activation deviation [Hz] (Continental Europe: ±200 mHz), drawn as a band.
FCR_FULL_HZ = 0.2

#: The twin's responses in the ``frequency`` records: field, label (the report's order).
RESPONSE_SOURCES = (("twin_fcr_battery_mw", "battery FCR"), ("twin_fcr_ev_mw", "V2G FCR"),
                    ("twin_inertia_mw", "synthetic inertia"), ("twin_pf_mw", "P(f) withheld"))

#: The DMS functions of the supervisory layer (the paper's section III).
SUPERVISORY_FUNCTIONS = ("cells", "curtailment", "tso_dso", "v2g")

CELL_DEVIATION_TITLE = "Tie-line deviation from schedule and residual: $cell"


def _mean_per_interval(measurement: str, columns: tuple[tuple[str, str], ...],
                       extra: str = "", by_element: bool = False) -> str:
    """``mean`` of each (field, name) per ``$__interval``, per element if ``by_element``."""
    select = ", ".join(f'mean("{f}") AS "{name}"' for f, name in columns)
    group = 'time($__interval), "element"' if by_element else "time($__interval)"
    return (f'SELECT {select} FROM "{measurement}" WHERE {WHERE}{extra} GROUP BY {group} '
            "fill(none)")


def response_energy_query() -> str:
    """The twin's response energy per source [kWh]: each record's power [MW] held over the
    step it ends (``dt_s``), summed (as the KPI ``frequency_response_mwh`` does)."""
    inner = ", ".join(f'"{f}" * "dt_s" AS "{f}"' for f, _ in RESPONSE_SOURCES)
    outer = ", ".join(f'sum("{f}") / 3.6 AS "{name}"' for f, name in RESPONSE_SOURCES)
    return (f'SELECT {outer} FROM (SELECT {inner} FROM "frequency" WHERE {WHERE}) '
            "WHERE $timeFilter")


def _cell_deviation_panel(ctx: Context, cell: str) -> dict[str, Any]:
    """Deviation and residual, repeated per cell; each cell's tolerance band (from the
    scenario's ``dms.cells``) on its own panel."""
    overrides = [field_override(f"{name} deviation",
                                thresholds=threshold_steps((None, "red"), (-tol, "green"),
                                                           (tol, "red")),
                                **{"custom.thresholdsStyle": {"mode": "dashed"}})
                 for name, tol in sorted(ctx.cell_tolerance_mw.items())]
    p = timeseries(
        CELL_DEVIATION_TITLE,
        [target(_mean_per_interval("dms_cell", (("deviation_mw", "deviation"),
                                                ("residual_mw", "residual")), cell, True),
                alias="$tag_element $col")], "MW", w=24, overrides=overrides,
        description="Export minus schedule as the DMS saw it each cycle, and the residual: "
                    "what the cell's own batteries, EVs and DER could not cover (for the "
                    "neighbours or the operator). Dashed: the cell's tolerance "
                    "(dms.cells, when the dashboards are generated for the run's scenario). "
                    "One panel per cell.")
    p.update(repeat="cell", repeatDirection="h", maxPerRow=4)
    return p


def frequency_cells(ctx: Context) -> dict[str, Any]:
    """The area's frequency and the twin's answer to it (scenario ``frequency``), and the
    DMS's supervisory layer (``dms.cells``, ``dms.monitoring``, ``dms.tso_dso``): tie-line
    control per cell, inertia and storage monitoring, the TSO–DSO interface."""
    f0 = ctx.f0_hz
    fcr_band = threshold_steps((None, "red"), (f0 - FCR_FULL_HZ, "green"),
                               (f0 + FCR_FULL_HZ, "red"))
    extremes = [
        stat("Frequency nadir", f'SELECT min("f_min_hz") FROM "frequency" WHERE {WHERE}',
             "hertz", 4, thresholds=fcr_band, no_value="–",
             description="Lowest frequency within any step (it may fall between records)."),
        stat("Highest frequency", f'SELECT max("f_max_hz") FROM "frequency" WHERE {WHERE}',
             "hertz", 4, thresholds=fcr_band, no_value="–"),
        stat("Largest |RoCoF|", f'SELECT max("rocof_max_hz_s") FROM "frequency" WHERE {WHERE}',
             "Hz/s", 4, no_value="–"),
    ]
    energy = panel(
        "stat", "The twin's response energy per source", [target(response_energy_query())],
        12, 4, "What the twin's own units gave the area [kWh, + = injected; P(f): withheld, "
        "≤ 0]: each source's power held over its frequency step.",
        make_field_config(unit="kWh", decimals=2, color="fixed", no_value="–"),
        {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
         "colorMode": "none", "graphMode": "none", "textMode": "value_and_name",
         "justifyMode": "auto", "orientation": "vertical"})
    frequency = timeseries(
        "Frequency",
        [target(_mean_per_interval("frequency", (("f_hz", "frequency"),)), "A", alias="$col"),
         target(f'SELECT min("f_min_hz") AS "lowest", max("f_max_hz") AS "highest" FROM '
                f'"frequency" WHERE {WHERE} GROUP BY time($__interval) fill(none)', "B",
                alias="$col")],
        "hertz", decimals=3, thresholds=fcr_band, threshold_style="dashed",
        description=f"The area's frequency while it moves (no records while it rests), with "
                    f"the lowest and highest within each interval. Dashed: {f0:g} ± "
                    f"{FCR_FULL_HZ * 1000:g} mHz, where FCR is fully activated.")
    rocof = timeseries(
        "RoCoF",
        [target(f'SELECT mean("rocof_hz_s") AS "RoCoF", max("rocof_max_hz_s") AS '
                f'"largest |RoCoF|" FROM "frequency" WHERE {WHERE} GROUP BY '
                "time($__interval) fill(none)", alias="$col")],
        "Hz/s", decimals=4, description="Rate of change of frequency, and its largest "
        "magnitude within each interval.")
    reserves = timeseries(
        "Reserves and the disturbance",
        [target(_mean_per_interval("frequency", (
            ("p_disturbance_mw", "disturbance"), ("p_fcr_mw", "FCR"), ("p_afrr_mw", "aFRR"),
            ("p_twin_area_mw", "the twin's units, scaled to the area"))), alias="$col")],
        "MW", description="Power into the area [MW]: the disturbance (a trip is negative), "
        "the TSOs' FCR and aFRR, and the twin's units' response times the copies of this "
        "grid in the area (frequency.response.scale).")
    response = timeseries(
        "The twin's response per source",
        [target(_mean_per_interval("frequency", RESPONSE_SOURCES), alias="$col")], "MW",
        description="What the twin's own batteries, EVs and converters gave [MW, unscaled, "
                    "+ = injection]: FCR of the batteries and of the V2G EVs, synthetic "
                    "inertia of wind turbines and batteries, and P(f) of PV and wind "
                    "(withheld above 50.2 Hz, ≤ 0).")

    cell = ' AND "element" =~ /^$cell$/'
    export = timeseries(
        "Cell export and schedule",
        [target(_mean_per_interval("dms_cell", (("export_mw", "export"),
                                                ("schedule_mw", "schedule")), cell, True),
                alias="$tag_element $col")], "MW", w=24,
        description="Each cell's export over its tie branches (+ = out of the cell) as the "
                    "DMS saw it each cycle, and its schedule.")
    deviation = _cell_deviation_panel(ctx, cell)
    inertia = timeseries(
        "Inertia per cell",
        [target(_mean_per_interval("dms_cell", (
            ("rotating_mws", "rotating"), ("synthetic_mws", "synthetic"),
            ("deliverable_mws", "deliverable"), ("receivable_mws", "receivable")), cell, True),
            alias="$tag_element $col")], "MWs",
        description="Kinetic energy at nominal speed [MWs] per cell: of its synchronous "
                    "machines (rotating) and of the converters emulating inertia as far as "
                    "their headroom pays for it (synthetic); what it could deliver to and "
                    "receive from its neighbours over its ties' spare capacity.")
    storage = timeseries(
        "Storage per cell",
        [target(_mean_per_interval("dms_cell", (
            ("storage_up_mw", "up"), ("storage_down_mw", "down"),
            ("neighbour_storage_up_mw", "neighbours' up")), cell, True),
            alias="$tag_element $col")], "MW",
        description="What the cell's batteries could give for 15 minutes: more injection "
                    "(up), less injection (down), and what its neighbours' could give (up).")
    storage_table = table(
        "Storage monitoring (last in the range)",
        [target('SELECT last("soc") AS "soc", last("e_mwh") AS "e_mwh", last("p_mw") AS "p_mw", '
                'last("up_mw") AS "up_mw", last("down_mw") AS "down_mw", last("price_eur_mwh") '
                f'AS "price_eur_mwh" FROM "dms_storage" WHERE {WHERE} GROUP BY "element", '
                '"cell"', fmt="table")], w=12,
        description="Each battery as the DMS's storage monitoring last saw it: its cell "
                    "(empty: in none), state of charge and energy counted from metered power, "
                    "power (+ = charging), what it can hold for 15 minutes up (more "
                    "injection) and down, and its energy price.",
        overrides=[field_override("element", displayName="battery"),
                   field_override("soc", displayName="SOC", unit="percentunit", decimals=1),
                   field_override("e_mwh", displayName="energy", unit="MWh", decimals=3),
                   field_override("p_mw", displayName="power", unit="MW", decimals=3),
                   field_override("up_mw", displayName="up", unit="MW", decimals=3),
                   field_override("down_mw", displayName="down", unit="MW", decimals=3),
                   field_override("price_eur_mwh", displayName="price", unit="€/MWh",
                                  decimals=1)])
    band = {"color": {"mode": "fixed", "fixedColor": "#9a9a9a"}}
    interface = timeseries(
        "TSO–DSO interface: Q, the TSO's request and the capability",
        [target(_mean_per_interval("dms_interface", (
            ("q_mvar", "Q"), ("q_request_mvar", "TSO request"), ("q_min_mvar", "Q min"),
            ("q_max_mvar", "Q max"))), alias="$col")], "Mvar",
        description="Reactive power at the interface transformer (HV side, + = drawn from "
                    "the TSO), the TSO's request while there is one, and the range the DSO "
                    "can realise there (shaded).",
        overrides=[field_override("Q max", **{"custom.fillBelowTo": "Q min",
                                              "custom.fillOpacity": 15}, **band),
                   field_override("Q min", **band),
                   field_override("TSO request", **{"custom.lineInterpolation": "stepAfter",
                                                    "custom.lineStyle": {"fill": "dash",
                                                                         "dash": [10, 10]},
                                                    "custom.lineWidth": 2})])
    tie = table(
        "Tie-line deviation per cell",
        [target('SELECT mean("d") AS "mean |deviation| [MW]", max("d") AS "max |deviation| '
                '[MW]", count("d") AS "cycles" FROM (SELECT abs("deviation_mw") AS "d" FROM '
                f'"dms_cell" WHERE {WHERE}{cell} GROUP BY "element") WHERE $timeFilter GROUP '
                'BY "element"', fmt="table")], w=8,
        description="Mean and largest |export − schedule| over the DMS's cycles (the KPI "
                    "tie_line_deviation_mw is the mean over the whole run).")
    functions = "|".join(SUPERVISORY_FUNCTIONS)
    log = table(
        "Supervisory decisions",
        [target('SELECT "function", "action", "element", "value", "reason" FROM '
                f'"dms_decision" WHERE {WHERE} AND "function" =~ /^({functions})$/',
                fmt="table")], w=16, sort_by="Time",
        overrides=[field_override("reason", **{"custom.width": 700})],
        description="The DMS's decisions of its cells' tie-line control, central "
                    "curtailment, the TSO–DSO interface and V2G.")
    return dashboard(
        FREQUENCY_CELLS_UID, "dms-twin: Frequency and cells",
        "The area's frequency and the twin's response; the DMS's cells, their inertia and "
        "storage, and the TSO–DSO interface.",
        stack_rows([[*extremes, energy], [frequency, rocof], [reserves, response], [export],
                    [deviation], [inertia, storage], [storage_table, interface],
                    [tie, log]]),
        [run_variable(), element_variable("cell", "Cell", "dms_cell")], ctx.time_range)


BUILDERS = {
    "overview.json": overview,
    "voltages.json": voltages,
    "loading.json": loading,
    "der.json": der,
    "communications.json": communications,
    "decisions.json": decisions,
    "reliability.json": reliability,
    "frequency_cells.json": frequency_cells,
}


def build_all(ctx: Context) -> dict[str, dict[str, Any]]:
    """File name → dashboard JSON model."""
    return {name: build(ctx) for name, build in BUILDERS.items()}


def render(model: Mapping[str, Any]) -> str:
    """The file text of a dashboard (stable: same model, same bytes)."""
    return json.dumps(model, indent=2, ensure_ascii=False) + "\n"
