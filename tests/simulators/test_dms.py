"""The DMS in a real world: it sees only telemetry, estimates the state, and its Volt/Var
control acts through the command path."""

from __future__ import annotations

from twin.recording.files import list_measurements, read_measurement
from twin.runner import run_scenario

HIGH_PV = {
    "start": "2026-06-21T11:00:00Z", "duration": "30min", "time_resolution": 0.01,
    "profiles": {"load_scaling": 0.4},
    "pv": {"plants": [{"name": "Solar A", "bus": "Bus 11", "p_peak_kw": 5000},
                      {"name": "Solar B", "bus": "Bus 14", "p_peak_kw": 4000}]},
    "weather": {"cloud_cover": 0.0},
    "devices": {"manual_switches": [], "capacitors": []},
    "ev_fleet": {"n_ev": 0}, "batteries": {"attach_existing": False}, "commands": [],
    "rtus": [
        {"name": "RTU Substation", "scan_period": "10s", "link": "fibre",
         "points": [{"element": "bus:Bus 1", "quantity": "vm_pu"},
                    {"element": "bus:Bus 12", "quantity": "vm_pu"},
                    {"element": "trafo:Trafo 0-1", "quantity": "p_mw"},
                    {"element": "trafo:Trafo 0-1", "quantity": "q_mvar"},
                    {"element": "trafo:Trafo 0-12", "quantity": "p_mw"},
                    {"element": "trafo:Trafo 0-12", "quantity": "q_mvar"},
                    {"element": "trafo:Trafo 0-1", "quantity": "tap_pos"},
                    {"element": "trafo:Trafo 0-12", "quantity": "tap_pos"}],
         "devices": ["trafo:Trafo 0-1", "trafo:Trafo 0-12"]},
        {"name": "RTU Feeder ends", "scan_period": "30s", "link": "cellular",
         "points": [{"element": "bus:Bus 11", "quantity": "vm_pu"},
                    {"element": "bus:Bus 14", "quantity": "vm_pu"}]},
    ],
}


def _run(make_scenario, tmp_path, mode):
    scenario = {**HIGH_PV, "dms": {"enabled": True, "volt_var": {"mode": mode}}}
    return run_scenario(make_scenario(f"vv_{mode}", **scenario), out=tmp_path / mode)


def test_volt_var_modes(make_scenario, tmp_path):
    off, advisory, direct = (_run(make_scenario, tmp_path, m) for m in ("off", "advisory", "direct"))
    for run in (off, advisory, direct):
        k = run.outcome.kpis
        # a cycle a minute, every one estimated from ten telemetry values plus pseudo-loads
        assert k["dms_cycles"] == 30 and k["dms_cycles_failed"] == 0
        assert k["se_error_max_pu"] < 0.01 and k["se_error_mean_pu"] < 0.003
    assert off.outcome.kpis["voltage_violation_minutes"] >= 25  # 9 MWp at noon, light load
    assert "dms_decision" not in list_measurements(off.run_dir / "store")
    # advisory: the same first recommendation, recorded, nothing sent
    adv = read_measurement(advisory.run_dir / "store", "dms_decision")
    assert set(adv["mode"]) == {"advisory"} and len(adv) >= 1
    assert advisory.outcome.kpis["tap_operations"] == 0
    assert advisory.outcome.kpis["voltage_violation_minutes"] >= 25
    # direct: the taps move through the command path and the violation is gone
    k = direct.outcome.kpis
    assert k["tap_operations"] >= 1
    assert k["voltage_violation_minutes"] <= 3
    dec = read_measurement(direct.run_dir / "store", "dms_decision")
    taps = dec[dec.action == "set_tap"]
    assert len(taps) >= 1 and taps.reason.str.contains("above the 1.045 p.u. target").all()
    cmd = read_measurement(direct.run_dir / "store", "command")
    assert (cmd[cmd.action == "set_tap"].status == "success").all()
    assert (cmd[cmd.action == "set_tap"].source == "dms").all()


def test_lossy_links_and_an_outage_make_data_stale_and_decisions_say_so(make_scenario, tmp_path):
    lossy = {"preset": "cellular", "loss_prob": 0.3}
    rtus = [dict(r) for r in HIGH_PV["rtus"]]
    rtus[0]["link"] = {"preset": "fibre", "loss_prob": 0.3}
    rtus[1]["link"] = {**lossy, "outages": [{"after": "2min", "duration": "10min"}]}
    scenario = {**HIGH_PV, "rtus": rtus,
                "dms": {"enabled": True, "stale_after": "1min",
                        "volt_var": {"mode": "advisory", "min_tap_interval": "3min",
                                     "advice_hold": "1min"}}}
    run = run_scenario(make_scenario("lossy", **scenario), out=tmp_path / "r")
    k = run.outcome.kpis
    assert k["dms_cycles"] == 30 and k["dms_cycles_failed"] == 0  # it keeps running
    store = run.run_dir / "store"
    comm = read_measurement(store, "comm")
    last = comm[comm.time == comm.time.max()].set_index("element")
    sent = last.sent.sum()
    assert 0.2 < last.lost_random.sum() / sent < 0.4  # 30 % lost
    assert last.loc["RTU Feeder ends", "lost_outage"] >= 19  # 10 min of 30 s scans
    cycles = read_measurement(store, "dms_cycle").query("function == 'state_estimation'")
    t = (cycles.time - cycles.time.min()).dt.total_seconds()
    # the feeder-end voltages go stale once a minute has passed without them
    assert (cycles.stale[(t > 3 * 60) & (t < 12 * 60)] >= 2).all()
    dec = read_measurement(store, "dms_decision")
    td = (dec.time - cycles.time.min()).dt.total_seconds()
    during = dec[(td > 3 * 60) & (td < 12 * 60)]
    assert len(during) >= 1
    assert during.reason.str.contains("stale telemetry not used: bus:Bus 1[14]").all()
