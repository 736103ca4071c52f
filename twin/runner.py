"""One run, end to end: scenario file → run directory with store, run.json and kpis.json.

Run directory layout::

    <run_dir>/scenario.yaml   copy of the scenario as given
    <run_dir>/run.json        versions, seed, wall time, steps, speed-up, recording outcome
    <run_dir>/kpis.json       the KPIs (deterministic: same scenario + seed ⇒ same file)
    <run_dir>/expectations.json  the scenario's expectations, checked (only if it has some)
    <run_dir>/report.html     the report: plots, decisions, KPIs (self-contained, offline)
    <run_dir>/points.csv      the RTUs' point map (Modbus TCP, IEC 104), if it has RTUs
    <run_dir>/store/          the file store (or the spill of an unreachable InfluxDB)
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import platform
import shutil
import sys
import time as wallclock
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Callable

from twin.build.checks import check_expectations, check_recording
from twin.build.prepare import prepare
from twin.build.stopping import (
    RunInterrupted,
    StopRequest,
    exit_status,
    stop_on_signals,
)
from twin.build.wiring import RunOutcome, WorldHandles, run_world
from twin.evaluation.expectations import (
    EXPECTATIONS_FILE,
    evaluate,
    expectations_report,
)
from twin.evaluation.kpis import kpi_point
from twin.grid.geo import geo_points
from twin.live import LagMeter, live_progress
from twin.protocols.pointmap import POINTS_FILE, write_point_map
from twin.recording.annotations import AnnotatingStore, annotator_from_env
from twin.recording.errors import InfluxError, redact
from twin.recording.factory import STORE_DIR, Recording, open_recording
from twin.recording.schema import live_point
from twin.report import write_report
from twin.scenario import InfluxSpec, Scenario, ScenarioError, load_scenario
from twin.timebase import parse_duration_s

DEFAULT_INFLUX_DB = "dms_twin"


@dataclass
class RunSummary:
    run_dir: Path
    run_id: str
    scenario: Scenario
    outcome: RunOutcome
    recording: dict
    run_info: dict
    #: expectations.json (None: the scenario has no expectations)
    expectations: dict | None = None

    @property
    def status(self) -> str:
        """run.json's status: "completed" or "interrupted" (a failed run raises)."""
        return self.run_info.get("status", "completed")

    @property
    def exit_code(self) -> int:
        """0, or 128 + the signal that interrupted the run (130 SIGINT, 143 SIGTERM)."""
        return 0 if self.status == "completed" else exit_status(self.outcome.signum)


class RunFailed(Exception):
    """The run failed on an expected kind of error (a full disk, a simulator's error, the
    database); ``reason`` is one redacted line, as in run.json (status "failed")."""

    def __init__(self, reason: str, run_dir: Path | None) -> None:
        super().__init__(reason)
        self.reason, self.run_dir = reason, run_dir


@dataclass
class _RunState:
    """What a failed or interrupted run still needs to write its run.json."""

    run_dir: Path | None = None  # set once the directory is claimed
    head: dict | None = None  # run.json while running
    recording: Recording | None = None
    closed: bool = False
    phase: str = "preparing"


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("dms-twin", "mosaik", "mosaik-api-v3", "pandapower", "numpy", "pandas", "pvlib",
                 "pyarrow", "influxdb-client"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def default_run_dir(scenario: Scenario, base: Path = Path("runs")) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return base / f"{scenario.name}-{stamp}"


def _influx_override(scenario: Scenario, url: str | None) -> InfluxSpec:
    if url:
        base = scenario.recording.influx
        if base is not None:
            return base.model_copy(update={"url": url})
        return InfluxSpec(url=url, api="v1", database=DEFAULT_INFLUX_DB)
    if scenario.recording.influx is not None:
        return scenario.recording.influx
    env_url = os.environ.get("TWIN_INFLUX_URL")
    if env_url:
        return InfluxSpec(url=env_url, api="v1", database=DEFAULT_INFLUX_DB)
    raise ScenarioError(
        "recording: --record influx needs an 'influx:' section in the scenario, "
        "--influx-url, or TWIN_INFLUX_URL in the environment"
    )


#: Errors a run can meet that are not a bug: a one-line reason says enough.
_EXPECTED_FAILURES: tuple[type[BaseException], ...] = (OSError, InfluxError)
try:
    from mosaik.exceptions import SimulationError as _SimulationError

    _EXPECTED_FAILURES += (_SimulationError,)
except ImportError:  # pragma: no cover
    pass


def run_scenario(
    scenario_file: str | Path,
    out: str | Path | None = None,
    until: str | float | None = None,
    record: str | None = None,
    influx_url: str | None = None,
    progress_factory: Callable[[Scenario, int], Callable[[int], None]] | None = None,
    hook: Callable[[WorldHandles], None] | None = None,
    overrides: list[str] | None = None,
    speed: float | None = None,
    overwrite: bool = False,
    stop_signals: bool = False,
) -> RunSummary:
    """Run a scenario file; ScenarioError for anything wrong with the input. ``speed``:
    live mode, paced at that many simulated seconds per wall-clock second.

    run.json says "running" from the start (with the process id), and at the end
    "completed", "interrupted" or "failed" with the reason. ``out`` holding a run already
    (run.json or store/) is refused unless ``overwrite`` (its files are removed first).
    With ``stop_signals`` (the CLI), SIGINT and SIGTERM stop the run after the step being
    recorded: the store is flushed and run.json, kpis.json and the report cover the part
    simulated (the summary's ``status`` is "interrupted", ``exit_code`` 130 or 143);
    before the world runs they raise :class:`RunInterrupted`. An expected failure (full
    disk, a simulator's error, the database) raises :class:`RunFailed` with one redacted
    line; any other error is re-raised as it is, after run.json says "failed".
    """
    stop = StopRequest()
    state = _RunState()
    with stop_on_signals(stop) if stop_signals else nullcontext(stop):
        try:
            return _run_scenario(scenario_file, out, until, record, influx_url,
                                 progress_factory, hook, overrides, speed, overwrite, stop,
                                 state)
        except RunInterrupted as exc:  # before the world ran, or a second signal
            stop.defer()
            _end_early(state, "interrupted", f"{exc} while {state.phase}")
            raise
        except KeyboardInterrupt:  # no signal handlers installed
            _end_early(state, "interrupted",
                       f"interrupted by KeyboardInterrupt while {state.phase}")
            raise
        except ScenarioError as exc:
            _end_early(state, "failed", one_line(exc))
            raise
        except Exception as exc:
            reason = one_line(exc)
            _end_early(state, "failed", reason)
            if isinstance(exc, _EXPECTED_FAILURES):
                raise RunFailed(reason, state.run_dir) from exc
            raise


def one_line(exc: BaseException, limit: int = 300) -> str:
    """The error as one redacted line: its type (unless a ScenarioError) and first line."""
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else ""
    if not isinstance(exc, ScenarioError):
        text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    text = redact(text)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _end_early(state: _RunState, status: str, reason: str) -> None:
    """Close the recording (flush what it holds) and say in run.json how the run ended;
    each only as far as it still can (a full disk)."""
    if state.run_dir is None:
        return  # the directory was never claimed: nothing of this run to write
    if state.recording is not None and not state.closed:
        state.closed = True
        try:
            state.recording.close()
        except Exception as exc:
            if one_line(exc) != reason:  # (a full disk is full again: said once is enough)
                logging.getLogger(__name__).warning("closing the recording: %s",
                                                    one_line(exc))
    info = dict(state.head or {})
    info.update(status=status, reason=reason,
                ended_utc=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    info.pop("pid", None)
    try:
        _write_json(state.run_dir / "run.json", info)
    except OSError as exc:
        logging.getLogger(__name__).warning("run.json not written: %s", one_line(exc))


def _claim_run_dir(run_dir: Path, overwrite: bool) -> None:
    """Make ``run_dir`` ready for a new run: refuse one holding a run unless ``overwrite``
    (then remove that run's files, never anything else, and never a run still going)."""
    if run_dir.exists() and not run_dir.is_dir():
        raise ScenarioError(f"--out: expected a directory; {run_dir} is a file")
    held = [label for name, label in (("run.json", "run.json"), (STORE_DIR, f"{STORE_DIR}/"))
            if (run_dir / name).exists()]
    if held:
        if not overwrite:
            raise ScenarioError(
                f"--out: expected a new or empty directory; {run_dir} already holds a run "
                f"({', '.join(held)}): choose another directory, or pass --overwrite to "
                "replace it")
        pid = _running_pid(run_dir / "run.json")
        if pid is not None:
            raise ScenarioError(f"--out: {run_dir} holds a run that is still going "
                                f"(process {pid}); stop it first")
        for name in _RUN_FILES:
            for path in (run_dir / name, run_dir / f"{name}.tmp"):
                path.unlink(missing_ok=True)
        if (run_dir / STORE_DIR).exists():
            shutil.rmtree(run_dir / STORE_DIR)
    run_dir.mkdir(parents=True, exist_ok=True)


#: The files a run writes next to its store/.
_RUN_FILES = ("run.json", "kpis.json", EXPECTATIONS_FILE, "report.html", "scenario.yaml",
              POINTS_FILE, "overrides.txt")


def _running_pid(run_json: Path) -> int | None:
    """The process of a run whose run.json says "running" on this host, if it is alive."""
    try:
        info = json.loads(run_json.read_text(encoding="utf-8"))
        pid = int(info["pid"]) if info.get("status") == "running" else None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if pid is None or pid == os.getpid() or info.get("host") != platform.node():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    return pid


def _run_scenario(scenario_file, out, until, record, influx_url, progress_factory, hook,
                  overrides, speed, overwrite: bool, stop: StopRequest,
                  state: _RunState) -> RunSummary:
    scenario_file = Path(scenario_file)
    scenario = load_scenario(scenario_file, overrides)
    until_s, scenario_end_s = None, scenario.duration
    if until is not None:
        try:
            until_s = parse_duration_s(until)
        except ValueError as exc:
            raise ScenarioError(f"--until: expected {exc}") from None
        if until_s > scenario.duration:
            raise ScenarioError(
                f"--until: expected at most the scenario's duration ({scenario.duration:g} s); "
                f"found {until}")
        # prepare only what the run reaches (whole steps covering --until): profiles for a
        # 10-year scenario stopped after 10 min would take hours to build
        steps = int(-(-until_s // scenario.step))
        scenario = scenario.model_copy(update={"duration": steps * scenario.step})
    kind = record or scenario.recording.store
    influx = _influx_override(scenario, influx_url) if kind == "influx" else scenario.recording.influx

    run_dir = Path(out) if out is not None else default_run_dir(scenario)
    _claim_run_dir(run_dir, overwrite)
    run_id = run_dir.resolve().name
    # a run that never says how it ended (killed, power lost) stays recognisable
    head = {"run_id": run_id, "scenario": scenario.name, "seed": scenario.seed,
            "overrides": list(overrides or []), "start": scenario.start.isoformat(),
            "status": "running", "reason": "", "pid": os.getpid(), "host": platform.node(),
            "started_utc": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    _write_json(run_dir / "run.json", head)
    state.run_dir, state.head = run_dir, head

    wall0 = wallclock.perf_counter()
    prep = prepare(scenario, scenario_file, scenario_end_s=scenario_end_s)
    check_expectations(scenario, prep.net)
    recording_policy = check_recording(scenario, prep.names)  # effective, for run.json
    write_point_map(prep.field, run_dir, prep.net)  # points.csv for the SCADA engineer
    prepare_s = wallclock.perf_counter() - wall0
    recording = open_recording(kind, influx, run_dir)
    state.recording, state.phase = recording, "building the world"
    until_ticks = scenario.clock.ticks(until_s or scenario.duration)
    progress = progress_factory(scenario, until_ticks) if progress_factory else None
    annotator = annotator_from_env(os.environ)
    store = AnnotatingStore(recording.store, annotator) if annotator else recording.store
    meter = None
    if speed is not None:
        meter = LagMeter(speed)
        live = live_progress(meter, scenario.clock.seconds, getattr(store, "flush", None),
                             then=progress)
    try:
        # where the elements are, once: the dashboards' network map joins on it
        geo = geo_points(prep.net, run_id, scenario.clock.time_ns(0))
        recording.store.write(geo)
        outcome = run_world(prep, store, run_id, until_s=until_s,
                            progress=live if meter is not None else progress, hook=hook,
                            speed=speed, stop=stop)
        state.phase = "writing the results"
        if progress is not None:
            progress(outcome.ticks)  # the last recorded step is one step before the end
        # the run's own points at its end: the KPIs (dashboards read them), the live lag
        end_ns = scenario.clock.time_ns(outcome.ticks)
        extra = [kpi_point(run_id, outcome.kpis, end_ns)]
        if meter is not None:
            extra.append(live_point(run_id, end_ns, **meter.stats()))
        recording.store.write(extra)
        outcome.points_recorded += len(geo) + len(extra)
    finally:
        if prep.dms is not None:
            prep.dms.close()  # an out-of-process DMS's session ends with the world
        # after a failure, _end_early closes it as far as it can (a full disk fails again)
        if sys.exc_info()[0] is None:
            state.closed = True
            report = recording.close()

    rec_info: dict = {"kind": recording.kind, "target": recording.description,
                      "points": outcome.points_recorded,
                      **recording_policy,  # elements, requested, every_s: the report reads it
                      **({"influx": recording.info} if recording.info else {})}
    if report is not None:
        rec_info.update(points_written=report.points_written, points_spilled=report.points_spilled,
                        spilled=report.spilled, errors=report.errors[:20],
                        points_uncertain=report.points_uncertain, summary=report.summary())
    try:
        shutil.copyfile(scenario_file, run_dir / "scenario.yaml")
    except BaseException:
        (run_dir / "scenario.yaml").unlink(missing_ok=True)  # no half copy
        raise
    if overrides:
        (run_dir / "overrides.txt").write_text("\n".join(overrides) + "\n", encoding="utf-8")
    simulated_s = scenario.clock.seconds(outcome.ticks)
    expectations = _expectations(scenario, outcome, simulated_s)
    run_info = {
        "run_id": run_id,
        "scenario": scenario.name,
        "status": outcome.status,
        "reason": outcome.reason,
        "seed": scenario.seed,
        "overrides": list(overrides or []),
        "start": scenario.start.isoformat(),
        "simulated_s": simulated_s,
        "step_s": scenario.step,
        "time_resolution_s": scenario.time_resolution,
        "grid_steps": outcome.ticks // scenario.step_ticks,
        "grid_solves": outcome.grid_solves,
        "non_converged_steps": outcome.kpis["non_converged_steps"],
        "points_recorded": outcome.points_recorded,
        "prepare_wall_time_s": round(prepare_s, 3),
        "wall_time_s": round(outcome.wall_time_s, 3),
        "speed_up": round(simulated_s / outcome.wall_time_s, 1) if outcome.wall_time_s else None,
        "recording": rec_info,
        **({"live": meter.stats()} if meter is not None else {}),
        **({"grafana_annotations": annotator.summary()} if annotator is not None else {}),
        "events": [{"time_ns": e.time_ns, **e.tags, **e.fields} for e in outcome.events[:100]],
        "warnings": list(prep.warnings),  # what preparation found doubtful (e.g. ratings)
        "dms": prep.dms.describe() if prep.dms is not None else None,  # which DMS ran
        # the power-flow backend: requested, used, and why (auto's choice)
        "grid_solver": dataclasses.asdict(prep.solver) if prep.solver is not None else None,
        **({"expectations": {k: expectations[k] for k in ("passed", "n_passed", "n_failed")}}
           if expectations is not None else {}),
        "versions": versions(),
        "started_utc": head["started_utc"],
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    # kpis.json first: run.json says "completed" only once everything but the report is there
    # the file names the DMS the KPIs judge (class, version, params), so two files compare
    outcome.kpis["dms"] = _dms_named(prep)
    _write_json(run_dir / "kpis.json", outcome.kpis)
    if expectations is not None:
        _write_json(run_dir / EXPECTATIONS_FILE, expectations)
    _write_json(run_dir / "run.json", run_info)
    try:
        write_report(run_dir)  # run_dir/report.html, self-contained
    except Exception as exc:  # the data are written; a report that fails must not lose them
        (run_dir / "report.html.tmp").unlink(missing_ok=True)
        logging.getLogger(__name__).warning("report.html not written: %s (rebuild it with "
                                            "`twin report %s`)", one_line(exc), run_dir)
    return RunSummary(run_dir, run_id, scenario, outcome, rec_info, run_info, expectations)


def _expectations(scenario: Scenario, outcome: RunOutcome, end_s: float) -> dict | None:
    """expectations.json of the run: the scenario's expectations checked against its KPIs
    and what the recorder collected (None: the scenario has none)."""
    spec = scenario.expectations
    if not spec.count:
        return None
    log = outcome.event_log
    results = evaluate(spec, outcome.kpis, log.events if log else [],
                       log.decisions if log else [], end_s=end_s,
                       fault_s=min((f.after for f in scenario.faults), default=None))
    return expectations_report(results)


def _dms_named(prep) -> dict | None:
    """The DMS as kpis.json names it: what ran, not how it was reached (in process or over
    TCP give the same file)."""
    if prep.dms is None:
        return None
    info = prep.dms.describe()
    return {k: info[k] for k in ("class", "version", "api_version", "params")}


def _write_json(path: Path, data: dict) -> None:
    """Written aside and renamed: a reader (or a full disk) never sees half a file."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
