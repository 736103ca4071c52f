"""``twin sweep STUDY.yaml``: a parameter study on Dask (a LocalCluster over this machine's
cores, or an existing cluster by its scheduler's address); writes ``DIR/results.parquet``
(after each run, so a second invocation resumes), ``DIR/sweep.html`` and the run directories
``DIR/runs/<key>``. The study file and the table: :mod:`twin.study.sweep`.

Exit codes: 0 every run completed; 1 a run failed or was interrupted (its row says why; the
others ran) or the cluster could not be reached; 2 a bad study file or option (before any
run); 130 Ctrl-C (the table holds the runs finished so far).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from twin.timebase import format_duration

console = Console()
err_console = Console(stderr=True, soft_wrap=True)


def _fail(message: str, code: int = 2) -> None:
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    raise typer.Exit(code)


def sweep(
    study: Annotated[Path, typer.Argument(help="Study YAML file (scenario, seeds, design, "
                                          "parameters, kpis).")],
    workers: Annotated[int | None, typer.Option(
        "--workers", help="Worker processes of the local Dask cluster (default: the "
        "machine's cores).")] = None,
    scheduler: Annotated[str | None, typer.Option(
        "--scheduler", help="Run on an existing Dask cluster, e.g. tcp://HOST:8786 "
        "(its workers need this project installed and --out on a shared disk).")] = None,
    out: Annotated[Path | None, typer.Option(
        "--out", help="Output directory (default sweeps/<study name>); a second sweep "
        "into it skips the runs done.")] = None,
    retry_failed: Annotated[bool, typer.Option(
        "--retry-failed", help="Run the runs that failed in an earlier sweep again (by "
        "default they count as done).")] = False,
    no_progress: Annotated[bool, typer.Option("--no-progress", help="No progress bar.")] = False,
) -> None:
    """Run a parameter study: one row per run in DIR/results.parquet, DIR/sweep.html."""
    from twin.scenario import ScenarioError
    from twin.study.executor import ClusterError
    from twin.study.sweep import load_study, run_sweep

    if workers is not None and scheduler is not None:
        _fail("--workers: expected either --workers or --scheduler; found both")
    if workers is not None and workers < 1:
        _fail(f"--workers: expected at least 1; found {workers}")
    if scheduler is not None and "://" not in scheduler:
        _fail(f"--scheduler: expected an address such as tcp://127.0.0.1:8786; found "
              f"{scheduler!r}")
    logging.basicConfig(level=logging.WARNING)
    try:
        spec = load_study(study)
    except ScenarioError as exc:
        _fail(str(exc))
        return
    out = out if out is not None else Path("sweeps") / study.stem
    if out.exists() and not out.is_dir():
        _fail(f"--out: expected a directory; {out} is a file")

    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"), TimeElapsedColumn(),
        console=console, disable=no_progress,
    )
    task = None
    failed = [0]

    def on_start(to_run: int, skipped: int) -> None:
        nonlocal task
        if to_run:
            what = "local cluster" if scheduler is None else scheduler
            task = progress.add_task(f"runs ({what})", total=to_run,
                                     status=f"{skipped} skipped" if skipped else "")

    def on_done(done: int, total: int, row: dict) -> None:
        failed[0] += row["status"] != "completed"
        if task is not None:
            progress.update(task, completed=done,
                            status=f"{failed[0]} failed" if failed[0] else "")

    try:
        with progress:
            result = run_sweep(spec, out, workers=workers, scheduler=scheduler,
                               retry_failed=retry_failed, on_start=on_start, progress=on_done)
    except ScenarioError as exc:
        _fail(str(exc))
        return
    except ClusterError as exc:
        _fail(str(exc), 1)
        return
    except KeyboardInterrupt:
        err_console.print(f"[bold yellow]interrupted:[/] the runs finished so far are in "
                          f"{escape(str(out / 'results.parquet'))}; run the sweep again to "
                          "resume", highlight=False)
        raise typer.Exit(130) from None

    n = len(result.jobs)
    completed, failed_n = result.count("completed"), result.count("failed")
    interrupted = result.count("interrupted")
    console.print(
        f"{n} runs: {completed} completed, {failed_n} failed"
        + (f", {interrupted} interrupted" if interrupted else "")
        + f", {len(result.skipped)} skipped (done before); wall time "
        f"{format_duration(round(result.wall_time_s, 1))}", highlight=False)
    console.print(f"results in {escape(str(result.results_path))}, "
                  f"{escape(str(result.html_path))}, runs in "
                  f"{escape(str(result.results_path.parent / 'runs'))}", highlight=False)
    for key in result.ran:
        row = result.rows[key]
        if row["status"] != "completed":
            err_console.print(f"[bold yellow]{escape(key)}[/] {row['status']}: "
                              f"{escape(row['error'])}", highlight=False)
    if completed != n:
        raise typer.Exit(1)
