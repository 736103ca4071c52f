r"""Baseline vs candidate DMS over the same scenarios and seeds: the per-KPI judgement, the
verdict, and the first decision where the two DMSs went different ways.

The rule
--------
For each scenario and KPI, with the runs paired by seed (both sides run the same seeds):

1. the paired deltas :math:`d_i = c_i - b_i` (candidate minus baseline, seed :math:`i`),
   their mean :math:`\bar d` and, over :math:`n` seeds, the 95 % confidence interval of the
   mean delta :math:`\bar d \pm t_{0.975,\,n-1}\, s_d / \sqrt{n}` (Student t; with one seed
   the interval is the point :math:`\bar d`);
2. the KPI is **same** when :math:`|\bar d| \le a + r\,|\bar b|` — :math:`a` the KPI's
   absolute tolerance from :mod:`twin.evaluation.kpi_meta` (0.1 min for minutes, 1 kWh for
   energies, …; at least 1e-9), :math:`r` the relative tolerance (``--rtol``, default 1 %,
   unless the KPI's row sets its own), :math:`\bar b` the baseline mean — or when, with two
   seeds or more, the interval contains 0 (the seeds cannot tell the sides apart);
3. otherwise **better** or **worse** by the KPI's good direction (lower or higher).

KPIs without a good direction, non-numeric ones and unknown ones are information: shown with
their values and deltas, never judged. A KPI missing in a run (``null``, or the run failed)
is left out of that seed's pair; a flattened count of a nested dict
(``dms_decisions.volt_var.set_tap``) missing in a run that has the dict is 0.

The verdict over the critical KPIs (``--critical``; default those marked critical in the
table: voltage-violation minutes, SAIDI, energy not supplied, overload minutes), over all
scenarios: all same → **same**; some better, none worse → **better**; some worse, none
better → **worse**; both → **mixed**. The exit code is 0 iff no critical KPI is worse in any
scenario and every run completed (a run that failed leaves nothing to vouch for), else 1.

Why this rule: pairing by seed removes what the seeds change on both sides alike (weather,
noise, losses of messages); the tolerance keeps float noise and changes below a KPI's
resolution from deciding; the interval keeps a change the seeds disagree on from deciding.

The first divergence
--------------------
Both sides' decisions in time order, compared pairwise by (time, function, action, target,
value); the first index where they differ, with both decisions (None past the end of the
shorter log). None if the logs are the same.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twin.evaluation.kpi_meta import DEFAULT_CRITICAL, kpi_meta
from twin.study.jobs import Job

BETTER, WORSE, SAME, MIXED = "better", "worse", "same", "mixed"
VERDICTS = (BETTER, WORSE, SAME, MIXED)
SIDES = ("baseline", "candidate")

#: Default relative tolerance (``--rtol``) [1].
DEFAULT_RTOL = 0.01
#: Smallest absolute tolerance: float noise is never a change.
MIN_ATOL = 1e-9
#: Confidence level of the interval over seeds.
CONFIDENCE = 0.95

RULE = ("per KPI, paired deltas d_i = candidate_i - baseline_i over seeds; mean delta and its "
        "95 % Student-t confidence interval (one seed: the point); same if |mean delta| <= "
        "atol + rtol * |baseline mean| or (2+ seeds) the interval contains 0, else better or "
        "worse by the KPI's good direction; verdict over the critical KPIs of all scenarios: "
        "all same -> same, better and none worse -> better, worse and none better -> worse, "
        "both -> mixed; exit 0 iff no critical KPI is worse and every run completed")


# ------------------------------------------------------------------------------ the plan


@dataclass(frozen=True)
class Side:
    """One side of the comparison.

    Attributes
    ----------
    name : {"baseline", "candidate"}
    overrides : tuple of str
        ``--baseline-set`` / ``--candidate-set``, ``"KEY.PATH=VALUE"``, in order.
    dms_class : str or None
        ``--baseline-dms`` / ``--candidate-dms``: ``"package.module:Class"`` or
        ``"path/file.py:Class"``; None: the scenario's own DMS.
    """

    name: str
    overrides: tuple[str, ...] = ()
    dms_class: str | None = None

    def all_overrides(self) -> tuple[str, ...]:
        """The side's overrides as a run applies them: its ``--set`` ones, then the DMS class
        (``dms.enabled=true``, ``dms.class=CLASS``)."""
        dms = ("dms.enabled=true", f"dms.class={self.dms_class}") if self.dms_class else ()
        return (*self.overrides, *dms)

    def as_dict(self) -> dict:
        return {"overrides": list(self.overrides), "dms_class": self.dms_class,
                "applied": list(self.all_overrides())}


@dataclass(frozen=True)
class ScenarioPlan:
    """One scenario of the comparison: a label (the run directories' folder), its file, its
    name and the seeds both sides run."""

    label: str
    file: str
    name: str
    seeds: tuple[int, ...]


def seed_list(first: int, n: int) -> tuple[int, ...]:
    """``--seeds n``: the scenario's own seed, then the next ``n - 1`` ones."""
    if n < 1:
        raise ValueError(f"--seeds: expected at least 1; found {n}")
    return tuple(first + i for i in range(n))


def unique_labels(stems: Sequence[str]) -> list[str]:
    """One label per scenario file: its stem, ``-2``, ``-3``, … for repeats."""
    labels, seen = [], {}
    for stem in stems:
        seen[stem] = seen.get(stem, 0) + 1
        labels.append(stem if seen[stem] == 1 else f"{stem}-{seen[stem]}")
    return labels


def job_key(label: str, side: str, seed: int) -> str:
    """A run's key, and its directory under ``<out>/runs/``."""
    return f"{label}/{side}/seed-{seed}"


@dataclass(frozen=True)
class Comparison:
    """What ``twin compare`` was asked.

    Attributes
    ----------
    scenarios : tuple of ScenarioPlan
    baseline, candidate : Side
    out_dir : str
        The output directory (absolute); runs go to ``<out_dir>/runs/<label>/<side>/seed-<n>``.
    until : str or None
        ``--until``.
    critical : tuple of str
        The KPIs the verdict and the exit code come from.
    rtol : float
        Relative tolerance [1].
    gate : {"mean", "every-seed"}
        What fails the exit code: a critical KPI judged worse by the rule (``mean``), or
        also one that some seed alone made worse beyond the tolerance (``every-seed``: a
        stricter gate for an upgrade that must not make any case worse).
    """

    scenarios: tuple[ScenarioPlan, ...]
    baseline: Side
    candidate: Side
    out_dir: str
    until: str | None = None
    critical: tuple[str, ...] = DEFAULT_CRITICAL
    rtol: float = DEFAULT_RTOL
    gate: str = "mean"

    def side(self, name: str) -> Side:
        return self.baseline if name == "baseline" else self.candidate

    def jobs(self) -> list[Job]:
        """Every run: per scenario, per seed, baseline then candidate (so the pairs of the
        first seed finish first)."""
        root = Path(self.out_dir) / "runs"
        return [Job(key=job_key(plan.label, side, seed), scenario=plan.file,
                    overrides=self.side(side).all_overrides(), seed=seed, until=self.until,
                    run_dir=str(root / plan.label / side / f"seed-{seed}"))
                for plan in self.scenarios for seed in plan.seeds for side in SIDES]

    @property
    def n_seeds(self) -> int:
        return max((len(plan.seeds) for plan in self.scenarios), default=0)


# ------------------------------------------------------------------------------ statistics


def flatten_kpis(kpis: dict, prefix: str = "") -> dict[str, Any]:
    """``kpis.json`` with nested dicts flattened with dots:
    ``{"dms_decisions": {"volt_var.set_tap": 2}}`` → ``{"dms_decisions.volt_var.set_tap": 2}``
    (the dict itself is not kept)."""
    flat: dict[str, Any] = {}
    for key, value in kpis.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten_kpis(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def is_number(value: Any) -> bool:
    """A finite int or float (a bool is not a number here)."""
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def t_quantile(confidence: float, dof: int) -> float:
    """Two-sided Student t quantile :math:`t_{(1+c)/2,\\,dof}`."""
    from scipy.stats import t

    return float(t.ppf(0.5 + confidence / 2.0, dof))


@dataclass(frozen=True)
class PairedStats:
    """Paired deltas over seeds.

    Attributes
    ----------
    n : int
        Pairs (seeds where both sides have a value).
    baseline_mean, candidate_mean, mean_delta : float
        Means [KPI unit]; ``mean_delta`` = candidate − baseline.
    relative_delta : float or None
        ``mean_delta / |baseline_mean|`` [1]; None when the baseline mean is 0.
    ci_low, ci_high : float
        Confidence interval of the mean delta [KPI unit]; the point with one pair or
        identical deltas.
    """

    n: int
    baseline_mean: float
    candidate_mean: float
    mean_delta: float
    relative_delta: float | None
    ci_low: float
    ci_high: float


def paired_stats(baseline: Sequence[float], candidate: Sequence[float],
                 confidence: float = CONFIDENCE) -> PairedStats:
    r"""Mean delta and its confidence interval over paired values.

    Parameters
    ----------
    baseline, candidate : sequence of float
        One value per seed, same length ≥ 1, paired by position.
    confidence : float
        Confidence level of the interval.

    Notes
    -----
    :math:`d_i = c_i - b_i`, :math:`\bar d = \frac1n \sum d_i`,
    :math:`s_d^2 = \frac{1}{n-1}\sum (d_i - \bar d)^2`; the interval is
    :math:`\bar d \pm t_{(1+c)/2,\,n-1}\, s_d/\sqrt n`.
    """
    if len(baseline) != len(candidate) or not baseline:
        raise ValueError("paired_stats: expected two sequences of the same length ≥ 1; found "
                         f"{len(baseline)} and {len(candidate)}")
    n = len(baseline)
    deltas = [c - b for b, c in zip(baseline, candidate)]
    mean_b = math.fsum(baseline) / n
    mean_c = math.fsum(candidate) / n
    mean_d = math.fsum(deltas) / n
    low = high = mean_d
    if n >= 2:
        sd = math.sqrt(math.fsum((d - mean_d) ** 2 for d in deltas) / (n - 1))
        half = t_quantile(confidence, n - 1) * sd / math.sqrt(n)
        low, high = mean_d - half, mean_d + half
    relative = mean_d / abs(mean_b) if mean_b != 0 else None
    return PairedStats(n, mean_b, mean_c, mean_d, relative, low, high)


def tolerance(key: str, baseline_mean: float, rtol: float = DEFAULT_RTOL) -> float:
    """``atol + rtol·|baseline mean|`` for ``key`` [KPI unit] (the KPI's own rtol if its row
    sets one)."""
    meta = kpi_meta(key)
    own = meta.rtol if meta.rtol is not None else rtol
    return max(meta.atol, MIN_ATOL) + own * abs(baseline_mean)


def judge(direction: str | None, stats: PairedStats, tol: float) -> tuple[str | None, str]:
    """Better, worse or same, and why in a few words; (None, "") without a direction."""
    if direction is None:
        return None, ""
    if abs(stats.mean_delta) <= tol:
        return SAME, "within tolerance"
    if stats.n >= 2 and stats.ci_low <= 0.0 <= stats.ci_high:
        return SAME, "interval contains 0"
    lower = stats.mean_delta < 0
    good = lower if direction == "lower" else not lower
    return (BETTER if good else WORSE), f"{direction} is better"


def combine(judgements: Iterable[str | None]) -> str:
    """One verdict from many judgements (None ignored; "mixed" counts as both)."""
    seen = {j for j in judgements if j is not None}
    better = bool(seen & {BETTER, MIXED})
    worse = bool(seen & {WORSE, MIXED})
    if better and worse:
        return MIXED
    if better:
        return BETTER
    if worse:
        return WORSE
    return SAME


def _rounded(x: float | None, digits: int = 9) -> float | None:
    return None if x is None else round(x, digits)


def kpi_comparison(key: str, baseline: Sequence[Any], candidate: Sequence[Any],
                   seeds: Sequence[int], rtol: float = DEFAULT_RTOL,
                   critical: bool = False) -> dict:
    """One KPI of one scenario, compared.

    Parameters
    ----------
    key : str
        The (flattened) KPI name.
    baseline, candidate : sequence
        The KPI's value per seed (None where a run has none), paired by position.
    seeds : sequence of int
        The seeds, same positions.
    rtol : float
        Relative tolerance.
    critical : bool
        Whether the verdict counts this KPI.

    Returns
    -------
    dict
        ``key``, ``unit``, ``direction``, ``critical``, ``seeds``, ``baseline_values``,
        ``candidate_values``, ``deltas`` (per seed, None where a side has no number),
        ``n``, ``baseline`` and ``candidate`` (means; for non-numeric KPIs the first seed's
        values), ``delta``, ``relative_delta``, ``ci95`` ([low, high] or None),
        ``tolerance``, ``judgement`` (better/worse/same, or None for information), ``why``,
        and ``seeds_better`` / ``seeds_worse``: the seeds whose own delta is beyond the
        tolerance either way (information: a KPI judged "same" because its interval contains
        0 may still be worse in one seed).
    """
    meta = kpi_meta(key)
    pairs = [(b, c) for b, c in zip(baseline, candidate) if is_number(b) and is_number(c)]
    numeric = bool(pairs) and all(v is None or is_number(v) for v in [*baseline, *candidate])
    out: dict[str, Any] = {
        "key": key, "unit": meta.unit, "direction": meta.direction, "critical": critical,
        "seeds": list(seeds), "baseline_values": list(baseline),
        "candidate_values": list(candidate),
        "deltas": [_rounded(c - b) if is_number(b) and is_number(c) else None
                   for b, c in zip(baseline, candidate)],
        "n": len(pairs), "baseline": None, "candidate": None, "delta": None,
        "relative_delta": None, "ci95": None, "tolerance": None, "judgement": None, "why": "",
        "seeds_better": [], "seeds_worse": [],
    }
    if not numeric:
        out["baseline"] = baseline[0] if baseline else None
        out["candidate"] = candidate[0] if candidate else None
        if meta.direction is not None:
            out["why"] = "no value to compare"
        return out
    stats = paired_stats([b for b, _ in pairs], [c for _, c in pairs])
    tol = tolerance(key, stats.baseline_mean, rtol)
    judgement, why = judge(meta.direction, stats, tol)
    if meta.direction is not None:  # seed by seed, beyond the tolerance (not the verdict)
        sign = -1.0 if meta.direction == "lower" else 1.0
        for seed, d in zip(seeds, out["deltas"]):
            if d is not None and abs(d) > tol:
                out["seeds_better" if sign * d > 0 else "seeds_worse"].append(seed)
    out.update(baseline=_rounded(stats.baseline_mean), candidate=_rounded(stats.candidate_mean),
               delta=_rounded(stats.mean_delta), relative_delta=_rounded(stats.relative_delta, 6),
               ci95=[_rounded(stats.ci_low), _rounded(stats.ci_high)], tolerance=_rounded(tol),
               judgement=judgement, why=why)
    return out


def kpi_values(rows: Sequence[dict | None]) -> dict[str, list[Any]]:
    """Per flattened KPI, its value in each row (None where a row has none; 0 for a nested
    count missing from a row that has the dict)."""
    flats = [flatten_kpis(row.get("kpis") or {}) if row else {} for row in rows]
    nested = [{k for k, v in (row.get("kpis") or {}).items() if isinstance(v, dict)} if row
              else set() for row in rows]
    keys: list[str] = []
    for flat in flats:
        keys += [k for k in flat if k not in keys]
    values: dict[str, list[Any]] = {}
    for key in keys:
        parent = key.split(".", 1)[0] if "." in key else None
        values[key] = [flat.get(key, 0 if parent in has else None)
                       for flat, has in zip(flats, nested)]
    return values


# ------------------------------------------------------------------------------ decisions


@dataclass(frozen=True)
class Decision:
    """One DMS decision as the comparison sees it. ``t_s`` [s since the scenario's start]."""

    t_s: float
    function: str
    action: str
    target: str
    value: Any
    mode: str = ""
    reason: str = ""

    def key(self) -> tuple:
        """What two decisions must share to be the same decision."""
        return (round(self.t_s, 6), self.function, self.action, self.target,
                _comparable(self.value))

    def as_dict(self) -> dict:
        return {"t_s": self.t_s, "function": self.function, "action": self.action,
                "target": self.target, "value": self.value, "mode": self.mode,
                "reason": self.reason}


def _comparable(value: Any) -> Any:
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, 9)
    return value


def first_divergence(baseline: Sequence[Decision],
                     candidate: Sequence[Decision]) -> dict | None:
    """The first index where two decision logs (each in time order) differ.

    Returns
    -------
    dict or None
        ``index``, ``t_s`` (the earlier of the two decisions' times) and ``baseline`` /
        ``candidate`` (the decisions as dicts, None past the end of a log); None if the logs
        are the same.
    """
    for i in range(max(len(baseline), len(candidate))):
        b = baseline[i] if i < len(baseline) else None
        c = candidate[i] if i < len(candidate) else None
        if b is not None and c is not None and b.key() == c.key():
            continue
        times = [d.t_s for d in (b, c) if d is not None]
        return {"index": i, "t_s": min(times),
                "baseline": b.as_dict() if b else None,
                "candidate": c.as_dict() if c else None}
    return None


def load_decisions(run_dir: str | Path) -> list[Decision]:
    """A run directory's DMS decisions from its file store, in time order (the store's order
    within one time); [] if the run recorded none, is no run directory or its store cannot be
    read."""
    import pandas as pd

    from twin.recording.schema import DMS_DECISION
    from twin.report.run_data import RunDirectoryError, load_run

    try:
        run = load_run(run_dir)
        frame = run.read(DMS_DECISION)
    except (RunDirectoryError, OSError, ValueError):  # no run, a damaged store: no log
        return []
    if frame is None or run.start is None:
        return []
    frame = frame.sort_values("time", kind="stable")
    t_s = (frame["time"] - run.start).dt.total_seconds()

    def text(column: str) -> list[str]:
        if column not in frame:
            return [""] * len(frame)
        return ["" if pd.isna(v) else str(v) for v in frame[column]]

    values = frame["value"] if "value" in frame else pd.Series([None] * len(frame))
    return [Decision(float(t), f, a, e, None if _missing(v) else _plain(v), m, r)
            for t, f, a, e, v, m, r in zip(t_s, text("function"), text("action"),
                                           text("element"), values, text("mode"),
                                           text("reason"))]


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _plain(value: Any) -> Any:
    """numpy scalars as Python ones (for JSON)."""
    return value.item() if hasattr(value, "item") else value


# ------------------------------------------------------------------------------ the result


@dataclass
class _Runs:
    """The rows of one scenario, by side and seed."""

    rows: dict[tuple[str, int], dict] = field(default_factory=dict)

    def get(self, side: str, seed: int) -> dict | None:
        return self.rows.get((side, seed))


def _completed(row: dict | None) -> bool:
    return row is not None and row.get("status") == "completed"


def _run_summary(row: dict, side: str, seed: int) -> dict:
    keep = ("key", "status", "error", "wall_time_s", "run_dir")
    expectations = row.get("expectations") or []
    return {"side": side, "seed": seed, **{k: row.get(k) for k in keep},
            "expectations_passed": sum(1 for e in expectations if e.get("passed")),
            "expectations_total": len(expectations)}


def scenario_result(plan: ScenarioPlan, runs: _Runs, comparison: Comparison,
                    decisions: Callable[[str], Sequence[Decision]]) -> dict:
    """One scenario's part of compare.json."""
    seeds = list(plan.seeds)
    sides_rows = {side: [runs.get(side, seed) for seed in seeds] for side in SIDES}
    # only completed runs count (an interrupted one holds part of a run); a KPI pairs the
    # seeds where both sides have a value
    usable = {side: [row if _completed(row) else None for row in sides_rows[side]]
              for side in SIDES}
    paired = [b is not None and c is not None for b, c in zip(*usable.values())]
    values = {side: kpi_values(usable[side]) for side in SIDES}
    keys = list(values["baseline"])
    keys += [k for k in values["candidate"] if k not in keys]
    # nested counts one side lacks are 0 where the run has the dict, like in kpi_values
    kpis = {}
    for key in keys:
        b = values["baseline"].get(key) or _absent(key, usable["baseline"])
        c = values["candidate"].get(key) or _absent(key, usable["candidate"])
        kpis[key] = kpi_comparison(key, b, c, seeds, comparison.rtol,
                                   critical=key in comparison.critical)
    critical = {key: kpis[key]["judgement"] if key in kpis else None
                for key in comparison.critical}
    divergences = []
    for seed, b_row, c_row in zip(seeds, sides_rows["baseline"], sides_rows["candidate"]):
        if b_row is None or c_row is None or not b_row.get("run_dir") or not c_row.get("run_dir"):
            continue
        b_log, c_log = decisions(b_row["run_dir"]), decisions(c_row["run_dir"])
        divergences.append({"seed": seed, "baseline_decisions": len(b_log),
                            "candidate_decisions": len(c_log),
                            "divergence": first_divergence(b_log, c_log)})
    expectations = {side: [{"seed": seed, "status": row.get("status") if row else "missing",
                            "results": (row.get("expectations") or []) if row else []}
                           for seed, row in zip(seeds, sides_rows[side])] for side in SIDES}
    run_rows = [_run_summary(row, side, seed) if row else
                {"side": side, "seed": seed, "status": "missing"}
                for seed in seeds for side in SIDES
                for row in [runs.get(side, seed)]]
    return {
        "label": plan.label, "file": plan.file, "name": plan.name, "seeds": seeds,
        "complete": all(paired),
        "verdict": combine(critical.values()),
        "critical": critical,
        "kpis": kpis,
        "first_divergence": divergences[0]["divergence"] if divergences else None,
        "divergences": divergences,
        "expectations": expectations,
        "runs": run_rows,
    }


def _absent(key: str, rows: Sequence[dict | None]) -> list[Any]:
    """A KPI one side never had: 0 for a nested count where the run has the dict, else None."""
    parent = key.split(".", 1)[0] if "." in key else None
    return [0 if row and parent and isinstance((row.get("kpis") or {}).get(parent), dict)
            else None for row in rows]


def compare_results(comparison: Comparison, rows: Sequence[dict],
                    decisions: Callable[[str], Sequence[Decision]] = load_decisions) -> dict:
    """compare.json from the runs' rows (:func:`twin.study.jobs.run_job`).

    Parameters
    ----------
    comparison : Comparison
        What was asked; its jobs' keys find the rows.
    rows : sequence of dict
        One row per job (any order; matched by ``key``).
    decisions : callable
        A run directory → its decisions in time order (:func:`load_decisions`; tests pass
        their own).

    Returns
    -------
    dict
        ``verdict``, ``exit_code``, ``summary`` (the one-line verdict), ``critical`` (the
        KPIs), ``critical_judgements`` (per KPI over all scenarios), ``rule``, ``rtol``,
        ``confidence``, ``baseline`` and ``candidate`` (their overrides and DMS class),
        ``until``, ``seeds_per_scenario``, ``complete``, ``runs_not_completed`` (key, status,
        error) and ``scenarios`` (:func:`scenario_result` each).
    """
    by_key = {row.get("key"): row for row in rows}
    scenarios = []
    for plan in comparison.scenarios:
        runs = _Runs({(side, seed): by_key[job_key(plan.label, side, seed)]
                      for side in SIDES for seed in plan.seeds
                      if job_key(plan.label, side, seed) in by_key})
        scenarios.append(scenario_result(plan, runs, comparison, decisions))
    per_kpi = {key: combine(s["critical"].get(key) for s in scenarios)
               for key in comparison.critical}
    verdict = combine(per_kpi.values())
    not_completed = [{"key": job.key, "status": by_key.get(job.key, {}).get("status", "missing"),
                      "error": by_key.get(job.key, {}).get("error", "")}
                     for job in comparison.jobs()
                     if by_key.get(job.key, {}).get("status") != "completed"]
    any_worse = any(s["critical"].get(key) == WORSE for s in scenarios
                    for key in comparison.critical)
    # the stricter gate: a seed that alone is worse on a critical KPI fails it too
    seed_worse = [f"{s['label']}: {key} in seed {', '.join(map(str, k['seeds_worse']))}"
                  for s in scenarios for key in comparison.critical
                  if (k := s["kpis"].get(key) or {}).get("seeds_worse")]
    failed_gate = any_worse or (comparison.gate == "every-seed" and bool(seed_worse))
    result = {
        "verdict": verdict,
        "exit_code": 1 if failed_gate or not_completed else 0,
        "gate": comparison.gate,
        "critical_worse_in_a_seed": seed_worse,
        "critical": list(comparison.critical),
        "critical_judgements": per_kpi,
        "rule": RULE,
        "rtol": comparison.rtol,
        "confidence": CONFIDENCE,
        "baseline": comparison.baseline.as_dict(),
        "candidate": comparison.candidate.as_dict(),
        "until": comparison.until,
        "seeds_per_scenario": comparison.n_seeds,
        "complete": not not_completed,
        "runs_not_completed": not_completed,
        "scenarios": scenarios,
    }
    result["summary"] = verdict_line(result)
    return result


def verdict_line(result: dict) -> str:
    """``verdict: better (candidate vs baseline over 1 scenario × 3 seeds; critical:
    voltage_violation_minutes better, …)``."""
    n_sc = len(result["scenarios"])
    n_seeds = result["seeds_per_scenario"]
    judged = ", ".join(f"{key} {judgement}" for key, judgement
                       in result["critical_judgements"].items())
    incomplete = ("" if result["complete"] else
                  f"; {len(result['runs_not_completed'])} run(s) not completed")
    return (f"verdict: {result['verdict']} (candidate vs baseline over {n_sc} "
            f"scenario{'s' if n_sc != 1 else ''} × {n_seeds} seed{'s' if n_seeds != 1 else ''}; "
            f"critical: {judged}{incomplete})")
