"""Grid sources: builtin, SimBench (with its profiles), a pandapower JSON file."""

from __future__ import annotations

import json

import pandapower as pp
import pytest

from twin.build.resolve import find_element
from twin.grid.build import build_net
from twin.grid.names import element_names
from twin.recording.files import read_measurement
from twin.runner import run_scenario
from twin.scenario import GridSpec, ScenarioError


def test_element_names_are_unique_and_stable():
    net = build_net(GridSpec(builtin="cigre_mv"))
    names = element_names(net, "switch")
    assert names[:2] == ["switch_0", "S2"]  # CIGRE leaves most switches unnamed
    assert len(set(element_names(net, "bus"))) == len(net.bus)
    assert find_element(net, "switch", "S1", "k") == 4
    with pytest.raises(ScenarioError, match="k: expected the name of a bus"):
        find_element(net, "bus", "Bus 99", "k")


# The default scenario's field is CIGRE's: other grids go without it.
NO_FIELD = {"devices": {"capacitors": [], "manual_switches": []}, "rtus": [], "commands": [],
            "ev_fleet": {"n_ev": 0}, "dms": {"enabled": False}}  # no RTUs: nothing to see


def test_simbench_grid_with_simbench_profiles(make_scenario, tmp_path):
    path = make_scenario("sb", start="2026-06-21T10:00:00Z", duration="1h", step="15min",
                         grid={"simbench": "1-MV-rural--0-sw"}, profiles={"source": "simbench"},
                         **NO_FIELD)
    s = run_scenario(path, out=tmp_path / "r")
    k = s.outcome.kpis
    assert k["grid_solves"] == 4 and k["non_converged_steps"] == 0
    store = s.run_dir / "store"
    assert read_measurement(store, "bus")["element"].nunique() == 97
    # SimBench's 6 Wind_MV and 2 PV_MV sgens are driven by the physical models
    assert read_measurement(store, "wind")["element"].nunique() == 6
    assert read_measurement(store, "pv")["element"].nunique() == 2
    loads = read_measurement(store, "load")
    assert loads.p_mw.sum() > 0 and loads.groupby("time").p_mw.sum().nunique() == 4


def test_file_grid_relative_to_scenario(make_scenario, tmp_path):
    net = build_net(GridSpec(builtin="cigre_mv"))
    pp.to_json(net, str(tmp_path / "my_grid.json"))
    path = make_scenario("file", duration="10min", grid={"file": "my_grid.json"})
    s = run_scenario(path, out=tmp_path / "r")
    assert s.outcome.kpis["grid_solves"] == 10


def test_missing_grid_file_is_a_clear_error(make_scenario, tmp_path):
    path = make_scenario("nofile", duration="10min", grid={"file": "nope.json"})
    with pytest.raises(ScenarioError, match="grid.file: expected an existing pandapower JSON"):
        run_scenario(path, out=tmp_path / "r")


def test_unknown_simbench_code_is_a_clear_error():
    with pytest.raises(ScenarioError, match="grid.simbench: expected a valid SimBench code"):
        build_net(GridSpec(simbench="1-XX-nothing"))


def test_new_plants_at_buses(make_scenario, tmp_path):
    path = make_scenario(
        "newplants", start="2026-06-21T11:00:00Z", duration="30min",
        pv={"plants": [{"name": "Solar park", "bus": "Bus 11", "p_peak_kw": 2000}]},
        wind={"plants": [{"name": "New WT", "bus": "Bus 4", "p_rated_kw": 3000}]})
    s = run_scenario(path, out=tmp_path / "r")
    pv = read_measurement(s.run_dir / "store", "pv")
    park = pv[pv.element == "Solar park"]
    assert len(park) == 30 and park.p_mw.max() > 0.5  # 2 MWp near noon in June
    assert park.p_available_mw.max() <= 2.0 / 1.1 + 1e-9  # inverter limit = peak / dc_ac_ratio
    info = json.loads((s.run_dir / "run.json").read_text())
    # a solve per step, and one for each command of the DMS's Volt/Var the field carried out
    # (the park raises the voltages at noon)
    commands = read_measurement(s.run_dir / "store", "command")
    dms = commands[commands["id"].str.startswith("dms-") & (commands["status"] == "success")]
    assert info["grid_solves"] == 30 + len(dms) and len(dms) >= 1
