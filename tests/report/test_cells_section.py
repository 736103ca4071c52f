"""The report's Cells section (twin/report/cells_section.py) on the web of cells' first
70 minutes (scenarios/web_of_cells.yaml: two cells, three batteries, the TSO's request at
Trafo 0-1 from 09:00): its tables carry what the DMS recorded, and headless Chromium draws
its plots."""

from __future__ import annotations

import html
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.report import test_page as page_check
from twin.recording.files import read_measurement
from twin.report import write_report
from twin.report.cells_section import cells_section, scenario_tolerances
from twin.report.figures import Figures
from twin.report.run_data import RunData, load_run
from twin.runner import run_scenario
from twin.scenario import load_scenario

SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "web_of_cells.yaml"
#: web_of_cells.yaml's cells and interface
TOLERANCE_MW = {"South": 0.15, "Feeder 2": 1.0}
Q_TOLERANCE_MVAR = 0.3


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """08:00–09:10: the cells' control from the start, the TSO's 3 Mvar from 09:00."""
    return run_scenario(SCENARIO, out=tmp_path_factory.mktemp("cells") / "run", until="70min")


@pytest.fixture(scope="module")
def section(run) -> str:
    page = write_report(run.run_dir).read_text(encoding="utf-8")
    start = page.index('<section id="cells">')
    return page[start:page.index("</section>", start)]


def _table(section: str, first_header: str) -> list[list[str]]:
    """The body rows (cell texts) of the table whose first header is ``first_header``."""
    start = section.index(f"<thead><tr><th>{html.escape(first_header)}</th>")
    body = section[start:section.index("</tbody>", start)]
    return [[html.unescape(c) for c in re.findall(r"<td>(.*?)</td>", row)]
            for row in re.findall(r"<tr>(.*?)</tr>", body.split("<tbody>", 1)[1])]


def _read(run, measurement: str) -> pd.DataFrame:
    return read_measurement(run.run_dir / "store", measurement).sort_values("time",
                                                                            kind="stable")


def test_the_tie_line_table_is_each_cells_cycles_as_recorded(run, section):
    cells = _read(run, "dms_cell")
    rows = {r[0]: r for r in _table(section, "cell")}
    assert list(rows) == ["South", "Feeder 2"]  # the scenario's order
    kpi = run.outcome.kpis["tie_line_deviation_mw"]
    for name, tol in TOLERANCE_MW.items():
        mine = cells[cells["element"] == name]
        dev = mine["deviation_mw"].to_numpy()
        assert len(dev) == 70  # a cycle a minute
        # mean |export − schedule|: the KPI (South ~0.15 MW, Feeder 2 ~0.77 MW)
        assert float(rows[name][4]) == pytest.approx(kpi[name], abs=1e-6)
        assert float(rows[name][4]) == pytest.approx(np.abs(dev).mean(), abs=5e-7)
        within = 100.0 * np.mean(np.abs(dev) <= tol)
        assert rows[name] == [
            name, f"{mine['schedule_mw'].iloc[-1]:,.3f}", f"{tol:.3f}", "70",
            f"{np.abs(dev).mean():.6f}", f"{within:.1f} %",
            f"{mine['residual_mw'].abs().max():,.3f}", f"{mine['export_mw'].iloc[-1]:,.3f}"]
    assert rows["Feeder 2"][1] == "-11.000" and rows["South"][1] == "0.000"
    assert kpi["South"] < kpi["Feeder 2"]
    # Feeder 2 has loads only: it cannot cover its deviation (a residual); South can
    assert float(rows["Feeder 2"][6]) > 1.0 and float(rows["South"][6]) < 0.2


def test_the_inertia_table_is_each_cells_last_cycle(run, section):
    cells = _read(run, "dms_cell")
    rows = {r[0]: r for r in _table(section, "cell (last cycle)")}
    fields = ("rotating_mws", "synthetic_mws", "deliverable_mws", "receivable_mws")
    for name in TOLERANCE_MW:
        last = cells[cells["element"] == name].iloc[-1]
        assert rows[name][1:] == [f"{last[f]:,.3f}" for f in fields]
    # South holds the machines and the converters; Feeder 2 has none; their only tie
    # (Line 14-8, behind the open S1) carries nothing, so neither can give the other any
    south, feeder = cells[cells["element"] == "South"].iloc[-1], cells[
        cells["element"] == "Feeder 2"].iloc[-1]
    assert south["rotating_mws"] > 0 and south["synthetic_mws"] > 0
    assert feeder["rotating_mws"] == feeder["synthetic_mws"] == 0.0
    assert south["deliverable_mws"] == feeder["receivable_mws"] == 0.0


def test_the_storage_table_is_each_batterys_last_monitored_state(run, section):
    storage = _read(run, "dms_storage")
    rows = _table(section, "battery")
    # by cell, the battery in no cell last
    assert [(r[0], r[1]) for r in rows] == [("Battery 2", "South"), ("Battery S", "South"),
                                            ("Battery 1", "(none)")]
    end = pd.Timestamp("2026-06-21T09:09:05Z")  # the last cycle of 70
    for row in rows:
        last = storage[storage["element"] == row[0]].iloc[-1]
        assert last["time"] == end
        assert row[2:] == [f"{100.0 * last['soc']:.1f}", f"{last['e_mwh']:,.3f}",
                           f"{last['p_mw']:,.3f}", f"{last['up_mw']:,.3f}",
                           f"{last['down_mw']:,.3f}", f"{last['price_eur_mwh']:,.1f}",
                           "2026-06-21 09:09:05.000"]
    # Battery S (3 MWh, from half full) charged to bring South's export to schedule
    s = storage[storage["element"] == "Battery S"].iloc[-1]
    assert s["e_mwh"] == pytest.approx(3.0 * s["soc"], rel=1e-9) and 0.55 < s["soc"] < 0.7


def test_the_interface_table_is_q_against_the_request(run, section):
    q = _read(run, "dms_interface")
    (row,) = _table(section, "interface")
    asked = q.dropna(subset=["q_request_mvar"])
    assert len(q) == 70 and len(asked) == 10  # the request from 09:00
    assert (asked["q_request_mvar"] == 3.0).all()
    assert asked["time"].min() == pd.Timestamp("2026-06-21T09:00:05Z")
    miss = (asked["q_mvar"] - asked["q_request_mvar"]).abs()
    outside = ((q["q_mvar"] < q["q_min_mvar"]) | (q["q_mvar"] > q["q_max_mvar"])).sum()
    assert row == ["Trafo 0-1", "70", "10", f"{miss.mean():,.3f}",
                   f"{100.0 * np.mean(miss <= Q_TOLERANCE_MVAR):.1f} %", str(outside)]
    assert outside == 0
    assert "within tolerance (±0.3 Mvar)" in section


def test_tolerances_come_from_the_scenario_with_the_runs_overrides(tmp_path):
    data = yaml.safe_load(SCENARIO.read_text())
    run = RunData(tmp_path, {"overrides": ["dms.cells.cells[0].tolerance_mw=0.4"]}, {}, data,
                  None, set())
    assert scenario_tolerances(run) == ({"South": 0.4, "Feeder 2": 1.0}, Q_TOLERANCE_MVAR)
    assert load_scenario(SCENARIO).dms.cells.cells[0].tolerance_mw == 0.15  # the file's
    # unreadable back (here: a bad override): no tolerances, the section still shows
    bad = RunData(tmp_path, {"overrides": ["dms.cells.cells[0].tolerance_mw=-1"]}, {}, data,
                  None, set())
    assert scenario_tolerances(bad) == ({}, None)


def test_no_cells_no_section(tmp_path):
    assert cells_section(RunData(tmp_path, {}, {}, {}, None, set()), Figures()) is None


chromium = page_check.chromium  # the fixture: Debian's chromium, skipped if missing


def test_the_cells_section_is_drawn_in_headless_chromium(chromium, run, section, tmp_path):
    assert '<section id="cells">' in section and "<h2>Cells</h2>" in section
    figures = re.findall(r'id="(fig-\d+)"', section)
    assert len(figures) == 3  # tie lines, inertia, the interface
    report = Path(run.run_dir) / "report.html"
    assert load_run(run.run_dir).measurements >= {"dms_cell", "dms_storage", "dms_interface"}
    drawn = page_check.render(chromium, report, tmp_path / "cells.png")
    assert drawn["errors"] == []
    mine = {**drawn, "plots": [b for b in drawn["plots"] if b["id"] in figures]}
    assert len(mine["plots"]) == 3 and page_check.check_plots_drawn(mine) == []
