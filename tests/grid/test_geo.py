"""Element positions recorded for the network map (twin/grid/geo.py)."""

from __future__ import annotations

import json
import math

import pandapower as pp
import pandapower.networks as pn
import pytest

from twin.grid.geo import GEO_MEASUREMENT, bus_xy_km, dots_along, geo_points


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
