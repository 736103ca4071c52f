"""compare.html from synthetic run directories: its content, and its rendering in headless
Chromium (the report's harness: tests/report/test_page.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from tests.report.test_page import (  # noqa: F401  (chromium: a fixture)
    _self_contained,
    check_plots_drawn,
    chromium,
    render,
)
from twin.recording.files import FileStore
from twin.recording.schema import Point, dms_decision_record, record_point
from twin.study.compare import (
    Comparison,
    Decision,
    ScenarioPlan,
    Side,
    compare_results,
    load_decisions,
)
from twin.study.compare_html import build_compare_page, unserved_mw, write_compare_html

START = pd.Timestamp("2026-06-21T08:00:00Z")
STEPS = 30


def write_run(run_dir: Path, *, vm_max: float, decisions: list[tuple], outage: bool = False,
              violation_min: float = 0.0) -> dict:
    """A small run directory: run.json, kpis.json and a file store with buses, lines, a
    trafo, two loads and the DMS's decisions; returns its kpis."""
    store = FileStore(run_dir / "store", flush_every_s=None)
    points = []
    for i in range(STEPS):
        t_ns = int((START + pd.Timedelta(minutes=i)).value)
        tags = {"run": run_dir.name}
        hump = 1.0 - abs(i - STEPS / 2) / (STEPS / 2)  # midday peak
        for b, base in (("Bus 1", 1.0), ("Bus 2", 0.99)):
            points.append(Point("bus", t_ns, {**tags, "element": b},
                                {"vm_pu": base + (vm_max - 1.0) * hump}))
        points.append(Point("line", t_ns, {**tags, "element": "Line 1-2"},
                            {"loading_percent": 40.0 + 50.0 * hump}))
        points.append(Point("trafo", t_ns, {**tags, "element": "Trafo 0-1"},
                            {"loading_percent": 30.0 + 20.0 * hump}))
        for name, p_mw in (("Load A", 1.0), ("Load B", 0.5)):
            off = outage and name == "Load B" and 10 <= i < 20
            points.append(Point("load", t_ns, {**tags, "element": name},
                                {"p_mw": 0.0 if off else p_mw, "supplied": not off,
                                 "p_demand_mw": p_mw}))
    for t_s, action, target, value in decisions:
        record = dms_decision_record(t_s, target, "volt_var", action, "direct",
                                     f"{target} because of a high voltage", value, {"vm_pu": 1.06})
        points.append(record_point(record, run_dir.name, int(START.value + t_s * 1e9)))
    store.write(points)
    store.close()
    kpis = {"voltage_band_pu": [0.95, 1.05], "voltage_violation_minutes": violation_min,
            "vm_max_pu": vm_max, "saidi_min": 0.0, "energy_not_supplied_mwh": 0.0,
            "overload_minutes": 0.0, "max_line_loading_element": "Line 1-2",
            "dms_decisions": {"volt_var.set_tap": len(decisions)}}
    (run_dir / "kpis.json").write_text(json.dumps(kpis))
    (run_dir / "run.json").write_text(json.dumps({
        "run_id": run_dir.name, "scenario": "vv", "status": "completed",
        "start": START.isoformat(), "simulated_s": STEPS * 60.0, "step_s": 60.0}))
    return kpis


@pytest.fixture(scope="module")
def compared(tmp_path_factory) -> tuple[dict, Path]:
    """compare.json's content for one scenario × 2 seeds, and the output directory."""
    out = tmp_path_factory.mktemp("compare")
    comparison = Comparison((ScenarioPlan("vv", "/s/vv.yaml", "vv", (11, 12)),),
                            Side("baseline", ("dms.volt_var.mode=off",)),
                            Side("candidate", ("dms.volt_var.mode=direct",)), str(out), "30min")
    rows = []
    for job in comparison.jobs():
        run_dir = Path(job.run_dir)
        candidate = "/candidate/" in job.key
        decisions = ([(5.0, "set_tap", "trafo:Trafo 0-1", 1.0), (65.0, "set_tap",
                                                                  "trafo:Trafo 0-1", 2.0)]
                     if candidate else [(5.0, "set_tap", "trafo:Trafo 0-1", 1.0)])
        kpis = write_run(run_dir, vm_max=1.03 if candidate else 1.07, decisions=decisions,
                         outage=not candidate, violation_min=1.0 if candidate else 12.0 +
                         job.seed % 2)
        rows.append({"key": job.key, "scenario": job.scenario, "seed": job.seed,
                     "overrides": list(job.overrides), "status": "completed", "error": "",
                     "wall_time_s": 2.5, "run_dir": job.run_dir, "kpis": kpis,
                     "expectations": [{"name": "violation below 5 min", "kind": "kpi",
                                       "passed": candidate, "expected": "<= 5",
                                       "actual": kpis["voltage_violation_minutes"]}]})
    return compare_results(comparison, rows), out


def test_decisions_and_unserved_power_from_the_store(compared):
    result, out = compared
    log = load_decisions(out / "runs" / "vv" / "candidate" / "seed-11")
    assert log == [Decision(5.0, "volt_var", "set_tap", "trafo:Trafo 0-1", 1.0, "direct",
                            "trafo:Trafo 0-1 because of a high voltage"),
                   Decision(65.0, "volt_var", "set_tap", "trafo:Trafo 0-1", 2.0, "direct",
                            "trafo:Trafo 0-1 because of a high voltage")]
    assert load_decisions(out / "nowhere") == []
    divergence = result["scenarios"][0]["first_divergence"]
    assert divergence["index"] == 1 and divergence["t_s"] == 65.0
    assert divergence["baseline"] is None and divergence["candidate"]["value"] == 2.0

    load = pd.DataFrame({"time": pd.to_datetime(["2026-01-01"] * 2 + ["2026-01-02"] * 2),
                         "element": ["A", "B"] * 2, "supplied": [True, False, True, True],
                         "p_demand_mw": [1.0, 0.5, 1.0, 0.5]})
    assert unserved_mw(load)["sum"].tolist() == [0.5, 0.0]


def test_page_content(compared):
    result, out = compared
    page = build_compare_page(result, out)
    _self_contained(page)
    assert result["verdict"] == "better"
    assert '<div class="verdict better">verdict: better' in page
    # the KPI table: the critical KPI's row coloured, its interval shown
    row = re.search(r'<tr class="better"><td>voltage_violation_minutes</td>.*?</tr>', page)
    assert row and "[" in row.group(0) and "12.000 → 1.000" in row.group(0)
    assert "Information (not judged" in page and "dms_decisions.volt_var.set_tap" in page
    # the decision logs side by side: the first divergence highlighted
    assert 'class="first-divergence"' in page
    assert "First divergence at decision #2" in page
    assert "baseline max" in page and "candidate min" in page  # overlaid voltage band
    assert "Unserved power" in page and "Line and transformer loading" in page
    assert ">failed</td>" in page and ">passed</td>" in page  # each side's expectations
    assert 'href="runs/vv/baseline/seed-11/report.html"' not in page  # no report written
    assert page.count("<script") == 1 + 3  # plotly.js once, then the three figures


def test_page_renders_in_headless_chromium(chromium, compared, tmp_path):  # noqa: F811
    result, out = compared
    page = write_compare_html(result, out)
    drawn = render(chromium, page, tmp_path / "compare.png")
    assert drawn["errors"] == []
    assert len(drawn["plots"]) == 3  # voltage band, loading, unserved power
    assert check_plots_drawn(drawn) == []
