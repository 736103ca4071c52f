"""A parameter study (``twin sweep STUDY.yaml``): the study file, its design, the jobs and
the results table.

The study file::

    scenario: ../scenarios/volt_var_high_pv.yaml   # relative to the study file
    until: 1h                        # optional, as twin run --until
    seeds: [1, 2]                    # optional; default the scenario's own seed
    design: grid                     # grid (default) | list | lhs
    parameters:                      # key paths as for twin run --set
      dms.volt_var.mode: [off, direct]
      rtus[1].scan_period: [30s, 5min]
    kpis: [voltage_violation_minutes, energy_losses_mwh]   # optional; default all

Designs:

- ``grid``: every combination of the parameters' values (the first parameter varies
  slowest), each with every seed.
- ``list``: the parameters' value lists, of equal length, zipped: run i takes the i-th
  value of each.
- ``lhs``: each parameter a range ``[low, high]`` of numbers, sampled by a Latin hypercube
  of ``n`` points (:class:`scipy.stats.qmc.LatinHypercube`, seeded by the study's ``seed``,
  default 0). A range of two integers gives integers (sampled on [low, high + 1) and
  floored, so each is equally likely), otherwise numbers of 6 significant digits; a point
  drawn twice (integer ranges) runs once.

Values are kept as the text the user wrote (YAML 1.1 would read a bare ``off`` as false and
``5min`` is no number anyway): each becomes ``KEY.PATH=TEXT`` for the scenario's ``--set``,
which reads it as YAML as ``twin run --set`` does.

Each run is a :class:`~twin.study.jobs.Job` whose key is a short readable slug of its
parameter values and seed plus a hash of (parameters, seed, until): the same study gives the
same keys, so the same run directories (``<out>/runs/<key>``) and the same table.

The results table (``<out>/results.parquet``): one row per run, in the design's order:
``key``, the parameters (one column each, named by the key path: text for grid and list,
numbers for lhs), ``seed``, ``status``, the KPIs (numbers; the selected ones, or every
numeric KPI), ``expectations_passed``, ``expectations_failed``, ``error``, ``wall_time_s``
and ``run_dir`` (relative to ``<out>``). It is rewritten after each finished run (aside and
renamed), so an interrupted sweep resumes where it stopped: a run whose row says
"completed" or "failed" is done and skipped. Failed runs are not retried (same scenario and
seed fail the same way) unless asked (``retry_failed``); interrupted ones are.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
import os
import re
import time as wallclock
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path
from typing import Any

import yaml

from twin.evaluation.kpis import numeric_kpi_names
from twin.scenario import ScenarioError, load_scenario
from twin.study.jobs import Job
from twin.timebase import parse_duration_s, short_repr

DESIGNS = ("grid", "list", "lhs")
#: The keys a study file may hold.
STUDY_KEYS = ("scenario", "description", "until", "seeds", "design", "parameters", "n",
              "seed", "kpis")
RESULTS_NAME = "results.parquet"
HTML_NAME = "sweep.html"
RUNS_DIR = "runs"
#: Statuses of a run that is done: a second sweep skips it.
DONE = ("completed", "failed")
#: A study file larger than this is refused (it is a few lines).
MAX_STUDY_BYTES = 1_000_000
#: At most this many runs in one study (a typo such as n: 1000000 must not hang validation).
MAX_RUNS = 100_000


@dataclass(frozen=True)
class Study:
    """A study file, validated.

    ``parameters`` maps each key path to its values: text as written (grid, list) or
    ``(low, high)`` numbers (lhs).
    """

    file: Path
    scenario: Path
    parameters: dict[str, tuple]
    design: str = "grid"
    seeds: tuple[int | None, ...] = (None,)
    until: str | None = None
    n: int | None = None
    seed: int = 0
    kpis: tuple[str, ...] | None = None
    description: str = ""


def _fail(file: Path, where: str, expected: str, found: Any) -> ScenarioError:
    found_text = found if isinstance(found, str) and found.startswith("(") else short_repr(found)
    return ScenarioError(f"{file}: {where}: expected {expected}; found {found_text}")


def _node_text(node: yaml.Node) -> str:
    """A YAML value as the text to put after ``KEY=``: a scalar as written, a list or
    mapping in flow style."""
    if isinstance(node, yaml.ScalarNode):
        return node.value
    value = yaml.safe_load(yaml.serialize(node))
    return yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()


def _mapping_node(node: yaml.Node, key: str) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value == key:
                return v
    return None


def load_study(path: str | Path) -> Study:
    """Read and validate a study file; ScenarioError (one line: file, key path, what was
    expected, what was found) for anything wrong, before any run."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_STUDY_BYTES + 1)
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read the file ({exc.strerror})") from None
    if len(raw) > MAX_STUDY_BYTES:
        raise _fail(path, "the file", f"a study file of at most {MAX_STUDY_BYTES} bytes",
                    "(a larger one)")
    try:
        text = raw.decode("utf-8")
        data = yaml.safe_load(text)
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except UnicodeDecodeError as exc:
        raise _fail(path, f"byte {exc.start}", "UTF-8 text", "(other bytes)") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(parse)"
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise _fail(path, where, "valid YAML", f"({problem})") from None
    if not isinstance(data, dict):
        raise _fail(path, "the file", "a mapping with scenario: and parameters:", data)
    for key in data:
        if key not in STUDY_KEYS:
            raise _fail(path, str(key), f"one of the keys {', '.join(STUDY_KEYS)}",
                        "(an unknown key)")

    scenario = data.get("scenario")
    if not isinstance(scenario, str) or not scenario.strip():
        raise _fail(path, "scenario", "the scenario file's path (relative to the study file)",
                    scenario)
    scenario_path = Path(scenario)
    if not scenario_path.is_absolute():
        scenario_path = path.resolve().parent / scenario_path
    scenario_path = scenario_path.resolve()
    if not scenario_path.is_file():
        raise _fail(path, "scenario", "an existing scenario file", f"({scenario_path} is none)")

    until = data.get("until")
    if until is not None:
        until = str(until) if isinstance(until, (str, int, float)) \
            and not isinstance(until, bool) else until
        try:
            parse_duration_s(until)
        except (ValueError, TypeError):
            raise _fail(path, "until", "a duration such as 1h or 30min", until) from None

    seeds = data.get("seeds")
    if seeds is None:
        seeds_t: tuple[int | None, ...] = (None,)
    else:
        if not isinstance(seeds, list) or not seeds or any(
                not isinstance(s, int) or isinstance(s, bool) or s < 0 for s in seeds):
            raise _fail(path, "seeds", "a non-empty list of integers ≥ 0", seeds)
        if len(set(seeds)) != len(seeds):
            raise _fail(path, "seeds", "each seed once", seeds)
        seeds_t = tuple(seeds)

    design = data.get("design", "grid")
    if design not in DESIGNS:
        raise _fail(path, "design", " | ".join(DESIGNS), design)
    for key in ("n", "seed"):
        if key in data and design != "lhs":
            raise _fail(path, key, f"no {key}: with design {design} (it is for lhs)",
                        data[key])

    params = data.get("parameters")
    node = _mapping_node(root, "parameters")
    if not isinstance(params, dict) or not params or not isinstance(node, yaml.MappingNode):
        raise _fail(path, "parameters", "a mapping of key paths (as for --set) to values",
                    params)
    from twin.scenario.model import override_path

    parameters: dict[str, tuple] = {}
    for key_node, values_node in node.value:
        key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
        where = f"parameters.{key}"
        if not isinstance(key, str) or not key or "=" in key:
            raise _fail(path, "parameters", "key paths such as dms.volt_var.mode", key)
        try:
            override_path(key)
        except ValueError as exc:
            raise _fail(path, where, str(exc).split("; found")[0], key) from None
        if key in parameters:
            raise _fail(path, where, "each parameter once", "(a second time)")
        if not isinstance(values_node, yaml.SequenceNode) or not values_node.value:
            raise _fail(path, where, "a non-empty list of values" if design != "lhs"
                        else "a range [low, high]", yaml.safe_load(yaml.serialize(values_node)))
        if design == "lhs":
            parameters[key] = _range(path, where, values_node)
        else:
            values = tuple(_node_text(v) for v in values_node.value)
            if design == "grid" and len(set(values)) != len(values):
                raise _fail(path, where, "each value once", list(values))
            parameters[key] = values

    n = None
    lhs_seed = 0
    if design == "list":
        lengths = {k: len(v) for k, v in parameters.items()}
        if len(set(lengths.values())) != 1:
            raise _fail(path, "parameters", "lists of equal length with design list",
                        f"({', '.join(f'{k}: {m}' for k, m in lengths.items())})")
        combos = list(zip(*parameters.values()))
        twice = next((c for i, c in enumerate(combos) if c in combos[:i]), None)
        if twice is not None:
            raise _fail(path, "parameters", "each combination once with design list",
                        ", ".join(twice))
    elif design == "lhs":
        n = data.get("n")
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_RUNS:
            raise _fail(path, "n", f"the number of samples with design lhs (1–{MAX_RUNS})", n)
        lhs_seed = data.get("seed", 0)
        if not isinstance(lhs_seed, int) or isinstance(lhs_seed, bool) or lhs_seed < 0:
            raise _fail(path, "seed", "an integer ≥ 0 (the Latin hypercube's seed)", lhs_seed)

    kpis = data.get("kpis")
    if kpis is not None:
        if not isinstance(kpis, list) or not kpis or any(
                not isinstance(k, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", k)
                for k in kpis):
            raise _fail(path, "kpis", "a non-empty list of KPI names (as in kpis.json)", kpis)
        kpis = tuple(dict.fromkeys(kpis))
        known = numeric_kpi_names()
        unknown = [k for k in kpis if k not in known]
        if unknown:
            close = sorted({c for k in unknown
                            for c in difflib.get_close_matches(k, known, n=3)})
            raise _fail(path, "kpis", "KPI names as in kpis.json"
                        + (f" (close: {', '.join(close)})" if close else ""), unknown)
    description = data.get("description") or ""
    if not isinstance(description, str):
        raise _fail(path, "description", "text", description)

    study = Study(file=path, scenario=scenario_path, parameters=parameters, design=design,
                  seeds=seeds_t, until=until, n=n, seed=lhs_seed, kpis=kpis,
                  description=description)
    n_runs = len(design_points(study)) * len(seeds_t)
    if n_runs > MAX_RUNS:
        raise _fail(path, "parameters", f"at most {MAX_RUNS} runs", f"({n_runs} runs)")
    return study


def _range(path: Path, where: str, node: yaml.SequenceNode) -> tuple[float, float]:
    values = yaml.safe_load(yaml.serialize(node))
    if len(values) != 2 or any(not isinstance(v, (int, float)) or isinstance(v, bool)
                               or not math.isfinite(v) for v in values) \
            or not values[0] < values[1]:
        raise _fail(path, where, "a range [low, high] of two numbers, low < high", values)
    return values[0], values[1]


# --------------------------------------------------------------------------- the design
def _integers(low: float, high: float) -> bool:
    return isinstance(low, int) and isinstance(high, int)


def _lhs_text(value: float, low: float, high: float) -> str:
    """A sample as text: an integer range is sampled on [low, high + 1) and floored (each
    integer equally likely), other ranges keep 6 significant digits."""
    if _integers(low, high):
        return str(min(high, max(low, math.floor(value))))
    return f"{value:.6g}"


def design_points(study: Study) -> list[dict[str, str]]:
    """The design's points: each a mapping of key path to value text, in the design's order
    (seeds not included)."""
    names = list(study.parameters)
    if study.design == "grid":
        return [dict(zip(names, combo)) for combo in product(*study.parameters.values())]
    if study.design == "list":
        return [dict(zip(names, combo)) for combo in zip(*study.parameters.values())]
    from scipy.stats import qmc

    sample = qmc.LatinHypercube(d=len(names), seed=study.seed).random(n=study.n or 1)
    lows = [study.parameters[k][0] for k in names]
    highs = [study.parameters[k][1] for k in names]
    ends = [h + 1 if _integers(lo, h) else h for lo, h in zip(lows, highs)]
    scaled = qmc.scale(sample, lows, ends)
    points = [{k: _lhs_text(row[j], lows[j], highs[j]) for j, k in enumerate(names)}
              for row in scaled]
    # integer ranges may draw a point twice: the same run, run once
    unique = {tuple(p.values()): p for p in reversed(points)}
    return [p for p in points if unique[tuple(p.values())] is p]


_UNSAFE = re.compile(r"[^A-Za-z0-9.+-]+")


def job_key(point: dict[str, str], seed: int | None, until: str | None = None) -> str:
    """A run's key: a readable slug of the values and the seed, and a hash of
    (parameters, seed, until) that makes it unique; e.g.
    ``mode-off_scan_period-30s_seed-1-3f2a9c1e``."""
    parts = []
    for name, value in point.items():
        last = re.sub(r"\[\d+\]", "", name.rsplit(".", 1)[-1]) or name
        parts.append(f"{last}-{_UNSAFE.sub('', value)[:16]}")
    if seed is not None:
        parts.append(f"seed-{seed}")
    slug = re.sub(r"[^A-Za-z0-9_.+-]", "", "_".join(parts))[:72].strip("._-") or "run"
    digest = hashlib.sha256(json.dumps([list(point.items()), seed, until],
                                       separators=(",", ":")).encode()).hexdigest()[:8]
    return f"{slug}-{digest}"


def make_jobs(study: Study, out: str | Path) -> list[Job]:
    """One job per design point and seed (the seed varies fastest), run directories under
    ``<out>/runs/``."""
    runs = Path(out).resolve() / RUNS_DIR
    jobs = []
    for point in design_points(study):
        overrides = tuple(f"{k}={v}" for k, v in point.items())
        for seed in study.seeds:
            key = job_key(point, seed, study.until)
            jobs.append(Job(key=key, scenario=str(study.scenario), overrides=overrides,
                            seed=seed, until=study.until, run_dir=str(runs / key)))
    return jobs


def check_jobs(study: Study, jobs: list[Job]) -> None:
    """Each job's scenario loads (its overrides apply and validate) and ``until`` fits its
    duration; ScenarioError naming the study, the run and the reason otherwise. Checked
    before any run."""
    checked: set[tuple[str, ...]] = set()
    for job in jobs:
        if job.overrides in checked and job.seed is not None:
            continue  # a seed never makes a scenario invalid; the values do
        checked.add(job.overrides)
        try:
            scenario = load_scenario(job.scenario, job.all_overrides() or None)
        except ScenarioError as exc:
            text = str(exc).removeprefix(f"{job.scenario} (with --set): ")
            raise ScenarioError(f"{study.file}: parameters: expected values the scenario "
                                f"accepts; found run {job.key} ({', '.join(job.overrides)}): "
                                f"{text}") from None
        if study.until is not None and parse_duration_s(study.until) > scenario.duration:
            raise _fail(study.file, "until", f"at most the scenario's duration "
                        f"({scenario.duration:g} s)", study.until)


# --------------------------------------------------------------------------- the table
def _number(value: Any) -> float:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    return math.nan


def kpi_columns(study: Study, rows: list[dict]) -> list[str]:
    """The selected KPIs, or every numeric KPI of the rows (in the order of the first row
    that has it)."""
    if study.kpis is not None:
        return list(study.kpis)
    names: dict[str, None] = {}
    for row in rows:
        for name, value in (row.get("kpis") or {}).items():
            if isinstance(value, (int, float)) or value is None:
                names.setdefault(name, None)
    # a KPI that is text in any run (an element's name) is no column
    return [n for n in names if not any(isinstance((r.get("kpis") or {}).get(n), str)
                                        for r in rows)]


def table(study: Study, jobs: list[Job], rows: dict[str, dict], out: str | Path):
    """The results table (a pandas DataFrame) of the jobs that have a row, in job order."""
    import pandas as pd

    out = Path(out).resolve()
    ordered = [rows[j.key] for j in jobs if j.key in rows]
    kpis = kpi_columns(study, ordered)
    lhs = study.design == "lhs"
    records = []
    for job, row in ((j, rows[j.key]) for j in jobs if j.key in rows):
        point = dict(o.split("=", 1) for o in job.overrides)
        rec: dict[str, Any] = {"key": job.key}
        for name in study.parameters:
            rec[name] = float(point[name]) if lhs else point[name]
        rec["seed"] = row.get("seed")
        rec["status"] = row.get("status")
        for name in kpis:
            rec[name] = _number((row.get("kpis") or {}).get(name))
        results = row.get("expectations") or []
        rec["expectations_passed"] = sum(1 for r in results if r.get("passed") is True)
        rec["expectations_failed"] = sum(1 for r in results if r.get("passed") is False)
        rec["error"] = row.get("error") or ""
        rec["wall_time_s"] = float(row.get("wall_time_s") or 0.0)
        run_dir = Path(row.get("run_dir") or job.run_dir)
        rec["run_dir"] = (os.path.relpath(run_dir, out) if run_dir.is_absolute()
                          else str(run_dir))
        records.append(rec)
    columns = ["key", *study.parameters, "seed", "status", *kpis, "expectations_passed",
               "expectations_failed", "error", "wall_time_s", "run_dir"]
    frame = pd.DataFrame.from_records(records, columns=columns)
    frame["seed"] = frame["seed"].astype("Int64")
    for name in ("expectations_passed", "expectations_failed"):
        frame[name] = frame[name].astype("int64")
    for name in kpis:
        frame[name] = frame[name].astype("float64")
    return frame


def write_table(frame, path: str | Path) -> None:
    """Written aside and renamed: a reader (or an interrupted sweep) never sees half a
    table."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        frame.to_parquet(tmp, index=False)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_rows(study: Study, jobs: list[Job], path: str | Path) -> dict[str, dict]:
    """The rows of an earlier sweep into the same directory, by key, as rows again
    (:func:`~twin.study.jobs.run_job`'s form, KPIs those of the table); {} if there is
    none or it cannot be read."""
    import pandas as pd

    path = Path(path)
    if not path.exists():
        return {}
    try:
        frame = pd.read_parquet(path)
    except Exception:  # noqa: BLE001 (an unreadable table: every run is to do again)
        return {}
    wanted = {j.key: j for j in jobs}
    fixed = {"key", "seed", "status", "expectations_passed", "expectations_failed", "error",
             "wall_time_s", "run_dir", *study.parameters}
    kpis = [c for c in frame.columns if c not in fixed]
    rows = {}
    for rec in frame.to_dict("records"):
        job = wanted.get(rec.get("key"))
        if job is None:
            continue  # a run of another version of the study
        # the expectation counts as results again, enough to count them back
        results = ([{"passed": True}] * int(rec.get("expectations_passed") or 0)
                   + [{"passed": False}] * int(rec.get("expectations_failed") or 0))
        seed = rec.get("seed")
        rows[job.key] = {
            "key": job.key, "scenario": job.scenario,
            "seed": None if seed is None or pd.isna(seed) else int(seed),
            "overrides": list(job.overrides), "status": rec.get("status"),
            "error": rec.get("error") or "", "wall_time_s": float(rec.get("wall_time_s") or 0),
            "run_dir": job.run_dir,
            "kpis": {k: (None if pd.isna(rec[k]) else float(rec[k])) for k in kpis},
            "expectations": results,
        }
    return rows


@dataclass
class SweepResult:
    """What a sweep did: the table's rows by key, which ran now and which were skipped."""

    study: Study
    jobs: list[Job]
    rows: dict[str, dict]
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    wall_time_s: float = 0.0
    results_path: Path | None = None
    html_path: Path | None = None

    def count(self, status: str) -> int:
        return sum(1 for r in self.rows.values() if r.get("status") == status)


def run_sweep(study: Study, out: str | Path, *, workers: int | None = None,
              scheduler: str | None = None, retry_failed: bool = False,
              on_start: Callable[[int, int], None] | None = None,
              progress: Callable[[int, int, dict], None] | None = None) -> SweepResult:
    """Run the study's runs not done yet into ``out`` and write ``results.parquet`` (after
    each finished run) and ``sweep.html`` (at the end).

    Parameters
    ----------
    on_start : callable, optional
        ``on_start(to_run, skipped)`` once the runs to do are known.
    progress : callable, optional
        ``progress(done, total, row)`` after each finished run (of those to run).

    Raises
    ------
    ScenarioError
        A run's parameters the scenario does not accept (checked before any run).
    """
    from twin.study.executor import run_jobs
    from twin.study.sweep_html import write_html

    t0 = wallclock.perf_counter()
    out = Path(out).resolve()
    jobs = make_jobs(study, out)
    check_jobs(study, jobs)
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / RESULTS_NAME
    rows = read_rows(study, jobs, results_path)
    done = DONE if not retry_failed else ("completed",)
    rows = {k: r for k, r in rows.items() if r.get("status") in done}
    todo = [j for j in jobs if j.key not in rows]
    result = SweepResult(study, jobs, rows, skipped=[j.key for j in jobs if j.key in rows],
                         results_path=results_path)
    if on_start is not None:
        on_start(len(todo), len(result.skipped))
    write_table(table(study, jobs, rows, out), results_path)

    def finished(n_done: int, total: int, row: dict) -> None:
        rows[row["key"]] = row
        result.ran.append(row["key"])
        write_table(table(study, jobs, rows, out), results_path)
        if progress is not None:
            progress(n_done, total, row)

    if todo:
        run_jobs(todo, workers=workers, scheduler=scheduler, progress=finished)
    frame = table(study, jobs, rows, out)
    write_table(frame, results_path)
    result.html_path = write_html(study, frame, out / HTML_NAME)
    result.wall_time_s = wallclock.perf_counter() - t0
    return result
