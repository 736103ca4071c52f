"""The study file, its designs, the run keys and the results table (with resume). The runs
themselves are replaced by a stand-in here (the executor's tests run real ones on Dask, the
CLI's test a whole sweep), so these tests take no simulation."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pandas as pd
import pytest

from twin.scenario import ScenarioError
from twin.study import sweep as sw
from twin.study.jobs import Job

ROOT = Path(__file__).resolve().parents[2]
SMALL = ROOT / "scenarios" / "flisr_three_loads.yaml"


def _study(tmp_path: Path, body: str, name: str = "study.yaml") -> Path:
    path = tmp_path / name
    path.write_text(f"scenario: {SMALL}\n" + textwrap.dedent(body), encoding="utf-8")
    return path


GRID = """\
until: 5min
seeds: [1, 2]
parameters:
  dms.enabled: [on, off]
  rtus[1].scan_period: [30s, 1min, 5min]
"""


# --------------------------------------------------------------------------- designs
def test_grid_is_every_combination_with_every_seed(tmp_path):
    study = sw.load_study(_study(tmp_path, GRID))
    points = sw.design_points(study)
    assert len(points) == 2 * 3
    # values are the text as written: YAML 1.1 would read on/off as booleans
    assert points[0] == {"dms.enabled": "on", "rtus[1].scan_period": "30s"}
    assert points[-1] == {"dms.enabled": "off", "rtus[1].scan_period": "5min"}
    jobs = sw.make_jobs(study, tmp_path / "out")
    assert len(jobs) == 2 * 3 * 2
    assert [j.seed for j in jobs[:4]] == [1, 2, 1, 2]  # the seed varies fastest
    assert jobs[0].overrides == ("dms.enabled=on", "rtus[1].scan_period=30s")
    assert jobs[0].until == "5min" and jobs[0].scenario == str(SMALL)
    assert Path(jobs[0].run_dir) == (tmp_path / "out" / "runs" / jobs[0].key).resolve()


def test_list_zips_the_values(tmp_path):
    study = sw.load_study(_study(tmp_path, """\
        design: list
        parameters:
          dms.cycle: [1min, 2min, 2min]
          profiles.load_scaling: [0.5, 0.50, 1.0]
        """))
    assert sw.design_points(study) == [
        {"dms.cycle": "1min", "profiles.load_scaling": "0.5"},
        {"dms.cycle": "2min", "profiles.load_scaling": "0.50"},  # a value may repeat
        {"dms.cycle": "2min", "profiles.load_scaling": "1.0"}]
    jobs = sw.make_jobs(study, tmp_path)
    assert len(jobs) == 3 and {j.seed for j in jobs} == {None}  # the scenario's seed


LHS = """\
design: lhs
n: 20
seed: {seed}
parameters:
  profiles.load_scaling: [0.5, 1.5]
  crews.n_crews: [1, 4]
"""


def test_lhs_is_seeded_stratified_and_in_range(tmp_path):
    study = sw.load_study(_study(tmp_path, LHS.format(seed=7)))
    points = sw.design_points(study)
    assert len(points) == 20
    scaling = [float(p["profiles.load_scaling"]) for p in points]
    crews = [p["crews.n_crews"] for p in points]
    assert all(0.5 <= x <= 1.5 for x in scaling)
    # a Latin hypercube: one sample in each of the n equal strata of each range
    assert sorted(int((x - 0.5) / 1.0 * 20) for x in scaling) == list(range(20))
    assert all(v.isdigit() and 1 <= int(v) <= 4 for v in crews)  # an integer range
    assert set(crews) == {"1", "2", "3", "4"}
    # integers only: 4 distinct points however many samples, each run once
    study = sw.load_study(_study(tmp_path, "design: lhs\nn: 30\nparameters: "
                                 "{crews.n_crews: [1, 4]}\n", "ints.yaml"))
    assert sorted(p["crews.n_crews"] for p in sw.design_points(study)) == ["1", "2", "3", "4"]
    assert sw.design_points(sw.load_study(_study(tmp_path, LHS.format(seed=7), "b.yaml"))) \
        == points
    assert sw.design_points(sw.load_study(_study(tmp_path, LHS.format(seed=8), "c.yaml"))) \
        != points


# --------------------------------------------------------------------------- keys
def test_keys_are_deterministic_unique_and_readable(tmp_path):
    path = _study(tmp_path, GRID)
    keys = [j.key for j in sw.make_jobs(sw.load_study(path), tmp_path / "out")]
    again = [j.key for j in sw.make_jobs(sw.load_study(path), tmp_path / "elsewhere")]
    assert keys == again and len(set(keys)) == len(keys)
    assert keys[0].startswith("enabled-on_scan_period-30s_seed-1-")
    assert all(k.replace("_", "").replace("-", "").replace(".", "").isalnum() for k in keys)
    # the same values with another duration are other runs
    assert sw.job_key({"a": "1"}, 1, "5min") != sw.job_key({"a": "1"}, 1, "10min")
    assert sw.job_key({"a": "1"}, 1) != sw.job_key({"a": "1"}, 2)


# --------------------------------------------------------------------------- bad files
BAD = {
    "unknown key": ("parameters: {dms.cycle: [1min]}\nsweeps: 3\n", "sweeps: expected one of"),
    "no parameters": ("seeds: [1]\n", "parameters: expected a mapping"),
    "values not a list": ("parameters: {dms.cycle: 1min}\n",
                          "parameters.dms.cycle: expected a non-empty list"),
    "bad key path": ("parameters: {'dms..cycle': [1min]}\n", "parameters.dms..cycle: expected"),
    "design": ("design: sobol\nparameters: {dms.cycle: [1min]}\n", "design: expected grid"),
    "seeds": ("seeds: [1, x]\nparameters: {dms.cycle: [1min]}\n", "seeds: expected"),
    "until": ("until: soon\nparameters: {dms.cycle: [1min]}\n", "until: expected a duration"),
    "unequal lists": ("design: list\nparameters: {dms.cycle: [1min, 2min], seed: [1]}\n",
                      "parameters: expected lists of equal length"),
    "lhs without n": ("design: lhs\nparameters: {dms.cycle: [1, 2]}\n", "n: expected"),
    "lhs range": ("design: lhs\nn: 3\nparameters: {dms.cycle: [1min, 2min]}\n",
                  "parameters.dms.cycle: expected a range [low, high]"),
    "n with grid": ("n: 3\nparameters: {dms.cycle: [1min]}\n", "n: expected no n:"),
    "kpis": ("kpis: [1]\nparameters: {dms.cycle: [1min]}\n", "kpis: expected"),
    "a list combination twice": ("design: list\nparameters: {dms.cycle: [1min, 1min]}\n",
                                 "parameters: expected each combination once"),
    "a grid value twice": ("parameters: {dms.cycle: [1min, 1min]}\n", "expected each value once"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_study_file_is_one_line_saying_where(tmp_path, case):
    body, message = BAD[case]
    path = _study(tmp_path, body)
    with pytest.raises(ScenarioError) as info:
        sw.load_study(path)
    text = str(info.value)
    assert text.startswith(f"{path}: ") and message in text and "\n" not in text


def test_a_missing_scenario_is_refused(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("scenario: nowhere.yaml\nparameters: {dms.cycle: [1min]}\n")
    with pytest.raises(ScenarioError, match=r"s.yaml: scenario: expected an existing"):
        sw.load_study(path)


def test_values_the_scenario_refuses_fail_before_any_run(tmp_path):
    study = sw.load_study(_study(tmp_path, """\
        parameters:
          dms.cycle: [1min, 2min]
          dms.no_such_key: [1]
        """))
    with pytest.raises(ScenarioError, match=r"parameters: expected values the scenario "
                       r"accepts; found run .*no_such_key"):
        sw.check_jobs(study, sw.make_jobs(study, tmp_path))
    too_long = sw.load_study(_study(tmp_path, "until: 6h\nparameters: {dms.cycle: [1min]}\n",
                                    "long.yaml"))
    with pytest.raises(ScenarioError, match="until: expected at most the scenario's duration"):
        sw.check_jobs(too_long, sw.make_jobs(too_long, tmp_path))


# --------------------------------------------------------------------------- table, resume
class FakeRuns:
    """Stands in for the executor: a row per job as run_job makes it, "failed" for the keys
    listed; optionally stops (Ctrl-C) after some jobs."""

    def __init__(self, fail: tuple[str, ...] = (), stop_after: int | None = None) -> None:
        self.fail, self.stop_after, self.calls = fail, stop_after, []

    def __call__(self, jobs: list[Job], *, workers=None, scheduler=None, progress=None):
        self.calls.append([j.key for j in jobs])
        rows = []
        for i, job in enumerate(jobs, start=1):
            if self.stop_after is not None and i > self.stop_after:
                raise KeyboardInterrupt
            failed = any(f in job.key for f in self.fail)
            row = {"key": job.key, "scenario": job.scenario, "seed": job.seed,
                   "overrides": list(job.overrides),
                   "status": "failed" if failed else "completed",
                   "error": "ScenarioError: no such bus" if failed else "",
                   "wall_time_s": 1.5, "run_dir": job.run_dir,
                   "kpis": {} if failed else {"energy_losses_mwh": 0.1 * (job.seed or 0),
                                              "max_line_loading_element": "Line 1",
                                              "tap_operations": 2, "caidi_min": None},
                   "expectations": [] if failed else [{"name": "x", "passed": True},
                                                      {"name": "y", "passed": False}]}
            rows.append(row)
            if progress is not None:
                progress(i, len(jobs), row)
        return rows


@pytest.fixture
def fake(monkeypatch):
    def use(**kwargs) -> FakeRuns:
        runs = FakeRuns(**kwargs)
        monkeypatch.setattr("twin.study.executor.run_jobs", runs)
        return runs
    return use


def test_the_table_one_row_per_run_with_its_columns(tmp_path, fake):
    fake(fail=("scan_period-1min_seed-2",))
    study = sw.load_study(_study(tmp_path, GRID))
    out = tmp_path / "out"
    result = sw.run_sweep(study, out)
    frame = pd.read_parquet(out / "results.parquet")
    assert list(frame.columns) == [
        "key", "dms.enabled", "rtus[1].scan_period", "seed", "status", "energy_losses_mwh",
        "tap_operations", "caidi_min", "expectations_passed", "expectations_failed", "error",
        "wall_time_s", "run_dir"]
    assert len(frame) == 12 and list(frame["key"]) == [j.key for j in result.jobs]
    assert (frame["status"] == "failed").sum() == 2  # one combination, two seeds
    failed = frame[frame["status"] == "failed"].iloc[0]
    assert failed["error"] == "ScenarioError: no such bus" and pd.isna(failed["tap_operations"])
    done = frame[frame["status"] == "completed"]
    assert (done["expectations_passed"] == 1).all() and (done["expectations_failed"] == 1).all()
    assert frame["seed"].tolist()[:2] == [1, 2]
    assert str(frame["energy_losses_mwh"].dtype) == "float64"
    assert frame["run_dir"].iloc[0] == f"runs/{frame['key'].iloc[0]}"
    assert (out / "sweep.html").read_text().count("<script") >= 2  # plotly.js inlined
    assert result.count("completed") == 10 and result.skipped == []


def test_a_second_sweep_skips_the_runs_done_and_failed_ones_unless_asked(tmp_path, fake):
    study = sw.load_study(_study(tmp_path, GRID))
    out = tmp_path / "out"
    fake(fail=("seed-2",))
    sw.run_sweep(study, out)
    first = pd.read_parquet(out / "results.parquet")
    runs = fake()
    result = sw.run_sweep(study, out)
    assert runs.calls == [] and len(result.skipped) == 12 and result.ran == []
    # same study, same table (the wall times are the stand-in's)
    pd.testing.assert_frame_equal(pd.read_parquet(out / "results.parquet"), first)
    result = sw.run_sweep(study, out, retry_failed=True)
    assert len(runs.calls[0]) == 6 and all("seed-2" in k for k in runs.calls[0])
    assert result.count("completed") == 12


def test_an_interrupted_sweep_resumes(tmp_path, fake):
    study = sw.load_study(_study(tmp_path, GRID))
    out = tmp_path / "out"
    fake(stop_after=5)
    with pytest.raises(KeyboardInterrupt):
        sw.run_sweep(study, out)
    assert len(pd.read_parquet(out / "results.parquet")) == 5  # written after each run
    runs = fake()
    sw.run_sweep(study, out)
    assert len(runs.calls[0]) == 7
    assert len(pd.read_parquet(out / "results.parquet")) == 12


def test_selected_kpis_and_lhs_parameters_are_numbers(tmp_path, fake):
    fake()
    study = sw.load_study(_study(tmp_path, LHS.format(seed=1).replace("n: 20", "n: 4")
                                 + "kpis: [tap_operations, saidi_min]\n"))
    sw.run_sweep(study, tmp_path / "out")
    frame = pd.read_parquet(tmp_path / "out" / "results.parquet")
    assert list(frame.columns[1:6]) == ["profiles.load_scaling", "crews.n_crews", "seed",
                                        "status", "tap_operations"]
    assert frame["saidi_min"].isna().all()  # a KPI the runs did not report: an empty column
    assert str(frame["profiles.load_scaling"].dtype) == "float64"


def test_a_misspelt_kpi_is_refused_with_the_close_names(tmp_path):
    from twin.scenario import ScenarioError
    from twin.study.sweep import load_study

    path = tmp_path / "study.yaml"
    path.write_text(f"scenario: {Path(__file__).resolve().parents[2]}/scenarios/"
                    "volt_var_high_pv.yaml\nseeds: [1]\nparameters:\n"
                    "  dms.volt_var.mode: [off, direct]\nkpis: [saidi_minutes]\n")
    with pytest.raises(ScenarioError, match=r"kpis: expected KPI names .*close: .*saidi_min"):
        load_study(path)
