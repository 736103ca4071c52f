r"""Weighted-least-squares state estimation in numpy on a cached network model.

The estimator of :mod:`twin.dms.state_estimation`: Gauss–Newton in polar coordinates
over the model of :mod:`twin.dms.admittance`, the same formulation as pandapower's WLS
estimator (states, measurement model, virtual zero injections, σ floor, step limit,
convergence test), without its per-call conversion of the net. The Jacobian's sparsity
pattern is fixed by the measurement set, so it is built once per set and each iteration
only fills in numbers.

Measurement model: every P, Q or current-magnitude measurement reads the current
:math:`I = y^T V` of one admittance row ``y`` (a row of Ybus for a bus injection, of Yf or
Yt for a branch end) at a reference bus k: :math:`S = V_k \bar I`. Then, with
:math:`\delta_{kj}` the Kronecker delta,

.. math::
    \partial S/\partial\theta_j = j V_k \overline{(\delta_{kj} I - y_j V_j)}, \qquad
    \partial S/\partial|V_j| = V_k \overline{y_j V_j/|V_j|}
        + \delta_{kj} \bar I V_k/|V_k|,

and :math:`\partial|I|/\partial x = \mathrm{Re}(\bar I\,\partial I/\partial x)/|I|`
(Abur & Expósito, ch. 2).

References
----------
.. [1] A. Abur, A. G. Expósito, "Power System State Estimation: Theory and
   Implementation", Marcel Dekker, 2004, ch. 2.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import scipy.linalg as la
import scipy.sparse as sp

from twin.dms.admittance import GridModel
from twin.dms.selinv import SelectedInverse, selected_inverse, symmetric_lu

#: Smallest σ [p.u.]: pandapower's estimator floors every σ here.
SIGMA_FLOOR_PU = 1e-5
#: Largest state update per iteration [p.u. resp. rad], as pandapower's estimator.
MAX_STEP = 0.35
#: Up to this many states the matrices are dense (faster than sparse for small grids).
#: (Beyond, multithreaded BLAS on a busy machine costs more than it saves.)
DENSE_MAX_STATES = 100

#: A run whose update has stopped shrinking will not converge (a limit cycle, typically
#: with |I| meters at light load): from iteration STALL_MIN_ITERATIONS on, STALL_WINDOW
#: steps in a row within a factor STALL_SPREAD of each other end it, instead of running
#: to ``max_iterations``. Seen on CIGRE MV (360 cycles): stalled runs sit flat at 1–3e-3
#: from iteration ~10; converging ones shrink ≥ ×0.86 per iteration once they do, one after
#: rising for ten iterations (a spread of 1.7, not flat).
STALL_MIN_ITERATIONS = 15
STALL_WINDOW = 10
STALL_SPREAD = 1.1

#: Measurement kinds, in pandapower's order of its measurement vector.
KIND_P_BUS, KIND_Q_BUS, KIND_P_FROM, KIND_Q_FROM, KIND_P_TO, KIND_Q_TO, KIND_V, \
    KIND_I_FROM, KIND_I_TO = range(9)
_P_KINDS = (KIND_P_BUS, KIND_P_FROM, KIND_P_TO)
_Q_KINDS = (KIND_Q_BUS, KIND_Q_FROM, KIND_Q_TO)
_I_KINDS = (KIND_I_FROM, KIND_I_TO)


@dataclass
class MeasurementSet:
    """Measurement vector in model indices, sorted as pandapower sorts it.

    ``kind`` (``KIND_*``), ``target`` (model bus or branch), ``z`` [p.u.], ``sigma``
    [p.u., floored], ``row`` (the caller's row of the first merged measurement, −1 for a
    virtual zero injection). Built by :func:`measurement_set`.
    """

    kind: np.ndarray
    target: np.ndarray
    z: np.ndarray
    sigma: np.ndarray
    row: np.ndarray


def measurement_set(model: GridModel, kind: np.ndarray, target: np.ndarray,
                    value_pu: np.ndarray, sigma_pu: np.ndarray,
                    row: np.ndarray) -> MeasurementSet:
    """Merge, add virtual zero injections, sort — as pandapower's estimator does.

    Measurements of the same kind at the same model bus or branch (e.g. on buses fused by
    a bus-bus switch) merge into their weighted mean with σ = (Σ σᵢ⁻²)^−½, and keep the
    row of the first. Each virtual zero injection of the model replaces any P/Q
    measurement at its bus.
    """
    kind = np.asarray(kind, dtype=np.int64)
    target = np.asarray(target, dtype=np.int64)
    value_pu = np.asarray(value_pu, dtype=float)
    sigma_pu = np.asarray(sigma_pu, dtype=float)
    row = np.asarray(row, dtype=np.int64)
    if len(model.virtual_bus):
        virtual = np.isin(kind, (KIND_P_BUS, KIND_Q_BUS)) & np.isin(target, model.virtual_bus)
        keep = ~virtual
        nv = len(model.virtual_bus)
        kind = np.r_[kind[keep], np.full(nv, KIND_P_BUS), np.full(nv, KIND_Q_BUS)]
        target = np.r_[target[keep], model.virtual_bus, model.virtual_bus]
        value_pu = np.r_[value_pu[keep], np.zeros(2 * nv)]
        sigma_pu = np.r_[sigma_pu[keep], model.virtual_sigma_pu, model.virtual_sigma_pu]
        row = np.r_[row[keep], np.full(2 * nv, -1, dtype=np.int64)]
    # stable sort by (kind, target): the first row of a group is the caller's first
    order = np.lexsort((np.arange(len(kind)), target, kind))
    kind, target, value_pu, sigma_pu, row = (a[order] for a in
                                            (kind, target, value_pu, sigma_pu, row))
    start = np.r_[True, (kind[1:] != kind[:-1]) | (target[1:] != target[:-1])]
    if start.all():
        return MeasurementSet(kind, target, value_pu,
                              np.maximum(sigma_pu, SIGMA_FLOOR_PU), row)
    group = np.cumsum(start) - 1
    w = 1.0 / sigma_pu ** 2
    w_sum = np.bincount(group, weights=w)
    z = np.bincount(group, weights=w * value_pu) / w_sum
    sigma = np.sqrt(1.0 / w_sum)
    return MeasurementSet(kind[start], target[start], z,
                          np.maximum(sigma, SIGMA_FLOOR_PU), row[start])


@dataclass
class _Pattern:
    """Jacobian structure of one measurement set on one model."""

    ref_bus: np.ndarray      # per measurement: the bus k of S = V_k conj(I)
    A: sp.csr_matrix         # admittance rows y, one per measurement (empty for |V|)
    nz_row: np.ndarray       # per stored entry of A: its measurement
    nz_col: np.ndarray       # its bus j
    nz_diag: np.ndarray      # j == k
    is_p: np.ndarray
    is_q: np.ndarray
    is_i: np.ndarray
    is_v: np.ndarray
    H_indices: np.ndarray    # CSR structure of H (m × n states)
    H_indptr: np.ndarray
    H_order: np.ndarray      # permutation of [dθ entries, d|V| entries] into CSR order
    H_keep: np.ndarray       # of those, the entries that are states (not slack angles)
    n_states: int
    model: GridModel         # the model it belongs to (an id alone may be reused)


#: Jacobian structures kept: the measurement set hardly changes between cycles.
_PATTERNS: OrderedDict[tuple, _Pattern] = OrderedDict()
_PATTERN_CACHE_SIZE = 8


def _pattern(model: GridModel, ms: MeasurementSet) -> _Pattern:
    """The Jacobian structure of ``ms`` on ``model``, from the cache or built."""
    key = (id(model), ms.kind.tobytes(), ms.target.tobytes())
    pat = _PATTERNS.get(key)
    if pat is not None and pat.model is model:
        _PATTERNS.move_to_end(key)
        return pat
    pat = _build_pattern(model, ms)
    _PATTERNS[key] = pat
    while len(_PATTERNS) > _PATTERN_CACHE_SIZE:
        _PATTERNS.popitem(last=False)
    return pat


def _build_pattern(model: GridModel, ms: MeasurementSet) -> _Pattern:
    kind, target = ms.kind, ms.target
    m, nb = len(kind), model.n_bus
    is_v = kind == KIND_V
    is_p = np.isin(kind, _P_KINDS)
    is_q = np.isin(kind, _Q_KINDS)
    is_i = np.isin(kind, _I_KINDS)
    bus_kind = np.isin(kind, (KIND_P_BUS, KIND_Q_BUS)) | is_v
    from_kind = np.isin(kind, (KIND_P_FROM, KIND_Q_FROM, KIND_I_FROM))
    ref_bus = np.where(bus_kind, target, 0)
    ref_bus = np.where(from_kind, model.f_bus[np.where(from_kind, target, 0)], ref_bus)
    to_kind = ~bus_kind & ~from_kind
    ref_bus = np.where(to_kind, model.t_bus[np.where(to_kind, target, 0)], ref_bus)

    # admittance rows, plus an explicit (k, k) entry so the δ_kj terms have a place
    blocks = []
    for mask, Y, rows in ((bus_kind & ~is_v, model.Ybus, target),
                          (from_kind, model.Yf, target), (to_kind, model.Yt, target)):
        sel = np.flatnonzero(mask)
        if len(sel):
            sub = Y[rows[sel]].tocoo()
            blocks.append((sel[sub.row], sub.col, sub.data))
    diag = np.arange(m)
    blocks.append((diag, ref_bus, np.zeros(m, dtype=complex)))
    r = np.concatenate([b[0] for b in blocks])
    c = np.concatenate([b[1] for b in blocks])
    d = np.concatenate([b[2] for b in blocks])
    A = sp.csr_matrix((d, (r, c)), shape=(m, nb))   # duplicates summed: pattern unique
    A.sort_indices()
    nz_row = np.repeat(np.arange(m), np.diff(A.indptr))
    nz_col = A.indices.astype(np.int64)
    nz_diag = nz_col == ref_bus[nz_row]

    # H over [θ of every bus, |V| of every bus], then the slack angles dropped
    state_of_theta = np.full(nb, -1, dtype=np.int64)
    non_slack = np.flatnonzero(~model.slack)
    state_of_theta[non_slack] = np.arange(len(non_slack))
    n_states = len(non_slack) + nb
    col_theta = state_of_theta[nz_col]
    col_v = len(non_slack) + nz_col
    rows_all = np.r_[nz_row, nz_row]
    cols_all = np.r_[col_theta, col_v]
    keep = cols_all >= 0
    order = np.lexsort((cols_all[keep], rows_all[keep]))
    indptr = np.r_[0, np.cumsum(np.bincount(rows_all[keep], minlength=m))]
    return _Pattern(ref_bus, A, nz_row, nz_col, nz_diag, is_p, is_q, is_i, is_v,
                    cols_all[keep][order].astype(np.int32), indptr.astype(np.int32),
                    order, keep, n_states, model)


def _evaluate(model: GridModel, pat: _Pattern, vm: np.ndarray, va: np.ndarray
              ) -> tuple[np.ndarray, sp.csr_matrix]:
    """h(x) and the Jacobian H at the state (vm, va)."""
    V = vm * np.exp(1j * va)
    A = pat.A
    I = A @ V                                       # noqa: E741 (the current, as in the texts)
    Vk = V[pat.ref_bus]
    S = Vk * np.conj(I)
    h = np.where(pat.is_p, S.real, 0.0)
    h = np.where(pat.is_q, S.imag, h)
    absI = np.abs(I)
    h = np.where(pat.is_i, absI, h)
    h = np.where(pat.is_v, vm[pat.ref_bus], h)

    r, j = pat.nz_row, pat.nz_col
    yV = A.data * V[j]
    Vr = Vk[r]
    diag = pat.nz_diag
    dS_dth = 1j * Vr * np.conj(np.where(diag, I[r], 0.0) - yV)
    dS_dv = Vr * np.conj(yV / vm[j]) + np.where(diag, np.conj(I[r]) * Vr / vm[j], 0.0)
    d_th = np.where(pat.is_p[r], dS_dth.real, dS_dth.imag)
    d_v = np.where(pat.is_p[r], dS_dv.real, dS_dv.imag)
    ir = pat.is_i[r]
    if ir.any():
        with np.errstate(invalid="ignore", divide="ignore"):
            cI = np.conj(I[r[ir]]) / absI[r[ir]]
        d_th[ir] = np.nan_to_num((cI * 1j * yV[ir]).real)
        d_v[ir] = np.nan_to_num((cI * yV[ir] / vm[j[ir]]).real)
    vr = pat.is_v[r]
    d_th[vr] = 0.0
    d_v[vr] = np.where(diag[vr], 1.0, 0.0)
    data = np.r_[d_th, d_v][pat.H_keep][pat.H_order]
    H = sp.csr_matrix((data, pat.H_indices, pat.H_indptr), shape=(len(h), pat.n_states))
    return h, H


@dataclass
class WLSSolution:
    """A Gauss–Newton run: the state, or why there is none, and the matrices of its last
    iteration (as pandapower keeps them) for the χ² and normalised-residual tests."""

    ok: bool
    singular: bool
    iterations: int
    vm_pu: np.ndarray            # by model bus
    va_rad: np.ndarray
    r: np.ndarray | None = None  # z − h(x) [p.u.]
    H: sp.csr_matrix | None = None
    G: np.ndarray | sp.csc_matrix | None = None
    factor: object = None        # Cholesky (dense) or LU (sparse) of the equilibrated G
    scale: np.ndarray | None = None   # D = diag(G)^−½ of that equilibration
    inverse: np.ndarray | None = None  # (D G D)⁻¹, dense only, once asked for
    # sparse only, once asked for: (D G D)⁻¹ on the factor's pattern (False: unavailable)
    selected: SelectedInverse | bool | None = None


def solve(model: GridModel, ms: MeasurementSet, tolerance: float = 1e-6,
          max_iterations: int = 50) -> WLSSolution:
    """Gauss–Newton from pandapower's start until the largest update ≤ ``tolerance``.

    A current magnitude whose current is zero (at a flat start without phase shifters)
    has a zero Jacobian row, every update is limited to :data:`MAX_STEP`, and G is solved after
    equilibration D G D with D = diag(G)^−½ (the weights span ten orders of magnitude).
    A singular G — a state no measurement reaches — ends the run with ``singular``.
    """
    pat = _pattern(model, ms)
    w = 1.0 / ms.sigma ** 2
    non_slack = np.flatnonzero(~model.slack)
    n_theta = len(non_slack)
    vm = model.vm0_pu.copy()
    va = model.va0_rad.copy()
    dense = pat.n_states <= DENSE_MAX_STATES
    step, it = np.inf, 0
    steps: list[float] = []
    r = H = G = factor = d = None
    while step > tolerance and it < max_iterations:
        h, H = _evaluate(model, pat, vm, va)
        r = ms.z - h
        try:
            G, factor, d = _factorise(H, w, dense)
        except (np.linalg.LinAlgError, RuntimeError, ValueError):
            return WLSSolution(False, True, it, vm, va)
        rhs = H.T @ (w * r)
        dx = d * _solve_factor(factor, d * rhs, dense)
        if not np.all(np.isfinite(dx)):
            return WLSSolution(False, True, it, vm, va)
        step = float(np.max(np.abs(dx)))
        if step > MAX_STEP:
            dx *= MAX_STEP / step
        va[non_slack] += dx[:n_theta]
        vm += dx[n_theta:]
        it += 1
        steps.append(step)
        if it >= STALL_MIN_ITERATIONS and step > tolerance and \
                max(steps[-STALL_WINDOW:]) <= STALL_SPREAD * min(steps[-STALL_WINDOW:]):
            break  # stalled (see STALL_SPREAD)
    ok = step <= tolerance
    return WLSSolution(ok, False, it, vm, va, r=r, H=H, G=G, factor=factor, scale=d)


def _factorise(H: sp.csr_matrix, w: np.ndarray, dense: bool):
    """G = Hᵀ W H and a factorisation of D G D, D = diag(G)^−½."""
    if dense:
        Hd = H.toarray()
        G = Hd.T @ (w[:, None] * Hd)
        g = np.diag(G)
        if not np.all(g > 0):
            raise np.linalg.LinAlgError("a state without measurement")
        d = 1.0 / np.sqrt(g)
        factor = la.cho_factor(G * d[:, None] * d[None, :], lower=True, check_finite=False)
        return G, factor, d
    G = (H.T @ sp.diags(w) @ H).tocsc()
    g = G.diagonal()
    if not np.all(g > 0):
        raise np.linalg.LinAlgError("a state without measurement")
    d = 1.0 / np.sqrt(g)
    D = sp.diags(d)
    # symmetric ordering, diagonal pivots: also the factor σ and Ω are taken from
    factor = symmetric_lu(D @ G @ D)
    return G, factor, d


def _solve_factor(factor, b: np.ndarray, dense: bool) -> np.ndarray:
    if dense:
        return la.cho_solve(factor, b, check_finite=False)
    return factor.solve(b)


def chi2(sol: WLSSolution, ms: MeasurementSet) -> float:
    """J(x̂) = Σ rᵢ²/σᵢ² [-]."""
    return float(np.sum(sol.r ** 2 / ms.sigma ** 2))


def _dense_inverse(sol: WLSSolution) -> np.ndarray:
    """(D G D)⁻¹ of a dense solution, computed once."""
    if sol.inverse is None:
        sol.inverse = la.cho_solve(sol.factor, np.eye(len(sol.scale)), check_finite=False)
    return sol.inverse


def _selected(sol: WLSSolution) -> SelectedInverse | None:
    """The selected inverse of a sparse solution's factor, computed once."""
    if sol.selected is None:
        sol.selected = selected_inverse(sol.factor) or False
    return sol.selected or None


#: Right-hand sides per sparse solve where the selected inverse is unavailable (memory).
_SOLVE_BLOCK = 256


def _solve_columns(sol: WLSSolution, B: sp.csr_matrix) -> np.ndarray:
    """bᵢᵀ (D G D)⁻¹ bᵢ for each row bᵢ of ``B``, by blocks of sparse solves."""
    out = np.empty(B.shape[0])
    for start in range(0, B.shape[0], _SOLVE_BLOCK):
        block = B[start:start + _SOLVE_BLOCK]
        X = sol.factor.solve(block.T.toarray())
        out[start:start + block.shape[0]] = np.asarray(block.multiply(X.T).sum(axis=1)).ravel()
    return out


def state_variance(sol: WLSSolution, states: np.ndarray) -> np.ndarray:
    """Diagonal of G⁻¹ at ``states``: the variance of those estimated states."""
    if sol.G is None:
        return np.full(len(states), np.nan)
    if isinstance(sol.factor, tuple):  # dense: the full inverse costs less than columns
        return np.diag(_dense_inverse(sol))[states] * sol.scale[states] ** 2
    selected = _selected(sol)
    if selected is not None:  # sparse: Takahashi's equations on the factor
        return selected.diagonal(states) * sol.scale[states] ** 2
    unit = sp.csr_matrix((np.ones(len(states)), (np.arange(len(states)), states)),
                         shape=(len(states), len(sol.scale)))
    return _solve_columns(sol, unit) * sol.scale[states] ** 2


def residual_variance(sol: WLSSolution, ms: MeasurementSet) -> np.ndarray:
    """Ω_ii = R_ii − (H G⁻¹ Hᵀ)_ii, without forming the m × m matrix."""
    R = ms.sigma ** 2
    Hs = sol.H.multiply(sol.scale[None, :]).tocsr()    # H D
    if isinstance(sol.factor, tuple):
        # sparse × dense runs in scipy's own loops, not in (threaded) BLAS
        X = Hs @ _dense_inverse(sol)                              # H D (DGD)⁻¹
        return R - np.asarray(Hs.multiply(X).sum(axis=1)).ravel()
    # sparse: a row's states share its measurement, so the pairs lie in G's pattern
    selected = _selected(sol)
    quad = np.full(len(R), np.nan) if selected is None else selected.quadratic_rows(Hs)
    missing = np.flatnonzero(~np.isfinite(quad))
    if len(missing):
        quad[missing] = _solve_columns(sol, Hs[missing])
    return R - quad
