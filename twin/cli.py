"""The ``twin`` command: run, validate, points, schema."""

from __future__ import annotations

import json
import logging
import sys
import time as wallclock
from enum import Enum
from pathlib import Path
from typing import Callable, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from twin.scenario import Scenario, ScenarioError, load_scenario
from twin.timebase import format_duration

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="dms-twin: a co-simulation digital twin around a DMS.")
console = Console()
err_console = Console(stderr=True, soft_wrap=True)


class RecordKind(str, Enum):
    files = "files"
    influx = "influx"


def _fail(message: str, code: int = 2) -> None:
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    raise typer.Exit(code)


def _progress_factory(progress: Progress) -> Callable[[Scenario, int], Callable[[int], None]]:
    def factory(scenario: Scenario, until_ticks: int) -> Callable[[int], None]:
        clock = scenario.clock
        task = progress.add_task("simulating", total=until_ticks, sim="", speed="")
        t0 = wallclock.perf_counter()
        last = [0.0]

        def update(tick: int) -> None:
            now = wallclock.perf_counter()
            if now - last[0] < 0.1 and tick < until_ticks:
                return  # redrawing costs time; ten updates a second are plenty
            last[0] = now
            elapsed = now - t0
            speed = clock.seconds(tick) / elapsed if elapsed > 0 else 0.0
            progress.update(task, completed=tick,
                            sim=format_duration(clock.seconds(tick)), speed=f"{speed:,.0f}×")

        return update

    return factory


@app.command()
def run(
    scenario: Path = typer.Argument(..., help="Scenario YAML file."),
    out: Optional[Path] = typer.Option(None, "--out", help="Run directory (default runs/<name>-<time>)."),
    until: Optional[str] = typer.Option(None, "--until", help="Stop earlier, e.g. '2h'."),
    record: Optional[RecordKind] = typer.Option(None, "--record", help="Override recording.store."),
    influx_url: Optional[str] = typer.Option(None, "--influx-url", help="InfluxDB URL (with --record influx)."),
    no_progress: bool = typer.Option(False, "--no-progress", help="No progress bar."),
    set_: Optional[list[str]] = typer.Option(
        None, "--set", help="Override a scenario key, e.g. --set dms.volt_var.mode=direct or "
        "--set rtus[1].scan_period=5s (list items by index)."),
    live: bool = typer.Option(False, "--live", help="Pace the run at --speed × real time, "
                              "streaming to the store as it goes (for Grafana)."),
    speed: float = typer.Option(1.0, "--speed", help="Live mode: simulated seconds per "
                                "wall-clock second."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the run already in "
                                   "--out (its files are removed first)."),
    check: bool = typer.Option(False, "--check", help="Exit 1 when one of the scenario's "
                               "expectations failed (expectations.json)."),
) -> None:
    """Run a scenario and write its run directory.

    Ctrl-C (SIGINT) or SIGTERM stops the run after the current step: what was simulated is
    kept (store, run.json with status "interrupted", kpis.json, report.html); exit 130 / 143.
    With --check, a failed expectation of the scenario makes the exit status 1."""
    from twin.build.stopping import RunInterrupted, exit_status
    from twin.evaluation.expectations import failure_line
    from twin.runner import RunFailed, run_scenario  # heavy imports only when running

    logging.basicConfig(level=logging.WARNING)
    # the RTUs' endpoints: where they listen, connections, refused requests (docs/scada.md)
    logging.getLogger("twin.protocols").setLevel(logging.INFO)
    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("sim {task.fields[sim]}"),
        TextColumn("speed-up {task.fields[speed]}"), TimeElapsedColumn(),
        console=console, disable=no_progress,
    )
    try:
        with progress:
            summary = run_scenario(scenario, out=out, until=until,
                                   record=record.value if record else None,
                                   influx_url=influx_url, overrides=set_ or None,
                                   progress_factory=_progress_factory(progress),
                                   speed=speed if live else None, overwrite=overwrite,
                                   stop_signals=True)
    except ScenarioError as exc:
        _fail(str(exc))
        return
    except RunInterrupted as exc:  # before anything was simulated
        err_console.print(f"[bold yellow]{escape(str(exc))}:[/] nothing simulated",
                          highlight=False)
        raise typer.Exit(exit_status(exc.signum)) from None
    except RunFailed as exc:  # (escaped: "[Errno 28]" is no markup)
        where = f" (what was recorded is in {exc.run_dir})" if exc.run_dir else ""
        _fail(f"run failed: {exc.reason}{where}", 1)
        return
    _print_summary(summary)
    if summary.status != "completed":
        err_console.print(f"[bold yellow]{escape(summary.run_info['reason'])}:[/] results so "
                          f"far in {escape(str(summary.run_dir))}", highlight=False)
        raise typer.Exit(summary.exit_code)
    failed = failure_line(summary.expectations) if summary.expectations else None
    if failed and check:
        err_console.print(f"[bold red]check failed:[/] {escape(failed)}", highlight=False)
        raise typer.Exit(1)
    if failed:
        err_console.print(f"[bold yellow]warning:[/] {escape(failed)}", highlight=False)


def _print_summary(summary) -> None:
    k = summary.outcome.kpis
    info = summary.run_info
    table = Table(title=f"KPIs — {summary.scenario.name}", show_header=True)
    table.add_column("KPI")
    table.add_column("value", justify="right")
    band = k["voltage_band_pu"]

    def num(x, fmt):
        return "n/a" if x is None else format(x, fmt)

    rows = [
        (f"voltage-violation minutes ({band[0]}–{band[1]} p.u.)", num(k["voltage_violation_minutes"], ".1f")),
        (r"min / max bus voltage \[p.u.]", f"{num(k['vm_min_pu'], '.4f')} / {num(k['vm_max_pu'], '.4f')}"),
        ("max line loading [%]", f"{num(k['max_line_loading_percent'], '.1f')} ({k['max_line_loading_element']})"),
        ("max trafo loading [%]", f"{num(k['max_trafo_loading_percent'], '.1f')} ({k['max_trafo_loading_element']})"),
        ("overload minutes (line or trafo > 100 %)", num(k["overload_minutes"], ".1f")),
        ("energy losses [MWh]", num(k["energy_losses_mwh"], ".3f")),
        ("PV energy [MWh]", num(k["pv_energy_mwh"], ".3f")),
        ("wind energy [MWh]", num(k["wind_energy_mwh"], ".3f")),
        ("EV energy / short at departure [MWh]",
         f"{num(k['ev_energy_mwh'], '.3f')} / {num(k['ev_energy_short_mwh'], '.3f')}"),
        ("battery charged / discharged [MWh]",
         f"{num(k['battery_charge_mwh'], '.3f')} / {num(k['battery_discharge_mwh'], '.3f')}"),
        ("telemetry values delivered", f"{k['telemetry_values_delivered']:,}"),
        ("commands ok / failed / timed out, crew jobs",
         f"{k['commands_success']} / {k['commands_failed']} / {k['commands_timeout']}, "
         f"{k['crew_jobs']}"),
        ("non-converged steps", str(k["non_converged_steps"])),
        ("DMS decisions", f"{k['dms_decisions_total']:,}"),
    ]
    if k.get("customers_interrupted"):
        rows.append(("customers interrupted, SAIDI [min], ENS [MWh]",
                     f"{k['customers_interrupted']:,}, {num(k['saidi_min'], '.2f')}, "
                     f"{num(k['energy_not_supplied_mwh'], '.3f')}"))
    if k.get("switching_operations") or k.get("protection_trips"):
        rows.append(("switching operations, protection trips",
                     f"{k['switching_operations']}, {k['protection_trips']}"))
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)
    if summary.expectations:
        _print_expectations(summary.expectations)
    solver = (info.get("grid_solver") or {}).get("solver")
    console.print(
        f"{info['grid_steps']} grid steps, {info['grid_solves']} power flows"
        + (f" ({solver})" if solver else "") + ", "
        f"{info['points_recorded']:,} points in {info['wall_time_s']:.1f} s "
        f"(speed-up {info['speed_up']}×)")
    live = info.get("live")
    if live:
        console.print(f"live at {live['speed']:g}× real time: lag mean {live['lag_mean_s']:.3f} s, "
                      f"p99 {live['lag_p99_s']:.3f} s, max {live['lag_max_s']:.3f} s")
    rec = summary.recording
    if rec.get("spilled"):
        console.print(f"[bold yellow]warning:[/] {rec['summary']}")
    console.print(f"recorded to {rec['target']}")
    written = [name for name in ("report.html", "kpis.json", "expectations.json", "run.json",
                                 "store/")
               if (summary.run_dir / name.rstrip("/")).exists()]  # only what is there
    console.print(f"results in [bold]{summary.run_dir}[/] ({', '.join(written)})")


def _print_expectations(report: dict) -> None:
    """The scenario's expectations, checked: ✓/✗, name, expected, actual."""
    results = report["results"]
    table = Table(title=f"Expectations — {report['n_passed']} of {len(results)} passed",
                  show_header=True)
    for column in ("", "expectation", "expected", "actual"):
        table.add_column(column)
    for r in results:
        mark = "[green]✓[/]" if r["passed"] else "[bold red]✗[/]"
        table.add_row(mark, escape(r["name"]), escape(r["expected"]), escape(r["actual"]))
    console.print(table)


@app.command()
def report(run_dir: Path = typer.Argument(..., help="Run directory (twin run --out DIR).")) -> None:
    """(Re)build RUN_DIR/report.html from the run's files."""
    from twin.report import RunDirectoryError, write_report

    try:
        path = write_report(run_dir)
    except RunDirectoryError as exc:
        _fail(str(exc))
        return
    console.print(f"report: {path}", highlight=False)


@app.command()
def validate(
    files: list[Path] = typer.Argument(..., help="Scenario files to check."),
    set_: Optional[list[str]] = typer.Option(
        None, "--set", help="Override a scenario key as in `twin run`, e.g. --set "
        "rtus[1].scan_period=5s."),
) -> None:
    """Check scenario files as `twin run` would, without running; exit 2 if any is invalid.

    Beyond the file itself: the grid is built (SimBench code, grid file), every name is
    resolved against it, commands and faults are checked, the weather file must cover the
    run, and one power flow at the initial state must converge. Events after the scenario's
    end are warnings (exit 0)."""
    from twin.build.validate import check_scenario  # heavy imports only when checking

    bad = 0
    for f in files:
        try:
            sc = load_scenario(f, set_ or None)
            checked = check_scenario(sc, f)
        except ScenarioError as exc:
            text = str(exc) if str(exc).startswith(str(f)) else f"{f}: {exc}"
            err_console.print(f"[bold red]invalid:[/] {escape(text)}", highlight=False)
            bad += 1
            continue
        console.print(f"[green]valid:[/] {f} ({sc.name}: {format_duration(sc.duration)} "
                      f"at {sc.step:g} s steps, seed {sc.seed})", highlight=False, soft_wrap=True)
        for line in checked.checks:
            console.print(f"  checked {line}", highlight=False, soft_wrap=True)
        for line in checked.warnings:
            err_console.print(f"[bold yellow]warning:[/] {f}: {line}", highlight=False)
    if bad:
        raise typer.Exit(2)


class PointsFormat(str, Enum):
    table = "table"
    csv = "csv"


@app.command()
def points(
    scenario: Path = typer.Argument(..., help="Scenario YAML file."),
    set_: Optional[list[str]] = typer.Option(
        None, "--set", help="Override a scenario key as in `twin run`, e.g. --set "
        "rtus[1].devices=[]."),
    format_: PointsFormat = typer.Option(PointsFormat.table, "--format",
                                         help="A readable table, or CSV (as points.csv)."),
) -> None:
    """Print the point map of SCENARIO's RTUs: each telemetry point and command with its
    Modbus register or coil, IEC 104 common address and IOA, type, range and unit, as a
    run writes it to points.csv in its run directory. The scenario is prepared as
    `twin validate` does; an invalid one exits 2."""
    from twin.build.prepare import prepare  # heavy imports only when preparing
    from twin.protocols.pointmap import PointMap, format_table, point_map, write_csv

    try:
        sc = load_scenario(scenario, set_ or None)
        prep = prepare(sc, scenario, check_only=True)
        pm = point_map(prep.field, prep.net) if prep.field is not None else PointMap(())
    except ScenarioError as exc:
        text = str(exc) if str(exc).startswith(str(scenario)) else f"{scenario}: {exc}"
        _fail(text)
        return
    except ValueError as exc:  # a weather file that cannot be read or does not cover the run
        if not str(exc).startswith("weather file"):
            raise
        _fail(f"{scenario}: weather.csv: {exc}")
        return
    if format_ is PointsFormat.csv:
        write_csv(pm, sys.stdout, lineterminator="\n")
    elif pm.points:
        sys.stdout.write(format_table(pm))
    else:
        console.print(f"{scenario}: no RTUs, no points", highlight=False, soft_wrap=True)


@app.command()
def replay(
    run_dir: Path = typer.Argument(..., help="Run directory of a run recorded to InfluxDB."),
    influx_url: Optional[str] = typer.Option(None, "--influx-url",
                                             help="Send to this URL instead of the run's."),
) -> None:
    """Push RUN_DIR's spilled points (RUN_DIR/store) into the run's InfluxDB; idempotent."""
    from twin.recording.replay import ReplayError, replay_run

    try:
        result = replay_run(run_dir, influx_url=influx_url)
    except ReplayError as exc:
        _fail(str(exc), code=1)
        return
    except ScenarioError as exc:
        _fail(str(exc))
        return
    console.print(f"replayed {result.points:,} points ({result.measurements} measurements) "
                  f"to {result.target}", highlight=False)


@app.command()
def schema() -> None:
    """Print the scenario file's JSON Schema (for editor completion)."""
    sys.stdout.write(json.dumps(Scenario.model_json_schema(), indent=2) + "\n")


# the study commands (compare, sweep) live with the study code
from twin.study.cli import register as _register_study  # noqa: E402

_register_study(app)

if __name__ == "__main__":
    app()
