"""``twin compare``: a baseline and a candidate DMS over the same scenarios and seeds, on Dask;
writes ``DIR/compare.json`` and ``DIR/compare.html``, prints the verdict, and exits 0 when the
candidate is no worse on every critical KPI (1 otherwise, 2 for bad input) so a CI pipeline
can gate on it. The rule: :mod:`twin.study.compare`."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

console = Console()
err_console = Console(stderr=True, soft_wrap=True)

COMPARE_JSON = "compare.json"


def _fail(message: str, code: int = 2) -> None:
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    raise typer.Exit(code)


def compare(
    scenarios: Annotated[list[Path], typer.Argument(
        metavar="SCENARIO",
        help="Scenario YAML files; each is run by both sides with the same seeds.")],
    baseline_set: Annotated[list[str] | None, typer.Option(
        "--baseline-set", help="Override a scenario key for the baseline, as `twin run --set` "
        "(repeat it), e.g. --baseline-set dms.volt_var.mode=off.")] = None,
    candidate_set: Annotated[list[str] | None, typer.Option(
        "--candidate-set", help="Override a scenario key for the candidate, e.g. "
        "--candidate-set dms.volt_var.mode=direct.")] = None,
    baseline_dms: Annotated[str | None, typer.Option(
        "--baseline-dms", help="The baseline's DMS class, 'package.module:Class' or "
        "'path/file.py:Class' (default: the scenario's).")] = None,
    candidate_dms: Annotated[str | None, typer.Option(
        "--candidate-dms", help="The candidate's DMS class, as --baseline-dms.")] = None,
    seeds: Annotated[int, typer.Option(
        "--seeds", help="Seeds per scenario: the scenario's own seed s, then s+1 … s+N-1; "
        "both sides run the same.")] = 1,
    until: Annotated[str | None, typer.Option(
        "--until", help="Stop every run earlier, e.g. '2h'.")] = None,
    workers: Annotated[int | None, typer.Option(
        "--workers", help="Dask worker processes (default: this machine's cores).")] = None,
    scheduler: Annotated[str | None, typer.Option(
        "--scheduler", help="Run on an existing Dask cluster, 'tcp://host:port'.")] = None,
    out: Annotated[Path | None, typer.Option(
        "--out", help="Output directory (default runs/compare-<time>).")] = None,
    critical: Annotated[list[str] | None, typer.Option(
        "--critical", help="A KPI the verdict and the exit code come from (repeat it; "
        "default: voltage_violation_minutes, saidi_min, energy_not_supplied_mwh, "
        "overload_minutes).")] = None,
    rtol: Annotated[float, typer.Option(
        "--rtol", help="Relative tolerance: a KPI is the same when its mean change is within "
        "atol + rtol·|baseline mean|.")] = 0.01,
    gate: Annotated[str, typer.Option(
        "--gate", help="What fails the exit code: 'mean' — a critical KPI worse by the rule; "
        "'every-seed' — also a critical KPI that one seed alone made worse.")] = "mean",
    no_progress: Annotated[bool, typer.Option("--no-progress", help="No progress bar.")] = False,
) -> None:
    """Compare a baseline and a candidate DMS over the same scenarios and seeds.

    Writes DIR/compare.json (the verdict, per scenario and KPI the values, deltas and a 95 %
    interval over seeds, expectations, the first decision where the DMSs diverged) and
    DIR/compare.html. Exit 0 if the candidate is no worse on every critical KPI and every run
    completed, 1 otherwise, 2 for bad input."""
    from twin.study.compare import DEFAULT_CRITICAL, Comparison, Side

    critical_kpis = tuple(dict.fromkeys(critical)) if critical else DEFAULT_CRITICAL
    if gate not in ("mean", "every-seed"):
        _fail(f"--gate: expected 'mean' or 'every-seed'; found {gate!r}")
    _check_options(seeds, workers, rtol, critical_kpis, baseline_set, candidate_set)
    baseline = Side("baseline", tuple(baseline_set or ()), _absolute_class(baseline_dms))
    candidate = Side("candidate", tuple(candidate_set or ()), _absolute_class(candidate_dms))
    plans = _plan_scenarios(scenarios, seeds, until, (baseline, candidate))
    out_dir = (out or Path("runs") / f"compare-{datetime.now(UTC):%Y%m%dT%H%M%SZ}")
    out_dir = out_dir.resolve()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        _fail(f"--out: cannot create {out_dir} ({exc.strerror})")
    comparison = Comparison(tuple(plans), baseline, candidate, str(out_dir), until,
                            critical_kpis, rtol, gate)
    rows = _run(comparison, workers, scheduler, no_progress)
    _finish(comparison, rows, out_dir)


def _check_options(seeds: int, workers: int | None, rtol: float, critical: tuple[str, ...],
                   baseline_set: list[str] | None, candidate_set: list[str] | None) -> None:
    from twin.evaluation.kpi_meta import judged_kpis

    if seeds < 1:
        _fail(f"--seeds: expected at least 1; found {seeds}")
    if workers is not None and workers < 1:
        _fail(f"--workers: expected at least 1; found {workers}")
    if not (math.isfinite(rtol) and rtol >= 0):
        _fail(f"--rtol: expected a number ≥ 0; found {rtol}")
    judged = judged_kpis()
    for key in critical:
        if key not in judged:
            _fail(f"--critical: expected a KPI with a good direction ({', '.join(judged)}); "
                  f"found {key!r}")
    for option, items in (("--baseline-set", baseline_set), ("--candidate-set", candidate_set)):
        for item in items or ():
            if item.partition("=")[0].strip() == "seed":
                _fail(f"{option}: both sides run the same seeds, set by --seeds from the "
                      f"scenario's own; found {item!r}")


def _absolute_class(spec: str | None) -> str | None:
    """A ``file.py:Class`` whose file is found from here, with the file's absolute path (the
    workers may run elsewhere); anything else unchanged."""
    if spec is None:
        return None
    where, sep, name = spec.rpartition(":")
    if sep and where.endswith(".py") and Path(where).is_file():
        return f"{Path(where).resolve()}:{name}"
    return spec


def _plan_scenarios(files: list[Path], n_seeds: int, until: str | None, sides) -> list:
    """Each scenario's label and seeds; every side's overrides checked as a run would."""
    from twin.dms.api import DMSLoadError, load_dms_class
    from twin.scenario import ScenarioError, load_scenario
    from twin.study.compare import ScenarioPlan, seed_list, unique_labels
    from twin.timebase import parse_duration_s

    until_s = None
    if until is not None:
        try:
            until_s = parse_duration_s(until)
        except ValueError as exc:
            _fail(f"--until: expected {exc}")
    labels = unique_labels([f.stem for f in files])
    plans = []
    for label, path in zip(labels, files):
        try:
            scenario = load_scenario(path)
            seeds = seed_list(scenario.seed, n_seeds)
            for side in sides:
                load_scenario(path, [*side.all_overrides(), f"seed={seeds[0]}"])
        except ScenarioError as exc:
            _fail(str(exc))
        for side in sides:
            if side.dms_class:
                try:  # found and of this interface, or bad input now rather than failed runs
                    load_dms_class(side.dms_class, (path.resolve().parent,))
                except DMSLoadError as exc:
                    _fail(f"--{side.name}-dms: {exc}")
        if until_s is not None and until_s > scenario.duration:
            _fail(f"--until: expected at most {path}'s duration ({scenario.duration:g} s); "
                  f"found {until}")
        plans.append(ScenarioPlan(label, str(path.resolve()), scenario.name, seeds))
    return plans


def _run(comparison, workers: int | None, scheduler: str | None, no_progress: bool) -> list:
    from twin.study.executor import ClusterError, run_jobs

    jobs = comparison.jobs()
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                        MofNCompleteColumn(), TextColumn("{task.fields[last]}"),
                        TimeElapsedColumn(), console=console, disable=no_progress)
    try:
        with progress:
            task = progress.add_task("runs", total=len(jobs), last="")

            def advance(done: int, total: int, row: dict) -> None:
                progress.update(task, completed=done,
                                last=escape(f"{row['key']} {row['status']}"))

            return run_jobs(jobs, workers=workers, scheduler=scheduler, progress=advance)
    except ClusterError as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        err_console.print("[bold yellow]interrupted:[/] the comparison was stopped",
                          highlight=False)
        raise typer.Exit(130) from None
    return []


def _finish(comparison, rows: list, out_dir: Path) -> None:
    from twin.study.compare import compare_results
    from twin.study.compare_html import write_compare_html

    result = compare_results(comparison, rows)
    json_path = out_dir / COMPARE_JSON
    tmp = json_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
    tmp.replace(json_path)
    written = [COMPARE_JSON]
    try:
        write_compare_html(result, out_dir)
        written.append("compare.html")
    except Exception as exc:  # noqa: BLE001  (the JSON is the verdict: a page that fails
        # loses nothing else)
        err_console.print(f"[bold yellow]warning:[/] compare.html not written: "
                          f"{escape(type(exc).__name__ + ': ' + str(exc))}", highlight=False)
    _print_table(result)
    for run in result["runs_not_completed"]:
        err_console.print(f"[bold yellow]{escape(run['key'])}:[/] {escape(run['status'])} "
                          f"{escape(run.get('error') or '')}", highlight=False)
    for note in _notes(result):
        console.print(note, highlight=False, soft_wrap=True, markup=False)
    console.print(result["summary"], highlight=False, soft_wrap=True, markup=False)
    console.print(f"results in {out_dir} ({', '.join(written)}, runs/)", highlight=False,
                  soft_wrap=True, markup=False)
    raise typer.Exit(result["exit_code"])


def _notes(result: dict) -> list[str]:
    """A line per critical KPI judged "same" although some seed alone was worse."""
    notes = []
    for scenario in result["scenarios"]:
        for key in result["critical"]:
            k = scenario["kpis"].get(key) or {}
            if k.get("judgement") == "same" and k.get("seeds_worse"):
                seeds = ", ".join(str(s) for s in k["seeds_worse"])
                notes.append(f"note: {scenario['label']}: {key} is the same by the rule "
                             f"({k.get('why')}) but worse in seed {seeds}")
    return notes


def _print_table(result: dict) -> None:
    from twin.report.formatting import format_value

    several = len(result["scenarios"]) > 1
    table = Table(title="critical KPIs (mean over seeds; delta = candidate − baseline)")
    for column in ("scenario", "KPI", "baseline", "candidate", "delta", "95 % interval",
                   "judgement"):
        if column == "scenario" and not several:
            continue
        table.add_column(column, no_wrap=column in ("KPI", "95 % interval"),
                         justify="left" if column in ("scenario", "KPI", "judgement")
                         else "right")
    colours = {"better": "green", "worse": "red", "same": "", "mixed": "yellow"}
    for scenario in result["scenarios"]:
        for key in result["critical"]:
            k = scenario["kpis"].get(key)
            label = (scenario["label"],) if several else ()
            if k is None:
                table.add_row(*map(escape, label), escape(key), "", "", "", "",
                              "n/a (not in kpis.json)")
                continue
            ci = k.get("ci95")
            judgement = k.get("judgement") or "n/a"
            colour = colours.get(judgement, "")
            name = f"{key} [{k.get('unit')}]" if k.get("unit") else key
            interval = f"[{format_value(key, ci[0])}, {format_value(key, ci[1])}]" if ci else ""
            table.add_row(*map(escape, label), escape(name),  # "[min]" is no markup
                          format_value(key, k.get("baseline")),
                          format_value(key, k.get("candidate")),
                          format_value(key, k.get("delta")), escape(interval),
                          f"[{colour}]{judgement}[/]" if colour else judgement)
    # a CI log is no terminal: its default 80 columns would cut the names and numbers
    (console if console.is_terminal else Console(width=120)).print(table)
