"""The embedded HTML report of one run: ``<run_dir>/report.html``, readable offline.

One self-contained file — plotly.js is inlined once in the page, every figure's data sits in
the page, no fonts, styles or scripts are fetched — so a run directory can be mailed or
archived and still be read in any browser without a server or a network.

The report reads everything from the run directory (``run.json``, ``kpis.json``,
``scenario.yaml`` and the file store ``store/``) and shows, each only where the run recorded
the data:

1. the run (scenario, start, duration, seed, wall time, speed-up), the scenario's
   expectations checked (expected against actual, from ``expectations.json``, when it has
   some) and every KPI, grouped;
   the network at its geodata positions (``grid_geo``), buses coloured by their worst
   voltage, lines and transformers by their peak loading;
2. the voltage band: min / mean / max bus voltage per time step, the allowed band shaded;
3. a heatmap of bus voltage over bus × time;
4. line and transformer loading: the maximum per step and the most loaded elements;
5. PV and wind output and curtailment, battery SOC and power, EV charging power;
6. communication health: telemetry latency per RTU, messages lost per RTU, command outcomes;
7. DMS decisions (a timeline and a table with their reasons) and protection events;
8. reliability: which loads were off when, and the IEEE 1366 indices;
9. the area's frequency: frequency and RoCoF, the reserves, the twin's units' response per
   source (:mod:`~twin.report.frequency_section`);
10. cells: each cell's export against schedule, inertia per cell, the storage monitoring
    table and the TSO–DSO interface (:mod:`~twin.report.cells_section`).

When the run did not store its element tables whole (``recording.elements: summary`` or refs,
or ``recording.every``; run.json says which), sections 2–4 and the map's colours come from
measurements that cover every element at every solve — the ``grid`` summary per step, the
``*_extremes`` per element over the run — never from the few rows that were kept
(:mod:`~twin.report.extremes_sections`).

Size and speed: a series is aggregated per time step (the store holds one point per element
and step), and a run with more time steps than ``MAX_POINTS`` is binned further, so a year
of steps gives a page of the same size as a day. A default day (~320k points) makes a page
of ~6 MB, of which 4.8 MB is plotly.js, in about half a second.

Modules: :mod:`~twin.report.run_data` (the run directory), :mod:`~twin.report.frames`
(aggregates for plots), :mod:`~twin.report.formatting` (KPI text, tables),
:mod:`~twin.report.figures` (plotly fragments), :mod:`~twin.report.grid_sections`,
:mod:`~twin.report.extremes_sections` and :mod:`~twin.report.event_sections` (the sections),
:mod:`~twin.report.page` (the page).
"""

from twin.report.formatting import format_value, kpi_group, kpi_unit
from twin.report.frames import MAX_POINTS, interruptions, per_element, per_step, time_bins
from twin.report.grid_sections import network_figure
from twin.report.page import REPORT_NAME, build_report, write_report
from twin.report.run_data import RunData, RunDirectoryError, load_run

__all__ = ["MAX_POINTS", "REPORT_NAME", "RunData", "RunDirectoryError", "build_report",
           "format_value", "interruptions", "kpi_group", "kpi_unit", "load_run",
           "network_figure", "per_element", "per_step", "time_bins", "write_report"]
