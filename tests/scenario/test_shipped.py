"""The scenario files the project ships are valid and do what their comments say."""

from __future__ import annotations

from pathlib import Path

import pytest

from twin.runner import run_scenario
from twin.scenario import load_scenario

SCENARIOS = sorted((Path(__file__).resolve().parents[2] / "scenarios").glob("*.yaml"))


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_shipped_scenario_is_valid(path):
    assert load_scenario(path).name == path.stem


def test_volt_var_high_pv_modes_compare(tmp_path):
    path = next(p for p in SCENARIOS if p.stem == "volt_var_high_pv")
    noon = ["start=2026-06-21T11:00:00Z", "duration=20min"]
    off = run_scenario(path, out=tmp_path / "off", overrides=[*noon, "dms.volt_var.mode=off"])
    direct = run_scenario(path, out=tmp_path / "direct",
                          overrides=[*noon, "dms.volt_var.mode=direct"])
    k_off, k_direct = off.outcome.kpis, direct.outcome.kpis
    # all the time at noon, from the KPI warmup on (the first step after the DMS's first
    # cycle: 1 min)
    assert k_off["warmup_s"] == 60.0
    assert k_off["voltage_violation_minutes"] == pytest.approx(20.0 - 1.0)
    assert k_direct["voltage_violation_minutes"] < 5
    assert k_direct["tap_operations"] + k_direct["capacitor_operations"] >= 1
    # the banks the time clock left in cost losses as well as voltage: control saves both
    assert k_direct["energy_losses_mwh"] <= k_off["energy_losses_mwh"]
    assert (tmp_path / "direct" / "overrides.txt").read_text().count("=") == 3
