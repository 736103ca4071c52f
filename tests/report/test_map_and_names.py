"""The report's network map (units of its axes, out-of-service lines) and one naming of
command and decision targets, from small run directories written here."""

from __future__ import annotations

import json
from pathlib import Path

import pandapower as pp
import pandapower.networks as pn

from twin.grid.geo import geo_points, is_lonlat, looks_lonlat
from twin.grid.names import element_names
from twin.recording.files import FileStore
from twin.recording.schema import Point
from twin.report import load_run, network_figure
from twin.report.event_sections import grid_element_ref

T0 = 1_768_381_200_000_000_000  # 2026-01-14 09:00 UTC


def _run_dir(tmp_path: Path, net: pp.pandapowerNet, off_lines: set[int] = frozenset()) -> Path:
    run = tmp_path / "run"
    run.mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({
        "run_id": "r", "scenario": "s", "seed": 1, "start": "2026-01-14T09:00:00+00:00",
        "simulated_s": 60.0, "recording": {"kind": "files"}}))
    (run / "kpis.json").write_text("{}")
    store = FileStore(run / "store")
    points = geo_points(net, "r", T0)
    for idx, name in zip(net.line.index, element_names(net, "line")):
        on = idx not in off_lines
        for k in range(2):
            points.append(Point("line", T0 + k * 60_000_000_000, {"run": "r", "element": name},
                                {"loading_percent": 30.0 if on else 0.0, "in_service": on}))
    store.write(points)
    store.close()
    return run


def test_looks_lonlat_tells_degrees_from_km():
    assert looks_lonlat([7.74, 7.94], [48.33, 48.47])  # mv_oberrhein
    assert not looks_lonlat([1.0, 10.0], [3.0, 16.0])  # CIGRE MV sketch in km
    assert not looks_lonlat([0.0, 1.2], [0.0, 0.8])  # a small km sketch at the origin
    assert not looks_lonlat([500.0, 501.0], [5300.0, 5301.0])  # out of range: km
    assert not looks_lonlat([], [])
    assert is_lonlat(pn.mv_oberrhein()) and not is_lonlat(pn.create_cigre_network_mv())
    assert not is_lonlat(pn.case33bw())


def test_map_axes_say_degrees_on_a_lon_lat_grid_and_km_otherwise(tmp_path):
    fig = network_figure(load_run(_run_dir(tmp_path / "a", pn.mv_oberrhein())))
    assert fig.layout.xaxis.title.text == "longitude [°]"
    assert fig.layout.yaxis.title.text == "latitude [°]"
    assert 1.4 < fig.layout.yaxis.scaleratio < 1.6  # 1 / cos(48.4°): the map keeps its shape
    fig = network_figure(load_run(_run_dir(tmp_path / "b", pn.create_cigre_network_mv())))
    assert (fig.layout.xaxis.title.text, fig.layout.yaxis.title.text) == ("x [km]", "y [km]")
    assert fig.layout.yaxis.scaleratio == 1.0


def test_out_of_service_lines_are_drawn_dashed_and_without_loading(tmp_path):
    net = pn.case33bw()
    # case33bw has no geodata of its own in every version: place the buses on a line
    if net.bus.get("geo") is None or net.bus["geo"].isna().any():
        net.bus["geo"] = [json.dumps({"type": "Point", "coordinates": [float(i), 0.0]})
                          for i in range(len(net.bus))]
    ties = set(net.line.index[~net.line.in_service])
    assert len(ties) == 5
    fig = network_figure(load_run(_run_dir(tmp_path, net, ties)))
    traces = {t.name: t for t in fig.data if t.name}
    off = traces["out of service"]
    assert off.line.dash == "dash"
    tie_names = {element_names(net, "line")[list(net.line.index).index(i)] for i in ties}
    assert {str(t).split(":")[0] for t in off.hovertext if t} == tie_names
    assert traces["routes"].line.dash is None
    dots = traces["lines, transformers"]
    assert not {str(t).split(":")[0] for t in dots.hovertext} & tie_names
    assert len(dots.x) == 9 * (len(net.line) - len(ties))


def test_command_targets_are_named_as_the_grid_names_them():
    scenario = {"pv": {"plants": [{"name": "Roof A", "sgen": "PV 3"},
                                  {"name": "PV 8", "sgen": "PV 8"}]},
                "batteries": {"units": [{"name": "Battery 1"}]}}
    assert grid_element_ref("pv:PV 3", scenario) == "sgen:PV 3"
    assert grid_element_ref("pv:PV 8", scenario) == "sgen:PV 8"
    assert grid_element_ref("pv:Roof A", scenario) == "sgen:PV 3 (pv:Roof A)"
    assert grid_element_ref("wind:WKA 7", {}) == "sgen:WKA 7"
    assert grid_element_ref("battery:Battery 1", scenario) == "storage:Battery 1"
    assert grid_element_ref("ev:Bus 10", {}) == "load:EV Bus 10"
    assert grid_element_ref("switch:S1", scenario) == "switch:S1"
    assert grid_element_ref(None, scenario) is None
