"""mosaik adapter of a DMS (:mod:`twin.dms.api`, guarded by :class:`~twin.dms.api.GuardedDMS`):
the field's ``measurements`` and ``command_outcomes`` in; ``commands`` to the field, records
and decisions to the recorder (ticks ↔ seconds). ``wake``: a SCADA front end
(:mod:`twin.protocols.frontend`) wrote commands to the RTUs; the field takes them next tick."""

from __future__ import annotations

import mosaik_api_v3

from twin.dms.api import GuardedDMS
from twin.timebase import scheduled_tick

META: mosaik_api_v3.Meta = {
    "api_version": "3.0",
    "type": "hybrid",
    "models": {
        "DMS": {
            "public": True,
            "params": ["dms"],
            "attrs": ["measurements", "command_outcomes", "commands", "records", "wake"],
            "trigger": ["measurements", "command_outcomes"],
            "non-persistent": ["commands", "records", "wake"],
        },
    },
}


class DMSSim(mosaik_api_v3.Simulator):
    def __init__(self) -> None:
        super().__init__(META)
        self.dms: GuardedDMS | None = None
        self.res_s = 1.0
        self.out: dict[str, list] = {"commands": [], "records": [], "wake": []}

    def init(self, sid, time_resolution=1.0, **sim_params):
        self.res_s = float(time_resolution)
        return self.meta

    def create(self, num, model, dms=None):
        if model != "DMS" or num != 1 or self.dms is not None or dms is None:
            raise ValueError("DMSSim holds exactly one DMS (dms=<GuardedDMS>)")
        self.dms = dms
        return [{"eid": "dms", "type": "DMS", "rel": []}]

    def step(self, time, inputs, max_advance):
        d_in = inputs.get("dms", {})
        rows = [m for b in d_in.get("measurements", {}).values() for m in b or ()]
        outcomes = [o for b in d_in.get("command_outcomes", {}).values() for o in b or ()]
        done = self.dms.step(time * self.res_s, rows, outcomes)
        self.out["commands"] += done.commands
        self.out["records"] += done.records + [d.record() for d in done.decisions]
        sent = getattr(self.dms, "take_sent", lambda: 0)()
        self.out["wake"] += [sent] if sent else []
        return max(time + 1, scheduled_tick(done.next_call_s, self.res_s))

    def get_data(self, outputs):
        out = {a: self.out[a] for a in outputs.get("dms", []) if self.out.get(a)}
        for attr in out:
            self.out[attr] = []
        return {"dms": out} if "dms" in outputs else {}
