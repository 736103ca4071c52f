"""Weighted-least-squares state estimation with bad-data detection, over pandapower.

One call of :func:`estimate_state` is one DMS monitoring cycle: take the newest
telemetry, set the DMS's topology from the reported switch states, add the
pseudo-measurements of :mod:`twin.dms.load_estimation`, check observability, run
pandapower's WLS estimator, test the result with the χ² test and, while it fails, remove
the measurement with the largest normalised residual and estimate again.

pandapower provides the estimator (``StateEstimation``); the χ² and largest-normalised-
residual tests are computed here from its solver's final residuals, Jacobian and gain
matrix, because its own helpers do not fit a cycle: ``chi2_analysis`` counts the rows of
``net.measurement`` instead of the measurement vector the estimator used (merged and
virtual zero-injection measurements), and ``remove_bad_data`` deletes rows from the net's
measurement table and does not say what it removed.

References
----------
.. [1] A. Abur, A. G. Expósito, "Power System State Estimation: Theory and
   Implementation", Marcel Dekker, 2004: ch. 2 (WLS, gain matrix, covariance of the
   estimate), ch. 4 (observability), ch. 5 (χ² test, normalised residuals, largest
   normalised residual test).
.. [2] F. C. Schweppe, J. Wildes, "Power system static-state estimation, Part I: Exact
   model", IEEE Trans. PAS 89(1), 120–125, 1970, :doi:`10.1109/TPAS.1970.292678`.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import logging
import re
import warnings
from dataclasses import dataclass, field
from typing import Iterable, Mapping

import numpy as np
import pandapower as pp
import pandas as pd
from pandapower.estimation import StateEstimation
from scipy.stats import chi2 as chi2_dist

from twin.dms import admittance, wls
from twin.dms import telemetry_plan as tplan
from twin.dms.admittance import GridModel, grid_model, model_key
from twin.dms.blas import single_threaded
from twin.dms.load_estimation import bus_nodes
from twin.dms.measurements import (
    MEASUREMENT_COLUMNS,
    PP_MEASUREMENT_COLUMNS,
    SE_QUANTITIES,
    STALE_MODES,
    newest,
    set_switch_states,
    set_tap_positions,
    telemetry_frame,
    to_pandapower_measurements,
)
from twin.grid.names import element_names

# pandapower reports failures through its logger as well as through return values and
# exceptions; the latter go into SEResult.message, so its log stays quiet here.
_PP_LOGGER = logging.getLogger(__name__ + ".pandapower")
_PP_LOGGER.setLevel(logging.CRITICAL)

#: Sources whose measurements the bad-data loop may remove. Zero injections are exact
#: knowledge and the slack-voltage anchor keeps the voltage level observable; a large
#: residual on either points at the topology or the model, not at a meter.
REMOVABLE_SOURCES = ("telemetry", "pseudo")

#: Below this ratio Ω_ii/R_ii a measurement is critical [-]: its residual is zero
#: whatever its error, so its normalised residual is undefined and it cannot be tested.
_CRITICAL_OMEGA_RATIO = 1e-8

_OBSERVABILITY = re.compile(r"Measurements available:\s*(\d+)\.\s*Measurements required:\s*(\d+)")


@dataclass
class SEResult:
    """Outcome of one state estimation.

    Attributes
    ----------
    success : bool
        A converged estimate is available (the χ² verdict is ``chi2_passed``).
    observable : bool
        The measurement set passed the count test (m ≥ n) and the gain matrix was not
        singular.
    vm_pu, va_degree : pandas.Series
        Estimated bus voltage magnitude [p.u.] and angle [°], by bus index (NaN for
        unsupplied buses or when ``success`` is False).
    line_loading_percent, trafo_loading_percent : pandas.Series
        Estimated loadings [%] by line / trafo index.
    p_line_from_mw : pandas.Series
        Estimated active power at each line's from side [MW], positive into the line.
    n_measurements : int
        Length m of the measurement vector the estimator used (merged measurements once,
        pandapower's virtual zero injections at auxiliary buses included).
    n_states : int
        Number of states n: 2 × buses − slack angles, auxiliary buses included.
    chi2 : float
        Objective J(x̂) = Σ rᵢ²/σᵢ² of the final estimate [-].
    chi2_threshold : float
        ``chi2.ppf(confidence, m − n)`` [-]; NaN without redundancy (m ≤ n).
    bad_data : list of dict
        Removed measurements in removal order: ``element``, ``quantity``, ``value``,
        ``normalised_residual``, ``source``.
    stale : list of dict
        Stale telemetry as reported by
        :func:`twin.dms.measurements.to_pandapower_measurements`.
    iterations : int
        Gauss–Newton iterations of the last estimation.
    message : str
        Why the estimate failed, or notes on the tests; empty when all is well.
    vm_sigma_pu : pandas.Series
        Standard deviation of each estimated voltage magnitude [p.u.], from the
        estimate's covariance G⁻¹ (NaN where unavailable).
    chi2_passed : bool or None
        The final χ² test passed; None if it could not be done (no estimate or m ≤ n).
    """

    success: bool
    observable: bool
    vm_pu: pd.Series
    va_degree: pd.Series
    line_loading_percent: pd.Series
    trafo_loading_percent: pd.Series
    p_line_from_mw: pd.Series
    n_measurements: int
    n_states: int
    chi2: float
    chi2_threshold: float
    bad_data: list[dict]
    stale: list[dict]
    iterations: int
    message: str
    vm_sigma_pu: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))
    chi2_passed: bool | None = None


@dataclass
class _Run:
    """One WLS solve: the solver's final matrices, or why there are none."""

    ok: bool
    observable: bool = True
    message: str = ""
    iterations: int = 0
    m: int = 0
    n: int = 0
    n_bus: int = 0                       # buses in the estimator (auxiliary ones included)
    r: np.ndarray | None = None          # residuals z − h(x̂) [p.u.]
    r_var: np.ndarray | None = None      # measurement variances R_ii [p.u.²]
    H: np.ndarray | None = None          # Jacobian at x̂
    G: np.ndarray | None = None          # gain matrix Hᵀ R⁻¹ H
    rows: np.ndarray | None = None       # measurement-table row per entry of r (−1: virtual)
    # the numpy backend's solution (None for pandapower's): matrices stay sparse/factored
    model: GridModel | None = None
    ms: wls.MeasurementSet | None = None
    sol: wls.WLSSolution | None = None
    cov: np.ndarray | None = None        # G⁻¹ of pandapower's backend, once computed

#: Estimators: ``"numpy"`` (:mod:`twin.dms.wls` on the cached model of
#: :mod:`twin.dms.admittance`) or ``"pandapower"`` (its ``StateEstimation``, the reference
#: the numpy one is tested against: same formulation, ~50× slower per call).
BACKENDS = ("numpy", "pandapower")


@single_threaded()  # small dense matrices: BLAS threads cost more than they save
def estimate_state(
    net: pp.pandapowerNet,
    telemetry: Iterable[Mapping] | pd.DataFrame,
    pseudo: pd.DataFrame | None,
    now_s: float,
    stale_after_s: float = 60.0,
    stale_mode: str = "drop",
    chi2_confidence: float = 0.99,
    max_bad_data: int = 5,
    *,
    rn_threshold: float = 3.0,
    downweight_factor: float = 10.0,
    slack_sigma_pu: float = 0.01,
    tolerance: float = 1e-6,
    max_iterations: int = 50,
    apply_topology: bool = True,
    copy_net: bool = True,
    backend: str = "numpy",
) -> SEResult:
    r"""Estimate the grid state from telemetry and pseudo-measurements.

    Parameters
    ----------
    net : pandapower.pandapowerNet
        The DMS's model of the grid. Not modified unless ``copy_net`` is False.
    telemetry : iterable of mapping, or pandas.DataFrame
        Rows as in :func:`twin.dms.measurements.telemetry_frame`: analogue values
        (measurements), switch states (topology), tap positions and shunt steps.
    pseudo : pandas.DataFrame or None
        Pseudo-measurements from :func:`twin.dms.load_estimation.pseudo_measurements`.
        Where telemetry meters a bus injection, the pseudo-measurement of that bus and
        quantity is left out: the meter knows better, and merging the two would blur
        which of them a large residual belongs to.
    now_s : float
        Time of the estimate [s]; telemetry ages are ``now_s − source_t_s``.
    stale_after_s : float
        Age above which telemetry is stale [s].
    stale_mode : {'drop', 'downweight'}
        What to do with stale telemetry (see
        :func:`twin.dms.measurements.to_pandapower_measurements`).
    chi2_confidence : float
        Confidence of the χ² test [-]: the false-alarm probability is 1 − confidence.
    max_bad_data : int
        Most measurements removed as bad data in one call.
    rn_threshold : float
        A measurement is identified as bad only if its normalised residual exceeds this
        [-] (3 is the textbook value); if the χ² test fails and no residual does, the
        failure is reported (a topology or model error is likelier than a bad meter).
    downweight_factor : float
        σ factor for stale telemetry in ``"downweight"`` mode [-].
    slack_sigma_pu : float
        σ of the voltage pseudo-measurement at an ext_grid bus without a voltage meter,
        at the ext_grid's set-point [p.u.]; it anchors the voltage level.
    tolerance : float
        Convergence tolerance on the state update [p.u. resp. rad].
    max_iterations : int
        Gauss–Newton iterations per estimation.
    apply_topology : bool
        Set the switch states, tap positions and shunt steps the telemetry reports on the
        model first. False when ``net`` holds the topology the DMS believes already
        (:func:`twin.dms.cycle.believed_topology`, where an acknowledged switching newer
        than a switch's telemetry wins): re-applying the telemetry would undo that.
    copy_net : bool
        Work on a copy of ``net``. False for a net the caller made for this estimate:
        then, with the ``"pandapower"`` backend, its ``measurement`` and ``res_*_est``
        tables hold the estimate's (its topology and parameters are not changed), and no
        copy is made. The ``"numpy"`` backend never writes to the net beyond the topology
        (so a copy is only of the switch, trafo and shunt tables it sets).
    backend : {'numpy', 'pandapower'}
        The estimator (:data:`BACKENDS`); both give the same estimate and tests.

    Returns
    -------
    SEResult
        Never raises for a numerical failure or an unobservable set: ``success`` is
        False and ``message`` says why.

    Raises
    ------
    ValueError
        For bad input: unknown element names, a missing meter σ, a bad ``stale_mode``,
        malformed pseudo-measurements.

    Notes
    -----
    WLS minimises :math:`J(x) = \sum_i (z_i - h_i(x))^2 / \sigma_i^2` by Gauss–Newton
    from a flat start. With m measurements and n states, J(x̂) of a correct model with
    Gaussian errors follows χ² with m − n degrees of freedom; J > ``chi2.ppf(confidence,
    m − n)`` signals bad data. The residual covariance is Ω = R − H G⁻¹ Hᵀ; the
    normalised residual :math:`r^N_i = |r_i| / \sqrt{\Omega_{ii}}` is largest for the
    bad measurement when there is one (Abur & Expósito, ch. 5). Critical measurements
    (Ω_ii ≈ 0) cannot be tested and are never removed. Observability is checked by
    count (m ≥ n, as pandapower does) and, numerically, by a non-singular gain matrix.
    The voltage σ reported is :math:`\sqrt{(G^{-1})_{ii}}`, the estimate's standard
    deviation under the measurement model.
    """
    if not 0.0 < chi2_confidence < 1.0:
        raise ValueError(f"chi2_confidence: expected a probability in (0, 1); "
                         f"found {chi2_confidence}")
    if backend not in BACKENDS:
        raise ValueError(f"backend: expected one of {BACKENDS}; found {backend!r}")
    telemetry = telemetry_frame(telemetry)  # once, not once per use below
    work = _working_net(net, copy_net, apply_topology, backend)
    if apply_topology:
        set_switch_states(work, telemetry)
        set_tap_positions(work, telemetry)
    planned = None
    if backend == "numpy":
        planned = _planned_measurements(work, telemetry, pseudo, now_s, stale_after_s,
                                        stale_mode, downweight_factor, slack_sigma_pu)
    if planned is not None:
        meas, stale = planned
    else:
        meas, stale = _measurement_table(work, telemetry, pseudo, now_s, stale_after_s,
                                         stale_mode, downweight_factor, slack_sigma_pu)

    bad_data: list[dict] = []
    notes: list[str] = []
    solve = _solve if backend == "pandapower" else _solve_numpy
    while True:
        run = solve(work, meas, tolerance, max_iterations)
        currents = _column(meas, "measurement_type") == "i"
        if not run.ok and run.observable and currents.any():
            # |I| has no useful derivative at the flat start's zero currents and little
            # at light load: the classic cause of a WLS that does not converge
            retry = solve(work, _take(meas, ~currents), tolerance, max_iterations)
            if retry.ok:
                notes.append(f"did not converge with the {int(currents.sum())} current-"
                             f"magnitude measurement(s); estimated without them")
                meas, run = _take(meas, ~currents), retry
        if not run.ok:
            return _failed(work, run, stale, bad_data)
        J = float(np.sum(run.r ** 2 / run.r_var))
        dof = run.m - run.n
        threshold = _chi2_threshold(chi2_confidence, dof) if dof > 0 else float("nan")
        passed: bool | None = bool(J <= threshold) if dof > 0 else None
        if passed is None:
            notes.append(f"no redundancy (m = {run.m} ≤ n = {run.n}): bad data cannot "
                         f"be detected")
        if passed is not False:
            break
        if len(bad_data) >= max_bad_data:
            notes.append(f"χ² test still fails after removing {len(bad_data)} "
                         f"measurement(s) (max_bad_data = {max_bad_data})")
            break
        worst = _largest_normalised_residual(run, meas)
        if worst is None or worst[1] <= rn_threshold:
            shown = "none testable" if worst is None else f"largest {worst[1]:.2f}"
            notes.append(f"χ² test fails (J = {J:.1f} > {threshold:.1f}) but no removable "
                         f"measurement's normalised residual exceeds {rn_threshold} "
                         f"({shown}): suspect the topology or the model")
            break
        row, rn = worst
        bad_data.append({"element": _column(meas, "ref")[row],
                         "quantity": _column(meas, "quantity")[row],
                         "value": float(_column(meas, "value")[row]),
                         "normalised_residual": float(rn),
                         "source": _column(meas, "source")[row]})
        meas = _take(meas, np.arange(len(meas)) != row)

    if run.sol is not None:
        estimate = _numpy_results(work, run)
    else:
        estimate = {
            "vm_pu": work.res_bus_est["vm_pu"].astype(float).rename("vm_pu"),
            "va_degree": work.res_bus_est["va_degree"].astype(float).rename("va_degree"),
            "line_loading_percent": _res(work, "line", "loading_percent"),
            "trafo_loading_percent": _res(work, "trafo", "loading_percent"),
            "p_line_from_mw": _res(work, "line", "p_from_mw"),
        }
    return SEResult(
        success=True, observable=True, **estimate,
        n_measurements=run.m, n_states=run.n, chi2=J, chi2_threshold=threshold,
        bad_data=bad_data, stale=stale, iterations=run.iterations,
        message="; ".join(notes), vm_sigma_pu=_vm_sigma(work, run), chi2_passed=passed,
    )


@functools.lru_cache(maxsize=256)
def _chi2_threshold(confidence: float, dof: int) -> float:
    """χ² quantile: the same few (confidence, m − n) every cycle, and scipy's ppf costs
    more than the test it serves."""
    return float(chi2_dist.ppf(confidence, dof))


def estimation_error(se: SEResult, truth_vm_pu: pd.Series) -> dict[str, float]:
    """Voltage-magnitude error of an estimate against the truth, over common buses.

    Parameters
    ----------
    se : SEResult
    truth_vm_pu : pandas.Series
        True voltage magnitudes [p.u.] by bus index (e.g. ``res_bus.vm_pu`` of the
        twin's power flow).

    Returns
    -------
    dict
        ``mean_abs_dv_pu`` and ``max_abs_dv_pu`` [p.u.] over buses where both are finite;
        NaN if there are none.
    """
    dv = (se.vm_pu - truth_vm_pu.astype(float)).dropna().abs()
    if dv.empty:
        return {"mean_abs_dv_pu": float("nan"), "max_abs_dv_pu": float("nan")}
    return {"mean_abs_dv_pu": float(dv.mean()), "max_abs_dv_pu": float(dv.max())}


# ---------------------------------------------------------------------- measurement set
def _measurement_table(net: pp.pandapowerNet, telemetry: pd.DataFrame,
                       pseudo: pd.DataFrame | None, now_s: float, stale_after_s: float,
                       stale_mode: str, downweight_factor: float,
                       slack_sigma_pu: float) -> tuple[pd.DataFrame, list[dict]]:
    """The measurement table of a cycle as pandas rows (the full path), and the stale."""
    meas, stale = to_pandapower_measurements(net, telemetry, now_s, stale_after_s,
                                             stale_mode, downweight_factor)
    meas = _with_pseudo(meas, pseudo)
    meas = _with_slack_voltage(net, meas, slack_sigma_pu)
    return meas.reset_index(drop=True), stale


#: Pseudo-measurement columns whose values make up a plan's structure (all but the values).
_PSEUDO_KEY_COLUMNS = tuple(c for c in MEASUREMENT_COLUMNS
                            if c not in ("value", "std_dev", "source_t_s"))


def _planned_measurements(net: pp.pandapowerNet, frame: pd.DataFrame,
                          pseudo: pd.DataFrame | None, now_s: float, stale_after_s: float,
                          stale_mode: str, downweight_factor: float, slack_sigma_pu: float
                          ) -> tuple[tplan.PlannedMeasurements, list[dict]] | None:
    """The cycle's measurements from its telemetry plan (:mod:`twin.dms.telemetry_plan`).

    Mirrors :func:`_measurement_table` row for row; None wherever that path would raise
    (it then runs and says why) or the plan cannot be made.
    """
    if stale_mode not in STALE_MODES or not downweight_factor >= 1.0:
        return None
    current = newest(frame)
    elements = current["element"].to_numpy(dtype=object)
    points = tuple(zip(elements.tolist(), current["quantity"].to_numpy(dtype=object).tolist()))
    pos = tplan.se_positions(points, SE_QUANTITIES)
    if pos is None:
        return None
    sigma = current["sigma"].to_numpy(dtype=float)[pos]
    if not np.all(np.isfinite(sigma) & (sigma > 0)):
        return None
    if pseudo is not None and len(pseudo):
        if "value" not in pseudo.columns or "std_dev" not in pseudo.columns:
            return None
        pseudo_sigma = pseudo["std_dev"].to_numpy(dtype=float)
        if not np.all(np.isfinite(pseudo_sigma) & (pseudo_sigma > 0)):
            return None
    value = current["value"].to_numpy(dtype=float)[pos]
    source_t_s = current["source_t_s"].to_numpy(dtype=float)[pos]
    age_s = now_s - source_t_s
    # as to_pandapower_measurements: a value without a scan time counts as stale
    is_stale = ~(age_s <= stale_after_s)
    action = "dropped" if stale_mode == "drop" else "downweighted"
    quantities = current["quantity"].to_numpy(dtype=object)[pos]
    stale = [{"element": elements[pos[i]], "quantity": quantities[i],
              "value": float(value[i]), "source_t_s": float(source_t_s[i]),
              "age_s": float(age_s[i]), "action": action}
             for i in np.flatnonzero(is_stale)]
    if stale_mode == "drop":
        dropped = is_stale.tobytes()
        keep = ~is_stale
        value, sigma = value[keep], sigma[keep]
    else:
        dropped = b""
        sigma = np.where(is_stale, sigma * downweight_factor, sigma)

    structure_key = model_key(net)
    key = (structure_key, points, stale_mode, dropped,
           tplan.pseudo_key(pseudo, _PSEUDO_KEY_COLUMNS))
    # the cached model of that key, without computing the key a second time
    model = admittance._CACHE.get(structure_key) or grid_model(net)
    names = set(frame["element"].to_numpy(dtype=object).tolist())
    plan = tplan.cached_plan(key)
    if plan is None or plan.template.model is not model or not names <= plan.elements:
        plan = _build_plan(net, model, frame, pseudo, now_s, stale_after_s, stale_mode,
                           downweight_factor, slack_sigma_pu, names)
        if plan is None or plan.n_telemetry != len(value):
            return None
        planned = plan.fill(value, sigma, pseudo, slack_sigma_pu)
        template = plan.template
        # the plan must give what the full path gave: otherwise use the full path
        if not (np.array_equal(planned.value, template.value, equal_nan=True)
                and np.array_equal(planned.std_dev, template.std_dev, equal_nan=True)):
            return None
        tplan.store_plan(key, plan)
        return planned, stale
    return plan.fill(value, sigma, pseudo, slack_sigma_pu), stale


def _build_plan(net: pp.pandapowerNet, model: GridModel, frame: pd.DataFrame,
                pseudo: pd.DataFrame | None, now_s: float, stale_after_s: float,
                stale_mode: str, downweight_factor: float, slack_sigma_pu: float,
                names: set) -> tplan.TelemetryPlan | None:
    """A telemetry plan from the full (pandas) path's table of this cycle."""
    meas, _stale = to_pandapower_measurements(net, frame, now_s, stale_after_s, stale_mode,
                                              downweight_factor)
    n_telemetry = len(meas)
    pseudo_rows = np.zeros(0, dtype=np.int64)
    if pseudo is not None and len(pseudo):
        extra, keep = _pseudo_rows(meas, pseudo)
        pseudo_rows = np.flatnonzero(keep)
        meas = pd.concat([meas, extra[keep]], ignore_index=True)
    n_before = len(meas)
    meas = _with_slack_voltage(net, meas, slack_sigma_pu).reset_index(drop=True)
    if len(meas) != n_telemetry + len(pseudo_rows) + (len(meas) - n_before):
        return None
    template = tplan.PlannedMeasurements(
        model, tplan.row_structure(net, model, meas),
        meas["measurement_type"].to_numpy(dtype=object), meas["source"].to_numpy(dtype=object),
        meas["ref"].to_numpy(dtype=object), meas["quantity"].to_numpy(dtype=object),
        meas["value"].to_numpy(dtype=float), meas["std_dev"].to_numpy(dtype=float))
    return tplan.TelemetryPlan(template, frozenset(names), n_telemetry, pseudo_rows,
                               meas["value"].to_numpy(dtype=float)[n_before:])


def _column(meas, column: str) -> np.ndarray:
    """A column of a measurement table, pandas or planned, as an array."""
    if isinstance(meas, tplan.PlannedMeasurements):
        return getattr(meas, column)
    return meas[column].to_numpy()


def _take(meas, mask: np.ndarray):
    """The rows of ``mask``, renumbered 0…m−1."""
    if isinstance(meas, tplan.PlannedMeasurements):
        return meas.take(np.asarray(mask, dtype=bool))
    return meas[np.asarray(mask, dtype=bool)].reset_index(drop=True)


def _with_pseudo(meas: pd.DataFrame, pseudo: pd.DataFrame | None) -> pd.DataFrame:
    if pseudo is None or len(pseudo) == 0:
        return meas
    extra, keep = _pseudo_rows(meas, pseudo)
    return pd.concat([meas, extra[keep]], ignore_index=True)


def _pseudo_rows(meas: pd.DataFrame, pseudo: pd.DataFrame) -> tuple[pd.DataFrame, list]:
    """The pseudo table in measurement columns, and which rows to add (not metered)."""
    needed = ("measurement_type", "element_type", "element", "value", "std_dev")
    missing = [c for c in needed if c not in pseudo.columns]
    if missing:
        raise ValueError(f"pseudo: expected pseudo_measurements() columns; missing {missing}")
    extra = pseudo.reindex(columns=list(MEASUREMENT_COLUMNS)).copy()
    extra["source"] = extra["source"].fillna("pseudo")
    extra["ref"] = extra["ref"].fillna(extra["element_type"] + ":" + extra["element"].astype(str))
    extra["quantity"] = extra["quantity"].fillna(extra["measurement_type"])
    extra["name"] = extra["name"].fillna(extra["ref"] + "/" + extra["quantity"])
    extra["stale"] = extra["stale"].fillna(False).astype(bool)
    sigma = extra["std_dev"].to_numpy(dtype=float)
    if not np.all(np.isfinite(sigma) & (sigma > 0)):
        raise ValueError("pseudo: every std_dev must be positive and finite")
    metered = set(zip(meas["element_type"], meas["element"], meas["measurement_type"]))
    keep = [(t, int(e), k) not in metered for t, e, k in
            zip(extra["element_type"], extra["element"], extra["measurement_type"])]
    return extra, keep


def _with_slack_voltage(net: pp.pandapowerNet, meas: pd.DataFrame,
                        sigma_pu: float) -> pd.DataFrame:
    # A meter on any bus fused with the slack bus measures the slack voltage.
    node = bus_nodes(net)
    has_v = {node[int(b)] for b in meas.loc[meas["measurement_type"] == "v", "element"]}
    names = dict(zip(net.bus.index, element_names(net, "bus")))
    rows = []
    for _i, eg in net.ext_grid[net.ext_grid["in_service"].astype(bool)].iterrows():
        bus = int(eg["bus"])
        if node[bus] in has_v:
            continue
        has_v.add(node[bus])
        ref = f"bus:{names[bus]}"
        rows.append({"name": f"{ref}/vm_pu (slack set-point)", "measurement_type": "v",
                     "element_type": "bus", "element": bus, "value": float(eg["vm_pu"]),
                     "std_dev": float(sigma_pu), "side": None, "ref": ref,
                     "quantity": "vm_pu", "source": "slack_voltage",
                     "source_t_s": np.nan, "stale": False})
    if not rows:
        return meas
    return pd.concat([meas, pd.DataFrame(rows, columns=list(MEASUREMENT_COLUMNS))],
                     ignore_index=True)


# ---------------------------------------------------------------------- estimation
@contextlib.contextmanager
def _restore_level(log: logging.Logger, level: int):
    try:
        yield
    finally:
        log.setLevel(level)


def _solve(net: pp.pandapowerNet, meas: pd.DataFrame, tolerance: float,
           max_iterations: int) -> _Run:
    """One WLS estimation on ``net`` (modified: measurements and ``res_*_est``)."""
    table = meas.loc[:, list(PP_MEASUREMENT_COLUMNS)].copy()
    table["element"] = table["element"].astype(net.measurement["element"].dtype)
    # The whole table at once: create_measurement per row costs more than the estimate.
    net.measurement = table
    se = StateEstimation(net, tolerance, max_iterations, algorithm="wls", logger=_PP_LOGGER)
    # Measurements at de-energised buses (a feeder cut off by a fault) are dropped by
    # pandapower with a warning per estimate: expected then, not news.
    conversion_log = logging.getLogger("pandapower.estimation.ppc_conversion")
    level = conversion_log.level
    conversion_log.setLevel(logging.ERROR)
    with _restore_level(conversion_log, level), warnings.catch_warnings(record=True) as caught:
        # pandapower's conversion raises pandas copy warnings and scipy warns of a
        # singular gain matrix; the latter is the one that matters, checked below.
        warnings.simplefilter("always")
        try:
            # v_start/delta_start None is a flat start (what estimate(init="flat") passes);
            # "aux_bus" adds pandapower's own zero injections at its auxiliary buses.
            outcome = se.estimate(v_start=None, delta_start=None, zero_injection="aux_bus",
                                  algorithm="wls")
        except UserWarning as exc:
            found = _OBSERVABILITY.search(str(exc))
            if found:
                m, n = int(found.group(1)), int(found.group(2))
                return _Run(False, observable=False, m=m, n=n, message=(
                    f"not observable: {m} measurements for {n} states (need m ≥ n); add "
                    f"meters or pseudo-measurements"))
            return _Run(False, message=f"estimation failed: {exc}")
        except Exception as exc:  # numerical failures must not end the DMS cycle
            return _Run(False, message=f"estimation failed: {type(exc).__name__}: {exc}")
    solver = se.solver
    eppci = solver.eppci
    m, n = (len(eppci.z), len(eppci.E)) if eppci is not None else (0, 0)
    singular = any("singular" in str(w.message).lower() for w in caught)
    success = outcome.get("success", False) if isinstance(outcome, dict) else bool(outcome)
    if singular:
        return _Run(False, observable=False, m=m, n=n, iterations=solver.iterations or 0,
                    message="not observable: the gain matrix is singular although "
                            f"m = {m} ≥ n = {n} (measurements do not cover every state)")
    if not success:
        return _Run(False, m=m, n=n, iterations=solver.iterations or 0,
                    message=f"estimation did not converge in {max_iterations} iterations "
                            f"(m = {m}, n = {n}: a barely observable or inconsistent "
                            f"measurement set?)")
    r = np.asarray(solver.r, dtype=float).ravel()
    r_var = 1.0 / np.diag(solver.R_inv)
    rows = np.asarray(solver.pp_meas_indices, dtype=np.int64)
    rows = np.where((rows >= 0) & (rows < len(meas)), rows, -1)
    return _Run(True, iterations=int(solver.iterations), m=m, n=n,
                n_bus=int(eppci["bus"].shape[0]), r=r, r_var=r_var,
                H=np.asarray(solver.H, dtype=float), G=np.asarray(solver.Gm, dtype=float),
                rows=rows)


def _working_net(net: pp.pandapowerNet, copy_net: bool, apply_topology: bool,
                 backend: str) -> pp.pandapowerNet:
    if not copy_net:
        return net
    if backend == "pandapower":
        return copy.deepcopy(net)  # it writes its tables and results into the net
    # the numpy backend only reads the net: copy what the topology changes, share the rest
    work = copy.copy(net)
    if apply_topology:
        for table in ("switch", "trafo", "shunt"):
            work[table] = net[table].copy()
    return work


def _measurement_arrays(net: pp.pandapowerNet, model: GridModel, meas: pd.DataFrame):
    """The measurement table in model indices and p.u.: (kind, target, value, σ, row).

    Measurements the model cannot hold (at a de-energised bus or an out-of-service
    branch) are left out, as pandapower's estimator leaves them out.
    """
    return tplan.row_structure(net, model, meas).arrays(
        meas["value"].to_numpy(dtype=float), meas["std_dev"].to_numpy(dtype=float))


def _solve_numpy(net: pp.pandapowerNet, meas: pd.DataFrame, tolerance: float,
                 max_iterations: int) -> _Run:
    """One WLS estimation with :mod:`twin.dms.wls` (``net`` is only read)."""
    if isinstance(meas, tplan.PlannedMeasurements):
        model = meas.model
        ms = wls.measurement_set(model, *meas.arrays())
    else:
        model = grid_model(net)
        ms = wls.measurement_set(model, *_measurement_arrays(net, model, meas))
    m = len(ms.z)
    n = model.n_bus + int((~model.slack).sum())
    if m < n:
        return _Run(False, observable=False, m=m, n=n, message=(
            f"not observable: {m} measurements for {n} states (need m ≥ n); add "
            f"meters or pseudo-measurements"))
    sol = wls.solve(model, ms, tolerance, max_iterations)
    if sol.singular:
        return _Run(False, observable=False, m=m, n=n, iterations=sol.iterations,
                    message="not observable: the gain matrix is singular although "
                            f"m = {m} ≥ n = {n} (measurements do not cover every state)")
    if not sol.ok:
        stalled = "" if sol.iterations >= max_iterations else \
            f" (stopped after {sol.iterations}: the update had stopped shrinking)"
        return _Run(False, m=m, n=n, iterations=sol.iterations,
                    message=f"estimation did not converge in {max_iterations} iterations"
                            f"{stalled} (m = {m}, n = {n}: a barely observable or inconsistent "
                            f"measurement set?)")
    return _Run(True, iterations=sol.iterations, m=m, n=n, n_bus=model.n_bus, r=sol.r,
                r_var=ms.sigma ** 2, rows=ms.row, model=model, ms=ms, sol=sol)


def _numpy_results(net: pp.pandapowerNet, run: _Run) -> dict[str, pd.Series]:
    """Bus voltages and branch flows of the numpy estimate, by pandapower index.

    Flows and loadings as pandapower's estimator reports them: a line's loading is its
    larger end current over ``max_i_ka · df · parallel``, a trafo's its larger end power
    over ``sn_mva · parallel · df``; NaN for branches out of the estimate.
    """
    model, sol = run.model, run.sol
    V = sol.vm_pu * np.exp(1j * sol.va_rad)
    Sf = V[model.f_bus] * np.conj(model.Yf @ V) * model.base_mva
    St = V[model.t_bus] * np.conj(model.Yt @ V) * model.base_mva
    pos = model.model_bus(net.bus.index.to_numpy())
    inside = pos >= 0
    vm = np.full(len(pos), np.nan)
    va = np.full(len(pos), np.nan)
    vm[inside] = sol.vm_pu[pos[inside]]
    va[inside] = np.degrees(sol.va_rad[pos[inside]])

    def at_branches(values: np.ndarray, branch: np.ndarray) -> np.ndarray:
        out = np.full(len(branch), np.nan)
        ok = branch >= 0
        out[ok] = values[branch[ok]]
        return out

    # |I| [kA] at each branch end, from |S| and the end's voltage
    i_f = np.abs(Sf) / (sol.vm_pu[model.f_bus] * model.base_kv[model.f_bus]) / np.sqrt(3)
    i_t = np.abs(St) / (sol.vm_pu[model.t_bus] * model.base_kv[model.t_bus]) / np.sqrt(3)
    line, trafo = net.line, net.trafo
    # (arrays, not Series arithmetic: this runs every cycle)
    i_max_ka = (line["max_i_ka"].to_numpy(dtype=float) * line["df"].to_numpy(dtype=float)
                * line["parallel"].to_numpy(dtype=float))
    i_line = at_branches(np.maximum(i_f, i_t), model.line_branch)
    with np.errstate(divide="ignore", invalid="ignore"):
        line_loading = np.where(i_max_ka != 0, i_line / i_max_ka, np.inf) * 100.0
    s_trafo = at_branches(np.maximum(np.abs(Sf), np.abs(St)), model.trafo_branch)
    rating = (trafo["sn_mva"].to_numpy(dtype=float) * trafo["parallel"].to_numpy(dtype=float)
              * trafo["df"].to_numpy(dtype=float))
    with np.errstate(divide="ignore", invalid="ignore"):
        trafo_loading = s_trafo / rating * 100.0
    return {
        "vm_pu": pd.Series(vm, index=net.bus.index, name="vm_pu"),
        "va_degree": pd.Series(va, index=net.bus.index, name="va_degree"),
        "line_loading_percent": pd.Series(line_loading, index=line.index,
                                          name="loading_percent"),
        "trafo_loading_percent": pd.Series(trafo_loading, index=trafo.index,
                                           name="loading_percent"),
        "p_line_from_mw": pd.Series(at_branches(Sf.real, model.line_branch),
                                    index=line.index, name="p_from_mw"),
    }


def _covariance(G: np.ndarray) -> np.ndarray | None:
    """G⁻¹, the covariance of the estimated state; None if G is singular.

    Inverted as D (D G D)⁻¹ D with D = diag(G)^−½: the weights span ten orders of
    magnitude (zero injections against pseudo-measurements), and the equilibrated matrix
    is both better conditioned and, in LAPACK, inverted ~100× faster (the raw one drives
    the triangular solves into subnormal numbers).
    """
    diag = np.diag(G)
    if not np.all(diag > 0):
        return None
    d = 1.0 / np.sqrt(diag)
    try:
        inner = np.linalg.inv(G * d[:, None] * d[None, :])
    except np.linalg.LinAlgError:
        return None
    return inner * d[:, None] * d[None, :]


def _largest_normalised_residual(run: _Run, meas: pd.DataFrame) -> tuple[int, float] | None:
    """(measurement-table row, r^N) of the removable measurement with the largest r^N."""
    if run.sol is not None:
        omega = wls.residual_variance(run.sol, run.ms)
    else:
        cov = _run_covariance(run)
        if cov is None:
            return None
        # Ω_ii = R_ii − (H G⁻¹ Hᵀ)_ii, without forming the m × m matrix
        omega = run.r_var - np.einsum("ij,ij->i", run.H @ cov, run.H)
    testable = omega > _CRITICAL_OMEGA_RATIO * run.r_var
    removable = np.zeros(len(run.r), dtype=bool)
    valid = run.rows >= 0  # −1: pandapower's virtual zero injections
    removable[valid] = np.isin(_column(meas, "source")[run.rows[valid]],
                               REMOVABLE_SOURCES)
    candidates = testable & removable
    if not candidates.any():
        return None
    rn = np.full(len(run.r), -np.inf)
    rn[candidates] = np.abs(run.r[candidates]) / np.sqrt(omega[candidates])
    k = int(np.argmax(rn))
    return int(run.rows[k]), float(rn[k])


def _run_covariance(run: _Run) -> np.ndarray | None:
    if run.cov is None:
        run.cov = _covariance(run.G)
    return run.cov


def _vm_sigma(net: pp.pandapowerNet, run: _Run) -> pd.Series:
    """σ of each estimated |V| [p.u.] from the covariance G⁻¹, by bus index."""
    if run.sol is not None:
        pos = run.model.model_bus(net.bus.index.to_numpy())
        inside = pos >= 0
        n_theta = run.n - run.n_bus
        var = wls.state_variance(run.sol, n_theta + pos[inside])
        values = np.full(len(pos), np.nan)
        values[inside] = np.sqrt(np.where(var >= 0, var, np.nan))
        return pd.Series(values, index=net.bus.index, name="vm_sigma_pu")
    out = pd.Series(np.nan, index=net.bus.index, name="vm_sigma_pu")
    cov = _run_covariance(run)
    if cov is None:
        return out
    # States are [angles of the non-slack buses, magnitudes of all buses] in the solver's
    # bus order, so the magnitudes are the last n_bus entries; pandapower buses map to
    # that order through its bus lookup (buses beyond n_bus are out of the estimate).
    v_var = np.diag(cov)[-run.n_bus:]
    lookup = np.asarray(net._pd2ppc_lookups["bus"])
    for b in net.bus.index:
        pos = int(lookup[b]) if b < len(lookup) else -1
        if 0 <= pos < run.n_bus and v_var[pos] >= 0:
            out[b] = float(np.sqrt(v_var[pos]))
    return out


def _res(net: pp.pandapowerNet, table: str, column: str) -> pd.Series:
    res = net.get(f"res_{table}_est")
    if res is None or column not in getattr(res, "columns", []):
        return pd.Series(np.nan, index=net[table].index, name=column, dtype=float)
    return res[column].astype(float).rename(column)


def _failed(net: pp.pandapowerNet, run: _Run, stale: list[dict],
            bad_data: list[dict]) -> SEResult:
    def empty(table: str, name: str) -> pd.Series:
        return pd.Series(np.nan, index=net[table].index, name=name, dtype=float)

    message = run.message
    if bad_data:
        message += f" (after removing {len(bad_data)} measurement(s) as bad data)"
    return SEResult(
        success=False, observable=run.observable,
        vm_pu=empty("bus", "vm_pu"), va_degree=empty("bus", "va_degree"),
        line_loading_percent=empty("line", "loading_percent"),
        trafo_loading_percent=empty("trafo", "loading_percent"),
        p_line_from_mw=empty("line", "p_from_mw"),
        n_measurements=run.m, n_states=run.n, chi2=float("nan"),
        chi2_threshold=float("nan"), bad_data=bad_data, stale=stale,
        iterations=run.iterations, message=message,
        vm_sigma_pu=empty("bus", "vm_sigma_pu"), chi2_passed=None,
    )
