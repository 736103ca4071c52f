"""Decision support in whole runs: the shipped fault and load-management scenarios,
shortened. The DMS sees the grid only through the RTUs (trip flags, indicators,
measurements), acts through the command path and the crews, and the reliability KPIs
count what the customers lived through."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from twin.recording.files import read_measurement
from twin.runner import run_scenario

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


def shortened(tmp_path: Path, name: str, tag: str = "", **changes) -> Path:
    data = yaml.safe_load((SCENARIOS / f"{name}.yaml").read_text())
    data.update(duration="100min")
    data["faults"][0].update(after="10min", repair_time="30min")
    data["dms"]["cycle"] = "10min"  # the monitoring cycle; FLISR acts on events
    for key, value in changes.items():
        value(data) if callable(value) else data.update({key: value})
    path = tmp_path / f"{name}{tag}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def seconds(times, start) -> pd.Series:
    return pd.Series((pd.DatetimeIndex(times) - pd.Timestamp(start)).total_seconds(),
                     index=getattr(times, "index", None))


@pytest.fixture(scope="module")
def three_loads(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("flisr3")
    return run_scenario(shortened(tmp, "flisr_three_loads"), out=tmp / "run")


def test_three_loads_follows_the_papers_sequence(three_loads):
    store = three_loads.run_dir / "store"
    start = three_loads.scenario.start
    dec = read_measurement(store, "dms_decision").sort_values("time", kind="stable")
    sequence = list(zip(dec.action, dec.element))
    assert sequence == [
        ("locate_fault", "switch:Breaker 2"),   # Fig. 4: Breaker 2 opened, Loads 2, 3 off
        ("open_switch", "switch:Breaker 3"),    # Fig. 5: isolate the section with Load 2 …
        ("close_switch", "switch:Breaker 4"),   # … and bring Load 3 back from Substation 2
        ("repair_line", "line:Line L1-L2"),
        ("close_switch", "switch:Breaker 2"),   # after the repair: the section first,
        ("open_switch", "switch:Breaker 4"),    # then the tie opens just before
        ("close_switch", "switch:Breaker 3"),   # Breaker 3 takes Load 3 back
    ]
    assert "Breaker 2 tripped" in dec.reason.iloc[0]
    assert "between Line L1-L2 and Line L2-L3" in dec.reason.iloc[0]
    prot = read_measurement(store, "protection")
    trip = prot[prot.kind == "trip"]
    assert trip.element.tolist() == ["Breaker 2"]
    fault_s = 600.0
    assert seconds(trip.time, start).tolist() == [fault_s]
    # Load 3 back within seconds: wait for the indicators (5 s) plus two commands' round trips
    cmd = read_measurement(store, "command")
    b4 = cmd[(cmd.element == "switch:Breaker 4") & (cmd.action == "close")]
    assert 5.0 < seconds(b4.time, start).iloc[0] - fault_s < 7.0
    # Load 2 stays off until the crew has repaired the cable (travel + 30 min)
    crew = read_measurement(store, "crew")
    repaired_s = seconds(crew.time, start).iloc[0]
    assert crew.work_s.iloc[0] == 1800.0 and crew.travel_s.iloc[0] > 0

    load = read_measurement(store, "load")
    l2 = load[load.element == "Load R2"]
    off = seconds(l2[~l2.supplied.astype(bool)].time, start)
    assert off.min() == fault_s and off.max() < repaired_s + 1
    k = three_loads.outcome.kpis
    assert k["customers_interrupted"] == 380  # Load 2 only: Load 3's outages are momentary
    assert k["customer_minutes_interrupted"] == pytest.approx(380 * (repaired_s - fault_s) / 60,
                                                              rel=1e-3)
    assert k["momentary_interruptions"] == 2 * 260  # restoration, and the return to normal
    assert k["saidi_min"] == pytest.approx(k["customer_minutes_interrupted"] / 1090)
    assert k["protection_trips"] == 1 and k["crew_jobs"] == 1
    assert k["switching_operations"] == 5
    demand = l2.set_index(seconds(l2.time, start)).p_demand_mw
    assert k["energy_not_supplied_mwh"] == pytest.approx(
        demand[(demand.index >= fault_s) & (demand.index < repaired_s)].mean()
        * (repaired_s - fault_s) / 3600, rel=0.05)


def _s3_remote(data: dict) -> None:
    data["devices"]["manual_switches"] = []
    rtu = next(r for r in data["rtus"] if r["name"] == "RTU Bus 11")
    rtu["devices"] = ["switch:S3"]


@pytest.fixture(scope="module")
def cigre_runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("flisr_cigre")
    manual = run_scenario(shortened(tmp, "flisr_cigre_mv"), out=tmp / "manual")
    remote = run_scenario(shortened(tmp, "flisr_cigre_mv", "-remote", remote=_s3_remote),
                          out=tmp / "remote")
    return manual, remote


def _close_s(run, target: str) -> float:
    cmd = read_measurement(run.run_dir / "store", "command")
    rows = cmd[(cmd.element == target) & (cmd.action == "close")]
    return float(seconds(rows.time, run.scenario.start).iloc[0])


def test_cigre_remote_tie_restores_in_seconds_manual_after_the_crew(cigre_runs):
    manual, remote = cigre_runs
    fault_s = 600.0
    for run in (manual, remote):
        assert 5.0 < _close_s(run, "switch:S2") - fault_s < 7.0  # remote in both
        assert 5.0 < _close_s(run, "switch:CB Feeder 1") - fault_s < 7.0
    assert 5.0 < _close_s(remote, "switch:S3") - fault_s < 7.0
    crew = read_measurement(manual.run_dir / "store", "crew")
    s3 = crew[crew.element == "switch:S3"].iloc[0]
    assert _close_s(manual, "switch:S3") - fault_s == pytest.approx(
        5.0 + s3.wait_s + s3.travel_s + s3.work_s, abs=1.0)
    km, kr = manual.outcome.kpis, remote.outcome.kpis
    # Buses 9–11 wait for the crew: their customers count as interrupted only then
    assert km["saidi_min"] > kr["saidi_min"] and km["energy_not_supplied_mwh"] > kr[
        "energy_not_supplied_mwh"]
    assert km["customers_interrupted"] > kr["customers_interrupted"]
    assert km["crew_jobs"] > kr["crew_jobs"]
    for k in (km, kr):
        assert k["protection_trips"] == 1 and k["dms_cycles_failed"] == 0


def test_no_flisr_leaves_everyone_behind_the_breaker_off(tmp_path):
    path = shortened(tmp_path, "flisr_three_loads",
                     dms=lambda d: d["dms"]["flisr"].update(mode="off"))
    run = run_scenario(path, out=tmp_path / "off")
    k = run.outcome.kpis
    assert k["customers_interrupted"] == 380 + 260 and k["switching_operations"] == 0
    assert k["caidi_min"] == pytest.approx(90.0)  # from the fault to the end of the run


def test_load_management_moves_the_loads_as_in_the_paper(tmp_path):
    """Paper II.F: the overloaded connection from Grid A is relieved by moving Loads 1 and 2
    to Grid B and Load 3 to Grid C, in stages without a loop."""
    path = SCENARIOS / "load_management_three_grids.yaml"
    heavy = ["profiles.load_scaling=1.3", "duration=30min", "dms.cycle=5min"]
    direct = run_scenario(path, out=tmp_path / "direct", overrides=heavy)
    off = run_scenario(path, out=tmp_path / "off",
                       overrides=[*heavy, "dms.load_management.mode=off"])
    store = direct.run_dir / "store"
    start = direct.scenario.start
    dec = read_measurement(store, "dms_decision")
    dec = dec[dec.function == "load_management"].sort_values("time", kind="stable")
    summary = dec[dec.action == "reconfigure"].iloc[0]
    steps = dec[dec.action != "reconfigure"]
    assert list(zip(steps.action, steps.element)) == [
        ("open_switch", "switch:Breaker A"), ("close_switch", "switch:Breaker B"),
        ("open_switch", "switch:Breaker 2-3"), ("close_switch", "switch:Breaker C")]
    assert summary.element == "line:Line A-1" and "Breaker B, Breaker C" in summary.reason
    assert summary.in_loading_percent > 100 and summary.in_max_loading_after_percent < 60
    cmd = read_measurement(store, "command")
    done_s = seconds(cmd.time, start).max()
    assert (cmd.status == "success").all() and done_s < 10.0  # first cycle at 5 s
    line = read_measurement(store, "line")
    after = line[seconds(line.time, start) > done_s]
    assert after.loading_percent.max() < 60
    a1 = line[line.element == "Line A-1"]
    assert a1.loading_percent.iloc[0] > 100  # the overload the DMS saw, in truth
    k, k_off = direct.outcome.kpis, off.outcome.kpis
    assert k_off["max_line_loading_percent"] > 100 and k["energy_losses_mwh"] < k_off[
        "energy_losses_mwh"]
    # each area is off for one switching time: momentary, never sustained
    assert k["customers_interrupted"] == 0 and k["interruptions_momentary"] >= 1
    assert k["switching_operations"] == 4
    # the switchgear was checked at the start and after each of the four switchings
    sc = read_measurement(store, "dms_short_circuit")
    times = seconds(sc.time, start)
    assert times.nunique() == 5 and sc.ok.all()
    last = sc[times == times.max()].set_index("element")
    assert last.loc["switch:Breaker C", "ikss_max_ka"] > 1.0  # energised now: checked at its real duty
