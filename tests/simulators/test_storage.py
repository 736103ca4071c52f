"""EV fleet and batteries in a real mosaik world, driven by the scenario and commands."""

from __future__ import annotations

import numpy as np
import pandas as pd

from twin.recording.files import read_measurement
from twin.runner import run_scenario

T0 = pd.Timestamp("2026-06-21T06:00:00Z")
NO_DEVICES = {"devices": {"manual_switches": [], "capacitors": []}}


def _s(times) -> np.ndarray:
    return (pd.DatetimeIndex(times) - T0).total_seconds().to_numpy()


def test_ev_patterns_and_limits_from_the_scenario(make_scenario, tmp_path):
    path = make_scenario(
        "evs", start="2026-06-21T06:00:00Z", duration="8h", **NO_DEVICES,
        batteries={"attach_existing": False},
        ev_fleet={"n_ev": 120, "home_share": 1.0, "strategy": "limited",
                  "home": {"arrival_h": 9.0, "arrival_sd_h": 0.5, "departure_h": 20.0,
                           "departure_sd_h": 0.5, "departure_next_day": False,
                           "energy_kwh": 20.0, "energy_sd_kwh": 5.0}},
        rtus=[{"name": "RTU EV", "scan_period": "1min", "link": "fibre",
               "points": [{"element": "ev:Bus 1", "quantity": "p_mw"}],
               "devices": ["ev:Bus 1"]}],
        commands=[{"after": "5h", "target": "ev:Bus 1", "action": "set_ev_limit",
                   "value": 0.02}])
    s = run_scenario(path, out=tmp_path / "r")
    ev = read_measurement(s.run_dir / "store", "ev")
    total = ev.groupby("time").n_connected.sum()
    t = _s(total.index)
    local_h = 6 + t / 3600 + 13.4 / 15  # scenario longitude 13.4°: UTC + 0.89 h
    # nobody before 07:30 local (9 h − 3σ), nearly everyone plugged in by 10:30 local
    assert total[local_h < 7.4].sum() == 0
    assert total[(local_h > 10.6) & (local_h < 19)].min() >= 0.97 * 120
    # 120 EVs × ~20 kWh at 92 %: the fleet draws about 2.6 MWh (all before departure)
    assert 2.0 < s.outcome.kpis["ev_energy_mwh"] < 3.2
    # the limit for Bus 1 holds from the EV simulator's next step after it arrived
    bus1 = ev[ev.element == "Bus 1"]
    assert (bus1.p_mw[_s(bus1.time) >= 5 * 3600 + 60] <= 0.02 + 1e-12).all()
    assert bus1.p_mw[_s(bus1.time) < 5 * 3600].max() > 0.02
    # what the EVs drew is what the grid's EV loads drew
    loads = read_measurement(s.run_dir / "store", "load")
    ev_loads = loads[loads.element.str.startswith("EV ")].copy()
    ev_loads["element"] = ev_loads.element.str[3:]
    merged = ev.merge(ev_loads, on=["time", "element"], suffixes=("_ev", "_grid"))
    assert len(merged) == len(ev) and np.allclose(merged.p_mw_ev, merged.p_mw_grid, atol=1e-12)


def test_battery_schedule_and_setpoint(make_scenario, tmp_path):
    path = make_scenario(
        "bat", start="2026-06-21T06:00:00Z", duration="3h", **NO_DEVICES,
        ev_fleet={"n_ev": 0},
        batteries={"attach_existing": False, "units": [
            {"name": "B9", "bus": "Bus 9", "capacity_kwh": 1000, "p_max_kw": 400,
             "soc_init": 0.5, "mode": "schedule",
             "schedule": [{"at": "6h30min", "p_kw": 300}, {"at": "7h", "p_kw": -200}]}]},
        rtus=[{"name": "RTU B9", "scan_period": "1min", "link": "cellular",
               "points": [{"element": "battery:B9", "quantity": "p_mw"}],
               "devices": ["battery:B9"]}],
        commands=[{"after": "2h", "target": "battery:B9", "action": "set_p", "value": 0.1}])
    s = run_scenario(path, out=tmp_path / "r")
    bat = read_measurement(s.run_dir / "store", "battery").sort_values("time")
    t = _s(bat.time)
    assert (bat.p_mw[t < 1800] == 0).all()
    assert np.allclose(bat.p_mw[(t >= 1800) & (t < 3600)], 0.3)
    assert np.allclose(bat.p_mw[(t >= 3600) & (t < 7200)], -0.2)
    assert np.allclose(bat.p_mw[t >= 7200 + 60], 0.1)  # the DMS set-point overrides
    # SOC follows the energy: +0.3 MW·0.5 h·0.95 − 0.2 MW·1 h/0.95 on 1 MWh, minus a
    # little self-discharge (the SOC recorded at t is the one at the end of its step)
    soc_7200 = bat.soc[t == 7200 - 60].iloc[0]
    expected = 0.5 + (0.3 * 0.5 * 0.95 - 0.2 * 1.0 / 0.95) / 1.0
    assert expected - 2e-4 < soc_7200 < expected
    storage = read_measurement(s.run_dir / "store", "storage").query("element == 'B9'")
    assert np.allclose(storage.sort_values("time").p_mw.to_numpy(), bat.p_mw.to_numpy())
