"""One run of a study as plain data (:class:`Job`) and the function that runs it in a worker
(:func:`run_job`), returning one row of the study's results.

A job is picklable and small: the scenario file's path, the ``--set`` overrides, the seed,
``--until`` and the run directory. :func:`run_job` never raises for a failing run: the row
says "failed" with a one-line, redacted reason, so one bad run never stops a study.
"""

from __future__ import annotations

import json
import time as wallclock
from dataclasses import dataclass
from pathlib import Path

from twin.recording.errors import redact

#: Row statuses: the run's own (run.json), or "failed" for a run that raised.
STATUSES = ("completed", "failed", "interrupted")

#: Longest error text kept in a row.
MAX_ERROR_CHARS = 300


@dataclass(frozen=True)
class Job:
    """One run of a study.

    Attributes
    ----------
    key : str
        Unique in a study; the run directory's name under ``<out>/runs/``.
    scenario : str
        The scenario file's path (absolute).
    overrides : tuple of str
        ``"KEY.PATH=VALUE"`` as for ``twin run --set``, applied in order.
    seed : int or None
        None: the scenario's own seed; else applied as the override ``seed=N`` after the
        others.
    until : str or None
        As ``twin run --until`` (e.g. ``"1h"``); None: the scenario's whole duration.
    run_dir : str
        The run directory's absolute path.
    """

    key: str
    scenario: str
    overrides: tuple[str, ...] = ()
    seed: int | None = None
    until: str | None = None
    run_dir: str = ""

    def all_overrides(self) -> list[str]:
        """The overrides with the seed last, as the run applies them."""
        return [*self.overrides, *([f"seed={self.seed}"] if self.seed is not None else [])]


def one_line(exc: BaseException, limit: int = MAX_ERROR_CHARS) -> str:
    """``exc`` as one redacted line (:func:`twin.runner.one_line`); a
    :class:`~twin.runner.RunFailed` is said by its reason, which is one line already."""
    from twin.runner import RunFailed
    from twin.runner import one_line as run_one_line

    if isinstance(exc, RunFailed):
        return _cut(redact(exc.reason), limit)
    return _cut(run_one_line(exc, limit), limit)


def _cut(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    text = " ".join(text.split())  # one line
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _scenario_seed(job: Job) -> int | None:
    """The seed the job runs with, found without running it (None if the scenario cannot
    be read)."""
    if job.seed is not None:
        return job.seed
    from twin.scenario import load_scenario

    try:
        return load_scenario(job.scenario, list(job.overrides) or None).seed
    except Exception:  # noqa: BLE001 (the row says why the run failed; None: seed unknown)
        return None


def run_job(job: Job) -> dict:
    """Run one scenario in this process (file store, run directory replaced, no progress);
    never raises for a failing run.

    Returns
    -------
    dict
        The row: ``key``, ``scenario``, ``seed`` (the seed used), ``overrides`` (list),
        ``status`` ("completed", "failed" or "interrupted"), ``error`` ("" or one line),
        ``wall_time_s`` [s] (the whole job, preparation included), ``run_dir``, ``kpis``
        (kpis.json's content; {} if none) and ``expectations`` (the "results" list of
        ``<run_dir>/expectations.json`` if the run wrote one, else []).
    """
    from twin.build.stopping import RunInterrupted
    from twin.runner import run_scenario

    t0 = wallclock.perf_counter()
    status, error, seed = "completed", "", job.seed
    try:
        summary = run_scenario(job.scenario, out=job.run_dir or None, until=job.until,
                               record="files", overrides=job.all_overrides() or None,
                               overwrite=True)
        status, seed = summary.status, summary.scenario.seed
        if status != "completed":
            error = _cut(redact(str(summary.run_info.get("reason", ""))))
    except RunInterrupted as exc:
        status, error = "interrupted", one_line(exc)
    except Exception as exc:  # noqa: BLE001 (a row that says why, never a lost study)
        status, error = "failed", one_line(exc)
    if seed is None:
        seed = _scenario_seed(job)
    # a failed run writes neither file: what is there is an older run's
    run_dir = Path(job.run_dir) if job.run_dir and status != "failed" else None
    kpis = (_read_json(run_dir / "kpis.json") if run_dir else None) or {}
    expectations = (_read_json(run_dir / "expectations.json") if run_dir else None) or {}
    results = expectations.get("results")
    return {
        "key": job.key,
        "scenario": job.scenario,
        "seed": seed,
        "overrides": list(job.overrides),
        "status": status,
        "error": error,
        "wall_time_s": round(wallclock.perf_counter() - t0, 3),
        "run_dir": job.run_dir,
        "kpis": kpis,
        "expectations": results if isinstance(results, list) else [],
    }
