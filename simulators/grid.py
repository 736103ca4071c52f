"""mosaik adapter for the pandapower grid model (:class:`twin.grid.model.GridModel`).

Hybrid simulator: it solves on its regular step and, in between, whenever a switching or
tap input arrives (those attributes are triggers), so switching is seen within the tick it
happens, not at the next grid step.

Entities: one ``Grid`` (whole-network summary) whose children are the elements, with ids
``<table>-<index>`` (``bus-3``, ``switch-6``); attributes carry units.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import mosaik_api_v3
import numpy as np

from twin.grid.model import RESULT_SPEC, SUMMARY_ATTRS, CommandRejected, GridModel
from twin.grid.names import element_names, split_ref
from twin.models.protection import Fault
from twin.recording.schema import event_record, protection_record
from twin.timebase import ticks_at_or_after

# model name -> (net table, input attrs, trigger attrs, output attrs). One table drives the
# META, entity creation, inputs and outputs.
_MODELS: dict[str, tuple[str, tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    "Bus": ("bus", (), (), tuple(RESULT_SPEC["bus"][1])),
    "Line": ("line", ("repaired",), ("repaired",), (*RESULT_SPEC["line"][1], "in_service")),
    "Trafo": ("trafo", ("tap_pos",), ("tap_pos",), (*RESULT_SPEC["trafo"][1], "tap_pos")),
    "Load": ("load", ("p_mw", "q_mvar"), (), tuple(RESULT_SPEC["load"][1])),
    "Sgen": ("sgen", ("p_mw", "q_mvar"), (), tuple(RESULT_SPEC["sgen"][1])),
    "Storage": ("storage", ("p_mw", "q_mvar"), (), tuple(RESULT_SPEC["storage"][1])),
    "Switch": ("switch", ("closed",), ("closed",), ("closed",)),
    "ExtGrid": ("ext_grid", (), (), tuple(RESULT_SPEC["ext_grid"][1])),
    "Shunt": ("shunt", ("step",), ("step",), (*RESULT_SPEC["shunt"][1], "step")),
}
#: Tables whose state comes from commands, and the attribute that carries them.
_COMMANDED = {"switch": "closed", "trafo": "tap_pos", "shunt": "step", "line": "repaired"}
TABLE_TO_MODEL = {table: model for model, (table, *_rest) in _MODELS.items()}


def _model_meta(inputs: tuple[str, ...], triggers: tuple[str, ...], outputs: tuple[str, ...]):
    attrs = list(dict.fromkeys((*inputs, *outputs)))
    return {
        "public": False,
        "params": [],
        "attrs": attrs,
        "trigger": list(triggers),
        "non-persistent": [],
    }


META: mosaik_api_v3.Meta = {
    "api_version": "3.0",
    "type": "hybrid",
    "models": {
        "Grid": {
            "public": True,
            "params": ["net", "step_ticks", "recycle", "protection", "faults",
                       "time_resolution_s", "solver"],
            # "snapshot": every element's results in one value, for consumers of the whole
            # state (the recorder) — one connection instead of one per element and attribute.
            # "solved_at": the tick of the latest solve, so consumers can tell a new state
            # from a held one.
            # "records": protection events (faults, trips, recloses), each with its time.
            # "injections" (input): a table's P/Q as vectors, {"table", "index", "p_mw",
            # "q_mvar"} (e.g. profiles); they add to the per-element inputs of an element.
            "attrs": [*SUMMARY_ATTRS, "snapshot", "solved_at", "records", "injections"],
            "trigger": [],
            "non-persistent": ["records"],
        },
        **{name: _model_meta(i, t, o) for name, (_tbl, i, t, o) in _MODELS.items()},
    },
}


class GridSim(mosaik_api_v3.Simulator):
    def __init__(self) -> None:
        super().__init__(META)
        self.model: GridModel | None = None
        self.step_ticks = 1
        self.solved_at = -1
        self.eid_index: dict[str, tuple[str, int]] = {}
        self.faults: list[tuple[int, Fault]] = []  # (tick, fault), latest first
        self.res_s = 1.0
        self.records: list[dict] = []
        self._vector_positions_cache: dict[tuple[str, str], tuple] = {}

    def init(self, sid, time_resolution=1.0, **sim_params):
        self.res_s = float(time_resolution)
        return self.meta

    def create(self, num, model, net=None, step_ticks=1, recycle=True, protection=None,
               faults=(), solver="pandapower"):
        if model != "Grid":
            raise ValueError(f"GridSim creates 'Grid' entities, not {model!r}")
        if num != 1 or self.model is not None:
            raise ValueError("GridSim holds exactly one Grid; start another GridSim for another")
        if net is None:
            raise ValueError("Grid needs net=<pandapower net>")
        if int(step_ticks) < 1:
            raise ValueError(f"step_ticks must be ≥ 1, found {step_ticks!r}")
        self.model = GridModel(net, recycle=recycle, protection=protection, solver=solver)
        if faults and protection is None:
            raise ValueError("faults need a protection model (protection=<Protection>)")
        self.faults = sorted(faults, key=lambda tf: tf[0], reverse=True)
        self.step_ticks = int(step_ticks)
        self.names = {t: dict(zip(net[t].index.astype(int), element_names(net, t)))
                      for t in ("line", "switch", "trafo", "shunt")}
        children = []
        for model_name, (table, *_rest) in _MODELS.items():
            for idx in net[table].index:
                eid = f"{table}-{idx}"
                self.eid_index[eid] = (table, int(idx))
                children.append({"eid": eid, "type": model_name, "rel": []})
        return [{"eid": "grid", "type": "Grid", "rel": [], "children": children}]

    def step(self, time, inputs, max_advance):
        model = self.model
        assert model is not None
        # per table: this step's P and Q columns (copies), and whether an input set each;
        # written into the net once per table and quantity, not once per source
        columns: dict[str, list] = {}
        covered: dict[str, np.ndarray] = {}  # per table: positions a vector input set
        for src, vector in sorted(inputs.get("grid", {}).get("injections", {}).items()):
            table = vector["table"]
            cols = columns.get(table) or self._columns(table, columns)
            positions, covered[table] = self._vector_positions(src, vector)
            for k, key in ((0, "p_mw"), (1, "q_mvar")):
                values = vector.get(key)
                if values is not None:
                    cols[k][positions] = values
                    cols[k + 2] = True
        for eid, attrs in inputs.items():
            if eid == "grid":
                continue
            table, idx = self.eid_index[eid]
            if table in _COMMANDED:
                value = _last(attrs[_COMMANDED[table]])
                if value is None:  # a device that was never commanded holds no value
                    continue
                if table == "line":
                    if value:
                        self._record(model.repair(idx, time * self.res_s))
                    continue
                try:
                    note = model.apply_command(table, idx, value)
                except CommandRejected as exc:  # the device keeps its state; the run goes on
                    self._event(time, table, idx, "command_rejected", str(exc))
                    continue
                if note:
                    self._event(time, table, idx, "command_limited", note)
            else:
                cols = columns.get(table) or self._columns(table, columns)
                pos = model.positions[table][idx]
                shared = table in covered and covered[table][pos]
                for k, key in ((0, "p_mw"), (1, "q_mvar")):
                    value = _total(attrs.get(key))
                    if value is None:
                        continue
                    if shared:  # a plant and a profile of one element add up
                        value = value + float(cols[k][pos])
                    cols[k][pos] = value
                    cols[k + 2] = True
        for table, (p_mw, q_mvar, p_set, q_set) in columns.items():
            model.set_injection_columns(table, p_mw if p_set else None, q_mvar if q_set else None)
        t_s = time * self.res_s
        self._record(model.protect(t_s))  # a switch closed onto a fault, a reclose due
        while self.faults and self.faults[-1][0] <= time:
            self._record(model.inject_fault(self.faults.pop()[1], t_s))
        fallbacks = model.n_fallbacks
        model.solve()
        if model.n_fallbacks > fallbacks:  # the step stands (pandapower's); the run says so
            self.records.append(event_record(
                time * self.res_s, "grid", "solver_fallback",
                "power-grid-model did not solve this state; pandapower did"))
        self.solved_at = time
        # Next regular step, also after an event-triggered solve between steps; and whatever
        # the protection or a fault brings before it.
        nxt = (time // self.step_ticks + 1) * self.step_ticks
        if self.faults:
            nxt = min(nxt, self.faults[-1][0])
        protection_s = model.next_protection_s()
        if math.isfinite(protection_s):
            nxt = min(nxt, max(time + 1, ticks_at_or_after(protection_s, self.res_s)))
        return nxt

    def _columns(self, table: str, columns: dict[str, list]) -> list:
        """``table``'s P and Q columns for this step (copies), none set yet."""
        cols = columns[table] = [*self.model.injection_columns(table), False, False]
        return cols

    def _vector_positions(self, src: str, vector: dict) -> tuple[np.ndarray, np.ndarray]:
        """Positions in its table of a vector input's elements, and their mask."""
        table, index = vector["table"], vector["index"]
        cached = self._vector_positions_cache.get((src, table))
        if cached is None or cached[0] is not index:  # positions once per source and index
            positions = np.fromiter((self.model.positions[table][int(i)] for i in index),
                                    np.int64, len(index))
            mask = np.zeros(len(self.model.net[table]), bool)
            mask[positions] = True
            cached = self._vector_positions_cache[(src, table)] = (index, positions, mask)
        return cached[1], cached[2]

    def _record(self, events) -> None:
        names = self.names
        for e in events:
            table, idx = split_ref(e.element)  # "<table>:<index>"; "grid:0": the whole grid
            element = names[table][int(idx)] if table in names else table
            if e.kind in ("protection_failed", "fault_ignored"):
                logging.getLogger(__name__).warning("t=%g s: %s: %s %s", e.t_s, element,
                                                    e.kind, e.fields.get("reason", ""))
            self.records.append(protection_record(e.t_s, element, e.kind, e.fields))

    def _event(self, time: int, table: str, idx: int, kind: str, message: str) -> None:
        """A command the grid could not apply as sent: an event record, and a warning."""
        element = f"{table}:{self.names[table][idx]}"
        logging.getLogger(__name__).warning("t=%g s: %s: %s", time * self.res_s, element, message)
        self.records.append(event_record(time * self.res_s, element, kind, message))

    def _grid_value(self, attr: str) -> Any:
        assert self.model is not None
        if attr == "snapshot":
            # numpy arrays, in-process (field simulator, recorder); one copy per solve,
            # shared by every consumer of this step, which only reads it
            cached = getattr(self, "_snapshot_cache", None)
            if cached is None or cached[0] != self.model.n_solves:
                cached = self._snapshot_cache = (self.model.n_solves, self.model.snapshot())
            return cached[1]
        if attr == "solved_at":
            return self.solved_at
        if attr == "records":
            records, self.records = self.records, []
            return records
        return self.model.summary[attr]

    def get_data(self, outputs):
        model = self.model
        assert model is not None
        data: dict[str, dict[str, Any]] = {}
        for eid, attrs in outputs.items():
            if eid == "grid":
                data[eid] = {a: self._grid_value(a) for a in attrs}
            else:
                table, idx = self.eid_index[eid]
                data[eid] = {a: model.value(table, idx, a) for a in attrs}
        return data


def _total(values: dict[str, float] | None) -> float | None:
    # Several sources may feed one element (e.g. a PV plant and a profile): they add up.
    if not values:
        return None
    return float(sum(values.values()))


def _last(values: dict[str, Any]) -> Any:
    # For commands, sources should not disagree; take the one from the last source id.
    return values[sorted(values)[-1]]
