"""Where the grid's elements are: positions from the net's geodata, as points.

The twin takes pandapower's geodata (GeoJSON) as km on a plane, unless they are
longitude/latitude in degrees (:func:`looks_lonlat`, e.g. mv_oberrhein, SimBench): then the
crews' distances are great-circle ones and the maps draw the network on Web Mercator
(:func:`web_mercator_km`, the projection of web map tiles and of Grafana's Geomap). The crews
drive over these positions and the maps draw the network on them. :func:`geo_points` is what
the runner records once per run, at the scenario start, as measurement ``grid_geo`` (fields
``x_km``, ``y_km``: the net's own coordinates, so degrees on a lon/lat grid; there also
``lon_deg``, ``lat_deg``), so Grafana's network map and the report's draw any grid without
knowing it in advance:

* a bus: tags ``kind=bus``, ``element``; the buses an operator finds the grid by
  (:func:`map_labels`: substations, feeds, feeder heads) also have the fields ``role`` and
  ``label`` (the text a map writes beside them);
* a line: ``dots`` points along its route from its from-bus to its to-bus (its own
  LineString geodata where it has one, else straight from bus to bus), tags ``kind=line``,
  ``element``, ``dot`` (0, 1, …);
* a two-winding transformer: likewise from its HV to its LV bus, ``kind=trafo``.

Joined on ``element`` with each element's voltage or loading, a map needs no other
knowledge of the grid. Elements without positions are left out.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandapower as pp

from twin.grid.names import element_names
from twin.recording.schema import GRID_GEO, Point, grid_geo_bus_point, grid_geo_dot_point

#: The measurement of the points made here (the dashboards' map queries it).
GEO_MEASUREMENT = GRID_GEO
#: Points along each line or transformer, both ends included (drawn under the bus markers,
#: they let a plot join the dots into the element's route).
DOTS = 9

XY = tuple[float, float]

#: Earth's radius [km] of Web Mercator (EPSG:3857: the WGS84 semi-major axis, on a sphere).
EARTH_RADIUS_KM = 6378.137

#: Roles of the buses :func:`map_labels` names (a bus has the first that applies).
ROLE_SUBSTATION = "substation"
ROLE_FEED = "feed"
ROLE_FEEDER_HEAD = "feeder_head"
ROLES = (ROLE_SUBSTATION, ROLE_FEED, ROLE_FEEDER_HEAD)

#: Largest extent [°] of a grid taken as longitude/latitude: a distribution grid spans well
#: under 2° (about 200 km); the planar km sketches of the benchmark grids span 5–20 units.
LONLAT_MAX_SPAN_DEG = 2.0
#: ...and its distance from (0°, 0°) must be this many times its extent: a small planar
#: sketch drawn around the origin is km, not a grid in the Gulf of Guinea.
LONLAT_MIN_OFFSET_SPANS = 5.0


def looks_lonlat(xs, ys) -> bool:
    """Whether positions (x, y) are longitude/latitude in degrees rather than km.

    pandapower's GeoJSON carries no coordinate system, and both kinds occur (CIGRE MV:
    km; mv_oberrhein, SimBench: WGS84). Taken as degrees when every x is in [-180, 180] and
    every y in [-90, 90], the extent is at most :data:`LONLAT_MAX_SPAN_DEG` and the grid lies
    away from (0, 0) by :data:`LONLAT_MIN_OFFSET_SPANS` extents."""
    pts = [(float(x), float(y)) for x, y in zip(xs, ys)
           if x is not None and y is not None and math.isfinite(float(x))
           and math.isfinite(float(y))]
    if not pts:
        return False
    lo_x, hi_x = min(p[0] for p in pts), max(p[0] for p in pts)
    lo_y, hi_y = min(p[1] for p in pts), max(p[1] for p in pts)
    if lo_x < -180 or hi_x > 180 or lo_y < -90 or hi_y > 90:
        return False
    span = max(hi_x - lo_x, hi_y - lo_y)
    if span > LONLAT_MAX_SPAN_DEG:
        return False
    centre = math.hypot((lo_x + hi_x) / 2, (lo_y + hi_y) / 2)
    return centre >= LONLAT_MIN_OFFSET_SPANS * max(span, 0.01)


def is_lonlat(net: pp.pandapowerNet) -> bool:
    """Whether the net's bus geodata are longitude/latitude (see :func:`looks_lonlat`)."""
    pts = [xy for xy in (bus_xy_km(net, int(b)) for b in net.bus.index) if xy is not None]
    return looks_lonlat([p[0] for p in pts], [p[1] for p in pts])


def web_mercator_km(lon_deg, lat_deg) -> tuple[np.ndarray, np.ndarray]:
    """Web Mercator (EPSG:3857) coordinates [km] of longitudes and latitudes [°].

    Parameters
    ----------
    lon_deg, lat_deg : array_like
        Longitude and latitude [°] (WGS84), |latitude| < 90°.

    Returns
    -------
    x_km, y_km : numpy.ndarray
        East and north [km] on the map, as float arrays of the inputs' shape.

    Notes
    -----
    With :math:`R` = :data:`EARTH_RADIUS_KM`, longitude :math:`\\lambda` and latitude
    :math:`\\varphi` in radians:

    .. math:: x = R \\lambda, \\qquad y = R \\ln \\tan(\\pi/4 + \\varphi/2)

    The projection is conformal (shapes and angles are kept: one km east is as long as one
    km north at any place), and its scale factor is :math:`1/\\cos\\varphi`: one km on the
    ground is :math:`1/\\cos\\varphi` km on the map (a scale bar must say so).

    References
    ----------
    .. [1] IOGP, "Geomatics Guidance Note 7-2: Coordinate conversions and transformations",
       method "Popular Visualisation Pseudo Mercator" (EPSG:1024).
    """
    lam = np.radians(np.asarray(lon_deg, dtype=float))
    phi = np.radians(np.asarray(lat_deg, dtype=float))
    return EARTH_RADIUS_KM * lam, EARTH_RADIUS_KM * np.log(np.tan(np.pi / 4 + phi / 2))


def web_mercator_lonlat(x_km, y_km) -> tuple[np.ndarray, np.ndarray]:
    """Longitude and latitude [°] of Web Mercator coordinates [km]: the inverse of
    :func:`web_mercator_km`, :math:`\\varphi = 2 \\arctan e^{y/R} - \\pi/2`."""
    x = np.asarray(x_km, dtype=float) / EARTH_RADIUS_KM
    y = np.asarray(y_km, dtype=float) / EARTH_RADIUS_KM
    return np.degrees(x), np.degrees(2 * np.arctan(np.exp(y)) - np.pi / 2)


def axis_titles(lonlat: bool) -> tuple[str, str]:
    """Axis titles for positions in the net's units."""
    return ("longitude [°]", "latitude [°]") if lonlat else ("x [km]", "y [km]")


def bus_xy_km(net: pp.pandapowerNet, bus: int) -> XY | None:
    """Bus position from the net's geodata (GeoJSON in pandapower 3): km, or (longitude,
    latitude) in degrees when :func:`is_lonlat`."""
    if "geo" not in net.bus.columns or not isinstance(net.bus.at[bus, "geo"], str):
        return None
    x, y = json.loads(net.bus.at[bus, "geo"])["coordinates"][:2]
    return (float(x), float(y))


def _own_route(net: pp.pandapowerNet, line: int) -> list[XY] | None:
    geo = net.line.at[line, "geo"] if "geo" in net.line.columns else None
    if not isinstance(geo, str):
        return None
    coords = json.loads(geo).get("coordinates") or []
    route = [(float(c[0]), float(c[1])) for c in coords if len(c) >= 2]
    return route if len(route) >= 2 else None


def branch_route_km(net: pp.pandapowerNet, table: str, idx: int) -> list[XY] | None:
    """The route of a line (its own geodata, else bus to bus) or trafo (HV to LV bus)."""
    if table == "line":
        route = _own_route(net, idx)
        if route is not None:
            return route
        ends = ("from_bus", "to_bus")
    else:
        ends = ("hv_bus", "lv_bus")
    a, b = (bus_xy_km(net, int(net[table].at[idx, end])) for end in ends)
    if a is None or b is None:
        return None
    return [a, b]


def dots_along(route: list[XY], n: int) -> list[XY]:
    """``n`` ≥ 2 points evenly spaced along ``route`` by length, from its first point to its
    last; one point when the route has no length."""
    seg = [math.dist(p, q) for p, q in zip(route, route[1:])]
    total = sum(seg)
    if total == 0.0:  # both ends at one place (e.g. a trafo's HV and LV bus)
        return [route[0]]
    out = [route[0]]
    for k in range(1, n - 1):
        s = total * k / (n - 1)
        for (p, q), length in zip(zip(route, route[1:]), seg):
            if s <= length and length > 0.0:
                f = s / length
                out.append((p[0] + f * (q[0] - p[0]), p[1] + f * (q[1] - p[1])))
                break
            s -= length
        else:  # rounding at the far end
            out.append(route[-1])
    out.append(route[-1])
    return out


def map_labels(net: pp.pandapowerNet) -> dict[int, tuple[str, str]]:
    """The buses an operator finds the grid by on a map: bus index → (role, label).

    * ``substation`` — the LV bus of each primary transformer (those whose HV side is at the
      highest voltage any transformer has: HV/MV, or MV/LV in an LV grid), labelled with the
      transformer's name; transformers whose LV buses are at one place (two in one substation)
      share one label there, their names joined by " / ";
    * ``feed`` — the bus of an external grid that is not the HV side of a primary
      transformer (a grid fed without one), labelled with the external grid's name;
    * ``feeder_head`` — the first bus of each feeder: the far end of each line in service
      that leaves the substations' busbars (the primary LV buses, or the feeds when there is
      no transformer, and the buses joined to them by closed bus-bus switches), labelled with
      its own name.

    Names are the twin's element names (:func:`twin.grid.names.element_names`). A bus has at
    most one role, the first in :data:`ROLES` that applies."""
    bus_names = dict(zip(net.bus.index, element_names(net, "bus")))
    labels: dict[int, tuple[str, str]] = {}
    primary_hv: set[int] = set()
    busbars: set[int] = set()
    if len(net.trafo):
        hv_kv = net.bus["vn_kv"].reindex(net.trafo["hv_bus"]).to_numpy(dtype=float)
        primary = np.isclose(hv_kv, np.nanmax(hv_kv)) if np.isfinite(hv_kv).any() else (
            np.ones(len(hv_kv), dtype=bool))
        at_place: dict[object, list[tuple[int, str]]] = {}
        for is_primary, hv, lv, name in zip(primary, net.trafo["hv_bus"], net.trafo["lv_bus"],
                                            element_names(net, "trafo")):
            if not is_primary:
                continue
            primary_hv.add(int(hv))
            busbars.add(int(lv))
            xy = bus_xy_km(net, int(lv))
            place = (round(xy[0], 9), round(xy[1], 9)) if xy is not None else int(lv)
            at_place.setdefault(place, []).append((int(lv), name))
        for trafos in at_place.values():
            labels[trafos[0][0]] = (ROLE_SUBSTATION, " / ".join(n for _, n in trafos))
    for bus, name in zip(net.ext_grid["bus"], element_names(net, "ext_grid")):
        if int(bus) in primary_hv:
            continue
        busbars.add(int(bus))
        labels.setdefault(int(bus), (ROLE_FEED, name))
    if "switch" in net and len(net.switch):  # busbar sections joined by bus couplers
        sw = net.switch
        couplers = sw[(sw["et"] == "b") & sw["closed"].astype(bool)]
        pairs = [(int(a), int(b)) for a, b in zip(couplers["bus"], couplers["element"])]
        grown = True
        while grown:
            grown = False
            for a, b in pairs:
                if (a in busbars) != (b in busbars):
                    busbars |= {a, b}
                    grown = True
    lines = net.line[net.line["in_service"].astype(bool)]
    for a, b in zip(lines["from_bus"], lines["to_bus"]):
        a, b = int(a), int(b)
        if (a in busbars) == (b in busbars):
            continue
        far = b if a in busbars else a
        labels.setdefault(far, (ROLE_FEEDER_HEAD, bus_names[far]))
    return labels


def geo_points(net: pp.pandapowerNet, run_id: str, time_ns: int, dots: int = DOTS
               ) -> list[Point]:
    """The ``grid_geo`` points of ``net`` (see the module docstring)."""
    lonlat = is_lonlat(net)
    labels = map_labels(net)
    out = []
    for idx, name in zip(net.bus.index, element_names(net, "bus")):
        xy = bus_xy_km(net, int(idx))
        if xy is not None:
            point = grid_geo_bus_point(run_id, time_ns, name, xy[0], xy[1])
            if int(idx) in labels:
                role, label = labels[int(idx)]
                point.fields.update(role=role, label=label)
            out.append(point)
    for table in ("line", "trafo"):
        for idx, name in zip(net[table].index, element_names(net, table)):
            route = branch_route_km(net, table, int(idx))
            if route is None:
                continue
            for k, (x, y) in enumerate(dots_along(route, dots)):
                out.append(grid_geo_dot_point(run_id, time_ns, name, table, k, x, y))
    if lonlat:  # the same positions under their own names, for maps that want degrees
        for point in out:
            point.fields.update(lon_deg=point.fields["x_km"], lat_deg=point.fields["y_km"])
    return out
