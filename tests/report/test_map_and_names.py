"""The report's network map (km drawn as they are, longitude/latitude on Web Mercator with
degrees, labels and a scale bar; out-of-service lines) and one naming of command and decision
targets, from small run directories written here."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandapower as pp
import pandapower.networks as pn
import pytest

from tests.report import test_page
from tests.report.test_page import _DRAWN, _DevTools, check_plots_drawn, render
from twin.grid.geo import geo_points, is_lonlat, looks_lonlat, map_labels
from twin.grid.names import element_names
from twin.models.crews import haversine_km
from twin.recording.files import FileStore
from twin.recording.schema import Point
from twin.report import load_run, network_figure, write_report
from twin.report.event_sections import grid_element_ref
from twin.report.grid_sections import MAX_MAP_LABELS, degree_ticks, scale_bar

T0 = 1_768_381_200_000_000_000  # 2026-01-14 09:00 UTC

#: The fixture of the page's tests: Debian's chromium, or a skip saying it is missing.
chromium = test_page.chromium


def _run_dir(tmp_path: Path, net: pp.pandapowerNet, off_lines: set[int] = frozenset(),
             vm_pu: dict[str, float] | None = None) -> Path:
    """A run directory with the net's geometry, its lines' loading and (``vm_pu``: bus name
    → voltage) its buses' voltages, two samples a minute apart."""
    run = tmp_path / "run"
    run.mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({
        "run_id": "r", "scenario": "s", "seed": 1, "start": "2026-01-14T09:00:00+00:00",
        "simulated_s": 60.0, "recording": {"kind": "files"}}))
    (run / "kpis.json").write_text("{}")
    store = FileStore(run / "store")
    points = geo_points(net, "r", T0)
    for name, vm in (vm_pu or {}).items():
        for k in range(2):
            points.append(Point("bus", T0 + k * 60_000_000_000, {"run": "r", "element": name},
                                {"vm_pu": vm}))
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


def _oberrhein_voltages(net: pp.pandapowerNet) -> dict[str, float]:
    """1.0 p.u. everywhere but the southernmost bus (0.93, the lowest) and the northernmost
    (1.06, the highest), both far from the substations."""
    names = element_names(net, "bus")
    lat = [json.loads(g)["coordinates"][1] for g in net.bus["geo"]]
    vm = dict.fromkeys(names, 1.0)
    vm[names[lat.index(min(lat))]] = 0.93
    vm[names[lat.index(max(lat))]] = 1.06
    return vm


def test_map_axes_say_degrees_on_a_lon_lat_grid_and_km_otherwise(tmp_path):
    fig = network_figure(load_run(_run_dir(tmp_path / "a", pn.mv_oberrhein())))
    assert fig.layout.xaxis.title.text == "longitude [°]"
    assert fig.layout.yaxis.title.text == "latitude [°]"
    # Web Mercator is conformal: one scale both ways
    assert fig.layout.yaxis.scaleanchor == "x" and fig.layout.yaxis.scaleratio == 1.0
    assert fig.layout.meta == {"projection": "web_mercator"}
    fig = network_figure(load_run(_run_dir(tmp_path / "b", pn.create_cigre_network_mv())))
    assert (fig.layout.xaxis.title.text, fig.layout.yaxis.title.text) == ("x [km]", "y [km]")
    assert fig.layout.yaxis.scaleratio == 1.0


def test_a_lon_lat_grid_is_drawn_on_web_mercator_with_labels_and_a_scale_bar(tmp_path):
    net = pn.mv_oberrhein()
    vm = _oberrhein_voltages(net)
    fig = network_figure(load_run(_run_dir(tmp_path, net, vm_pu=vm)))
    traces = {t.name: t for t in fig.data if t.name}
    buses = traces["buses"]
    at = {text.split(":")[0]: (x, y) for text, x, y in zip(buses.hovertext, buses.x, buses.y)}
    # two buses by hand, R = 6378.137 km: x = R·lon, y = R·ln tan(45° + lat/2) (radians)
    # Bus 19 (7.913961° E, 48.456938° N), substation of HV/MV Transformer 0
    assert at["Bus 19"] == pytest.approx((880.978067, 6183.212542), abs=1e-5)
    # Bus 178 (7.761533° E, 48.439875° N), substation of HV/MV Transformer 1
    assert at["Bus 178"] == pytest.approx((864.009945, 6180.348835), abs=1e-5)
    # so the map is at one scale both ways: 1/cos(latitude) map km per ground km, and the
    # distance on the map times cos(latitude) is the distance on the ground (great circle)
    (x19, y19), (x178, y178) = at["Bus 19"], at["Bus 178"]
    ground = haversine_km((7.913960629334794, 48.4569382040042),
                          (7.7615333943715035, 48.439874883455424))
    assert ground == pytest.approx(11.40, abs=0.01)
    mid = math.radians((48.4569382040042 + 48.439874883455424) / 2)
    assert math.hypot(x19 - x178, y19 - y178) * math.cos(mid) == pytest.approx(ground, rel=2e-3)
    # every route and dot on the same projection: a line's first dot is its from-bus
    dots = traces["lines, transformers"]
    assert len(dots.x) == 9 * len(net.line)
    # the axes in degrees: ticks at round degrees where Web Mercator puts them
    ticks = dict(zip(fig.layout.xaxis.ticktext, fig.layout.xaxis.tickvals))
    assert ticks["7.90°E"] == pytest.approx(6378.137 * math.radians(7.90))
    lat_ticks = dict(zip(fig.layout.yaxis.ticktext, fig.layout.yaxis.tickvals))
    assert lat_ticks["48.45°N"] == pytest.approx(
        6378.137 * math.log(math.tan(math.pi / 4 + math.radians(48.45) / 2)))
    assert fig.layout.xaxis.showgrid and fig.layout.yaxis.showgrid  # the graticule
    # labels: both substations (their transformers), the lowest and the highest voltage,
    # then the feeder heads that fit, each at its bus
    labels = traces["labels"]
    texts = list(labels.text)
    names = dict(zip(net.bus.index, element_names(net, "bus")))
    lowest = min(vm, key=vm.get)
    highest = max(vm, key=vm.get)
    assert texts[:4] == ["HV/MV Transformer 0", "HV/MV Transformer 1",
                         f"lowest 0.930 p.u. ({lowest})", f"highest 1.060 p.u. ({highest})"]
    heads = {names[b] for b, (role, _) in map_labels(net).items() if role == "feeder_head"}
    assert set(texts[4:]) <= heads and len(texts) <= MAX_MAP_LABELS
    where = dict(zip(texts, zip(labels.x, labels.y)))
    assert where["HV/MV Transformer 0"] == at["Bus 19"]
    assert where[f"lowest 0.930 p.u. ({lowest})"] == at[lowest]
    assert list(labels.marker.symbol[:4]) == ["square-open", "square-open", "circle-open",
                                              "circle-open"]
    # a scale bar below the grid: a round length on the ground, 1/cos(latitude) on the map
    bar = traces["scale bar"]
    length = bar.x[-1] - bar.x[0]
    (text,) = [t for t in bar.text if t]
    ground_km = float(text.removesuffix(" km"))
    lat_bar = 2 * math.degrees(math.atan(math.exp(bar.y[1] / 6378.137))) - 90
    assert length == pytest.approx(ground_km / math.cos(math.radians(lat_bar)))
    assert ground_km == 2.0  # the grid is ~14 km wide: the longest round length within 1/4
    assert max(bar.y) < min(buses.y)


def test_a_planar_map_is_drawn_as_before(tmp_path):
    net = pn.create_cigre_network_mv()
    fig = network_figure(load_run(_run_dir(tmp_path, net, vm_pu={"Bus 1": 1.01})))
    traces = {t.name: t for t in fig.data if t.name}
    assert set(traces) == {"routes", "buses", "lines, transformers"}  # no labels, no bar
    recorded = {p.tags["element"]: (p.fields["x_km"], p.fields["y_km"])
                for p in geo_points(net, "r", 0) if p.tags["kind"] == "bus"}
    buses = traces["buses"]
    assert {t.split(":")[0]: (x, y) for t, x, y in zip(buses.hovertext, buses.x, buses.y)} == (
        recorded)
    assert fig.layout.meta is None and fig.layout.xaxis.tickvals is None


def test_scale_bar_and_graticule_helpers():
    # at 60° N one ground km is 2 map km: a map 40 map km wide is 20 km on the ground
    y60 = 6378.137 * math.log(math.tan(math.pi / 4 + math.radians(60) / 2))
    bar = scale_bar(0.0, 40.0, y60, y60 + 1e-9)
    assert bar["ground_km"] == 5.0  # the longest round length within a quarter
    lat = 2 * math.degrees(math.atan(math.exp(bar["y"][1] / 6378.137))) - 90
    assert bar["map_km"] == pytest.approx(5.0 / math.cos(math.radians(lat)))
    assert bar["text"][2] == "5 km"
    assert scale_bar(0.0, 1.0, 0.0, 0.5)["text"][2] == "200 m"  # 1 km at the equator
    ticks = degree_ticks(7.74, 7.94)
    assert list(ticks["text"][:3]) == ["7.50", "7.55", "7.60"]  # every 0.05°, one span out
    assert ticks["deg"][1] - ticks["deg"][0] == pytest.approx(0.05)


def test_the_report_of_a_lon_lat_grid_renders_its_map_in_headless_chromium(chromium,
                                                                           tmp_path):
    net = pn.mv_oberrhein()
    report = write_report(_run_dir(tmp_path, net, vm_pu=_oberrhein_voltages(net)))
    page = report.read_text(encoding="utf-8")
    assert ">Network<" in page and "Web Mercator" in page
    drawn = render(chromium, report, tmp_path / "report.png")
    assert drawn["errors"] == []
    assert check_plots_drawn(drawn) == []
    # the labels and the scale bar are text Chromium drew on the map
    texts = _drawn_texts(chromium, report, tmp_path / "profile")
    for text in ("HV/MV Transformer 0", "HV/MV Transformer 1", "2 km", "7.90°E", "48.45°N"):
        assert text in texts, text


def _drawn_texts(chromium: str, page: Path, profile: Path) -> list[str]:
    """The text of every SVG text element plotly drew in ``page`` (labels, ticks)."""
    browser = _DevTools(chromium, profile, 1400, 1200)
    try:
        target = browser.call("Target.createTarget", {"url": "about:blank"})
        browser.session = browser.call("Target.attachToTarget", {
            "targetId": target["targetId"], "flatten": True})["sessionId"]
        browser.call("Page.enable")
        browser.call("Page.navigate", {"url": page.resolve().as_uri()})
        browser.evaluate("new Promise(r => document.readyState === 'complete' ? r(1) : "
                         "addEventListener('load', () => r(1)))")
        browser.evaluate(_DRAWN)
        return browser.evaluate("[...document.querySelectorAll('.plotly-graph-div svg text')]"
                                ".map(t => t.textContent)")
    finally:
        browser.close()


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
