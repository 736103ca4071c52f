"""The field in a real mosaik world: telemetry with latency, commands through the links,
a field crew for a manual switch, an RTU outage."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from twin.recording.files import read_measurement
from twin.runner import run_scenario

T0 = pd.Timestamp("2026-06-21T11:00:00Z")

FIELD = {
    "start": "2026-06-21T11:00:00Z", "duration": "12min", "time_resolution": 0.01,
    "devices": {"manual_switches": ["S3"],
                "capacitors": [{"name": "Cap 14", "bus": "Bus 14", "q_step_mvar": 0.3,
                                "max_step": 3}]},
    "crews": {"n_crews": 1, "depot_bus": "Bus 0", "fixed_travel": "5min", "work_time": "2min"},
    "rtus": [
        {"name": "RTU Sub", "scan_period": "10s", "link": "fibre",
         "points": [{"element": "bus:Bus 1", "quantity": "vm_pu"},
                    {"element": "trafo:Trafo 0-1", "quantity": "tap_pos"},
                    {"element": "switch:S3", "quantity": "closed"}],
         "devices": ["trafo:Trafo 0-1"]},
        {"name": "RTU Feeder", "scan_period": "30s",
         "link": {"preset": "cellular", "outages": [{"after": "4min", "duration": "3min"}]},
         "points": [{"element": "bus:Bus 14", "quantity": "vm_pu"},
                    {"element": "shunt:Cap 14", "quantity": "step"}],
         "devices": ["shunt:Cap 14", "pv:PV 3"]},
    ],
    "commands": [
        {"after": "1min", "target": "switch:S3", "action": "close"},
        {"after": "2min", "target": "shunt:Cap 14", "action": "set_step", "value": 2},
        {"after": "150s", "target": "trafo:Trafo 0-1", "action": "set_tap", "value": -2},
        {"after": "3min", "target": "pv:PV 3", "action": "set_p_limit", "value": 0.001},
        {"after": "5min", "target": "shunt:Cap 14", "action": "set_step", "value": 0},
        {"after": "6min", "target": "switch:S1", "action": "close"},
    ],
}


def _seconds(times) -> np.ndarray:
    return (pd.DatetimeIndex(times) - T0).total_seconds().to_numpy()


@pytest.fixture()
def run(make_scenario, tmp_path):
    return run_scenario(make_scenario("field", **FIELD), out=tmp_path / "r")


def test_field(run):
    store = run.run_dir / "store"
    cmd = read_measurement(store, "command").set_index("id")

    # remote commands: applied after the downlink latency, acknowledged after the uplink
    cap = cmd.loc["op-1"]
    assert cap.status == "success" and cap.via == "RTU Feeder"
    assert (cmd.source == "operator").all()  # the scenario's commands, none of the DMS's
    assert 0.04 <= cap.applied_delay_s < cap.result_delay_s < 1.0  # cellular: 40 ms fixed
    grid = read_measurement(store, "grid")
    t = _seconds(grid.time)
    # the grid re-solved at the tick the capacitor switched, between its regular steps
    applied_s = 120 + cap.applied_delay_s
    assert np.any(np.isclose(t, np.ceil(applied_s / 0.01) * 0.01, atol=1e-6))
    shunt = read_measurement(store, "shunt")
    after = shunt[_seconds(shunt.time) > applied_s]
    assert (after[_seconds(after.time) < 300].step == 2).all()

    tap = cmd.loc["op-2"]
    assert tap.status == "success" and 0.005 <= tap.applied_delay_s < 0.05  # fibre

    # the manual switch: a crew drives 5 min and works 2 min
    s3 = cmd.loc["op-0"]
    assert s3.status == "success" and s3.via == "crew"
    assert s3.applied_delay_s == pytest.approx(420.0)
    sw = read_measurement(store, "switch").query("element == 'S3'")
    closed_at = _seconds(sw[sw.closed.astype(bool)].time).min()
    assert closed_at == pytest.approx(480.0)  # 60 s + 420 s, solved at that tick
    crew = read_measurement(store, "crew")
    assert crew.travel_s.tolist() == [300.0] and crew.work_s.tolist() == [120.0]

    # a set-point: PV 3 is held at 1 kW from its next step on
    pv = read_measurement(store, "pv").query("element == 'PV 3'")
    late = pv[_seconds(pv.time) >= 240]
    assert (late.p_mw <= 0.001 + 1e-12).all()
    assert np.allclose(late.p_mw + late.curtailed_mw, late.p_available_mw)

    # during the feeder link's outage (240–420 s) the command to Cap 14 times out and
    # nothing of that RTU arrives
    assert cmd.loc["op-4"].status == "timeout"
    tel = read_measurement(store, "telemetry")
    feeder = tel[tel.element == "RTU Feeder"]
    ft = _seconds(feeder.time)
    assert not np.any((ft >= 240) & (ft < 420)) and np.any(ft >= 420)
    # S1 is not reachable by any command path
    s1 = cmd.loc["op-5"]
    assert s1.status == "failed" and "not a device reachable" in s1.reason

    # telemetry: source = scan time, latency = delivery − source, values near truth
    sub = tel[tel.element == "RTU Sub"]
    vm = sub[sub.point == "bus:Bus 1/vm_pu"]
    assert len(vm) == 73  # 12 min / 10 s, and a report by exception when S3 closed
    assert ((vm.latency_s > 0.005) & (vm.latency_s < 0.1)).all()
    bus = read_measurement(store, "bus").query("element == 'Bus 1'").sort_values("time")
    # the RTU read the state of the latest solve at or before the scan
    source_s = _seconds(vm.time) - vm.latency_s.to_numpy()
    assert np.allclose(np.sort(source_s), np.sort([*np.arange(72) * 10.0, closed_at]),
                       atol=1e-6)  # scans every 10 s from 0; S3's change at once
    s3_state = sub[sub.point == "switch:S3/closed"]
    first_closed = s3_state[s3_state.value > 0.5]
    assert (_seconds(first_closed.time) - first_closed.latency_s).min() == pytest.approx(closed_at)
    solve_s = _seconds(bus.time)
    truth = bus.vm_pu.to_numpy()[np.searchsorted(solve_s, source_s + 1e-6) - 1]
    assert np.abs(vm.value - truth).max() < 4 * 0.005 * 0.4 + 0.4 / 4095  # 4σ + quantum
    taps = sub[sub.point == "trafo:Trafo 0-1/tap_pos"]
    assert set(taps.value) == {0.0, -2.0}

    comm = read_measurement(store, "comm")
    last = comm[comm.time == comm.time.max()].set_index("element")
    assert last.loc["RTU Feeder", "lost_outage"] >= 6  # scans at 240…390 s, plus the command


@pytest.mark.parametrize("rtu, message", [
    ({"name": "R", "points": [{"element": "bus:Bus 99", "quantity": "vm_pu"}]},
     "rtus[0].points[0].element: expected the name of a bus"),
    ({"name": "R", "points": [{"element": "bus:Bus 1", "quantity": "i_ka"}]},
     "rtus[0].points[0].quantity: expected one of"),
    ({"name": "R", "devices": ["bus:Bus 1"]},
     "rtus[0].devices[0]: expected a controllable device"),
])
def test_field_errors_name_the_key(make_scenario, tmp_path, rtu, message):
    from twin.scenario import ScenarioError

    path = make_scenario("bad", duration="10min", rtus=[rtu])
    with pytest.raises(ScenarioError, match=message.replace("[", r"\[").replace("]", r"\]")):
        run_scenario(path, out=tmp_path / "r")


def test_bad_element_reference_is_refused_when_validating(make_scenario):
    from twin.scenario import ScenarioError, load_scenario

    path = make_scenario("bad", rtus=[{"name": "R", "points": [
        {"element": "Bus 1", "quantity": "vm_pu"}]}])
    with pytest.raises(ScenarioError, match=r"rtus\[0\]\.points\[0\]\.element: expected an "
                                            r"element reference '<kind>:<name>'"):
        load_scenario(path)


# ------------------------------------------------------------- bad commands mid-run
_FLISR = Path(__file__).resolve().parents[2] / "scenarios" / "flisr_three_loads.yaml"
_TAP = "trafo:Trafo Substation 1"


def _flisr_with_tap_device(tmp_path, **changes) -> Path:
    data = yaml.safe_load(_FLISR.read_text(encoding="utf-8"))
    data["rtus"][0]["devices"].append(_TAP)
    data.update(changes)
    path = tmp_path / "flisr_tap.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def test_a_command_without_a_finite_value_fails_as_an_outcome(tmp_path):
    from simulators.field import FieldSim
    from twin.build.prepare import prepare
    from twin.scenario import load_scenario

    path = _flisr_with_tap_device(tmp_path)
    plan = prepare(load_scenario(path), path, check_only=True).field
    sim = FieldSim()
    sim.init("field", time_resolution=0.1)
    sim.create(1, "Field", plan=plan, seed=3, until_ticks=100_000, grid_step_ticks=600)
    commands = [{"id": "c1", "target": _TAP, "action": "set_tap", "value": float("nan")},
                {"id": "c2", "target": _TAP, "action": "set_tap", "value": "up"},
                {"id": "c3", "target": _TAP, "action": "set_tap", "value": float("inf")},
                {"id": "c4", "target": _TAP, "action": "set_tap", "value": 2}]
    sim.step(5, {"field": {"commands": {"dms-0.dms": commands}}}, 100_000)
    out = sim.get_data({"field": ["command_outcomes", "records"]})["field"]
    outcomes = {o["id"]: o for o in out["command_outcomes"]}
    assert sorted(outcomes) == ["c1", "c2", "c3"]  # c4 is on its way through the link
    for o in outcomes.values():
        assert o["status"] == "failed" and "needs a finite number" in o["reason"]
    failed = [r for r in out["records"] if r["measurement"] == "command"]
    assert [r["tags"]["status"] for r in failed] == ["failed"] * 3
    assert failed[1]["fields"]["value"] != failed[1]["fields"]["value"]  # "up": no number (NaN)


def test_a_run_with_bad_commands_completes_and_records_them(tmp_path, monkeypatch):
    """A NaN tap command from the operator (past the scenario checks, as a DMS could send
    it) fails at the field; NaN and out-of-range taps reaching the grid are events."""
    import twin.runner
    from twin.scenario.field import CommandSpec

    path = _flisr_with_tap_device(tmp_path, commands=[
        {"after": "10min", "target": _TAP, "action": "set_tap", "value": 1}])
    real_prepare = twin.runner.prepare

    def prepare_with_a_nan_command(scenario, scenario_file, **kwargs):
        prep = real_prepare(scenario, scenario_file, **kwargs)
        bad = CommandSpec.model_construct(after=600.0, target=_TAP, action="set_tap",
                                          value=float("nan"))
        prep.scenario = scenario.model_copy(update={"commands": [bad]})
        return prep

    def hook(handles):
        script = handles.world.start("Scripted", sim_id="script", attrs=["tap_pos"])
        tap = script.Script(schedule=[(9000, float("nan")), (12000, 42.0)], attr="tap_pos")
        handles.world.connect(tap, handles.grid["trafo-1"], "tap_pos")
        handles.world.set_initial_event(tap.sid, 9000)

    monkeypatch.setattr(twin.runner, "prepare", prepare_with_a_nan_command)
    summary = run_scenario(path, out=tmp_path / "r", until="25min", hook=hook)
    assert summary.outcome.ticks == 15000
    store = summary.run_dir / "store"
    cmd = read_measurement(store, "command").set_index("id")
    assert cmd.loc["op-0", "status"] == "failed"
    assert "needs a finite number" in cmd.loc["op-0", "reason"]
    assert summary.outcome.kpis["commands_failed"] == 1
    events = read_measurement(store, "event")
    grid_events = events[events.kind.isin(["command_rejected", "command_limited"])]
    assert list(grid_events.kind) == ["command_rejected", "command_limited"]
    assert set(grid_events.element) == {"trafo:Trafo Substation 2"}
    snap = read_measurement(store, "trafo")
    assert snap[snap.element == "Trafo Substation 2"].tap_pos.iloc[-1] == 9
