"""Element positions recorded for the network map (twin/grid/geo.py)."""

from __future__ import annotations

import json
import math

import pandapower as pp
import pandapower.networks as pn
import pytest

from twin.grid.geo import (
    EARTH_RADIUS_KM,
    GEO_MEASUREMENT,
    ROLE_FEED,
    ROLE_FEEDER_HEAD,
    ROLE_SUBSTATION,
    bus_xy_km,
    dots_along,
    geo_points,
    map_labels,
    web_mercator_km,
    web_mercator_lonlat,
)


def _on_segment(p, a, b, tol=1e-9) -> bool:
    cross = (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0])
    inside = min(a[0], b[0]) - tol <= p[0] <= max(a[0], b[0]) + tol and \
        min(a[1], b[1]) - tol <= p[1] <= max(a[1], b[1]) + tol
    return abs(cross) < tol and inside


def test_dots_are_evenly_spaced_by_length_along_a_bent_route_ends_included():
    route = [(0.0, 0.0), (3.0, 0.0), (3.0, 1.0)]  # 4 km: 3 east, 1 north
    dots = dots_along(route, 5)  # every km
    assert dots == [pytest.approx(p) for p in
                    [(0.0, 0.0), (1.0, 0.0), (2.0, 0.0), (3.0, 0.0), (3.0, 1.0)]]
    dots = dots_along(route, 9)  # every 0.5 km
    assert dots[7] == pytest.approx((3.0, 0.5)) and dots[-1] == (3.0, 1.0)
    gaps = [math.dist(p, q) for p, q in zip(dots, dots[1:])]
    assert gaps[:6] == pytest.approx([0.5] * 6)
    assert dots_along(route, 2) == [(0.0, 0.0), (3.0, 1.0)]
    # both ends at one place (a transformer drawn at its substation): one dot there
    assert dots_along([(2.0, 2.0), (2.0, 2.0)], 7) == [(2.0, 2.0)]


def test_cigre_mv_points_put_every_element_at_its_geodata():
    net = pn.create_cigre_network_mv(with_der=False)
    pts = geo_points(net, "r1", 123, dots=5)
    assert {p.measurement for p in pts} == {GEO_MEASUREMENT}
    assert all(p.time_ns == 123 and p.tags["run"] == "r1" for p in pts)
    buses = {p.tags["element"]: p for p in pts if p.tags["kind"] == "bus"}
    assert len(buses) == 15
    assert buses["Bus 0"].fields == {"x_km": 7.0, "y_km": 16.0}  # pandapower's CIGRE
    # km: no degrees recorded; the substations' LV buses and the feeder heads are named
    assert buses["Bus 1"].fields == {"x_km": 4.0, "y_km": 15.0, "role": ROLE_SUBSTATION,
                                     "label": "Trafo 0-1"}
    assert {n: p.fields["role"] for n, p in buses.items() if "role" in p.fields} == {
        "Bus 1": ROLE_SUBSTATION, "Bus 12": ROLE_SUBSTATION, "Bus 2": ROLE_FEEDER_HEAD,
        "Bus 13": ROLE_FEEDER_HEAD}
    xy = {name: (p.fields["x_km"], p.fields["y_km"]) for name, p in buses.items()}
    for table in ("line", "trafo"):
        a_col, b_col = ("from_bus", "to_bus") if table == "line" else ("hv_bus", "lv_bus")
        for idx, row in net[table].iterrows():
            dots = [p for p in pts if p.tags["kind"] == table and p.tags["element"] == row["name"]]
            assert [p.tags["dot"] for p in dots] == ["0", "1", "2", "3", "4"], row["name"]
            a, b = xy[net.bus.at[row[a_col], "name"]], xy[net.bus.at[row[b_col], "name"]]
            for p in dots:
                assert set(p.fields) == {"x_km", "y_km"}
                assert _on_segment((p.fields["x_km"], p.fields["y_km"]), a, b), (row["name"], p)
            # from the first bus to the second, in order
            d = [math.dist(a, (p.fields["x_km"], p.fields["y_km"])) for p in dots]
            assert d == sorted(d) and d[0] == 0.0 and d[-1] == pytest.approx(math.dist(a, b))
    assert len(pts) == 15 + 5 * (len(net.line) + len(net.trafo))


def test_a_line_with_its_own_route_follows_it_and_elements_without_positions_are_left_out():
    net = pp.create_empty_network()
    b = [pp.create_bus(net, 20.0, name=f"B{i}", geodata=(float(i), 0.0)) for i in range(2)]
    b.append(pp.create_bus(net, 20.0, name="nowhere"))
    pp.create_line(net, b[0], b[1], 1.0, "NA2XS2Y 1x95 RM/25 12/20 kV", name="bent",
                   geodata=[(0.0, 0.0), (0.0, 1.0), (1.0, 1.0), (1.0, 0.0)])
    pp.create_line(net, b[0], b[2], 1.0, "NA2XS2Y 1x95 RM/25 12/20 kV", name="to nowhere")
    assert json.loads(net.line.at[0, "geo"])["type"] == "LineString"
    assert bus_xy_km(net, b[2]) is None
    pts = geo_points(net, "r", 0, dots=4)
    assert sorted(p.tags["element"] for p in pts) == ["B0", "B1"] + ["bent"] * 4
    bent = [(p.fields["x_km"], p.fields["y_km"]) for p in pts if p.tags["element"] == "bent"]
    # 3 km up, across and down: the dots at 1 and 2 km are the route's corners
    assert bent == [pytest.approx(p) for p in [(0.0, 0.0), (0.0, 1.0), (1.0, 1.0), (1.0, 0.0)]]


def test_web_mercator_is_epsg_3857_in_km():
    # EPSG:3857 of (10° E, 50° N): 1,113,194.908 m east, 6,446,275.841 m north; the square
    # map's edge (180°, 85.0511°) at pi * 6378.137 km = 20,037.508 km
    x, y = web_mercator_km([10.0, 180.0, 0.0], [50.0, 85.0511287798066, 0.0])
    assert x == pytest.approx([1113.194908, 20037.508343, 0.0], abs=1e-6)
    assert y == pytest.approx([6446.275841, 20037.508343, 0.0], abs=1e-6)
    assert EARTH_RADIUS_KM * math.pi == pytest.approx(20037.508343, abs=1e-6)
    lon, lat = web_mercator_lonlat(x, y)
    assert lon == pytest.approx([10.0, 180.0, 0.0]) and lat == pytest.approx(
        [50.0, 85.0511287798066, 0.0])
    # conformal: a small step east and one north of the same ground length are as long on
    # the map, 1/cos(latitude) times the ground length
    d = 1e-5  # degrees of latitude, ~1.1 m
    x0, y0 = web_mercator_km(7.9, 48.45)
    x1, _ = web_mercator_km(7.9 + d / math.cos(math.radians(48.45)), 48.45)
    _, y1 = web_mercator_km(7.9, 48.45 + d)
    assert (x1 - x0) == pytest.approx(y1 - y0, rel=1e-4)
    assert (y1 - y0) == pytest.approx(math.radians(d) * EARTH_RADIUS_KM
                                      / math.cos(math.radians(48.45)), rel=1e-4)


def test_lonlat_grids_record_degrees_and_name_their_substations_and_feeder_heads():
    net = pn.mv_oberrhein()
    pts = geo_points(net, "r", 0, dots=3)
    # every point also under the names of its units
    for p in pts:
        assert (p.fields["lon_deg"], p.fields["lat_deg"]) == (p.fields["x_km"], p.fields["y_km"])
    assert 7.7 < min(p.fields["lon_deg"] for p in pts) < max(p.fields["lon_deg"] for p in pts) < 8
    # mv_oberrhein: two HV/MV substations (their LV buses Bus 19 and Bus 178), each the start
    # of two feeders; the external grids feed the transformers' HV sides (no label of their own)
    labels = {net.bus.at[b, "name"]: rl for b, rl in map_labels(net).items()}
    assert {n: rl for n, rl in labels.items() if rl[0] == ROLE_SUBSTATION} == {
        "Bus 19": (ROLE_SUBSTATION, "HV/MV Transformer 0"),
        "Bus 178": (ROLE_SUBSTATION, "HV/MV Transformer 1")}
    lv = set(net.trafo["lv_bus"])
    heads = {net.bus.at[b if a in lv else a, "name"]
             for a, b in zip(net.line["from_bus"], net.line["to_bus"]) if (a in lv) != (b in lv)}
    assert heads == {"Bus 76", "Bus 50", "Bus 56", "Bus 6"}
    assert {n for n, rl in labels.items() if rl[0] == ROLE_FEEDER_HEAD} == heads
    assert {n: rl[1] for n, rl in labels.items() if rl[0] == ROLE_FEEDER_HEAD} == {
        n: n for n in heads}
    assert len(labels) == 6
    recorded = {p.tags["element"]: (p.fields["role"], p.fields["label"]) for p in pts
                if "role" in p.fields}
    assert recorded == labels
    assert all("role" not in p.fields for p in pts if p.tags["kind"] != "bus")


def test_labels_of_a_substation_with_two_transformers_and_of_a_grid_without_one():
    import simbench

    # SimBench: both HV/MV transformers of the one substation at one place: one label, on
    # the first one's LV busbar; eight feeders leave the two busbars
    net = simbench.get_simbench_net("1-MV-rural--0-sw")
    labels = {net.bus.at[b, "name"]: rl for b, rl in map_labels(net).items()}
    assert labels["MV1.101 busbar1.1"] == (ROLE_SUBSTATION,
                                           "HV1-MV1.101-Trafo1 / HV1-MV1.101-Trafo2")
    assert "MV1.101 busbar1.2" not in labels
    assert sum(rl[0] == ROLE_FEEDER_HEAD for rl in labels.values()) == 8
    assert labels["MV1.101 Bus 4"] == (ROLE_FEEDER_HEAD, "MV1.101 Bus 4")
    # case33bw has no transformer: its external grid is the feed, bus 1 the feeder head
    net = pn.case33bw()
    assert map_labels(net) == {0: (ROLE_FEED, "ext_grid_0"), 1: (ROLE_FEEDER_HEAD, "bus_1")}
