"""mosaik adapter that replays precomputed time series: weather, and load/generation profiles.

Time-based: on each step it moves to the row of the current time; values are held between
rows. A ``Series`` entity is one column group of a table (the weather: its attributes). A
``Table`` entity replays the profiles of many elements (:class:`twin.build.profiles.ProfileTable`
per attribute), one child entity per element: the values of a step are computed once, for all
elements, from the compact tables (memory grows with the grid, not with grid × horizon).
"""

from __future__ import annotations

import mosaik_api_v3
import numpy as np
import pandas as pd

# The output attributes are named when the simulator is started (see ``init``).
META: mosaik_api_v3.Meta = {"api_version": "3.0", "type": "time-based", "models": {}}


class TimeSeriesSim(mosaik_api_v3.Simulator):
    """Entities: ``create(1, "Series", columns={attr: values}, step_ticks=k, eid=name)``.

    ``values`` are arrays with one row per step (row ``i`` valid from tick ``i·k``). The
    output attributes are the keys of ``columns``; they are declared per instance, because
    mosaik checks outputs against the model's attrs.
    """

    def __init__(self) -> None:
        super().__init__({**META, "models": {}})  # a copy per instance: init fills it
        self.series: dict[str, dict[str, np.ndarray]] = {}
        self.step_ticks = 1
        self.row = 0
        self.n_rows = 0
        # Table entities: eid -> {attr: ProfileTable}; child eid -> (table eid, position)
        self.tables: dict[str, dict] = {}
        self.members: dict[str, tuple[str, int]] = {}
        self.prefixes: dict[str, str] = {}  # Table eid -> the net table its elements are in
        self._values: dict[tuple[str, str], np.ndarray] = {}  # this row's, per (table, attr)

    def init(self, sid, time_resolution=1.0, attrs=(), **sim_params):
        # The attribute names are known when the simulator is started, so META can list them.
        self.meta["models"] = {
            "Series": {"public": True, "params": ["columns", "step_ticks", "eid"],
                       "attrs": list(attrs)},
            # "injections": the whole table's values of this step in one value (index and
            # one array per attribute), for a consumer that takes them as a vector — one
            # connection instead of one per element (12,000 on the 10k-bus SimBench grid)
            "Table": {"public": True, "params": ["tables", "step_ticks", "eid", "prefix"],
                      "attrs": ["injections"]},
            "Element": {"public": False, "params": [], "attrs": list(attrs)},
        }
        return self.meta

    def create(self, num, model, columns=None, step_ticks=1, eid=None, tables=None,
               prefix=None):
        if num != 1:
            raise ValueError(f"create one {model} entity at a time")
        if model == "Table":
            return self._create_table(tables, step_ticks, eid, prefix)
        if not columns:
            raise ValueError("Series needs columns={attr: values}")
        arrays = {a: np.asarray(v.to_numpy() if isinstance(v, pd.Series) else v, dtype=float)
                  for a, v in columns.items()}
        lengths = {len(v) for v in arrays.values()}
        if len(lengths) != 1:
            raise ValueError(f"columns of unequal length: {sorted(lengths)}")
        self._rows(lengths.pop(), step_ticks)
        name = eid or f"series-{len(self.series)}"
        self._claim(name)
        self.series[name] = arrays
        return [{"eid": name, "type": model, "rel": []}]

    def _create_table(self, tables, step_ticks, eid, prefix):
        """``tables={attr: ProfileTable}`` of the same elements; children ``<prefix>-<index>``."""
        if not tables:
            raise ValueError("Table needs tables={attr: ProfileTable}")
        first = next(iter(tables.values()))
        for attr, table in tables.items():
            if not np.array_equal(table.elements, first.elements):
                raise ValueError(f"Table: {attr!r} covers other elements than the first table")
        self._rows({t.n_steps for t in tables.values()}, step_ticks)
        name = eid or f"table-{len(self.tables)}"
        self._claim(name)
        prefix = prefix or name
        children = []
        for pos, idx in enumerate(first.elements):
            child = f"{prefix}-{int(idx)}"
            self._claim(child)
            self.members[child] = (name, pos)
            children.append({"eid": child, "type": "Element", "rel": []})
        self.tables[name] = dict(tables)
        self.prefixes[name] = prefix
        return [{"eid": name, "type": "Table", "rel": [], "children": children}]

    def _rows(self, n_rows: int | set[int], step_ticks) -> None:
        lengths = n_rows if isinstance(n_rows, set) else {n_rows}
        if len(lengths) != 1:
            raise ValueError(f"tables of unequal length: {sorted(lengths)}")
        n = lengths.pop()
        if (self.series or self.tables) and n != self.n_rows:
            raise ValueError("all entities of one TimeSeriesSim need the same number of rows")
        self.n_rows, self.step_ticks = n, int(step_ticks)

    def _claim(self, name: str) -> None:
        if name in self.series or name in self.tables or name in self.members:
            raise ValueError(f"entity {name!r} exists already")

    def step(self, time, inputs, max_advance):
        self.row = min(time // self.step_ticks, self.n_rows - 1)
        self._values.clear()
        return (time // self.step_ticks + 1) * self.step_ticks

    def _table_values(self, table: str, attr: str) -> np.ndarray:
        key = (table, attr)
        values = self._values.get(key)
        if values is None:  # once per step for all the table's elements
            values = self._values[key] = self.tables[table][attr].at(self.row)
        return values

    def get_data(self, outputs):
        row, data = self.row, {}
        for eid, attrs in outputs.items():
            if eid in self.members:
                table, pos = self.members[eid]
                data[eid] = {a: float(self._table_values(table, a)[pos]) for a in attrs}
            elif eid in self.tables:
                tables = self.tables[eid]
                data[eid] = {"injections": {
                    "table": self.prefixes[eid],
                    "index": next(iter(tables.values())).elements,
                    **{a: self._table_values(eid, a) for a in tables}}}
            else:
                data[eid] = {a: float(self.series[eid][a][row]) for a in attrs}
        return data
