"""The KPIs and the event log read column batches exactly as they read the same points."""

from __future__ import annotations

import numpy as np
import pytest

from twin.evaluation.expectations import EventLog
from twin.evaluation.kpis import KpiAccumulator
from twin.recording.columns import ColumnBatch, column_batch
from twin.recording.schema import (
    BUS,
    DMS_ESTIMATE,
    GRID,
    LINE,
    LOAD,
    PV,
    SWITCH,
    TRAFO,
    Point,
    table_points,
)

T0_NS = 1_704_067_200_000_000_000
STEP_S = 60
BUSES = [f"Bus {k}" for k in range(12)]
LINES = [f"Line {k}" for k in range(8)]
TRAFOS = ["Trafo 0", "Trafo 1"]
LOADS = [f"Load {k}" for k in range(6)]
SWITCHES = [f"S{k}" for k in range(5)]
PVS = ["PV 1", "PV 2"]
CUSTOMERS = {"Load 0": 10, "Load 2": 5, "Load 5": 1}  # the others have none (EV points)


def step_items(step: int, rng: np.random.Generator) -> list[tuple[str, list[str], dict] | Point]:
    """One recorder step in source order: a DMS estimate (before the grid, as sorted
    sources put it), the grid's tables, its summary; NaN, ties, violations, outages."""
    t_ns = T0_NS + step * STEP_S * 10**9
    n = len(BUSES)
    vm = rng.normal(1.0, 0.04, n)
    vm[rng.integers(n)] = np.nan
    if step % 7 == 3:
        vm[:] = np.nan  # a failed solve: no voltage at all
    if step % 5 == 1 and step % 7 != 3:
        vm[2] = vm[7] = np.nanmax(vm) + 0.01  # a tie: the first bus names the maximum
    loading = rng.uniform(20, 120, len(LINES))
    loading[rng.integers(len(LINES))] = np.nan
    trafo = rng.uniform(30, 110, len(TRAFOS))
    supplied = rng.random(len(LOADS)) > 0.3
    demand = rng.uniform(0, 2, len(LOADS))
    demand[1] = np.nan
    closed = rng.random(len(SWITCHES)) > 0.4
    estimate = Point(DMS_ESTIMATE, t_ns, {"run": "r", "element": BUSES[step % n]},
                     {"vm_pu": float(rng.normal(1.0, 0.01))})
    summary = Point(GRID, t_ns, {"run": "r", "element": "grid"},
                    {"converged": int(step % 7 != 3), "p_loss_mw": 0.1 + step * 1e-3,
                     "p_load_mw": 2.0, "p_ext_grid_mw": 1.5})
    return [estimate,
            (BUS, BUSES, {"vm_pu": vm, "va_degree": np.zeros(n)}),
            (LINE, LINES, {"loading_percent": loading, "in_service": np.ones(len(LINES), bool)}),
            (TRAFO, TRAFOS, {"loading_percent": trafo}),
            (LOAD, LOADS, {"p_mw": demand * supplied, "supplied": supplied,
                           "p_demand_mw": demand}),
            (SWITCH, SWITCHES, {"closed": closed}),
            (PV, PVS, {"p_mw": rng.uniform(0, 1, 2).tolist(),
                       "curtailed_mw": [0.0, 0.1 * step]}),  # a device park's lists
            summary]


def as_points(raw: list, t_ns: int) -> list[Point]:
    out: list[Point] = []
    for item in raw:
        if isinstance(item, Point):
            out.append(item)
            continue
        measurement, names, columns = item
        lists = {k: list(v) if isinstance(v, list) else v.tolist() for k, v in columns.items()}
        out += [p for p in table_points(measurement, names, lists, "r", t_ns) if p.fields]
    return out


def as_batches(raw: list, t_ns: int) -> list[Point | ColumnBatch]:
    out: list[Point | ColumnBatch] = []
    for item in raw:
        if isinstance(item, Point):
            out.append(item)
        else:
            batch = column_batch(item[0], item[1], item[2], "r", t_ns)
            assert batch is not None
            out.append(batch)
    return out


@pytest.mark.parametrize("warmup_s", [0.0, 150.0])
def test_kpis_and_events_are_identical_for_columns_and_points(warmup_s: float) -> None:
    kpis = {kind: KpiAccumulator(band_pu=(0.95, 1.05), customers=CUSTOMERS, warmup_s=warmup_s)
            for kind in ("points", "columns")}
    logs = {kind: EventLog(T0_NS) for kind in ("points", "columns")}
    watched = {kind: EventLog(T0_NS, watch=["switch:S1", "load:Load 2"])
               for kind in ("points", "columns")}
    rng = np.random.default_rng(7)
    steps = 40
    for step in range(steps):
        raw = step_items(step, rng)
        t_ns = T0_NS + step * STEP_S * 10**9
        for kind, items in (("points", as_points(raw, t_ns)), ("columns", as_batches(raw, t_ns))):
            kpis[kind].add(step * STEP_S, items)
            logs[kind].add(items)
            watched[kind].add(items)
    end_s = steps * STEP_S
    by_points, by_columns = kpis["points"].finish(end_s), kpis["columns"].finish(end_s)
    assert by_columns == by_points
    assert by_points["voltage_violation_minutes"] > 0 and by_points["overload_minutes"] > 0
    assert by_points["se_error_mean_pu"] is not None  # estimates met a truth
    # interruptions of loads with customers counted, with the energy not supplied
    assert by_points["interruptions_momentary"] > 0 and by_points["energy_not_supplied_mwh"] > 0
    assert logs["columns"].events == logs["points"].events and logs["points"].events
    assert watched["columns"].events == watched["points"].events and watched["points"].events
