"""mosaik simulator that sends scripted values at given ticks (e.g. a switching sequence).

Event-based: each ``Script`` entity emits ``value`` on its one attribute at each scheduled
tick and nothing in between. Useful for scheduled switching and taps, and for tests that
need an input to arrive between grid steps.
"""

from __future__ import annotations

import mosaik_api_v3

META: mosaik_api_v3.Meta = {
    "api_version": "3.0",
    "type": "event-based",
    "models": {"Script": {"public": True, "params": ["schedule", "attr"], "attrs": []}},
}


class ScriptedSim(mosaik_api_v3.Simulator):
    """``create(1, "Script", schedule=[(tick, value), ...], attr="closed")``."""

    def __init__(self) -> None:
        super().__init__({**META, "models": {}})
        self.scripts: dict[str, tuple[str, dict[int, object]]] = {}
        self.now: int | None = None

    def init(self, sid, time_resolution=1.0, attrs=(), **sim_params):
        self.meta["models"] = {"Script": {"public": True, "params": ["schedule", "attr"],
                                          "attrs": list(attrs)}}
        return self.meta

    def create(self, num, model, schedule=(), attr=""):
        if attr not in self.meta["models"]["Script"]["attrs"]:
            raise ValueError(f"attr {attr!r} was not declared when the simulator started")
        ticks = [int(t) for t, _ in schedule]
        if any(t < 0 for t in ticks) or len(set(ticks)) != len(ticks):
            raise ValueError("schedule ticks must be unique and ≥ 0")
        eid = f"script-{len(self.scripts)}"
        self.scripts[eid] = (attr, {int(t): v for t, v in schedule})
        return [{"eid": eid, "type": model, "rel": []}]

    def _next_after(self, time: int) -> int | None:
        later = [t for _a, sched in self.scripts.values() for t in sched if t > time]
        return min(later) if later else None

    def step(self, time, inputs, max_advance):
        self.now = time
        return self._next_after(time)

    def get_data(self, outputs):
        data = {}
        for eid, attrs in outputs.items():
            attr, sched = self.scripts[eid]
            if self.now in sched and attr in attrs:
                data[eid] = {attr: sched[self.now]}
        return data
