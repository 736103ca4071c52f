"""One run, end to end: scenario file → run directory with store, run.json and kpis.json.

Run directory layout::

    <run_dir>/scenario.yaml   copy of the scenario as given
    <run_dir>/run.json        versions, seed, wall time, steps, speed-up, recording outcome
    <run_dir>/kpis.json       the KPIs (deterministic: same scenario + seed ⇒ same file)
    <run_dir>/report.html     the report: plots, decisions, KPIs (self-contained, offline)
    <run_dir>/store/          the file store (or the spill of an unreachable InfluxDB)
"""

from __future__ import annotations

import json
import logging
import os
import platform
import shutil
import time as wallclock
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Callable

from twin.build.prepare import prepare
from twin.build.wiring import RunOutcome, WorldHandles, run_world
from twin.evaluation.kpis import kpi_point
from twin.grid.geo import geo_points
from twin.live import LagMeter, live_progress
from twin.recording.annotations import AnnotatingStore, annotator_from_env
from twin.recording.factory import open_recording
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
) -> RunSummary:
    """Run a scenario file; ScenarioError for anything wrong with the input. ``speed``:
    live mode, paced at that many simulated seconds per wall-clock second."""
    scenario_file = Path(scenario_file)
    scenario = load_scenario(scenario_file, overrides)
    until_s = None
    if until is not None:
        try:
            until_s = parse_duration_s(until)
        except ValueError as exc:
            raise ScenarioError(f"--until: expected {exc}") from None
        if until_s > scenario.duration:
            raise ScenarioError(
                f"--until: expected at most the scenario's duration ({scenario.duration:g} s); "
                f"found {until}")
    kind = record or scenario.recording.store
    influx = _influx_override(scenario, influx_url) if kind == "influx" else scenario.recording.influx

    run_dir = Path(out) if out is not None else default_run_dir(scenario)
    if (run_dir / "run.json").exists():
        raise ScenarioError(f"--out: expected a new or empty directory; {run_dir} holds a run")
    run_dir.mkdir(parents=True, exist_ok=True)
    run_id = run_dir.resolve().name

    wall0 = wallclock.perf_counter()
    prep = prepare(scenario, scenario_file)
    prepare_s = wallclock.perf_counter() - wall0
    recording = open_recording(kind, influx, run_dir)
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
                            speed=speed)
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
        report = recording.close()

    rec_info: dict = {"kind": recording.kind, "target": recording.description,
                      "points": outcome.points_recorded}
    if report is not None:
        rec_info.update(points_written=report.points_written, points_spilled=report.points_spilled,
                        spilled=report.spilled, errors=report.errors[:20],
                        summary=report.summary())
    shutil.copyfile(scenario_file, run_dir / "scenario.yaml")
    if overrides:
        (run_dir / "overrides.txt").write_text("\n".join(overrides) + "\n", encoding="utf-8")
    simulated_s = scenario.clock.seconds(outcome.ticks)
    run_info = {
        "run_id": run_id,
        "scenario": scenario.name,
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
        "versions": versions(),
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    _write_json(run_dir / "run.json", run_info)
    _write_json(run_dir / "kpis.json", outcome.kpis)
    try:
        write_report(run_dir)  # run_dir/report.html, self-contained
    except Exception as exc:  # the data are written; a report that fails must not lose them
        logging.getLogger(__name__).warning("report.html not written: %s (rebuild it with "
                                            "`twin report %s`)", exc, run_dir)
    return RunSummary(run_dir, run_id, scenario, outcome, rec_info, run_info)


def _write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")
