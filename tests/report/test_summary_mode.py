"""The report of a run whose element tables are not whole (``recording.elements: summary``):
every grid section is there, and its numbers equal those of the same run recorded whole.

Both runs: the default scenario for 2 h with the voltage band tightened to 0.98–1.02 p.u., so
the summary's bus table holds rows (Bus 0 sits at the slack's 1.03 p.u., others cross
1.02 p.u.) and a statistic over them would differ from one over all buses. The band reaches
the DMS too, so both runs share it.
"""

from __future__ import annotations

import html
import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from tests.report import test_page as page_check
from twin.recording.files import read_measurement
from twin.report import load_run, network_figure, write_report
from twin.report.extremes_sections import band_per_step, branch_peaks, bus_worst
from twin.runner import run_scenario

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SCENARIO = ROOT / "scenarios" / "cigre_mv_day.yaml"
BAND = ["kpis.voltage_band_pu=[0.98, 1.02]"]
chromium = page_check.chromium  # the fixture: Debian's chromium, skipped if missing


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("summary")
    for elements in ("all", "summary"):
        run_scenario(DEFAULT_SCENARIO, out=base / elements, until="2h",
                     overrides=[*BAND, f"recording.elements={elements}"])
    return {"all": base / "all", "summary": base / "summary"}


def _store(run_dir: Path, measurement: str) -> pd.DataFrame:
    return read_measurement(run_dir / "store", measurement)


def test_run_json_says_the_effective_policy(runs):
    recording = json.loads((runs["summary"] / "run.json").read_text())["recording"]
    assert recording["elements"] == "summary" and recording["every_s"] is None
    assert json.loads((runs["all"] / "run.json").read_text())["recording"]["elements"] == "all"
    assert load_run(runs["all"]).tables_whole and not load_run(runs["summary"]).tables_whole


def test_summary_report_has_every_grid_section(runs):
    page = write_report(runs["summary"]).read_text(encoding="utf-8")
    for title in ("Network", "Voltage band", "Bus voltage over the run",
                  "Line and transformer loading over the run", "Key performance indicators"):
        assert f">{html.escape(title)}" in page, title
    assert "Per-step element data were recorded only for violations" in page
    assert "lowest over the run" in page and "highest over the run" in page
    # the most loaded elements listed with the whole run's peaks
    peaks = pd.concat([_store(runs["all"], m) for m in ("line", "trafo")]).groupby(
        "element")["loading_percent"].max()
    for element in _store(runs["all"], "line").groupby("element")["loading_percent"].max() \
            .nlargest(3).index:
        assert f"<td>{element}</td><td>{peaks[element]:.1f}</td>" in page, element


def test_band_per_step_is_the_whole_runs_min_and_max_over_buses(runs):
    summary = load_run(runs["summary"])
    band = band_per_step(summary)
    bus = _store(runs["all"], "bus")
    bus["time"] = bus["time"].dt.tz_convert("UTC").dt.tz_localize(None)
    whole = bus.groupby("time")["vm_pu"].agg(["min", "max"])
    # every one-minute step, and a solve of its own for each command the DMS had executed
    on_grid = (whole.index.asi8 % (60 * 10**9) == 0).sum()
    assert len(band) == len(whole) and on_grid == 120 and len(whole) > on_grid
    assert band["min"].to_numpy() == pytest.approx(whole["min"].to_numpy(), abs=1e-12)
    assert band["max"].to_numpy() == pytest.approx(whole["max"].to_numpy(), abs=1e-12)
    # what a statistic over the rows kept would have said instead: the violating buses only
    kept = summary.read("bus")
    assert kept is not None and kept["element"].nunique() < 15
    assert (kept.groupby("time")["vm_pu"].min() > whole["min"].reindex(
        kept["time"].unique()).to_numpy() + 1e-3).any()


def test_extremes_equal_the_whole_runs_per_element_extremes(runs):
    summary = load_run(runs["summary"])
    bus = _store(runs["all"], "bus")
    low, high = bus.groupby("element")["vm_pu"].min(), bus.groupby("element")["vm_pu"].max()
    extremes = _store(runs["summary"], "bus_extremes").set_index("element")
    assert extremes["vm_min_pu"].sort_index().to_numpy() == pytest.approx(
        low.sort_index().to_numpy(), abs=1e-12)
    assert extremes["vm_max_pu"].sort_index().to_numpy() == pytest.approx(
        high.sort_index().to_numpy(), abs=1e-12)
    worst = bus_worst(summary)
    furthest = {e: g.loc[(g["vm_pu"] - 1).abs().idxmax(), "vm_pu"]
                for e, g in bus.groupby("element")}
    assert worst.to_dict() == pytest.approx(furthest, abs=1e-12)
    peaks = pd.concat([_store(runs["all"], m) for m in ("line", "trafo")]).groupby(
        "element")["loading_percent"].max().dropna()
    assert branch_peaks(summary) == pytest.approx(peaks.to_dict(), abs=1e-9)


def test_network_map_colours_match_the_whole_run(runs):
    maps = {kind: {t.name: t for t in network_figure(load_run(runs[kind])).data if t.name}
            for kind in ("all", "summary")}
    for trace in ("buses", "lines, transformers"):
        whole, summary = maps["all"][trace], maps["summary"][trace]
        assert list(summary.hovertext) == list(whole.hovertext), trace
        assert list(summary.marker.color) == pytest.approx(list(whole.marker.color)), trace


def test_a_run_that_wrote_no_extremes_says_so(runs, tmp_path):
    # an interrupted run never reaches the recorder's finalize: no extremes, no guesses
    copy = Path(shutil.copytree(runs["summary"], tmp_path / "run"))
    for name in ("bus_extremes", "line_extremes", "trafo_extremes"):
        shutil.rmtree(copy / "store" / name)
    info = json.loads((copy / "run.json").read_text())
    info.update(status="interrupted", reason="interrupted by SIGINT")
    (copy / "run.json").write_text(json.dumps(info))
    page = write_report(copy).read_text(encoding="utf-8")
    assert ">Voltage band<" in page and ">Bus voltage over the run<" in page
    assert "No bus extremes" in page and "the run did not complete" in page
    assert "No line and transformer extremes" in page


def test_summary_report_renders_in_headless_chromium(chromium, runs, tmp_path):
    report = write_report(runs["summary"])
    drawn = page_check.render(chromium, report, tmp_path / "summary.png")
    assert drawn["errors"] == []
    # map, band, extremes heatmap, top loaded; DER, batteries, EV, comm (3); DMS decisions
    assert len(drawn["plots"]) >= 9
    # the decision timeline of 2 h holds two markers (the first cycle's tap moves): too few
    # pixels for the share the full check asks of a plot, so it is checked for drawn
    # markers alone
    page = report.read_text(encoding="utf-8")
    heading = page.rindex(">DMS decisions and protection<")  # the section, not the contents
    timeline = re.search(r'id="(fig-\d+)"', page[heading:]).group(1)
    full = {**drawn, "plots": [b for b in drawn["plots"] if b["id"] != timeline]}
    assert page_check.check_plots_drawn(full) == []
    (box,) = [b for b in drawn["plots"] if b["id"] == timeline]
    stats = page_check.plot_pixels(page_check.read_png(drawn["png"]), box)
    assert stats["coloured_share"] > 1e-4 and stats["colours"] >= 40, stats
