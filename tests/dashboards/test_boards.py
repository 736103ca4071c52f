"""Grafana dashboards, provisioning and docker compose (twin/dashboards/,
dashboards/, docker/).

Without a Grafana server here, the dashboards are checked as data and every query they hold
(panels, template variables, annotations) is run against the real InfluxDB 1.x after three
short runs (two on CIGRE MV, km on a plane; one on SimBench 1-MV-rural, longitude/latitude:
the Overview's Geomap), with the template variables substituted the way Grafana does.
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from urllib.parse import urlparse

import pandapower.networks as pn
import pandas as pd
import pytest
import requests
import yaml

from twin.dashboards import blocks
from twin.dashboards import boards as dash
from twin.dashboards.__main__ import DEFAULT_SCENARIO, main
from twin.evaluation.kpis import kpi_point
from twin.grid.geo import DOTS, GEO_MEASUREMENT, geo_points, map_labels

ROOT = Path(__file__).resolve().parents[2]
DASH_DIR = ROOT / "dashboards"
COMPOSE = ROOT / "docker" / "docker-compose.yml"
DATASOURCES = DASH_DIR / "provisioning" / "datasources" / "influxdb.yaml"
PROVIDERS = DASH_DIR / "provisioning" / "dashboards" / "dms-twin.yaml"
ENV_EXAMPLE = ROOT / ".env.example"
TWIN_LIVE = ROOT / "docker" / "twin-live.sh"

EXPECTED_UIDS = {  # stable: links and bookmarks use them
    "overview.json": "dms-twin-overview", "voltages.json": "dms-twin-voltages",
    "loading.json": "dms-twin-loading", "der.json": "dms-twin-der",
    "communications.json": "dms-twin-comms", "decisions.json": "dms-twin-decisions",
    "reliability.json": "dms-twin-reliability",
    "frequency_cells.json": "dms-twin-frequency-cells",
}


def _committed() -> dict[str, dict]:
    return {p.name: json.loads(p.read_text(encoding="utf-8"))
            for p in sorted(DASH_DIR.glob("*.json"))}


def _walk(node, key):
    """Every value under ``key`` anywhere in a JSON tree."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k == key:
                yield v
            yield from _walk(v, key)
    elif isinstance(node, list):
        for v in node:
            yield from _walk(v, key)


def _panel_queries(model: dict) -> list[tuple[str, str]]:
    """(panel title, query) of every InfluxQL panel target."""
    return [(p["title"], t["query"]) for p in model["panels"] for t in p.get("targets", [])]


def _panel(model: dict, title: str) -> dict:
    (p,) = [p for p in model["panels"] if p["title"] == title]
    return p


# --------------------------------------------------------------------------- as data


def test_committed_dashboards_are_what_the_module_generates():
    generated = dash.build_all(dash.Context.from_scenario(ROOT / DEFAULT_SCENARIO))
    assert sorted(generated) == sorted(p.name for p in DASH_DIR.glob("*.json"))
    for name, model in generated.items():
        assert (DASH_DIR / name).read_text(encoding="utf-8") == dash.render(model), (
            f"{name} is stale: run python -m twin.dashboards")


def test_the_command_writes_and_checks_the_files(tmp_path, capsys):
    scenario = str(ROOT / DEFAULT_SCENARIO)
    assert main(["--scenario", scenario, "--out", str(tmp_path), "--check"]) == 1
    assert "out of date" in capsys.readouterr().err
    assert main(["--scenario", scenario, "--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.glob("*.json")) == sorted(dash.FILES)
    for path in tmp_path.glob("*.json"):
        assert path.read_bytes() == (DASH_DIR / path.name).read_bytes()
    assert main(["--scenario", scenario, "--out", str(tmp_path), "--check"]) == 0


def test_uids_stable_unique_and_every_datasource_is_the_provisioned_one():
    models = _committed()
    assert {n: m["uid"] for n, m in models.items()} == EXPECTED_UIDS == dash.FILES
    assert len({m["uid"] for m in models.values()}) == len(models) == 8
    provisioned = yaml.safe_load(DATASOURCES.read_text())["datasources"]
    assert [d["uid"] for d in provisioned] == [blocks.DATASOURCE_UID]
    for name, model in models.items():
        refs = list(_walk(model, "datasource"))
        assert len(refs) > 5, name
        for ref in refs:
            # Grafana's own annotation source is the only other one allowed
            assert ref in ({"type": "influxdb", "uid": blocks.DATASOURCE_UID},
                           {"type": "grafana", "uid": "-- Grafana --"}), (name, ref)
        # every InfluxQL query is scoped to the chosen run and the time range
        for title, q in _panel_queries(model):
            assert '"run" =~ /^$run$/' in q, (name, title)
            # the run's geometry is recorded once, at its start: the one series without it
            assert "$timeFilter" in q or f'FROM "{GEO_MEASUREMENT}"' in q, (name, title)
        variables = {v["name"]: v for v in model["templating"]["list"]}
        assert variables["run"]["query"] == 'SHOW TAG VALUES WITH KEY = "run"'
        # a panel id is unique, panels do not overlap and fit in 24 columns
        ids = [p["id"] for p in model["panels"]]
        assert len(ids) == len(set(ids))
        cells = set()
        for p in model["panels"]:
            g = p["gridPos"]
            assert 0 <= g["x"] and g["x"] + g["w"] <= 24, (name, p["title"])
            here = {(x, y) for x in range(g["x"], g["x"] + g["w"])
                    for y in range(g["y"], g["y"] + g["h"])}
            assert not cells & here, (name, p["title"])
            cells |= here
        # DMS decisions annotate every time-series panel
        names = [a["name"] for a in model["annotations"]["list"] if a.get("enable")]
        assert "DMS decisions" in names, name


def test_overview_network_joins_the_recorded_geometry_with_last_values():
    net = _panel(_committed()["overview.json"], dash.NETWORK_TITLE)
    assert net["type"] == "xychart"
    # buses (A, B) and branches (C, D) are joined on element apart: two frames, in order
    assert [(t["id"], t["options"], t["filter"]) for t in net["transformations"]] == [
        ("joinByField", {"byField": "element", "mode": "outerTabular"},
         {"id": "byRefId", "options": f"/^[{refs}]$/"}) for refs in ("AB", "CD")]
    queries = {t["refId"]: t["query"] for t in net["targets"]}
    assert [t["resultFormat"] for t in net["targets"]] == ["table"] * 4
    assert f'FROM "{GEO_MEASUREMENT}"' in queries["A"] and "'bus'" in queries["A"]
    assert f'FROM "{GEO_MEASUREMENT}"' in queries["C"] and '"dot"' in queries["C"]
    assert 'FROM "bus"' in queries["B"] and 'FROM "line", "trafo"' in queries["D"]
    # the geometry queries read what twin.grid.geo records (CIGRE MV: km, no degrees; the
    # named buses' role and label are not drawn by an XY chart)
    recorded = {f for p in geo_points(pn.create_cigre_network_mv(), "r", 0) for f in p.fields}
    assert recorded == {"x_km", "y_km", "role", "label"}
    for ref in "AC":
        assert all(f'last("{f}")' in queries[ref] for f in ("x_km", "y_km"))
    series = {s["name"]["fixed"]: (s["frame"]["matcher"]["options"], s["x"]["matcher"]["options"],
                                   s["y"]["matcher"]["options"], s["color"]["matcher"]["options"])
              for s in net["options"]["series"]}
    assert series == {"buses": (0, "x_km", "y_bus_km", "vm_pu"),
                      "lines and transformers": (1, "x_km", "y_branch_km", "loading_percent")}
    # both y fields share one unit and label (one scale), only their point sizes differ
    y_props = [{p["id"]: p["value"] for p in o["properties"] if p["id"] != "custom.pointSize"}
               for o in net["fieldConfig"]["overrides"]
               if o["matcher"]["options"] in ("y_bus_km", "y_branch_km")]
    assert len(y_props) == 2 and y_props[0] == y_props[1]


GEO_SCENARIO_BASE = ROOT / "scenarios" / "simbench_urban_year.yaml"


def _lonlat_scenario(base: Path) -> Path:
    """SimBench 1-MV-rural (97 buses at longitude/latitude) replaying its own profiles for an
    hour of a June morning: the shipped SimBench scenario on the smaller grid."""
    data = yaml.safe_load(GEO_SCENARIO_BASE.read_text())
    data.update(name="simbench_mv_rural_hour", start="2016-06-21T10:00:00Z", duration="1h")
    data["grid"] = {"simbench": "1-MV-rural--0-sw"}
    return _write_yaml(base / "mv_rural.yaml", data)


def test_overview_maps_a_lonlat_grid_on_a_geomap_and_a_planar_one_on_an_xy_chart(tmp_path):
    """The Overview's network panel follows the scenario's grid, decided when the dashboards
    are generated: an XY chart for km (the committed files: CIGRE MV), a Geomap at the
    recorded lat_deg/lon_deg for longitude/latitude, everything else the same."""
    planar = dash.Context.from_scenario(ROOT / DEFAULT_SCENARIO)
    lonlat = dash.Context.from_scenario(_lonlat_scenario(tmp_path))
    assert (planar.lonlat, lonlat.lonlat) == (False, True)
    assert (lonlat.band, lonlat.step_s) == ((0.95, 1.05), 900.0)
    xy, geo = dash.overview(planar), dash.overview(lonlat)
    assert _panel(xy, dash.NETWORK_TITLE)["type"] == "xychart"
    assert _panel(_committed()["overview.json"], dash.NETWORK_TITLE)["type"] == "xychart"
    net = _panel(geo, dash.NETWORK_TITLE)
    assert net["type"] == "geomap"
    # the same place on the page, the same other panels
    assert net["gridPos"] == _panel(xy, dash.NETWORK_TITLE)["gridPos"]
    others = [(p["title"], p["type"], p["gridPos"]) for p in geo["panels"]
              if p["title"] != dash.NETWORK_TITLE]
    assert others == [(p["title"], p["type"], p["gridPos"]) for p in xy["panels"]
                      if p["title"] != dash.NETWORK_TITLE]
    queries = {t["refId"]: t["query"] for t in net["targets"]}
    assert list(queries) == ["A", "B", "C", "D"]
    assert [t["resultFormat"] for t in net["targets"]] == ["table"] * 4
    assert "'bus'" in queries["A"] and 'FROM "bus"' in queries["B"]
    assert '"kind" != \'bus\'' in queries["C"] and '"dot"' in queries["C"]
    assert 'last("label")' in queries["D"]
    # one join (buses with their voltages); each layer names the frame it draws
    assert net["transformations"] == [{
        "id": "joinByField", "options": {"byField": "element", "mode": "outerTabular"},
        "filter": {"id": "byRefId", "options": "/^[AB]$/"}}]
    layers = {layer["name"]: layer for layer in net["options"]["layers"]}
    assert list(layers) == ["lines and transformers", "buses", "labels"]
    assert layers["lines and transformers"]["filterData"] == {"id": "byRefId", "options": "C"}
    assert layers["labels"]["filterData"] == {"id": "byRefId", "options": "D"}
    assert layers["buses"]["filterData"] == {"id": "invertMatch", "options": {
        "id": "byRefId", "options": "/^[CD]$/"}}
    for layer in layers.values():
        assert layer["type"] == "markers"
        assert layer["location"] == {"mode": "coords", "latitude": "lat_deg",
                                     "longitude": "lon_deg"}
    assert layers["buses"]["config"]["style"]["color"]["field"] == "vm_pu"
    assert layers["labels"]["config"]["style"]["text"] == {"field": "label", "fixed": "",
                                                           "mode": "field"}
    assert layers["labels"]["config"]["style"]["symbol"]["fixed"] == ""  # text only
    assert net["options"]["view"]["id"] == "fit" and net["options"]["controls"]["showScale"]
    vm = [o for o in net["fieldConfig"]["overrides"] if o["matcher"]["options"] == "vm_pu"]
    assert {p["id"]: p["value"] for p in vm[0]["properties"]}["thresholds"] == (
        blocks.band_thresholds((0.95, 1.05)))
    # every field the panel reads is one twin.grid.geo records for a lon/lat grid
    import simbench

    points = geo_points(simbench.get_simbench_net("1-MV-rural--0-sw"), "r", 0)
    recorded = {f for p in points for f in p.fields}
    assert {"lat_deg", "lon_deg", "label"} <= recorded
    for ref in "ACD":
        fields = re.findall(r'last\("(\w+)"\)', queries[ref])
        assert set(fields) <= recorded and {"lat_deg", "lon_deg"} <= set(fields), ref


CELLS_SCENARIO = ROOT / "scenarios" / "web_of_cells.yaml"


def test_frequency_and_cells_dashboard_draws_the_bands_it_reads():
    """The FCR band at f0 ± 200 mHz; the capability band filled between two of the
    interface query's own columns; the deviation repeated per cell, each with its
    tolerance when generated for a scenario with cells (none for the committed default)."""
    model = _committed()["frequency_cells.json"]
    band = _panel(model, "Frequency")["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert [s["value"] for s in band] == [None, 49.8, 50.2]
    assert _panel(model, "Frequency")["fieldConfig"]["defaults"]["custom"][
        "thresholdsStyle"] == {"mode": "dashed"}
    q = _panel(model, "TSO–DSO interface: Q, the TSO's request and the capability")
    columns = set(re.findall(r'AS "([^"]+)"', q["targets"][0]["query"]))
    assert columns == {"Q", "TSO request", "Q min", "Q max"}
    props = {o["matcher"]["options"]: {p["id"]: p["value"] for p in o["properties"]}
             for o in q["fieldConfig"]["overrides"]}
    assert set(props) <= columns and props["Q max"]["custom.fillBelowTo"] == "Q min"
    # the response per source: the fields twin.recording.schema records
    from twin.recording.schema import TWIN_RESPONSE_FIELDS

    assert {f for f, _ in dash.RESPONSE_SOURCES} == set(TWIN_RESPONSE_FIELDS)
    deviation = _panel(model, dash.CELL_DEVIATION_TITLE)
    variables = {v["name"]: v for v in model["templating"]["list"]}
    assert deviation["repeat"] == "cell" and variables["cell"]["includeAll"]
    assert deviation["fieldConfig"]["overrides"] == []

    cells = dash.frequency_cells(dash.Context.from_scenario(CELLS_SCENARIO))
    overrides = {o["matcher"]["options"]: {p["id"]: p["value"] for p in o["properties"]}
                 for o in _panel(cells, dash.CELL_DEVIATION_TITLE)["fieldConfig"]["overrides"]}
    # web_of_cells.yaml: South ±0.15 MW, Feeder 2 ±1 MW; the series are "$tag_element $col"
    assert {name: [s["value"] for s in o["thresholds"]["steps"]]
            for name, o in overrides.items()} == {"South deviation": [None, -0.15, 0.15],
                                                  "Feeder 2 deviation": [None, -1.0, 1.0]}
    assert all(o["custom.thresholdsStyle"] == {"mode": "dashed"} for o in overrides.values())
    target = _panel(cells, dash.CELL_DEVIATION_TITLE)["targets"][0]
    assert target["alias"] == "$tag_element $col" and 'AS "deviation"' in target["query"]


def test_kpi_point_keeps_numbers_as_floats():
    p = kpi_point("r", {"saidi_min": 1.5, "interruptions": 5, "voltage_band_pu": [0.95, 1],
                             "max_line_loading_element": "Line 1-2", "flag": True,
                             "vm_min_pu": None}, 7)
    assert (p.measurement, p.time_ns, p.tags) == ("kpi", 7, {"run": "r", "element": "run"})
    assert p.fields == {"saidi_min": 1.5, "interruptions": 5.0}
    assert isinstance(p.fields["interruptions"], float)


# --------------------------------------------------------------------------- compose


def _strings(node):
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for k, v in node.items():
            yield from _strings(k)
            yield from _strings(v)
    elif isinstance(node, list):
        for v in node:
            yield from _strings(v)


def _compose_vars(path: Path) -> set[str]:
    """Variables interpolated in the YAML file's values (not its comments): ${NAME},
    ${NAME:-x}, ${NAME:?x}, $NAME ($$ escapes)."""
    text = "\n".join(_strings(yaml.safe_load(path.read_text()))).replace("$$", "")
    return set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", text)) | set(
        re.findall(r"\$([A-Za-z_][A-Za-z0-9_]*)", text))


def _mounts(service: dict) -> dict[str, object]:
    """A service's mounts: container path -> host folder (resolved) or named volume."""
    out: dict[str, object] = {}
    for v in service["volumes"]:
        src, dst = v.split(":")[:2]
        if src.startswith("."):
            host = (COMPOSE.parent / src).resolve()
            assert host.exists(), v
            out[dst] = host
        else:
            out[dst] = src
    return out


def _env_example() -> dict[str, str]:
    out = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, line
            out[key] = value
    return out


def _interpolate(text: str, env: dict[str, str]) -> str:
    def one(m):
        name, op, default = m.group(1), m.group(2), m.group(3)
        value = env.get(name, "")
        if op == ":-" and not value:
            return default
        return value
    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:[-?])([^}]*))?\}", one, text)


def _interpolate_tree(node, env: dict[str, str]):
    if isinstance(node, str):
        return _interpolate(node, env)
    if isinstance(node, dict):
        return {k: _interpolate_tree(v, env) for k, v in node.items()}
    if isinstance(node, list):
        return [_interpolate_tree(v, env) for v in node]
    return node


def test_compose_and_provisioning_reference_each_other():
    compose = yaml.safe_load(COMPOSE.read_text())
    services = compose["services"]
    assert set(services) == {"check-env", "influxdb", "dashboards", "grafana", "twin"}
    assert services["influxdb"]["image"].startswith("influxdb:2")
    influx_env = services["influxdb"]["environment"]
    for key in ("ORG", "BUCKET", "ADMIN_TOKEN", "USERNAME", "PASSWORD"):
        assert influx_env[f"DOCKER_INFLUXDB_INIT_{key}"].startswith("${"), key
    assert influx_env["DOCKER_INFLUXDB_INIT_MODE"] == "setup"
    # the DBRP script is mounted where the image runs init scripts, and it maps the bucket
    (init,) = [v for v in services["influxdb"]["volumes"] if "docker-entrypoint-initdb.d" in v]
    init_dir = (COMPOSE.parent / init.split(":")[0]).resolve()
    script = (init_dir / "create-dbrp.sh").read_text()
    assert "influx v1 dbrp create" in script and "DOCKER_INFLUXDB_INIT_BUCKET_ID" in script
    assert "${INFLUX_DATABASE}" in script and "INFLUX_DATABASE" in influx_env

    grafana = services["grafana"]
    genv = grafana["environment"]
    assert genv["GF_AUTH_ANONYMOUS_ENABLED"] == "${GRAFANA_ANONYMOUS_ENABLED:-false}"
    assert genv["GF_SECURITY_ADMIN_PASSWORD"].startswith("${GRAFANA_ADMIN_PASSWORD")
    mounts = _mounts(grafana)
    assert mounts["/etc/grafana/provisioning/datasources"] == DATASOURCES.parent
    assert mounts["/etc/grafana/provisioning/dashboards"] == PROVIDERS.parent
    # the file provider reads, and the home dashboard lies in, the named volume the
    # dashboards service writes its JSON files into (the folder its command names)
    (provider,) = yaml.safe_load(PROVIDERS.read_text())["providers"]
    assert provider["type"] == "file"
    volume = mounts[provider["options"]["path"]]
    assert volume in compose["volumes"] and f"{volume}:{provider['options']['path']}:ro" in (
        grafana["volumes"])
    gen = services["dashboards"]
    assert gen["command"][0] == "dashboards"
    assert _mounts(gen)[gen["command"][1]] == volume
    home = genv["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert Path(home).parent == Path(provider["options"]["path"])
    assert Path(home).name in dash.FILES
    assert grafana["depends_on"]["dashboards"] == {"condition": "service_completed_successfully"}

    # the datasource's variables come from the grafana service's environment, and its URL
    # is the influxdb service on the port it listens on
    ds_text = DATASOURCES.read_text()
    (ds,) = yaml.safe_load(ds_text)["datasources"]
    assert ds["type"] == "influxdb" and ds["jsonData"]["version"] == "InfluxQL"
    used = _compose_vars(DATASOURCES)
    assert used == {"DS_INFLUX_URL", "DS_INFLUX_DATABASE", "DS_INFLUX_USER", "DS_INFLUX_PASSWORD"}
    assert used <= set(genv)
    url = urlparse(genv["DS_INFLUX_URL"])
    assert url.hostname == "influxdb" and url.hostname in services
    assert any(p.endswith(f":{url.port}") for p in services["influxdb"]["ports"])
    assert ds["user"] == "${DS_INFLUX_USER}"
    assert ds["secureJsonData"] == {"password": "${DS_INFLUX_PASSWORD}"}
    assert genv["DS_INFLUX_USER"].startswith("${INFLUX_GRAFANA_USER")
    assert genv["DS_INFLUX_PASSWORD"].startswith("${INFLUX_GRAFANA_PASSWORD")

    # every variable compose interpolates is in .env.example, with no real secret in either
    env = _env_example()
    assert _compose_vars(COMPOSE) <= set(env)
    assert _compose_vars(PROVIDERS) == set()
    secret = re.compile(r"TOKEN|PASSWORD|SECRET", re.I)
    for name, svc in services.items():
        for key, value in (svc.get("environment") or {}).items():
            if secret.search(key):
                assert re.fullmatch(r"\$\{[A-Z_]+(:[-?][^}]*)?\}", str(value)), (name, key)
    for key, value in env.items():
        if secret.search(key):
            assert value == "" or value.startswith("change-me"), key


# extra `twin run` words as an operator writes them in .env: shell words, quoted values
# with a space, both forms of an option's value
TWIN_ARGS = ("--until 6h --set \"dms.volt_var.mode=advisory\" "
             "--set 'kpis.voltage_band_pu=[0.94, 1.06]' --overwrite")
TWIN_WORDS = ["--until", "6h", "--set", "dms.volt_var.mode=advisory",
              "--set", "kpis.voltage_band_pu=[0.94, 1.06]", "--overwrite"]


def _service_env(name: str, **env: str) -> dict[str, str]:
    """The service's environment as compose gives it, from .env.example with ``env`` on top."""
    svc = yaml.safe_load(COMPOSE.read_text())["services"][name]
    return {k: str(v) for k, v in _interpolate_tree(svc["environment"],
                                                   {**_env_example(), **env}).items()}


def _run_entry(tmp_path: Path, args: list[str], env: dict[str, str], stubs: dict[str, str]):
    """Run docker/twin-live.sh with sh, from the repository root (the image's /app), with
    ``stubs`` (name -> script) first on PATH."""
    import subprocess

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, text in stubs.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    return subprocess.run(["sh", str(TWIN_LIVE), *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120,
                          env={"PATH": f"{bin_dir}:/usr/bin:/bin", **env})


def _argv_stub() -> str:
    """A command that prints its arguments as a JSON list."""
    import sys

    return (f"#!{sys.executable}\nimport json, sys\n"
            "print(json.dumps(sys.argv[1:]))\n")


def test_compose_twin_runs_the_entry_script_with_scenarios_mounted():
    compose = yaml.safe_load(COMPOSE.read_text())
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    assert "FROM python:3.11.11-slim" in dockerfile and "pip install ." in dockerfile
    assert 'ENTRYPOINT ["twin"]' in dockerfile and 'CMD ["--help"]' in dockerfile
    # scenarios/ is mounted, not baked in: a scenario file of one's own needs no rebuild
    assert "COPY scenarios" not in dockerfile
    assert "!scenarios" not in (ROOT / "docker" / "Dockerfile.dockerignore").read_text()
    for name in ("twin", "dashboards"):
        svc = compose["services"][name]
        assert svc["image"] == "dms-twin:local", name
        assert svc["build"]["dockerfile"] == "docker/Dockerfile", name
        assert (COMPOSE.parent / svc["build"]["context"]).resolve() == ROOT, name
        assert svc["entrypoint"] == ["sh", "/twin-live.sh"], name
        mounts = _mounts(svc)
        assert mounts["/twin-live.sh"] == TWIN_LIVE, name
        assert mounts["/app/scenarios"] == ROOT / "scenarios", name
        assert "../scenarios:/app/scenarios:ro" in svc["volumes"], name
        assert svc["restart"] == "no", name
        assert svc["environment"]["TWIN_SCENARIO"] == "${TWIN_SCENARIO:-" + str(
            DEFAULT_SCENARIO) + "}", name
        assert svc["environment"]["TWIN_ARGS"] == "${TWIN_ARGS:-}", name
    # the dashboards service holds no secret; the twin only its own password and the token
    assert not [k for k in compose["services"]["dashboards"]["environment"]
                if SECRET_NAME.search(k)]
    assert {k for k in compose["services"]["twin"]["environment"] if SECRET_NAME.search(k)} == {
        "INFLUX_TWIN_PASSWORD", "GRAFANA_TOKEN"}
    # the entry script reads no secret (the twin reads its password itself, password_env)
    script = TWIN_LIVE.read_text()
    assert not re.search(r"\$\{?[A-Z_]*(PASSWORD|TOKEN|SECRET)", script)
    assert compose["services"]["twin"]["command"] == ["run"]


def test_compose_twin_command_gives_the_cli_a_valid_v1_recording(monkeypatch, tmp_path):
    """The twin service's entry script, run by sh with the environment compose gives it from
    .env.example plus a TWIN_ARGS of quoted words, execs `twin` with an argument list that
    the real CLI parses into a live run recording to the compose InfluxDB 2.x (through its
    v1 /write endpoint, with the twin's write-only credential), with TWIN_ARGS' words."""
    from typer.testing import CliRunner

    import twin.runner
    from twin.cli import app
    from twin.scenario import load_scenario

    env = _env_example()
    assert env["TWIN_ARGS"] == ""
    twin_env = _service_env("twin", TWIN_ARGS=TWIN_ARGS)
    assert twin_env["GRAFANA_URL"] == "http://grafana:3000"
    assert twin_env["INFLUX_TWIN_PASSWORD"] == env["INFLUX_TWIN_PASSWORD"]
    out = _run_entry(tmp_path, ["run"], twin_env, {"twin": _argv_stub()})
    assert out.returncode == 0, out.stderr
    args = json.loads(out.stdout)
    assert args[:2] == ["run", env["TWIN_SCENARIO"]]
    assert args[-len(TWIN_WORDS):] == TWIN_WORDS  # word for word, quotes removed
    assert env["INFLUX_TWIN_PASSWORD"] not in out.stdout + out.stderr

    class Called(Exception):
        pass

    seen = {}

    def fake_run_scenario(scenario, **kwargs):
        seen.update(kwargs, scenario=scenario)
        raise Called

    monkeypatch.setattr(twin.runner, "run_scenario", fake_run_scenario)
    monkeypatch.chdir(ROOT)
    result = CliRunner().invoke(app, args)
    assert isinstance(result.exception, Called), result.output
    assert seen["record"] == "influx" and seen["speed"] == float(env["TWIN_SPEED"]) == 60.0
    assert seen["influx_url"] is None and seen["until"] == "6h" and seen["overwrite"] is True
    sc = load_scenario(ROOT / seen["scenario"], seen["overrides"])
    spec = sc.recording.influx
    assert (spec.api, spec.database, spec.username, spec.password_env) == (
        "v1", env["INFLUX_DATABASE"], env["INFLUX_TWIN_USER"], "INFLUX_TWIN_PASSWORD")
    assert urlparse(spec.url).hostname == "influxdb" and urlparse(spec.url).port == 8086
    assert sc.dms.volt_var.mode == "advisory"
    assert tuple(sc.kpis.voltage_band_pu) == (0.94, 1.06)

    # no TWIN_ARGS: the base command alone; a TWIN_ARGS that is no shell words: refused
    out = _run_entry(tmp_path, ["run"], _service_env("twin"), {"twin": _argv_stub()})
    assert out.returncode == 0 and json.loads(out.stdout)[-1].startswith("recording.influx=")
    out = _run_entry(tmp_path, ["run"], _service_env("twin", TWIN_ARGS='--set "a=b'),
                     {"twin": _argv_stub()})
    assert out.returncode == 2 and "TWIN_ARGS is not valid shell words" in out.stderr
    assert out.stdout == ""


def test_compose_dashboards_open_on_the_runs_time_range(tmp_path):
    """The dashboards service's entry, run for real (python -m twin.dashboards) with another
    scenario and TWIN_ARGS: every dashboard's range is the scenario's start to start +
    --until, with the band TWIN_ARGS' --set gives; without TWIN_ARGS, the committed files."""
    import sys
    from datetime import timedelta

    from twin.scenario import load_scenario

    python = f'#!/bin/sh\nexec "{sys.executable}" "$@"\n'
    scenario = "scenarios/volt_var_high_pv.yaml"
    env = _service_env("dashboards", TWIN_SCENARIO=scenario, TWIN_ARGS=TWIN_ARGS)
    out_dir = tmp_path / "dashboards"
    out = _run_entry(tmp_path, ["dashboards", str(out_dir)], env, {"python": python})
    assert out.returncode == 0, out.stderr
    assert sorted(p.name for p in out_dir.glob("*.json")) == sorted(dash.FILES)
    sc = load_scenario(ROOT / scenario)
    fmt = "%Y-%m-%dT%H:%M:%S.000Z"
    expected = {"from": sc.start.strftime(fmt),
                "to": (sc.start + timedelta(hours=6)).strftime(fmt)}
    assert expected == {"from": "2026-06-21T08:00:00.000Z", "to": "2026-06-21T14:00:00.000Z"}
    for path in out_dir.glob("*.json"):
        assert json.loads(path.read_text())["time"] == expected, path.name
    voltages = json.loads((out_dir / "voltages.json").read_text())
    values = {step["value"] for steps in _walk(voltages, "steps") for step in steps}
    assert {0.94, 1.06} <= values and 0.95 not in values

    # --until=X and the last --until win, as in twin run; other words are left out
    env = _service_env("dashboards", TWIN_SCENARIO=scenario,
                       TWIN_ARGS="--until 2h --out runs/x --speed 5 --until=90min")
    out = _run_entry(tmp_path, ["dashboards", str(out_dir)], env, {"python": python})
    assert out.returncode == 0, out.stderr
    assert json.loads((out_dir / "overview.json").read_text())["time"]["to"] == (
        "2026-06-21T09:30:00.000Z")
    # beyond the scenario's end: refused as twin run refuses it, so Grafana does not start
    env = _service_env("dashboards", TWIN_SCENARIO=scenario, TWIN_ARGS="--until 11h")
    out = _run_entry(tmp_path, ["dashboards", str(out_dir)], env, {"python": python})
    assert out.returncode == 2 and "--until: expected at most" in out.stderr

    # .env.example as it is: the committed dashboards (the default scenario, whole range)
    default_dir = tmp_path / "default"
    out = _run_entry(tmp_path, ["dashboards", str(default_dir)], _service_env("dashboards"),
                     {"python": python})
    assert out.returncode == 0, out.stderr
    for path in default_dir.glob("*.json"):
        assert path.read_bytes() == (DASH_DIR / path.name).read_bytes(), path.name


CHECK_ENV = ROOT / "docker" / "check-env.sh"
SECRET_NAME = re.compile(r"TOKEN|PASSWORD|SECRET", re.I)


def test_compose_ports_listen_on_bind_addr_default_loopback():
    compose = yaml.safe_load(COMPOSE.read_text())
    published = [(name, p) for name, svc in compose["services"].items()
                 for p in svc.get("ports", [])]
    assert {name for name, _ in published} == {"influxdb", "grafana"}
    for name, port in published:
        assert port.startswith("${BIND_ADDR:-127.0.0.1}:"), (name, port)
    env = _env_example()
    assert env["BIND_ADDR"] == "127.0.0.1"
    ports = _interpolate_tree(compose, {})["services"]["grafana"]["ports"]
    assert ports == ["127.0.0.1:3000:3000"]
    ports = _interpolate_tree(compose, {"BIND_ADDR": "0.0.0.0"})["services"]["influxdb"]["ports"]
    assert ports == ["0.0.0.0:8086:8086"]


def test_compose_images_are_pinned_to_versions():
    compose = yaml.safe_load(COMPOSE.read_text())
    for name, svc in compose["services"].items():
        if "build" in svc:
            continue  # built here from the pinned Dockerfile below
        image = svc["image"]
        assert re.fullmatch(r"[\w./-]+:\d+\.\d+\.\d+[\w.-]*", image), (name, image)
    froms = re.findall(r"^FROM\s+(\S+)", (ROOT / "docker" / "Dockerfile").read_text(), re.M)
    assert froms and all(re.fullmatch(r"[\w./-]+:\d+\.\d+\.\d+[\w.-]*", f) for f in froms)


def _run_check_env(env: dict[str, str]):
    import subprocess

    return subprocess.run(["sh", str(CHECK_ENV)], env={"PATH": "/usr/bin:/bin", **env},
                          capture_output=True, text=True, timeout=30)


def test_stack_refuses_to_start_with_placeholder_secrets():
    compose = yaml.safe_load(COMPOSE.read_text())
    services = compose["services"]
    check = services["check-env"]
    assert check["restart"] == "no" and "./check-env.sh:/check-env.sh:ro" in check["volumes"]
    for name, svc in services.items():
        if name != "check-env":
            assert svc["depends_on"]["check-env"] == {
                "condition": "service_completed_successfully"}, name
    # check-env is given every secret .env.example holds
    env = _env_example()
    secrets = {k for k in env if SECRET_NAME.search(k)}
    assert set(check["environment"]) == secrets
    for key in secrets:
        assert check["environment"][key] == f"${{{key}:-}}"

    # .env.example as it is: refused, naming each placeholder
    passed = _interpolate_tree(check["environment"], env)
    out = _run_check_env(passed)
    assert out.returncode == 1
    for key in secrets - {"GRAFANA_TOKEN"}:
        assert f"check-env: {key} still holds the placeholder" in out.stderr, key
    # every secret replaced: accepted (the optional Grafana token may stay empty)
    good = {k: ("" if k == "GRAFANA_TOKEN" else f"s3cret-{k.lower()}-0123456789") for k in secrets}
    out = _run_check_env(_interpolate_tree(check["environment"], good))
    assert out.returncode == 0 and "secrets set" in out.stdout, out.stderr
    # one left behind, one missing, one too short for InfluxDB: each refused by name
    for key, value, says in [("INFLUX_TWIN_PASSWORD", "change-me-twin-password", "placeholder"),
                             ("INFLUX_ADMIN_TOKEN", "", "is not set"),
                             ("GRAFANA_TOKEN", "change-me", "placeholder"),
                             ("INFLUX_GRAFANA_PASSWORD", "short", "shorter than 8")]:
        out = _run_check_env({**good, key: value})
        assert out.returncode == 1 and f"check-env: {key}" in out.stderr and says in out.stderr


def test_twin_and_grafana_have_their_own_scoped_credentials():
    compose = yaml.safe_load(COMPOSE.read_text())
    services = compose["services"]
    # the admin token goes to InfluxDB's setup (and the placeholder check) only
    for name, svc in services.items():
        text = json.dumps(svc)
        if name not in ("influxdb", "check-env"):
            assert "INFLUX_ADMIN" not in text, name
    influx_env = services["influxdb"]["environment"]
    assert influx_env["DOCKER_INFLUXDB_INIT_ADMIN_TOKEN"].startswith("${INFLUX_ADMIN_TOKEN:?")
    # the init script creates a write-only credential for the twin and a read-only one for
    # Grafana, from variables the influxdb service is given
    script = (COMPOSE.parent / "influxdb-init" / "create-auths.sh").read_text()
    commands = [c for c in script.split("influx v1 auth create")[1:]]
    assert len(commands) == 2
    twin_cmd, grafana_cmd = commands
    assert '--username "${INFLUX_TWIN_USER}"' in twin_cmd and "--write-bucket" in twin_cmd
    assert "--read-bucket" not in twin_cmd
    assert '--username "${INFLUX_GRAFANA_USER}"' in grafana_cmd and "--read-bucket" in grafana_cmd
    assert "--write-bucket" not in grafana_cmd
    for key in ("INFLUX_TWIN_USER", "INFLUX_TWIN_PASSWORD", "INFLUX_GRAFANA_USER",
                "INFLUX_GRAFANA_PASSWORD"):
        assert f"${{{key}}}" in script and key in influx_env, key
    # each service gets its own: the twin the writer's password, Grafana the reader's
    assert set(services["twin"]["environment"]) & {"INFLUX_GRAFANA_PASSWORD"} == set()
    assert "INFLUX_TWIN_PASSWORD:?" in services["twin"]["environment"]["INFLUX_TWIN_PASSWORD"]
    genv = services["grafana"]["environment"]
    assert "INFLUX_TWIN" not in json.dumps(genv)
    env = _env_example()
    assert env["INFLUX_TWIN_USER"] != env["INFLUX_GRAFANA_USER"]


# --------------------------------------------------------------------------- against InfluxDB

_RECORDED: dict[str, dict] = {}
STEP_S = 60


def _write_yaml(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _record(url: str, base: Path) -> dict:
    """Five short runs into one new database: FLISR on CIGRE MV (faults, protection, DMS
    decisions, commands, a crew), a midday with too much PV (violations, PV, wind,
    batteries, EVs, capacitors), an hour on SimBench 1-MV-rural (longitude/latitude), the
    frequency event's first 20 minutes (the trip at 10 min, the twin's units answering) and
    the web of cells' first 70 minutes (tie-line control, monitoring, the TSO's request at
    1 h)."""
    from twin.recording.influx_v1 import InfluxV1Store
    from twin.runner import run_scenario
    from twin.scenario import load_scenario

    db = f"test_dash_{uuid.uuid4().hex[:10]}"
    flisr = yaml.safe_load((ROOT / "scenarios" / "flisr_cigre_mv.yaml").read_text())
    flisr.update(duration="40min")  # the crew at manual tie S3 is back after ~26 min
    flisr["faults"][0]["after"] = "5min"
    flisr["dms"]["cycle"] = "5min"
    day = yaml.safe_load((ROOT / "scenarios" / "cigre_mv_day.yaml").read_text())
    day.update(start="2026-06-21T11:00:00Z", duration="30min")
    day["profiles"]["load_scaling"] = 0.5
    # the violations stay (no Volt/Var), and every solve is a step: step-sampled energies
    day["dms"] = {"enabled": False}
    day["pv"]["plants"] = [{"name": "Solar A", "bus": "Bus 11", "p_peak_kw": 5000},
                           {"name": "Solar B", "bus": "Bus 14", "p_peak_kw": 4000}]
    for cap in day["devices"]["capacitors"]:
        cap.update(q_step_mvar=0.5, step_init=3)
    geo = yaml.safe_load(_lonlat_scenario(base).read_text())
    freq = yaml.safe_load((ROOT / "scenarios" / "frequency_event.yaml").read_text())
    cells = yaml.safe_load((ROOT / "scenarios" / "web_of_cells.yaml").read_text())
    runs = {}
    store = InfluxV1Store(url, db)
    for key, data, until in (("flisr", flisr, None), ("day", day, None), ("geo", geo, None),
                             ("freq", freq, "20min"), ("cells", cells, "70min")):
        data["recording"] = {"store": "influx",
                             "influx": {"url": url, "api": "v1", "database": db}}
        path = _write_yaml(base / f"{key}.yaml", data)
        summary = run_scenario(path, out=base / f"{key}-{uuid.uuid4().hex[:6]}", until=until)
        assert summary.recording["points_spilled"] == 0
        sc = load_scenario(path)
        start_ns = int(sc.start.timestamp() * 1e9)
        end_ns = start_ns + int(summary.run_info["simulated_s"] * 1e9)
        # the runner records the run's KPIs at its end (the Reliability dashboard reads them)
        kpi = store.query(f'SELECT "saidi_min" FROM "kpi" WHERE "run" = \'{summary.run_id}\'')
        assert len(kpi) == 1
        assert kpi[0]["saidi_min"] == pytest.approx(summary.outcome.kpis["saidi_min"])
        runs[key] = {"id": summary.run_id, "kpis": summary.outcome.kpis, "scenario": path,
                     "from_ms": start_ns // 10**6, "to_ms": end_ns // 10**6}
    store.close()
    return {"url": url, "db": db, "runs": runs}


@pytest.fixture(scope="module", autouse=True)
def _drop_databases():
    yield
    for rec in _RECORDED.values():
        requests.post(f"{rec['url']}/query", params={"q": f'DROP DATABASE "{rec["db"]}"'},
                      timeout=10)


@pytest.fixture
def recorded(influx_url, tmp_path_factory) -> dict:
    if influx_url not in _RECORDED:
        _RECORDED[influx_url] = _record(influx_url, tmp_path_factory.mktemp("dashboards"))
    return _RECORDED[influx_url]


def _regex_escape(value: str) -> str:
    return re.sub(r"([\\.^$|?*+()\[\]{}/-])", r"\\\1", value)


def substitute(query: str, model: dict, run: dict, interval_s: int = 60) -> str:
    """The query as Grafana sends it: time range, interval and template variables."""
    q = query.replace("$timeFilter", f"time >= {run['from_ms']}ms and time <= {run['to_ms']}ms")
    q = q.replace("$__interval_ms", str(interval_s * 1000))
    q = q.replace("$__interval", f"{interval_s}s")
    values = {}
    for v in model["templating"]["list"]:
        if v["name"] == "run":
            values["run"] = _regex_escape(run["id"])
        elif v["type"] == "constant":
            values[v["name"]] = v["query"]
        else:
            assert v.get("includeAll") and v.get("allValue") == ".*", v["name"]
            values[v["name"]] = ".*"
    for name in sorted(values, key=len, reverse=True):
        q = q.replace("${" + name + "}", values[name])
        q = re.sub(r"\$" + name + r"(?![A-Za-z0-9_])", lambda _m: values[name], q)
    leftover = re.findall(r"\$[A-Za-z_{]", q)
    assert not leftover, (query, leftover)
    return q


def _query(rec: dict, q: str) -> list[dict]:
    r = requests.post(f"{rec['url']}/query", params={"db": rec["db"]}, data={"q": q},
                      timeout=30)
    r.raise_for_status()
    (result,) = r.json()["results"]
    assert "error" not in result, (q, result["error"])
    return result.get("series", [])


def _all_queries(model: dict) -> list[tuple[str, str]]:
    out = [(f"panel {t}", q) for t, q in _panel_queries(model)]
    out += [(f"variable {v['name']}", v["query"]) for v in model["templating"]["list"]
            if v["type"] == "query"]
    out += [(f"annotation {a['name']}", a["target"]["query"])
            for a in model["annotations"]["list"] if a["datasource"] == blocks.DATASOURCE]
    return out


@pytest.mark.influx
def test_every_query_of_every_dashboard_returns_data(recorded):
    empty = []
    n = 0
    for name, model in _committed().items():
        for where, query in _all_queries(model):
            n += 1
            got = {key: _query(recorded, substitute(query, model, run))
                   for key, run in recorded["runs"].items()}
            if not any(got.values()):
                empty.append(f"{name}: {where}: {query}")
    assert n > 80
    assert not empty, "queries without a series:\n" + "\n".join(empty)


def _value(rec, model, title, run_key, ref=0):
    run = rec["runs"][run_key]
    series = _query(rec, substitute(_panel(model, title)["targets"][ref]["query"], model, run))
    return series


def _scalar(rec, model, title, run_key) -> float:
    (s,) = _value(rec, model, title, run_key)
    ((_, v),) = s["values"]
    return v


def _column_sum(series: list[dict], column: str) -> float:
    total = 0.0
    for s in series:
        i = s["columns"].index(column)
        total += sum(row[i] for row in s["values"])
    return total


@pytest.mark.influx
def test_dashboard_figures_agree_with_the_run_kpis(recorded):
    d = _committed()
    ov, volt, load, der = d["overview.json"], d["voltages.json"], d["loading.json"], d["der.json"]
    comms, rel = d["communications.json"], d["reliability.json"]
    day, flisr = recorded["runs"]["day"]["kpis"], recorded["runs"]["flisr"]["kpis"]

    # The midday run re-solves only on its steps: step-sampled energies equal the KPIs.
    assert day["voltage_violation_minutes"] == 30.0
    assert _scalar(recorded, ov, "Voltage-violation minutes", "day") == 30.0
    bus_minutes = _column_sum(_value(recorded, volt, "Violation minutes per bus", "day"),
                              "minutes")
    assert bus_minutes == pytest.approx(day["voltage_violation_bus_minutes"], abs=1e-9)
    assert bus_minutes > 30
    for title, kpi in (("Losses", "energy_losses_mwh"), ("PV energy", "pv_energy_mwh"),
                       ("Wind energy", "wind_energy_mwh"), ("Grid import", "ext_grid_energy_mwh")):
        assert _scalar(recorded, ov, title, "day") == pytest.approx(day[kpi], rel=1e-6), title
    assert day["pv_energy_mwh"] > 1.0
    assert _scalar(recorded, der, "EV energy", "day") == pytest.approx(day["ev_energy_mwh"],
                                                                        abs=1e-9)
    assert _scalar(recorded, ov, "Highest voltage", "day") == pytest.approx(day["vm_max_pu"],
                                                                             abs=1e-8)
    assert _scalar(recorded, ov, "Lowest voltage", "flisr") == pytest.approx(flisr["vm_min_pu"],
                                                                              abs=1e-8)
    line_max = max(s["values"][0][1]
                   for s in _value(recorded, load, "Highest line loading in the range", "flisr"))
    assert line_max == pytest.approx(flisr["max_line_loading_percent"], abs=1e-8)

    # FLISR run: the field, protection and crews, counted by the dashboards as by the KPIs
    telemetry = _value(recorded, comms, "Telemetry per RTU", "flisr")
    assert _column_sum(telemetry, "values") == flisr["telemetry_values_delivered"] > 1000
    outcomes = _value(recorded, comms, "Command outcomes per RTU and status", "flisr")
    by_status: dict[str, int] = {}
    for series in outcomes:  # one per (via, status)
        status = series["tags"]["status"]
        by_status[status] = by_status.get(status, 0) + series["values"][0][1]
    assert by_status == {"success": flisr["commands_success"]} and flisr["commands_success"] >= 5
    assert _scalar(recorded, ov, "Protection trips", "flisr") == flisr["protection_trips"] == 1
    (crews,) = _value(recorded, rel, "Crew jobs", "flisr")
    assert len(crews["values"]) == flisr["crew_jobs"] == 1
    # Bus 8 waits for the repair: its loads are still off at the end
    assert _scalar(recorded, ov, "Loads not supplied at the end", "flisr") >= 1

    # Energy not supplied: step-sampled while running (momentary interruptions count a whole
    # step, so a little more), exact from the run's kpi point
    ens_live = _scalar(recorded, rel, "Energy not supplied (step-sampled)", "flisr")
    assert flisr["energy_not_supplied_mwh"] > 0.3
    assert flisr["energy_not_supplied_mwh"] <= ens_live <= 1.1 * flisr["energy_not_supplied_mwh"]
    (kpi,) = _value(recorded, rel, "Reliability (IEEE 1366) as the run computed it", "flisr")
    row = dict(zip(kpi["columns"], kpi["values"][0]))
    for k in dash.RELIABILITY_KPIS:
        assert row[k] == pytest.approx(flisr[k], rel=1e-12), k



def _columns_with_values(series: list[dict]) -> set[str]:
    """The columns (besides time) with at least one value in some series."""
    return {c for s in series for i, c in enumerate(s["columns"])
            if c != "time" and any(row[i] is not None for row in s["values"])}


@pytest.mark.influx
def test_every_frequency_and_cells_panel_returns_every_column_for_its_run(recorded):
    """Each panel query of the Frequency and cells dashboard, on the run that records its
    measurement (the frequency event; the web of cells), returns a value in every column
    it selects: no series it draws is empty."""
    model = _committed()["frequency_cells.json"]
    queries = _panel_queries(model)
    assert len(queries) >= 16
    for title, query in queries:
        key = "freq" if 'FROM "frequency"' in query else "cells"
        series = _query(recorded, substitute(query, model, recorded["runs"][key]))
        assert series, (title, query)
        selected = set(re.findall(r'AS "([^"]+)"', query.split(" FROM ")[0]))
        if not selected:  # plain fields (the decision log) or one unnamed aggregate
            selected = {c for s in series for c in s["columns"] if c != "time"}
        assert selected <= _columns_with_values(series), (title, selected)


@pytest.mark.influx
def test_frequency_and_cells_figures_agree_with_the_run_kpis(recorded):
    model = _committed()["frequency_cells.json"]
    freq, cells = recorded["runs"]["freq"], recorded["runs"]["cells"]
    k = freq["kpis"]
    # extremes of the steps, as the KPIs take them (frequency_event: 49.862 Hz, 0.0494 Hz/s)
    assert _scalar(recorded, model, "Frequency nadir", "freq") == pytest.approx(
        k["frequency_nadir_hz"], abs=1e-9)
    assert 49.8 < k["frequency_nadir_hz"] < 49.9
    assert _scalar(recorded, model, "Highest frequency", "freq") == pytest.approx(
        k["frequency_max_hz"], abs=1e-9)
    assert _scalar(recorded, model, "Largest |RoCoF|", "freq") == pytest.approx(
        k["rocof_max_hz_s"], abs=1e-9)
    # the response energy per source [kWh] is the KPI's [MWh] (rounded to 1e-9 MWh)
    (energy,) = _value(recorded, model, "The twin's response energy per source", "freq")
    row = dict(zip(energy["columns"], energy["values"][0]))
    sources = dict(zip(("fcr_battery", "fcr_ev", "synthetic_inertia", "pf"),
                       (name for _f, name in dash.RESPONSE_SOURCES)))
    for key, name in sources.items():
        assert row[name] == pytest.approx(k["frequency_response_mwh"][key] * 1000.0,
                                          abs=1e-5), key
    assert row["battery FCR"] > 10.0 and row["V2G FCR"] > 10.0  # kWh
    # the frequency panels find nothing in the cells' run, the cells' nothing in the event's
    assert _value(recorded, model, "Frequency nadir", "cells") == []
    assert _value(recorded, model, "Inertia per cell", "freq") == []

    # mean |deviation| per cell over the cycles: the KPI tie_line_deviation_mw
    tie = {s["tags"]["element"]: dict(zip(s["columns"], s["values"][0]))
           for s in _value(recorded, model, "Tie-line deviation per cell", "cells")}
    kpi = cells["kpis"]["tie_line_deviation_mw"]
    assert set(tie) == set(kpi) == {"South", "Feeder 2"}
    for cell, row in tie.items():
        assert row["mean |deviation| [MW]"] == pytest.approx(kpi[cell], abs=1e-6)
        assert row["cycles"] == 70  # a cycle a minute for 70 minutes
    assert kpi["South"] < kpi["Feeder 2"]  # South has batteries to move, Feeder 2 none

    # the storage table: each battery's cell and its last state (Battery S: 3 MWh)
    storage = {s["tags"]["element"]: (s["tags"]["cell"], dict(zip(s["columns"], s["values"][0])))
               for s in _value(recorded, model, "Storage monitoring (last in the range)",
                               "cells")}
    assert {b: c for b, (c, _row) in storage.items()} == {
        "Battery 1": "", "Battery 2": "South", "Battery S": "South"}
    s_row = storage["Battery S"][1]
    assert s_row["e_mwh"] == pytest.approx(3.0 * s_row["soc"], rel=1e-9)
    assert 0.5 < s_row["soc"] < 1.0  # it charged to bring South's export to schedule
    for _cell, row in storage.values():
        assert row["up_mw"] >= 0.0 and row["down_mw"] >= 0.0 and row["price_eur_mwh"] > 0.0

    # the interface: the TSO's 3 Mvar from 09:00 on, Q inside its capability throughout
    (q,) = _value(recorded, model,
                  "TSO–DSO interface: Q, the TSO's request and the capability", "cells")
    rows = [dict(zip(q["columns"], v)) for v in q["values"]]
    assert len(rows) == 70
    at_9 = pd.Timestamp("2026-06-21T09:00:00Z")
    for row in rows:
        after = pd.Timestamp(row["time"]) >= at_9
        assert row["TSO request"] == (3.0 if after else None), row
        assert row["Q min"] < row["Q"] < row["Q max"], row
    assert sum(pd.Timestamp(r["time"]) >= at_9 for r in rows) == 10


def grafana_table_frame(ref: str, series: list[dict]) -> dict:
    """A table-format InfluxQL result as Grafana's InfluxDB datasource hands it to a panel:
    one frame per query, ``Time``, then the GROUP BY tags and the selected columns, a row
    per series and time (its converter's table format)."""
    tags = list(series[0].get("tags", {})) if series else []
    columns = [c for c in series[0]["columns"] if c != "time"] if series else []
    rows = [(s.get("tags", {}), dict(zip(s["columns"], v))) for s in series for v in s["values"]]

    def kind(values):
        sample = next((v for v in values if v is not None), None)
        return ("boolean" if isinstance(sample, bool) else
                "number" if isinstance(sample, (int, float)) else "string")

    fields = [{"name": "Time", "type": "time",
               "values": [int(pd.Timestamp(r["time"]).value // 10**6) for _t, r in rows]}]
    fields += [{"name": t, "type": "string", "values": [tg.get(t) for tg, _r in rows]}
               for t in tags]
    for c in columns:
        values = [r.get(c) for _t, r in rows]
        fields.append({"name": c, "type": kind(values), "values": values})
    return {"refId": ref, "name": None, "fields": fields}


@pytest.fixture(scope="session")
def grafana_data():
    """Grafana's own transformations (@grafana/data, run by node): frames in, frames out, and
    which of them frame matchers accept (as a Geomap layer's filterData)."""
    import os
    import shutil
    import subprocess

    modules = os.environ.get("GRAFANA_NODE_MODULES")
    script = ROOT / "tests" / "grafana" / "transform.cjs"
    missing = (shutil.which("node") is None or not modules
               or not (Path(modules) / "@grafana" / "data").is_dir())
    if missing:
        if os.environ.get("REQUIRE_GRAFANA_DATA") == "1":
            pytest.fail("REQUIRE_GRAFANA_DATA=1 but node or GRAFANA_NODE_MODULES is missing")
        pytest.skip("Grafana's data library not installed (make test installs it)")

    def run(transformations: list[dict], frames: list[dict],
            frame_matchers: list[dict] | None = None) -> dict:
        out = subprocess.run(["node", str(script)], input=json.dumps(
            {"transformations": transformations, "frames": frames,
             "frameMatchers": frame_matchers or []}), text=True,
            capture_output=True, env={**os.environ, "NODE_PATH": modules}, timeout=60)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)
    return run


@pytest.fixture(scope="session")
def grafana_transform(grafana_data):
    """The panel's transformations on its query frames: the frames a panel draws."""
    return lambda transformations, frames: grafana_data(transformations, frames)["frames"]


@pytest.fixture(scope="session")
def grafana_geomap_layers(grafana_data):
    """A Geomap panel's data as each of its layers draws it: the transformations, then each
    layer's ``filterData`` (Grafana's frame matchers), and of the frames it accepts the first
    (a markers layer draws one frame). Returns layer name → frame (None: nothing to draw)."""
    def run(panel: dict, frames: list[dict]) -> dict[str, dict | None]:
        layers = panel["options"]["layers"]
        out = grafana_data(panel.get("transformations", []), frames,
                           [layer.get("filterData") or {"id": "alwaysMatch"}
                            for layer in layers])
        return {layer["name"]: out["frames"][matched[0]] if matched else None
                for layer, matched in zip(layers, out["matched"])}
    return run


def test_grafana_data_library_is_the_compose_grafanas_version():
    package = json.loads((ROOT / "tests" / "grafana" / "package.json").read_text())
    compose = yaml.safe_load(COMPOSE.read_text())
    image = compose["services"]["grafana"]["image"]
    assert image == f"grafana/grafana:{package['dependencies']['@grafana/data']}"
    assert image.endswith(blocks.PLUGIN_VERSION)


def _columns(frame: dict) -> dict[str, list]:
    return {f["name"]: f["values"] for f in frame["fields"]}


@pytest.mark.influx
def test_network_map_draws_every_element_of_the_run_with_its_value(recorded, grafana_transform):
    """The Overview map's four queries through the panel's own transformations, run by
    Grafana's data library: the frame each XY series reads holds every bus, line dot and
    transformer dot of the run at its recorded position, with a value."""
    from twin.grid.build import build_net
    from twin.scenario import load_scenario

    model = _committed()["overview.json"]
    panel = _panel(model, dash.NETWORK_TITLE)
    path = ROOT / "scenarios" / "flisr_cigre_mv.yaml"
    want = {(p.tags["element"], p.tags.get("dot")): (p.fields["x_km"], p.fields["y_km"])
            for p in geo_points(build_net(load_scenario(path).grid, path), "r", 0)}
    run = recorded["runs"]["flisr"]
    frames = []
    for t in panel["targets"]:
        series = _query(recorded, substitute(t["query"], model, run))
        frame = grafana_table_frame(t["refId"], series)
        # no empty cell: older Grafana table parsers drop a row that has one
        for f in frame["fields"]:
            assert None not in f["values"], (t["refId"], f["name"])
        frames.append(frame)
    out = grafana_transform(panel["transformations"], frames)
    # the XY series read their frame by index: 0 buses, 1 lines and transformers
    by_series = {s["name"]["fixed"]: s for s in panel["options"]["series"]}
    assert len(out) == 2
    buses = _columns(out[by_series["buses"]["frame"]["matcher"]["options"]])
    branches = _columns(out[by_series["lines and transformers"]["frame"]["matcher"]["options"]])
    bus_series, branch_series = by_series["buses"], by_series["lines and transformers"]
    for cols, s in ((buses, bus_series), (branches, branch_series)):
        for dim in ("x", "y", "color"):
            assert s[dim]["matcher"]["options"] in cols, (s["name"], dim)
    # every bus once, where it is, with its last voltage
    assert len(buses["element"]) == 15
    bus_vm = {s["tags"]["element"]: s["values"][0][1]
              for s in _query(recorded, substitute(panel["targets"][1]["query"], model, run))}
    for name, x, y, vm in zip(buses["element"], buses["x_km"], buses["y_bus_km"],
                              buses["vm_pu"]):
        assert (x, y) == pytest.approx(want[(name, None)])
        assert vm == bus_vm[name] and 0.9 < vm < 1.1
    # every line and trafo as DOTS dots from end to end, each with the element's loading
    n_branches = 15 + 2
    assert len(branches["element"]) == DOTS * n_branches
    loading = {}
    for name, dot, x, y, value in zip(branches["element"], branches["dot"],
                                      branches["x_km"], branches["y_branch_km"],
                                      branches["loading_percent"]):
        assert (x, y) == pytest.approx(want[(name, dot)])
        assert value is not None and 0.0 <= value < 150.0
        assert loading.setdefault(name, value) == value  # one value per element
    assert len(loading) == n_branches
    # the ends of each line's dots are its buses: the layers line up
    bus_xy = {(x, y) for x, y in zip(buses["x_km"], buses["y_bus_km"])}
    ends = {(x, y) for d, x, y in zip(branches["dot"], branches["x_km"], branches["y_branch_km"])
            if d in ("0", str(DOTS - 1))}
    assert ends <= bus_xy


@pytest.mark.influx
def test_geomap_draws_every_bus_of_a_lonlat_run_with_its_voltage_and_the_labels(
        recorded, grafana_geomap_layers):
    """The Overview generated for the SimBench run's scenario is the Geomap variant; its four
    queries return data for that run, and through the panel's transformation and each
    layer's frame filter (Grafana's data library) every layer gets one frame holding what it
    draws: every bus at its longitude/latitude with its last voltage, every line and
    transformer dot, and the labels twin.grid.geo recorded."""
    import simbench

    run = recorded["runs"]["geo"]
    model = dash.overview(dash.Context.from_scenario(run["scenario"]))
    panel = _panel(model, dash.NETWORK_TITLE)
    assert panel["type"] == "geomap"
    net = simbench.get_simbench_net("1-MV-rural--0-sw")
    points = geo_points(net, "r", 0)
    want = {(p.tags["element"], p.tags.get("dot")): (p.fields["lat_deg"], p.fields["lon_deg"])
            for p in points}
    frames, series_of = [], {}
    for t in panel["targets"]:
        series = _query(recorded, substitute(t["query"], model, run))
        assert series, (t["refId"], t["query"])  # every query returns data
        # no empty cell: older Grafana table parsers drop a row that has one
        frame = grafana_table_frame(t["refId"], series)
        for f in frame["fields"]:
            assert None not in f["values"], (t["refId"], f["name"])
        frames.append(frame)
        series_of[t["refId"]] = series
    # the same queries find nothing for a CIGRE run: its points have no degrees
    cigre = _query(recorded, substitute(panel["targets"][0]["query"], model,
                                        recorded["runs"]["day"]))
    assert cigre == []

    layers = grafana_geomap_layers(panel, frames)
    for name, frame in layers.items():
        assert frame is not None, name
        cols = _columns(frame)
        assert {"lat_deg", "lon_deg"} <= set(cols), name
        assert None not in cols["lat_deg"] and None not in cols["lon_deg"], name
    # buses: all 97, each where recorded, with its last voltage in the range
    buses = _columns(layers["buses"])
    assert len(buses["element"]) == len(net.bus) == 97
    bus_vm = {s["tags"]["element"]: s["values"][0][1] for s in series_of["B"]}
    for name, lat, lon, vm in zip(buses["element"], buses["lat_deg"], buses["lon_deg"],
                                  buses["vm_pu"]):
        assert (lat, lon) == pytest.approx(want[(name, None)])
        assert vm == bus_vm[name] and 0.95 < vm < 1.06
    assert 53.6 < min(buses["lat_deg"]) and max(buses["lon_deg"]) < 11.5  # Lower Saxony
    assert min(bus_vm.values()) < max(bus_vm.values())  # voltages differ along the feeders
    # lines and transformers: DOTS dots each, from bus to bus
    dots = _columns(layers["lines and transformers"])
    n_branches = len(net.line) + len(net.trafo)
    assert "vm_pu" not in dots and "label" not in dots
    assert len(dots["element"]) == sum(1 for k in want if k[1] is not None)
    assert len(set(dots["element"])) == n_branches == 99 + 2
    for name, dot, lat, lon in zip(dots["element"], dots["dot"], dots["lat_deg"],
                                   dots["lon_deg"]):
        assert (lat, lon) == pytest.approx(want[(name, dot)])
    # labels: the substation (its two transformers at one place) and the eight feeder heads
    labels = _columns(layers["labels"])
    names = dict(zip(net.bus.index, net.bus["name"]))
    expected = {names[b]: label for b, (_, label) in map_labels(net).items()}
    assert dict(zip(labels["element"], labels["label"])) == expected
    assert expected["MV1.101 busbar1.1"] == "HV1-MV1.101-Trafo1 / HV1-MV1.101-Trafo2"
    assert len(expected) == 1 + 8
    for name, lat, lon in zip(labels["element"], labels["lat_deg"], labels["lon_deg"]):
        assert (lat, lon) == pytest.approx(want[(name, None)])
