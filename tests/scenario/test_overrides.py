"""``--set`` key paths: sections by key, list items by index (``rtus[1]`` or ``rtus.1``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from twin.scenario import ScenarioError, load_scenario
from twin.scenario.model import override_path

ROOT = Path(__file__).resolve().parents[2]
FLISR = ROOT / "scenarios" / "flisr_three_loads.yaml"
DAY = ROOT / "scenarios" / "cigre_mv_day.yaml"


@pytest.mark.parametrize(("path", "steps"), [
    ("seed", ["seed"]),
    ("dms.volt_var.mode", ["dms", "volt_var", "mode"]),
    ("rtus[1].scan_period", ["rtus", 1, "scan_period"]),
    ("rtus.1.scan_period", ["rtus", 1, "scan_period"]),
    ("pv.plants[0].p_peak_kw", ["pv", "plants", 0, "p_peak_kw"]),
    ("a[0][2].b", ["a", 0, 2, "b"]),
])
def test_key_paths(path, steps):
    assert override_path(path) == steps


@pytest.mark.parametrize("path", ["a..b", "a[x]", "[1]", "a[1", "a.", ".a", "a[-1]"])
def test_malformed_key_paths(path):
    with pytest.raises(ValueError, match="key path"):
        override_path(path)


def test_a_list_item_is_set_and_validated():
    base = load_scenario(FLISR)
    sc = load_scenario(FLISR, ["rtus[1].scan_period=5s", "rtus.2.scan_period=2min"])
    assert [r.scan_period for r in sc.rtus] == [
        base.rtus[0].scan_period, 5.0, 120.0, *[r.scan_period for r in base.rtus[3:]]]
    sc = load_scenario(FLISR, ["rtus[0].points[0].noise_pct=2"])
    assert sc.rtus[0].points[0].noise_pct == 2.0


def test_list_errors_say_what_was_there():
    n = len(load_scenario(FLISR).rtus)
    with pytest.raises(ScenarioError, match=rf"rtus \(0–{n - 1}\); found index 9"):
        load_scenario(FLISR, ["rtus[9].scan_period=5s"])
    with pytest.raises(ScenarioError, match=r"expected a list at dms"):
        load_scenario(FLISR, ["dms[0].cycle=1min"])
    with pytest.raises(ScenarioError, match=r"rtus\[0\]\.link is not a section"):
        load_scenario(FLISR, ["rtus[0].link.loss_prob=0.1"])  # link: fibre, a preset name
    with pytest.raises(ScenarioError, match="faults"):
        load_scenario(FLISR, ["faults[0].repair_time=-1h"])  # validated as usual


def test_a_missing_section_is_created_but_not_a_list():
    sc = load_scenario(FLISR, ["kpis.voltage_band_pu=[0.94, 1.06]"])
    assert tuple(sc.kpis.voltage_band_pu) == (0.94, 1.06)
    with pytest.raises(ScenarioError, match="has no items to index"):
        load_scenario(FLISR, ["commands[0].after=1h"])


def test_validate_takes_set_like_run():
    from typer.testing import CliRunner

    from twin.cli import app

    ok = CliRunner().invoke(app, ["validate", str(FLISR), "--set", "rtus[1].scan_period=5s"])
    assert ok.exit_code == 0 and "valid:" in ok.output
    bad = CliRunner().invoke(app, ["validate", str(FLISR), "--set", "rtus[9].scan_period=5s"])
    assert bad.exit_code == 2 and "found index 9" in bad.output
