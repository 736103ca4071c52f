"""The DMS's process-wide caches (network models, power-flow models, telemetry plans),
cleared together when a DMS starts.

A cached model keeps what it was first built from: the estimator's model takes its initial
angles from a DC power flow of the injections of that moment (as pandapower's estimator
does). Within a run that is fixed by the scenario and its seed; across runs in one process
(tests, a sweep's worker, a DMS server's sessions) it made a run's estimates depend on what
ran before. Each DMS therefore starts with the caches a fresh process has.
"""

from __future__ import annotations

from twin.dms import admittance, pf, telemetry_plan


def clear_all() -> None:
    """Forget every cached network model, power-flow model and telemetry plan."""
    admittance.clear_cache()
    pf.clear_cache()
    telemetry_plan.clear_cache()
