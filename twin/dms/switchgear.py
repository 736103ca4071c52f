"""The DMS's short-circuit check of its switchgear: IEC 60909 currents of the topology it
believes (:func:`twin.dms.short_circuit.short_circuit_report`) against every switch's
ratings, at the start and whenever that topology changes; results are records, a switch
rated below its duty is a decision (an alert for the operator)."""

from __future__ import annotations

import pandapower as pp

from twin.dms.decisions import Decision
from twin.dms.short_circuit import BreakerRating, short_circuit_report
from twin.recording.schema import dms_short_circuit_record


class SwitchgearWatch:
    """Runs the check when the believed switch states change."""

    def __init__(self, ratings: dict[int, BreakerRating]):
        self.ratings = ratings
        self.last_states: tuple[bool, ...] | None = None
        self.flagged: set[str] = set()
        self.n_checks = 0

    def check(self, t_s: float, net: pp.pandapowerNet) -> tuple[list[dict], list[Decision]]:
        """(records, decisions) for ``net``'s topology; nothing if it did not change."""
        states = tuple(bool(c) for c in net.switch["closed"])
        if states == self.last_states:
            return [], []
        self.last_states = states
        self.n_checks += 1
        report = short_circuit_report(net, self.ratings)
        records = [dms_short_circuit_record(t_s, f"switch:{c.name}", c.ikss_max_ka, c.ip_max_ka,
                                            c.breaking_ka, c.making_ka, c.ok)
                   for c in report.breakers if c.ikss_max_ka > 0]
        decisions = []
        now = {c.name for c in report.violations}
        for c in report.violations:
            if c.name in self.flagged:
                continue  # said already; it stands until the topology clears it
            decisions.append(Decision(
                t_s, "short_circuit", "none", f"switch:{c.name}", None, "advisory",
                f"{c.reason} in the present topology: it must not break or make a fault "
                f"current here.", {"ikss_max_ka": round(c.ikss_max_ka, 4),
                                   "ip_max_ka": round(c.ip_max_ka, 4)}))
        self.flagged = now
        return records, decisions
