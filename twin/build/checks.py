"""Checks of a scenario against its prepared grid that :func:`twin.build.prepare.prepare`
runs besides resolving names: a net the power flow can use, scenario commands a device can
take, fault impedances, and events the run would never reach (warnings)."""

from __future__ import annotations

import difflib
import math

import numpy as np
import pandapower as pp

from twin.evaluation.kpis import numeric_kpi_names
from twin.grid.names import ELEMENT_KINDS, ELEMENT_TABLES, element_names, split_ref
from twin.models.field import ACTIONS, KIND_TABLE, FieldPlan
from twin.recording.policy import recording_policy
from twin.scenario import Scenario, ScenarioError
from twin.timebase import format_duration


def _listed(names: list[str], limit: int = 5) -> str:
    return ", ".join(names[:limit]) + (f" … ({len(names)} in all)" if len(names) > limit else "")


def check_net(net: pp.pandapowerNet) -> None:
    """A net the power flow can use: buses with a positive, finite voltage level, lines with
    a positive, finite length; a ScenarioError naming the elements otherwise."""
    vn = net.bus["vn_kv"].to_numpy(dtype=float)
    bad = [n for n, v in zip(element_names(net, "bus"), vn) if not (math.isfinite(v) and v > 0)]
    if bad:
        raise ScenarioError(f"grid: expected every bus with a positive voltage level (vn_kv); "
                            f"found {len(bad)} without: {_listed(bad)}")
    if len(net.line):
        length = net.line["length_km"].to_numpy(dtype=float)
        bad = [n for n, v in zip(element_names(net, "line"), length)
               if not (math.isfinite(v) and v > 0)]
        if bad:
            raise ScenarioError(f"grid: expected every line with a positive length (length_km); "
                                f"found {len(bad)} of zero, negative or no length: {_listed(bad)}")


def check_faults(scenario: Scenario) -> None:
    """Fault impedances are finite numbers (an infinite impedance is no fault at all)."""
    for k, f in enumerate(scenario.faults):
        for key in ("r_ohm", "x_ohm"):
            value = getattr(f, key)
            if not math.isfinite(value):
                raise ScenarioError(f"faults[{k}].{key}: expected a finite impedance [Ω]; "
                                    f"found {value!r}")


def check_commands(scenario: Scenario, net: pp.pandapowerNet, field: FieldPlan | None,
                   plants: set[str]) -> list[str]:
    """Each scenario command names an element of the grid (``plants``: the references of
    the PV, wind, battery and EV plants, ``"pv:PV 3"``), with an action that applies to it
    and a finite value in the device's range; a ScenarioError otherwise. Returns warnings
    for commands to an element no command path reaches (the run records them as failed)."""
    devices = field.devices if field is not None else {}
    warnings = []
    for k, c in enumerate(scenario.commands):
        key = f"commands[{k}]"
        device = devices.get(c.target)
        if device is None:
            kind, name = split_ref(c.target, ELEMENT_KINDS, strip=True)
            if kind in ("pv", "wind", "battery", "ev"):  # plants the scenario models
                exists = f"{kind}:{name}" in plants
            else:
                exists = name in element_names(net, KIND_TABLE[kind])
            if not exists:
                known = sorted(devices)
                raise ScenarioError(
                    f"{key}.target: expected an element of the grid, such as a device "
                    f"commands reach ({_listed(known, 8) or 'none'}); found {c.target!r}")
            warnings.append(f"{key}.target: {c.target} is no device a command reaches (no "
                            f"RTU lists it, not a manual switch); the run records the "
                            f"command as failed")
            continue
        kinds = ACTIONS[c.action][0]
        if device.kind not in kinds:
            raise ScenarioError(f"{key}.action: expected an action for a {device.kind}; found "
                                f"{c.action!r} (for a {' or '.join(kinds)})")
        if c.value is None:
            continue
        if not math.isfinite(c.value):
            raise ScenarioError(f"{key}.value: expected a finite number; found {c.value!r}")
        assert field is not None
        table, idx = field.targets[device.eid]
        limits = _limits(net, table, idx, c.action)
        if limits is not None and not limits[0] <= c.value <= limits[1]:
            raise ScenarioError(f"{key}.value: expected {c.action} within {limits[0]:g} … "
                                f"{limits[1]:g} for {c.target}; found {c.value:g}")
    return warnings


def _limits(net: pp.pandapowerNet, table: str, idx: int, action: str
            ) -> tuple[float, float] | None:
    if action == "set_tap":
        trafo = net.trafo
        if "tap_min" not in trafo.columns:
            return None
        lo, hi = float(trafo.at[idx, "tap_min"]), float(trafo.at[idx, "tap_max"])
        return (lo, hi) if np.isfinite(lo) and np.isfinite(hi) else None
    if action == "set_step":
        return (0.0, float(net.shunt.at[idx, "max_step"]))
    return None


def late_events(scenario: Scenario, end_s: float | None = None) -> list[str]:
    """Warnings for what the scenario schedules at or after its end (``end_s``, default its
    duration): the run never gets there."""
    end = scenario.duration if end_s is None else end_s
    found = [(f"faults[{k}]", f"a fault on {f.line}", f.after) for k, f in enumerate(scenario.faults)]
    found += [(f"commands[{k}]", f"{c.action} {c.target}", c.after)
              for k, c in enumerate(scenario.commands)]
    found += [(f"rtus[{r}].link.outages[{k}]", f"a link outage of RTU {rtu.name}", o.after)
              for r, rtu in enumerate(scenario.rtus) if not isinstance(rtu.link, str)
              for k, o in enumerate(rtu.link.outages)]
    return [f"{key}.after: {what} at {format_duration(after)} comes at or after the scenario's "
            f"end ({format_duration(end)}); the run never reaches it"
            for key, what, after in found if after >= end]


#: More EVs than any distribution grid feeds: planning them would exhaust memory, not fail.
MAX_EVS = 1_000_000


def check_sizes_and_points(scenario: Scenario) -> None:
    """Sizes the run can hold, and each RTU point once per RTU."""
    if scenario.ev_fleet.n_ev > MAX_EVS:
        raise ScenarioError(f"ev_fleet.n_ev: expected at most {MAX_EVS:,} EVs; "
                            f"found {scenario.ev_fleet.n_ev:,}")
    for r, rtu in enumerate(scenario.rtus):
        seen: dict[tuple[str, str], int] = {}
        for p, pt in enumerate(rtu.points):
            key = (pt.element, pt.quantity)
            if key in seen:
                raise ScenarioError(
                    f"rtus[{r}].points[{p}]: expected each point once per RTU; found "
                    f"{pt.element} {pt.quantity} again (as points[{seen[key]}])")
            seen[key] = p


def check_expectations(scenario: Scenario, net: pp.pandapowerNet) -> None:
    """The scenario's ``expectations`` name KPIs the run computes and elements of the grid,
    and ``after: fault`` has a fault to count from; a ScenarioError otherwise (with close
    names for a misspelt KPI)."""
    spec = scenario.expectations
    if not spec.count:
        return
    known = numeric_kpi_names()
    for k, check in enumerate(spec.kpis):
        if check.kpi not in known:
            close = [n for n in known if n.startswith(check.kpi)] + \
                difflib.get_close_matches(check.kpi, known, n=4, cutoff=0.5)
            close = list(dict.fromkeys(close))[:4]
            hint = (f"close names: {', '.join(close)}" if close
                    else f"one of {_listed(known, 12)}")
            raise ScenarioError(f"expectations.kpis[{k}]: expected a KPI of the run ({hint}); "
                                f"found {check.kpi!r} in {check.check!r}")
    for k, check in enumerate(spec.events):
        table, name = check.element.split(":", 1)
        names = element_names(net, table)
        if name not in names:
            close = difflib.get_close_matches(name, names, n=4, cutoff=0.5)
            raise ScenarioError(
                f"expectations.events[{k}].element: expected a {table} of the grid "
                f"({', '.join(close) if close else _listed(names, 8) or 'none'}); "
                f"found {check.element!r}")
        if check.after == "fault" and not scenario.faults:
            raise ScenarioError(f"expectations.events[{k}].after: expected a fault in the "
                                f"scenario's 'faults' to count from; found none")
    for k, check in enumerate(spec.decisions):
        for s, step in enumerate(check.sequence):
            table, _, name = (step.target or "").partition(":")
            if table in ELEMENT_TABLES and name not in element_names(net, table):
                names = element_names(net, table)
                close = difflib.get_close_matches(name, names, n=4, cutoff=0.5)
                raise ScenarioError(
                    f"expectations.decisions[{k}].sequence[{s}].target: expected a {table} of "
                    f"the grid ({', '.join(close) if close else _listed(names, 8) or 'none'}); "
                    f"found {step.target!r}")


def check_recording(scenario: Scenario, names: dict[str, list[str]]) -> dict:
    """The scenario's ``recording`` policy resolved against the grid's element ``names``:
    ``recording.every`` a whole multiple of the step, every ref of ``recording.elements`` an
    element of the grid; a ScenarioError naming the key path otherwise.

    Returns
    -------
    dict
        The effective policy as run.json keeps it: ``elements`` (``"all"``, ``"summary"``
        or the list of refs), ``requested`` (as the scenario says it, e.g. ``"auto"``) and
        ``every_s`` (seconds between table snapshots; None: every solve).
    """
    spec = scenario.recording
    # the same function the recorder's policy comes from, so run and check cannot disagree
    policy = recording_policy(spec, names, scenario.step, scenario.time_resolution,
                              scenario.kpis.voltage_band_pu)
    elements = (list(spec.elements) if isinstance(spec.elements, list)
                else "all" if policy.whole_tables else "summary")
    every_s = (None if policy.every_ticks is None
               else policy.every_ticks * scenario.time_resolution)
    requested = list(spec.elements) if isinstance(spec.elements, list) else spec.elements
    return {"elements": elements, "requested": requested, "every_s": every_s}
