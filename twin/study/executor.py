"""A list of jobs on Dask distributed: a LocalCluster of worker processes on this machine, or
an existing cluster reached by its scheduler's address.

Each worker process runs one job at a time (one thread: a run is CPU-bound Python, and
mosaik's event loop wants its thread to itself). The workers are warmed before the first
job (the runner imported, one power flow run so numba has compiled pandapower's kernels,
one step of the first job run), so no job carries a process's start-up. A job that raises,
or whose worker dies, becomes a "failed" row; the others go on.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from twin.study.jobs import Job, one_line, run_job

#: How long to wait for an existing scheduler to answer [s].
CONNECT_TIMEOUT_S = 10


class ClusterError(RuntimeError):
    """The Dask cluster could not be started or reached (one line)."""


def default_workers() -> int:
    """The cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover (not Linux)
        return max(1, os.cpu_count() or 1)


def warm_up(job: Job | None = None) -> str:
    """Import the runner and run one small power flow (numba compiles pandapower's kernels on
    a process's first one); with ``job``, also one step of it in a scratch directory (what
    else a first run loads: profiles, weather, the report's figures). Returns the process id.
    """
    import tempfile

    import pandapower as pp
    import pandapower.networks as pn

    import twin.runner  # noqa: F401  (the heavy imports: mosaik, pandapower, pvlib, ...)

    log = logging.getLogger(__name__)
    try:
        pp.runpp(pn.example_simple(), numba=True)
    except Exception as exc:  # noqa: BLE001 (a failed warm-up costs only the time it saves)
        log.debug("warm-up power flow: %s", exc)
    if job is not None:
        with tempfile.TemporaryDirectory(prefix="twin-warm-up-") as tmp:
            # one step (--until 1 s rounds up to the first whole step); a failing job fails
            # again as its own row
            run_job(replace(job, key="warm-up", until="1s", run_dir=str(Path(tmp) / "run")))
    return str(os.getpid())


def _failed_row(job: Job, exc: BaseException) -> dict:
    """The row of a job that never returned one (its worker died, the task was lost)."""
    return {"key": job.key, "scenario": job.scenario, "seed": job.seed,
            "overrides": list(job.overrides), "status": "failed", "error": one_line(exc),
            "wall_time_s": 0.0, "run_dir": job.run_dir, "kpis": {}, "expectations": []}


def run_jobs(jobs: list[Job], *, workers: int | None = None, scheduler: str | None = None,
             progress: Callable[[int, int, dict], None] | None = None,
             on_ready: Callable[[], None] | None = None) -> list[dict]:
    """Run ``jobs`` on Dask; returns their rows (:func:`~twin.study.jobs.run_job`) in the
    order of ``jobs``.

    Parameters
    ----------
    jobs : list of Job
        Keys unique.
    workers : int, optional
        Worker processes of the LocalCluster (one thread each); default the machine's cores.
        Ignored with ``scheduler``.
    scheduler : str, optional
        An existing cluster's scheduler, ``"tcp://host:port"``; its workers run the jobs (they
        need this project importable, e.g. the same environment).
    progress : callable, optional
        ``progress(done, total, row)`` after each finished job, in this process.
    on_ready : callable, optional
        Called once the cluster is up and its workers warmed, before the first job is
        submitted (``bench/sweep.py`` times the jobs from there).

    Raises
    ------
    ClusterError
        The cluster could not be started or the scheduler not reached.
    """
    if not jobs:
        return []
    keys = [job.key for job in jobs]
    if len(set(keys)) != len(keys):
        raise ValueError("run_jobs: job keys must be unique")

    import distributed  # noqa: F401  (first: importing it sets its loggers' levels)

    # the scheduler and nannies of a LocalCluster log in this process: their INFO lines
    # (workers starting, closing) are no news to a user watching a progress bar
    dask_log = logging.getLogger("distributed")
    level = dask_log.level
    dask_log.setLevel(logging.WARNING)
    try:
        return _run(jobs, workers, scheduler, progress, on_ready, dask_log)
    finally:
        dask_log.setLevel(level)


def _run(jobs, workers, scheduler, progress, on_ready, dask_log: logging.Logger) -> list[dict]:
    from distributed import Client, LocalCluster, as_completed

    cluster = None
    try:
        if scheduler:
            client = Client(scheduler, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
        else:
            n = workers or default_workers()
            cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                   dashboard_address=None, silence_logs=logging.ERROR)
            client = Client(cluster, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        if cluster is not None:
            cluster.close()
        where = f"the Dask scheduler at {scheduler}" if scheduler else "a Dask LocalCluster"
        raise ClusterError(f"cannot reach {where}: {one_line(exc)}") from None
    try:
        # a task per worker, pinned to it (client.run would run it on the worker's event
        # loop, where mosaik cannot start its own)
        workers_now = list(client.scheduler_info(n_workers=-1).get("workers", {}))
        client.gather([client.submit(warm_up, jobs[0], workers=[address], pure=False,
                                     allow_other_workers=False)
                       for address in workers_now])
        if on_ready is not None:
            on_ready()
        futures = {client.submit(run_job, job, pure=False): i for i, job in enumerate(jobs)}
        rows: list[dict | None] = [None] * len(jobs)
        for done, future in enumerate(as_completed(futures, loop=client.loop), start=1):
            i = futures[future]
            try:
                row = future.result()
            except Exception as exc:  # noqa: BLE001 (the worker died: KilledWorker, lost task)
                row = _failed_row(jobs[i], exc)
            rows[i] = row
            if progress is not None:
                progress(done, len(jobs), row)
        return [row for row in rows if row is not None]
    finally:
        dask_log.setLevel(logging.ERROR)  # (a closing worker's task being cancelled)
        client.close()
        if cluster is not None:
            cluster.close()
