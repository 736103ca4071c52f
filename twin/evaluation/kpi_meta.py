"""What each KPI of ``kpis.json`` means for a comparison: its good direction, its unit, the
absolute tolerance below which a change is no change, and whether it is critical by default.

One table, :data:`KPI_TABLE`, one row per key of ``kpis.json``
(:meth:`twin.evaluation.kpis.KpiAccumulator.finish` and the IEEE 1366 indices of
:mod:`twin.evaluation.reliability`). ``twin compare`` judges a KPI better or worse only
where the table gives a direction; the others (element names, the band, counters with no
good direction such as ``telemetry_values_delivered``, balances set by the scenario such as
``load_energy_mwh``) are shown as information. A key the table does not know — a KPI added
later, or a flattened ``dms_decisions.<function>.<action>`` count — is information too.

Directions
----------
``"lower"``: less is better (violation minutes, losses, SAIDI, switching operations: each
operation wears a device). ``"higher"``: more is better (PV and wind energy delivered).
``None``: information only.

The extreme bus voltages ``vm_min_pu`` and ``vm_max_pu`` have no direction: a lower maximum
is no gain once the minimum leaves the band; the voltage-violation minutes judge the band.

Tolerances
----------
``atol`` is in the KPI's unit: a mean change within ``atol + rtol·|baseline mean|`` is
"same" (see :mod:`twin.study.compare`). ``rtol`` is the comparison's (``twin compare
--rtol``) unless a row sets its own: the per-unit voltages and estimation errors set 0, as
1 % of a voltage near 1 p.u. would hide a change of 0.01 p.u.
"""

from __future__ import annotations

from dataclasses import dataclass

LOWER = "lower"
HIGHER = "higher"
DIRECTIONS = (LOWER, HIGHER)


@dataclass(frozen=True)
class KpiMeta:
    """One KPI's row.

    Attributes
    ----------
    key : str
        The key in ``kpis.json``.
    direction : {"lower", "higher"} or None
        Which way is better; None: information only.
    unit : str
        The unit, as shown.
    atol : float
        Absolute tolerance [unit]: a change of at most this is no change.
    critical : bool
        Critical by default: ``twin compare``'s verdict and exit code come from these.
    rtol : float or None
        Relative tolerance of this KPI; None: the comparison's.
    """

    key: str
    direction: str | None
    unit: str = ""
    atol: float = 0.0
    critical: bool = False
    rtol: float | None = None

    @property
    def judged(self) -> bool:
        """True if a comparison calls this KPI better or worse."""
        return self.direction is not None


def _row(key: str, direction: str | None, unit: str = "", atol: float = 0.0,
         critical: bool = False, rtol: float | None = None) -> KpiMeta:
    return KpiMeta(key, direction, unit, atol, critical, rtol)


_MWH = 1e-3  # 1 kWh
_MIN = 0.1   # 6 s: below the resolution of a 1-min step

#: Every KPI of kpis.json, in the order the file has them.
KPI_TABLE: tuple[KpiMeta, ...] = (
    _row("voltage_band_pu", None, "p.u."),
    _row("warmup_s", None, "s"),
    _row("voltage_violation_minutes", LOWER, "min", _MIN, critical=True),
    _row("voltage_violation_bus_minutes", LOWER, "bus·min", _MIN),
    _row("vm_min_pu", None, "p.u.", 1e-3, rtol=0.0),
    _row("vm_max_pu", None, "p.u.", 1e-3, rtol=0.0),
    _row("max_line_loading_percent", LOWER, "%", 0.1),
    _row("max_line_loading_element", None),
    _row("max_trafo_loading_percent", LOWER, "%", 0.1),
    _row("max_trafo_loading_element", None),
    _row("overload_minutes", LOWER, "min", _MIN, critical=True),
    _row("overload_element_minutes", LOWER, "element·min", _MIN),
    _row("energy_losses_mwh", LOWER, "MWh", _MWH),
    _row("load_energy_mwh", None, "MWh", _MWH),
    _row("ext_grid_energy_mwh", None, "MWh", _MWH),
    _row("pv_energy_mwh", HIGHER, "MWh", _MWH),
    _row("pv_curtailed_mwh", LOWER, "MWh", _MWH),
    _row("wind_energy_mwh", HIGHER, "MWh", _MWH),
    _row("wind_curtailed_mwh", LOWER, "MWh", _MWH),
    _row("grid_solves", None),
    _row("non_converged_steps", LOWER),
    _row("ev_energy_mwh", None, "MWh", _MWH),
    _row("ev_energy_short_mwh", LOWER, "MWh", _MWH),
    _row("battery_charge_mwh", None, "MWh", _MWH),
    _row("battery_discharge_mwh", None, "MWh", _MWH),
    _row("telemetry_values_delivered", None),
    _row("commands_success", None),
    _row("commands_failed", LOWER),
    _row("commands_timeout", LOWER),
    _row("crew_jobs", LOWER),
    _row("switching_operations", LOWER),
    _row("protection_trips", LOWER),
    _row("protection_recloses", LOWER),
    _row("tap_operations", LOWER),
    _row("capacitor_operations", LOWER),
    _row("dms_cycles", None),
    _row("dms_cycles_failed", LOWER),
    _row("bad_data_detected", None),
    _row("dms_decisions_total", None),
    _row("dms_decisions", None),
    _row("se_error_mean_pu", LOWER, "p.u.", 1e-4, rtol=0.0),
    _row("se_error_max_pu", LOWER, "p.u.", 1e-4, rtol=0.0),
    _row("frequency_nadir_hz", HIGHER, "Hz", 1e-3, rtol=0.0),  # rtol of 50 Hz would hide all
    _row("frequency_max_hz", LOWER, "Hz", 1e-3, rtol=0.0),
    _row("rocof_max_hz_s", LOWER, "Hz/s", 1e-3),
    _row("frequency_response_mwh", None),
    _row("tie_line_deviation_mw", None),
    _row("curtailed_mwh_by_reason", None),
    _row("customers_served", None),
    _row("customers_interrupted", LOWER),
    _row("customer_minutes_interrupted", LOWER, "customer·min", _MIN),
    _row("saifi", LOWER, "interruptions/customer", 1e-4),
    _row("saidi_min", LOWER, "min", 0.01, critical=True),  # per customer: small numbers
    _row("caidi_min", LOWER, "min", 0.01),
    _row("momentary_interruptions", LOWER),
    _row("maifi", LOWER, "interruptions/customer", 1e-4),
    _row("energy_not_supplied_mwh", LOWER, "MWh", _MWH, critical=True),
    _row("interruptions", LOWER),
    _row("interruptions_momentary", LOWER),
    _row("dms", None),  # the DMS that ran: class, version, settings (flattened: dms.params.…)
)

_BY_KEY = {row.key: row for row in KPI_TABLE}

#: The KPIs ``twin compare`` decides on unless told otherwise (``--critical``): the rows
#: marked critical, in the order the verdict line names them.
DEFAULT_CRITICAL: tuple[str, ...] = ("voltage_violation_minutes", "saidi_min",
                                     "energy_not_supplied_mwh", "overload_minutes")


def kpi_meta(key: str) -> KpiMeta:
    """The row of ``key``; a key the table does not know (e.g. ``dms_decisions.volt_var.
    set_tap``) gets an information-only row."""
    return _BY_KEY.get(key) or KpiMeta(key, None)


def judged_kpis() -> tuple[str, ...]:
    """The keys a comparison can judge (those with a direction)."""
    return tuple(row.key for row in KPI_TABLE if row.judged)
