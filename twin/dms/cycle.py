"""One DMS cycle, in a fixed order: load estimation → state estimation → Volt/Var.

A thin orchestrator over the plain DMS functions (like pvlib's ModelChain): it takes what
the DMS knows — its network model, the newest telemetry, its forecasts — and returns a
:class:`CycleResult` with the estimate, the decisions, the commands to send and the
records to store. It never sees grid truth.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
import pandapower as pp
import pandas as pd

from twin.dms.blas import single_threaded
from twin.dms.decisions import Decision, Mode
from twin.dms.load_estimation import pseudo_measurements
from twin.dms.measurements import (
    element_index,
    newest,
    set_switch_states,
    set_tap_positions,
    telemetry_frame,
)
from twin.dms.netcopy import INJECTION_TABLES, TOPOLOGY_TABLES, working_copy
from twin.dms.state_estimation import SEResult, estimate_state
from twin.dms.volt_var import VoltVarSettings, VoltVarState, volt_var
from twin.grid.names import element_names, split_ref
from twin.recording.schema import (
    Record,
    dms_cycle_note_record,
    dms_estimate_record,
    dms_estimation_record,
)


@dataclass(frozen=True)
class CycleSettings:
    band_pu: tuple[float, float] = (0.95, 1.05)
    stale_after_s: float = 120.0
    stale_mode: str = "drop"
    pseudo_sigma_pct: float = 30.0
    volt_var_mode: Mode = "off"
    volt_var: VoltVarSettings = VoltVarSettings()
    # grid element → the field's device reference, e.g. "sgen:Solar A" → "pv:Solar A"
    # (telemetry needs no map back: the field names each point's grid element)
    device_refs: dict[str, str] = field(default_factory=dict)


@dataclass
class DMSState:
    """What the DMS keeps between cycles."""

    model: pp.pandapowerNet                       # the grid as the DMS knows it
    telemetry: dict[tuple[str, str], dict] = field(default_factory=dict)  # newest per point
    volt_var: VoltVarState = VoltVarState()
    n_commands: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    pending: dict[str, Decision] = field(default_factory=dict)  # command id -> decision
    # DER reactive set-points the field acknowledged, by sgen name [Mvar]: no meter
    # reports them, so the DMS's model holds what it commanded
    der_q_mvar: dict[str, float] = field(default_factory=dict)

    # switch states the field acknowledged, by switch name: (closed, applied at [s]); they
    # stand until newer telemetry says otherwise (manual switches have none)
    switched: dict[str, tuple[bool, float]] = field(default_factory=dict)

    def on_outcome(self, outcome: dict) -> Decision | None:
        """Learn from a command outcome: an acknowledged DER set-point or switching enters
        the model. Returns the decision the command came from (None if not the DMS's)."""
        decision = self.pending.pop(str(outcome.get("id")), None)
        if decision is None or outcome.get("status") != "success":
            return decision  # a timed-out set-point is not known to be in force
        _kind, name = split_ref(decision.target)
        if decision.action == "set_der_q" and decision.value is not None:
            self.der_q_mvar[name] = float(decision.value)
        elif decision.action in ("open_switch", "close_switch"):
            applied = outcome.get("applied_t_s")
            self.switched[name] = (decision.action == "close_switch",
                                   float(applied if applied is not None else outcome["result_t_s"]))
        return decision

    def ingest(self, rows: list[dict]) -> None:
        """Keep the newest value of every (element, quantity)."""
        for row in rows:
            key = (row["element"], row["quantity"])
            old = self.telemetry.get(key)
            if old is None or row["source_t_s"] >= old["source_t_s"]:
                self.telemetry[key] = row


@dataclass
class CycleResult:
    t_s: float
    se: SEResult | None
    decisions: list[Decision]
    commands: list[dict]
    records: list[dict]
    failed: str = ""
    # the topology the cycle believed (switches, taps, capacitor steps): for what follows
    # the cycle (load management, the switchgear check) without building it again. The
    # state estimator ran on it (it reads the net and writes no tables: the estimate is ``se``).
    model: pp.pandapowerNet | None = None
    # that topology with the DMS's forecast and the powers it knows (see
    # :func:`forecast_model`): what Volt/Var judged, not changed by it; None when Volt/Var
    # is off. Load management plans on it without building it again. It is ``model``
    # itself, its loads and sgens set to the forecast after the estimate was recorded (one
    # copy of the net per cycle: what follows reads the topology, which is the same).
    forecast: pp.pandapowerNet | None = None


def _metered_heads(telemetry: pd.DataFrame, now_s: float, stale_after_s: float) -> dict[str, float]:
    """Fresh feeder-head active power from telemetry: {"trafo:Trafo 0-1": MW, …}."""
    heads: dict[str, float] = {}
    for element, quantity, value, t in zip(
            telemetry["element"].to_numpy(), telemetry["quantity"].to_numpy(),
            telemetry["value"].to_numpy(), telemetry["source_t_s"].to_numpy()):
        if quantity == "p_mw" and element.startswith("trafo:") and now_s - t <= stale_after_s:
            heads[element] = float(value)
    return heads


def run_cycle(state: DMSState, t_s: float, load_factor: np.ndarray, sgen_factor: np.ndarray,
              settings: CycleSettings, telemetry: pd.DataFrame | None = None) -> CycleResult:
    """Run one cycle at ``t_s`` [s]; updates ``state`` (Volt/Var memory, command count).

    ``telemetry``: ``state.telemetry`` as one table (:func:`telemetry_frame`), if the
    caller built it already. A cycle that raises (unexpected telemetry, a numerical
    failure) is a failed cycle with the error as its reason, like a failed estimation: the
    DMS goes on with the next one.
    """
    try:
        return _run_cycle(state, t_s, load_factor, sgen_factor, settings, telemetry)
    except Exception as exc:  # the DMS must outlive one bad cycle
        reason = f"cycle failed: {type(exc).__name__}: {exc}"
        state.failures[reason] = state.failures.get(reason, 0) + 1
        record = dms_estimation_record(t_s, success=False, observable=False, n_measurements=0,
                                       n_states=0, chi2=math.nan, bad_data=0, stale=0,
                                       message=reason[:500])
        return CycleResult(t_s, None, [], [], [record], failed=reason)


@single_threaded()  # the cycle's matrices are small: BLAS threads cost more than they save
def _run_cycle(state: DMSState, t_s: float, load_factor: np.ndarray, sgen_factor: np.ndarray,
               settings: CycleSettings, telemetry: pd.DataFrame | None) -> CycleResult:
    records: list[dict] = []
    if telemetry is None:
        telemetry = telemetry_frame(list(state.telemetry.values()))
    # the cycle's copy of the DMS's model; the estimator works on it in place, and as it
    # is the believed topology, an acknowledged switching newer than the switch's
    # telemetry counts for the estimate as for everything after it
    model = believed_topology(state, telemetry)
    heads = _metered_heads(telemetry, t_s, settings.stale_after_s)
    known = known_injections(model, telemetry, t_s, settings.stale_after_s, state.der_q_mvar)
    try:
        pseudo = pseudo_measurements(model, load_factor, sgen_factor, heads or None,
                                     settings.pseudo_sigma_pct, known=known)
    except ValueError as exc:  # e.g. a feeder head the forecast cannot be scaled to
        pseudo = pseudo_measurements(model, load_factor, sgen_factor, None,
                                     settings.pseudo_sigma_pct, known=known)
        records.append(_cycle_note(t_s, "load_estimation", f"feeder scaling skipped: {exc}"))
    se = estimate_state(model, telemetry, pseudo, now_s=t_s,
                        stale_after_s=settings.stale_after_s, stale_mode=settings.stale_mode,
                        apply_topology=False, copy_net=False)
    records.append(_se_record(t_s, se))
    records.extend(_estimate_records(t_s, model, se))
    if not se.success:
        reason = se.message or "state estimation failed"
        state.failures[reason] = state.failures.get(reason, 0) + 1
        return CycleResult(t_s, se, [], [], records, failed=reason, model=model)
    decisions: list[Decision] = []
    forecast = None
    if settings.volt_var_mode != "off":
        forecast = _with_forecast(model, load_factor, sgen_factor, heads, known, in_place=True)
        res = volt_var(forecast, t_s, settings.volt_var, state.volt_var,
                       mode=settings.volt_var_mode, vm_estimate_pu=se.vm_pu)
        state.volt_var = res.state
        stale_note = _stale_note(se)
        decisions = [_with_note(d, stale_note) for d in res.decisions]
    commands = issue(state, decisions, settings)
    return CycleResult(t_s, se, decisions, commands, records, model=model, forecast=forecast)


def issue(state: DMSState, decisions: list[Decision],
          settings: CycleSettings) -> list[dict]:
    """The commands (to the field) of ``decisions``; each is remembered until its outcome
    comes back. The decisions themselves are recorded by whoever runs the DMS."""
    commands = []
    for d in decisions:
        state.n_commands += 1
        cmd = d.command(f"dms-{state.n_commands}")
        if cmd is not None:
            state.pending[cmd["id"]] = d
            cmd["target"] = settings.device_refs.get(cmd["target"], cmd["target"])
            commands.append(cmd)
    return commands


def believed_topology(state: DMSState, telemetry: pd.DataFrame) -> pp.pandapowerNet:
    """The DMS's model with the switch, tap and capacitor states it believes: the newest
    telemetry, or an acknowledged switching that is newer than it.

    The one place that decides the topology: the state estimator, Volt/Var, FLISR, load
    management and the switchgear check all start from it. Returns a copy of
    ``state.model`` (which is not changed) whose topology and injection tables are its own
    (:func:`twin.dms.netcopy.working_copy`: the others are shared, read-only).
    """
    # the forecast (in place) sets the injections; what-ifs beyond it copy again
    model = working_copy(state.model, TOPOLOGY_TABLES + INJECTION_TABLES)
    set_switch_states(model, telemetry)
    set_tap_positions(model, telemetry)
    if state.switched:
        seen = {}
        if len(telemetry):
            rows = telemetry[telemetry.quantity == "closed"]
            seen = dict(zip(rows.element, rows.source_t_s))
        names = dict(zip(element_names(model, "switch"), model.switch.index))
        for name, (closed, at_s) in state.switched.items():
            if name in names and at_s >= seen.get(f"switch:{name}", -math.inf):
                model.switch.at[names[name], "closed"] = closed
    return model


def forecast_model(state: DMSState, t_s: float, load_factor: np.ndarray,
                   sgen_factor: np.ndarray, settings: CycleSettings | None = None,
                   model: pp.pandapowerNet | None = None,
                   telemetry: pd.DataFrame | None = None,
                   in_place: bool = False) -> pp.pandapowerNet:
    """The believed topology with the DMS's forecast of loads and generation: what
    switching plans are checked on. With ``settings``, scaled to the metered feeder heads
    and with the metered powers (the present state, for load management); without, the
    plain forecast (after a fault the heads miss the dead part's load). ``model``: the
    believed topology if the caller has it (not changed, unless ``in_place``: then it
    becomes the forecast net, for a caller that needs it no more); ``telemetry``: the table
    of ``state.telemetry`` if the caller has it."""
    if telemetry is None:
        telemetry = telemetry_frame(list(state.telemetry.values()))
    if model is None:
        model, in_place = believed_topology(state, telemetry), True  # a copy of its own
    if settings is None:
        return _with_forecast(model, load_factor, sgen_factor, {}, {}, in_place)
    heads = _metered_heads(telemetry, t_s, settings.stale_after_s)
    known = known_injections(model, telemetry, t_s, settings.stale_after_s, state.der_q_mvar)
    return _with_forecast(model, load_factor, sgen_factor, heads, known, in_place)


_INJECTION_TABLES = ("load", "sgen", "storage")


def known_injections(model: pp.pandapowerNet, telemetry: pd.DataFrame, now_s: float,
                     stale_after_s: float, der_q_mvar: dict[str, float]
                     ) -> dict[tuple[str, int, str], tuple[float, float]]:
    """Element powers the DMS knows: fresh metered P/Q of loads, DER and batteries (with
    the meter's σ), and the reactive set-points the field acknowledged (exact)."""
    known: dict[tuple[str, int, str], tuple[float, float]] = {}
    if len(telemetry):
        # the newest first (shared with the cycle's other readers): if a point's newest
        # value is stale, every older one is too, so filtering afterwards is the same
        rows = newest(telemetry)
        # plain arrays, not per-row pandas: the same rows and order as a filtered table
        picked = [
            (element, quantity, value, sigma)
            for element, quantity, value, t, sigma in zip(
                rows["element"].to_numpy(), rows["quantity"].to_numpy(),
                rows["value"].to_numpy(), rows["source_t_s"].to_numpy(),
                rows["sigma"].to_numpy())
            if quantity in ("p_mw", "q_mvar") and now_s - t <= stale_after_s
            and element.split(":", 1)[0] in _INJECTION_TABLES]
        index = element_index(model, [p[0] for p in picked])
        for element, quantity, value, sigma in picked:
            sigma = float(sigma) if np.isfinite(sigma) and sigma > 0 else 1e-3
            known[(split_ref(element)[0], index[element], quantity)] = (float(value), sigma)
    names = element_names(model, "sgen")
    for name, q in der_q_mvar.items():
        if name in names:
            known[("sgen", int(model.sgen.index[names.index(name)]), "q_mvar")] = (q, 0.0)
    return known


def _with_forecast(model: pp.pandapowerNet, load_factor: np.ndarray, sgen_factor: np.ndarray,
                   heads: dict[str, float], known: dict[tuple[str, int, str], tuple[float, float]],
                   in_place: bool = False) -> pp.pandapowerNet:
    """The model with loads and sgens at the DMS's forecast and the element powers it
    knows, unmetered loads scaled so that the forecast net demand matches the metered
    feeder heads (for Volt/Var what-ifs); a copy, or ``model`` itself if ``in_place``."""
    net = model if in_place else working_copy(model, INJECTION_TABLES)
    # arrays, one write per column: each pandas write or sum costs more than the
    # arithmetic (same operations and order as on the columns)
    load_p = net.load["p_mw"].to_numpy() * load_factor
    load_q = net.load["q_mvar"].to_numpy() * load_factor
    sgen_p = net.sgen["p_mw"].to_numpy() * sgen_factor
    sgen_q = net.sgen["q_mvar"].to_numpy() * sgen_factor
    # np.nansum: pandas' sum (NaN skipped)
    load_sum, sgen_sum = float(np.nansum(load_p)), float(np.nansum(sgen_p))
    demand = load_sum - sgen_sum
    metered = sum(heads.values())
    if heads and demand > 0 and load_sum > 0:
        scale = float(np.clip((metered + sgen_sum) / load_sum, 0.0, 5.0))
        load_p, load_q = load_p * scale, load_q * scale
    for table, column, values in (("load", "p_mw", load_p), ("load", "q_mvar", load_q),
                                  ("sgen", "p_mw", sgen_p), ("sgen", "q_mvar", sgen_q)):
        net[table][column] = values
    # one column write per (table, quantity), not one .at per element
    groups: dict[tuple[str, str], tuple[list, list]] = {}
    for (table, idx, quantity), (value, _sigma) in known.items():
        group = groups.setdefault((table, quantity), ([], []))
        group[0].append(idx)
        group[1].append(value)
    for (table, quantity), (idxs, values) in groups.items():
        df = net[table]
        _set_values(df, quantity, idxs, values)
        if "scaling" in df.columns:
            _set_values(df, "scaling", idxs, [1.0] * len(idxs))
    return net


def _set_values(df: pd.DataFrame, column: str, idxs: list, values: list) -> None:
    """``df.at[i, column] = v`` for each pair, as one write of a float column."""
    positions = df.index.get_indexer(idxs)
    if df[column].dtype == np.float64 and (positions >= 0).all():
        col = df[column].to_numpy().copy()
        col[positions] = values
        df[column] = col
    else:
        for idx, value in zip(idxs, values):
            df.at[idx, column] = value


def _stale_note(se: SEResult) -> str:
    if not se.stale:
        return ""
    names = sorted({str(s.get("element", "?")) for s in se.stale})
    shown = ", ".join(names[:3]) + (" …" if len(names) > 3 else "")
    return f" (stale telemetry not used: {shown})"


def _with_note(d: Decision, note: str) -> Decision:
    if not note:
        return d
    return replace(d, reason=d.reason + note, inputs={**d.inputs, "stale_data": True})


def _cycle_note(t_s: float, function: str, message: str) -> Record:
    return dms_cycle_note_record(t_s, function, message)


def _se_record(t_s: float, se: SEResult) -> Record:
    return dms_estimation_record(t_s, se.success, se.observable, se.n_measurements, se.n_states,
                                 se.chi2, len(se.bad_data), len(se.stale), se.message or "")


def _estimate_records(t_s: float, model: pp.pandapowerNet, se: SEResult) -> list[dict]:
    if not se.success:
        return []
    names = dict(zip(model.bus.index, element_names(model, "bus")))
    return [dms_estimate_record(t_s, names[idx], v)
            for idx, v in se.vm_pu.items() if np.isfinite(v)]
