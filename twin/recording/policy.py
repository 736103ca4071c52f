"""What of the grid's element tables a run records (``recording.elements``, ``recording.every``).

A 97-bus grid at every solve is a few hundred points a step; a 10,458-bus grid over a year
is billions, nearly all of them saying "within limits". So:

* ``all`` — every row of every grid table at every solve (``every`` thins them);
* ``summary`` — at every solve the rows of the elements that are *in violation* (a bus with
  its voltage outside the band, a line or transformer above 100 % loading), every field of
  them; the selected elements' rows when a table snapshot is due; and at the run's end the
  per-element extremes (:data:`~twin.recording.schema.EXTREMES`: each bus's min/max
  voltage, each line's and transformer's highest loading over every solve);
* a list of refs (``"bus:Bus 3"``) — the summary plus these elements;
* ``auto`` — ``all`` up to :data:`AUTO_ALL_MAX_BUSES` buses, ``summary`` above.

``every`` thins the table snapshots (a snapshot is due at ticks that are multiples of it);
violations are kept at every solve, and the extremes are written whenever the tables are
incomplete. The grid summary, events and device tables are never thinned, and the KPIs see
every element of every solve whatever the policy: it only decides what is stored.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from twin.recording.columns import ColumnBatch, column_batch
from twin.recording.schema import (
    BUS,
    BUS_EXTREMES,
    GRID_TABLES,
    LINE,
    LINE_EXTREMES,
    TRAFO,
    TRAFO_EXTREMES,
)
from twin.scenario import RecordingSpec, ScenarioError

#: ``auto`` records every element up to this many buses.
AUTO_ALL_MAX_BUSES = 1000
#: A line or transformer is in violation above this loading [%].
OVERLOAD_PERCENT = 100.0
_EXTREMES_OF = {BUS: BUS_EXTREMES, LINE: LINE_EXTREMES, TRAFO: TRAFO_EXTREMES}


def _listed(names: Sequence[str], limit: int) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", … ({len(names)} in all)" if len(names) > limit else "")


def selected_positions(refs: Sequence[str], names: Mapping[str, Sequence[str]]
                       ) -> dict[str, list[int]]:
    """Positions of ``recording.elements`` refs in the grid's tables.

    Raises
    ------
    ScenarioError
        For the first ref that is not ``<table>:<name>`` of a grid table, or names no
        element of it (with close names).
    """
    positions: dict[str, list[int]] = {}
    index: dict[str, dict[str, int]] = {}
    for k, ref in enumerate(refs):
        table, sep, name = str(ref).partition(":")
        if not sep or table not in GRID_TABLES:
            raise ScenarioError(
                f"recording.elements[{k}]: expected '<table>:<name>' with a table of the grid "
                f"({', '.join(GRID_TABLES)}), e.g. 'bus:Bus 3'; found {ref!r}")
        table_names = list(names.get(table, ()))
        if table not in index:
            index[table] = {n: i for i, n in enumerate(table_names)}
        if name not in index[table]:
            close = difflib.get_close_matches(name, table_names, n=4, cutoff=0.5)
            raise ScenarioError(
                f"recording.elements[{k}]: expected a {table} of the grid "
                f"({', '.join(close) if close else _listed(table_names, 8) or 'none'}); "
                f"found {ref!r}")
        positions.setdefault(table, []).append(index[table][name])
    return positions


@dataclass
class RecordingPolicy:
    """Decides, solve by solve, which rows of a grid table go to the store.

    Parameters
    ----------
    whole_tables : bool
        Every row when a snapshot is due (``all``); else violations and selected rows.
    every_ticks : int or None
        A table snapshot is due at ticks that are multiples of this (None: at every solve).
    selected : dict of str to list of int
        Per table, positions of elements recorded whenever a snapshot is due.
    band_pu : (low, high)
        Voltage band [p.u.]; a bus outside it is in violation.
    """

    whole_tables: bool = True
    every_ticks: int | None = None
    selected: dict[str, list[int]] = field(default_factory=dict)
    band_pu: tuple[float, float] = (0.95, 1.05)
    _selected_masks: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    # per table: (names, min, max) over the run, by position
    _extremes: dict[str, tuple[Sequence[str], np.ndarray, np.ndarray]] = field(
        default_factory=dict, repr=False)
    _last_time_ns: int | None = field(default=None, repr=False)

    @property
    def keeps_everything(self) -> bool:
        return self.whole_tables and self.every_ticks is None

    def select(self, time_ticks: int, batch: ColumnBatch) -> ColumnBatch | None:
        """The rows of ``batch`` to store at ``time_ticks`` (None: none)."""
        if self.keeps_everything or batch.measurement not in GRID_TABLES:
            return batch
        if batch.measurement in _EXTREMES_OF:
            self._track(batch)
        due = self.every_ticks is None or time_ticks % self.every_ticks == 0
        if due and self.whole_tables:
            return batch
        keep = _violations(batch, self.band_pu)
        if due and batch.measurement in self.selected:
            chosen = self._selected_mask(batch)
            keep = chosen if keep is None else keep | chosen
        if keep is None or not keep.any():
            return None
        return batch if keep.all() else batch.take(np.flatnonzero(keep))

    def _selected_mask(self, batch: ColumnBatch) -> np.ndarray:
        table = batch.measurement
        mask = self._selected_masks.get(table)
        if mask is None or len(mask) != len(batch.names):
            mask = np.zeros(len(batch.names), bool)
            mask[self.selected[table]] = True
            self._selected_masks[table] = mask
        return mask if batch.rows is None else mask[batch.rows]

    def _track(self, batch: ColumnBatch) -> None:
        """Fold the batch into the per-element extremes (every solve, before thinning)."""
        key = "vm_pu" if batch.measurement == BUS else "loading_percent"
        column = batch.fields.get(key)
        if column is None:
            return
        table = batch.measurement
        entry = self._extremes.get(table)
        if entry is None or entry[0] is not batch.names:
            n = len(batch.names)
            entry = self._extremes[table] = (batch.names, np.full(n, np.nan), np.full(n, np.nan))
        _, lows, highs = entry
        mask = batch.valid[key]
        values = column if mask is None else np.where(mask, column, np.nan)
        rows = slice(None) if batch.rows is None else batch.rows
        lows[rows] = np.fmin(lows[rows], values)  # fmin/fmax: NaN only where both are
        highs[rows] = np.fmax(highs[rows], values)
        self._last_time_ns = batch.time_ns

    def extremes(self, run_id: str) -> list[ColumnBatch]:
        """The per-element extremes so far, one batch per table, at the last solve's time."""
        batches = []
        for table, (names, lows, highs) in self._extremes.items():
            columns = ({"vm_min_pu": lows.copy(), "vm_max_pu": highs.copy()} if table == BUS
                       else {"loading_max_percent": highs.copy()})
            batch = column_batch(_EXTREMES_OF[table], names, columns, run_id,
                                 self._last_time_ns or 0)
            if batch is not None and batch.n_rows:
                batches.append(batch)
        return batches


def _violations(batch: ColumnBatch, band_pu: tuple[float, float]) -> np.ndarray | None:
    """Rows in violation (None: the table has no limit checked here)."""
    if batch.measurement == BUS:
        vm = batch.fields.get("vm_pu")
        # NaN compares False; ±inf is not a value (left out of the row), so not a violation
        return None if vm is None else ((vm < band_pu[0]) | (vm > band_pu[1])) & np.isfinite(vm)
    if batch.measurement in (LINE, TRAFO):
        loading = batch.fields.get("loading_percent")
        return None if loading is None else (loading > OVERLOAD_PERCENT) & np.isfinite(loading)
    return None


def recording_policy(spec: RecordingSpec, names: Mapping[str, Sequence[str]], step_s: float,
                     time_resolution_s: float, band_pu: tuple[float, float]
                     ) -> RecordingPolicy:
    """The policy of a scenario's ``recording`` section for a grid with these ``names``.

    Raises
    ------
    ScenarioError
        ``every`` not a whole multiple of the step, or an element ref the grid lacks.
    """
    every_ticks = None
    if spec.every is not None:
        ratio = spec.every / step_s
        if ratio < 1 or abs(ratio - round(ratio)) > 1e-9:
            raise ScenarioError(f"recording.every: expected a whole multiple of step "
                                f"({step_s:g} s); found {spec.every:g} s")
        every_ticks = round(spec.every / time_resolution_s)
    elements = spec.elements
    selected: dict[str, list[int]] = {}
    if isinstance(elements, list):
        selected = selected_positions(elements, names)
        whole = False
    elif elements == "auto":
        whole = len(names.get(BUS, ())) <= AUTO_ALL_MAX_BUSES
    else:
        whole = elements == "all"
    if every_ticks == round(step_s / time_resolution_s):
        every_ticks = None  # every solve at a regular step: no thinning
    return RecordingPolicy(whole_tables=whole, every_ticks=every_ticks, selected=selected,
                           band_pu=tuple(band_pu))  # type: ignore[arg-type]
