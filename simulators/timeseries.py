"""mosaik adapter that replays precomputed time series: weather, and load/generation profiles.

Time-based: on each step it moves to the row of the current time; values are held between
rows. Each entity is one column group of a table (e.g. one load: its ``p_mw`` and ``q_mvar``).
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

    def init(self, sid, time_resolution=1.0, attrs=(), **sim_params):
        # The attribute names are known when the simulator is started, so META can list them.
        self.meta["models"] = {
            "Series": {"public": True, "params": ["columns", "step_ticks", "eid"],
                       "attrs": list(attrs)},
        }
        return self.meta

    def create(self, num, model, columns=None, step_ticks=1, eid=None):
        if num != 1:
            raise ValueError("create one Series entity at a time")
        if not columns:
            raise ValueError("Series needs columns={attr: values}")
        arrays = {a: np.asarray(v.to_numpy() if isinstance(v, pd.Series) else v, dtype=float)
                  for a, v in columns.items()}
        lengths = {len(v) for v in arrays.values()}
        if len(lengths) != 1:
            raise ValueError(f"columns of unequal length: {sorted(lengths)}")
        if self.series and lengths != {self.n_rows}:
            raise ValueError("all entities of one TimeSeriesSim need the same number of rows")
        self.n_rows = lengths.pop()
        self.step_ticks = int(step_ticks)
        name = eid or f"series-{len(self.series)}"
        if name in self.series:
            raise ValueError(f"entity {name!r} exists already")
        self.series[name] = arrays
        return [{"eid": name, "type": model, "rel": []}]

    def step(self, time, inputs, max_advance):
        self.row = min(time // self.step_ticks, self.n_rows - 1)
        return (time // self.step_ticks + 1) * self.step_ticks

    def get_data(self, outputs):
        row = self.row
        return {eid: {a: float(self.series[eid][a][row]) for a in attrs}
                for eid, attrs in outputs.items()}
