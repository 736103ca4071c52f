"""``twin validate``: everything ``twin run`` would reject, found without running.

The scenario is prepared as for a run (:func:`twin.build.prepare.prepare` with
``check_only``): the grid is built and checked, every name is resolved against it, the
plans are made; profiles and weather are built for the first step only, so a year-long
scenario costs no more than a one-step one, while a weather file is read at the run's first
and last step (it must cover the whole run). Then one power flow of the prepared net at its
initial state must converge.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from twin.build.checks import check_expectations, check_recording
from twin.build.prepare import customers, prepare
from twin.grid.model import GridModel
from twin.scenario import Scenario, ScenarioError
from twin.timebase import format_duration


@dataclass
class CheckReport:
    checks: list[str] = field(default_factory=list)    # what was checked, one line each
    warnings: list[str] = field(default_factory=list)  # accepted, but worth saying


def _grid_source(scenario: Scenario) -> str:
    g = scenario.grid
    if g.builtin is not None:
        return f"built-in {g.builtin}"
    if g.simbench is not None:
        return f"SimBench {g.simbench}"
    return f"file {g.file}"


def check_scenario(scenario: Scenario, scenario_file: Path | None = None) -> CheckReport:
    """Prepare ``scenario`` without running it; a ScenarioError for the first problem."""
    report = CheckReport(checks=["schema: keys, types and ranges"])
    try:
        prep = prepare(scenario, scenario_file, check_only=True)
    except ValueError as exc:  # a weather file that cannot be read or does not cover the run
        if not str(exc).startswith("weather file"):
            raise
        raise ScenarioError(f"weather.csv: {exc}") from None
    net = prep.net
    report.checks.append(f"grid: {_grid_source(scenario)} loads ({len(net.bus)} buses, "
                         f"{len(net.line)} lines, {len(net.trafo)} trafos); voltage levels "
                         f"and line lengths")
    field_plan = prep.field
    named = [f"{len(prep.pv.names)} PV and {len(prep.wind.names)} wind plants",
             (f"{len(scenario.devices.capacitors)} capacitors, "
             f"{len(scenario.devices.line_switches)} line switches, "
             f"{len(scenario.devices.manual_switches)} manual switches")]
    if field_plan is not None:
        n_points = sum(len(r.points) for r in field_plan.rtus)
        named.append(f"{len(field_plan.rtus)} RTUs ({n_points} points, "
                     f"{sum(d.rtu is not None for d in field_plan.devices.values())} "
                     f"remote devices)")
    named.append(f"{len(scenario.commands)} commands (target, action, value in range)")
    named.append(f"{len(scenario.faults)} faults (line, finite impedance)")
    report.checks.append("names resolved against the grid: " + ", ".join(named))
    customers(prep)
    report.checks.append("reliability: customers per load")
    if scenario.expectations.count:
        check_expectations(scenario, net)
        report.checks.append(f"expectations: {scenario.expectations.count} checks name KPIs "
                             "and elements of the run")
    recording = check_recording(scenario, prep.names)
    every = ("every solve" if recording["every_s"] is None
             else f"every {format_duration(recording['every_s'])}")
    elements = recording["elements"]
    report.checks.append(
        "recording: " + (f"{len(elements)} selected elements found in the grid"
                         if isinstance(elements, list) else f"elements {elements}")
        + f", tables {every}")
    if prep.dms is not None:
        report.checks.append("DMS: functions planned against the grid and the field")
    w = scenario.weather
    span = f"{format_duration(0)} … {format_duration(scenario.duration - scenario.step)}"
    report.checks.append(f"weather: file {w.csv} covers the run ({span})" if w.source == "csv"
                         else "weather: synthetic")
    report.checks.append(f"profiles: {scenario.profiles.source} (first step built)")
    model = GridModel(net)
    outcome = model.solve()
    if not outcome.converged:
        raise ScenarioError(f"grid: expected a net whose power flow converges at its initial "
                            f"state; {outcome.message}")
    report.checks.append(f"power flow: converges at the initial state (bus voltages "
                         f"{model.summary['vm_min_pu']:.3f} … {model.summary['vm_max_pu']:.3f} "
                         f"p.u.)")
    report.checks.append("events and commands: within the run, to devices commands reach"
                         if not prep.warnings else
                         f"events and commands: {len(prep.warnings)} warnings")
    report.warnings = list(prep.warnings)
    return report
