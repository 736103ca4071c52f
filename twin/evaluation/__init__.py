"""What a run is judged by: KPIs accumulated from the recorded points
(:mod:`~twin.evaluation.kpis`) and IEEE 1366 reliability (:mod:`~twin.evaluation.reliability`).
No mosaik."""
