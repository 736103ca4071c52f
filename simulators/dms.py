"""mosaik adapter of a DMS (the interface of :mod:`twin.dms.api`, checked and guarded by
:class:`twin.dms.api.GuardedDMS`): it hands the field's ``measurements`` and
``command_outcomes`` to the DMS, its ``commands`` to the field and its decisions and
records to the recorder, converting ticks to seconds and back. Behind a SCADA front end
(:class:`twin.protocols.frontend.FrontEnd`) its commands go over the wire; ``wake`` then
tells the field at the next tick that some were written, so it takes them as it takes the
in-process ones."""

from __future__ import annotations

from typing import Any

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
        self.out: dict[str, Any] = {"commands": [], "records": [], "wake": 0}

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
        take_sent = getattr(self.dms, "take_sent", None)  # a SCADA front end's wire commands
        if take_sent is not None:
            self.out["wake"] += take_sent()
        return max(time + 1, scheduled_tick(done.next_call_s, self.res_s))

    def get_data(self, outputs):
        out = {a: self.out[a] for a in outputs.get("dms", []) if self.out.get(a)}
        for attr in out:
            self.out[attr] = 0 if attr == "wake" else []
        return {"dms": out} if "dms" in outputs else {}
