"""The area's frequency in a run (scenarios/frequency_event.yaml): stepped around the trip,
recorded, at rest afterwards, and the KPIs from it."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.report import test_page as page_check
from twin.evaluation.kpis import KpiAccumulator
from twin.models.frequency import AreaSpec, AreaState, advance
from twin.recording.files import read_measurement
from twin.report import write_report
from twin.runner import run_scenario
from twin.scenario import ScenarioError, load_scenario

SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "frequency_event.yaml"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return run_scenario(SCENARIO, out=tmp_path_factory.mktemp("freq") / "run", until="30min")


def test_the_simulator_is_the_pure_model_stepped_every_100_ms(run):
    sc = load_scenario(SCENARIO)
    spec = AreaSpec(**sc.frequency.area.model_dump())
    rec = read_measurement(run.run_dir / "store", "frequency").sort_values("time")
    t_s = (rec["time"] - pd.Timestamp(sc.start)).dt.total_seconds().to_numpy()
    # from the trip at 10 min, every 0.1 s, until the area rests (then no more steps)
    assert t_s[0] == pytest.approx(600.0) and rec["f_hz"].iloc[0] == 50.0
    assert np.diff(t_s) == pytest.approx(np.full(len(t_s) - 1, 0.1), abs=1e-6)
    assert t_s[-1] < 1800.0 - 60.0 and abs(rec["f_hz"].iloc[-1] - 50.0) < 0.001
    state, f = AreaState(), [50.0]
    for _ in range(len(t_s) - 1):
        state = advance(spec, state, 0.1, -3_000.0).state
        f.append(50.0 + state.df_hz)
    assert rec["f_hz"].to_numpy() == pytest.approx(np.array(f), abs=1e-12)
    assert rec["p_afrr_mw"].iloc[-1] == pytest.approx(3_000.0, rel=1e-3)


def test_kpis_nadir_and_rocof(run):
    k = run.outcome.kpis
    rec = read_measurement(run.run_dir / "store", "frequency")
    # RoCoF right after the trip: ΔP · f0 / (2 H S)
    assert k["rocof_max_hz_s"] == pytest.approx(3_000.0 * 50.0 / (2 * 5.0 * 300_000.0),
                                                rel=1e-9)
    assert k["frequency_nadir_hz"] == pytest.approx(rec["f_min_hz"].min(), abs=1e-9)
    assert k["frequency_nadir_hz"] < rec["f_hz"].min() + 1e-9 < 49.8  # FCR's offset is ~170 mHz
    assert k["frequency_max_hz"] == 50.0
    assert KpiAccumulator().finish(0.0)["frequency_nadir_hz"] is None  # no frequency, no KPI


def test_a_bad_area_is_one_clear_error():
    with pytest.raises(ScenarioError, match=r"frequency\.area.*fcr_deadband_hz below"):
        load_scenario(SCENARIO, ["frequency.area.fcr_deadband_hz=0.5"])


chromium = page_check.chromium  # the fixture: Debian's chromium, skipped if missing


def test_the_report_has_a_frequency_section_drawn_in_headless_chromium(chromium, run,
                                                                        tmp_path):
    report = write_report(run.run_dir)
    page = report.read_text(encoding="utf-8")
    section = page[page.index('<section id="frequency">'):]
    section = section[:section.index("</section>")]
    k = run.outcome.kpis
    assert f"<td>{k['frequency_nadir_hz']:.4f} Hz</td>" in section
    assert f"<td>{k['rocof_max_hz_s']:.4f} Hz/s</td>" in section
    figures = re.findall(r'id="(fig-\d+)"', section)
    assert len(figures) == 2  # frequency and RoCoF; the reserves
    drawn = page_check.render(chromium, report, tmp_path / "frequency.png")
    assert drawn["errors"] == []
    mine = {**drawn, "plots": [b for b in drawn["plots"] if b["id"] in figures]}
    assert len(mine["plots"]) == 2 and page_check.check_plots_drawn(mine) == []
