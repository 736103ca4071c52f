r"""Selected entries of the inverse of a sparse SPD matrix: the estimator's σ and Ω.

The variances of the estimated states are the diagonal of G⁻¹, and the residual
variances Ω_ii = R_ii − h_iᵀ G⁻¹ h_i need G⁻¹ only where two states share a measurement —
inside the sparsity pattern of G. On a 10,000-bus grid G⁻¹ itself (20,000² entries) is
out of reach, but its entries on the pattern of the Cholesky factor follow from the
factor alone (Takahashi's equations): with P G Pᵀ = L D Lᵀ, L unit lower triangular,
Z = (L D Lᵀ)⁻¹ satisfies Z = D⁻¹ L⁻¹ + (I − Lᵀ) Z, so, column by column from the last,

.. math::
    Z_{ij} = -\sum_{k > j} Z_{ik} L_{kj} \quad (i > j), \qquad
    Z_{jj} = 1/d_j - \sum_{k > j} L_{kj} Z_{kj},

where every Z_ik needed lies in the pattern of L (the rows of a column of L form a
clique of the filled graph). The factor is SuperLU's with a symmetric ordering and no
pivoting (so U = D Lᵀ); where that does not hold, :func:`selected_inverse` returns None
and the caller solves for the columns it needs.

References
----------
.. [1] K. Takahashi, J. Fagan, M.-S. Chen, "Formation of a sparse bus impedance matrix
   and its application to short circuit study", PICA Conference, 1973.
.. [2] A. Abur, A. G. Expósito, "Power System State Estimation: Theory and
   Implementation", Marcel Dekker, 2004, ch. 5 (residual covariance).
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla


@dataclass(frozen=True)
class SelectedInverse:
    """Z = A⁻¹ on the pattern of L (lower part, CSC) and its diagonal, in factor order;
    ``position[s]``: the factor position of original row/column s."""

    indptr: np.ndarray
    indices: np.ndarray
    lower: np.ndarray
    diag: np.ndarray
    position: np.ndarray

    def diagonal(self, states: np.ndarray) -> np.ndarray:
        """(A⁻¹)_ss for the original indices ``states``."""
        return self.diag[self.position[states]]

    def quadratic_rows(self, H: sp.csr_matrix) -> np.ndarray:
        """h_iᵀ A⁻¹ h_i for every row h_i of ``H`` (columns in original order); NaN where
        a pair of a row's columns is outside the pattern."""
        H = sp.csr_matrix(H)
        return _quadratic_rows(H.indptr.astype(np.int64), self.position[H.indices],
                               H.data.astype(float), self.indptr, self.indices, self.lower,
                               self.diag)


def symmetric_lu(A: sp.spmatrix):
    """SuperLU of SPD ``A`` with a symmetric fill-reducing ordering and diagonal pivots
    (then U = D Lᵀ and :func:`selected_inverse` applies); a usual LU for solving too."""
    return spla.splu(sp.csc_matrix(A), permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0,
                     options={"SymmetricMode": True})


def selected_inverse(lu) -> SelectedInverse | None:
    """Takahashi's selected inverse from :func:`symmetric_lu`'s factor; None if the
    factorisation pivoted off the diagonal (no symmetric factor to use)."""
    if not np.array_equal(lu.perm_r, lu.perm_c):
        return None
    L = sp.csc_matrix(lu.L)
    L.eliminate_zeros()
    L = sp.csc_matrix(sp.tril(L, k=-1))
    L.sort_indices()
    d = lu.U.diagonal()
    if not np.all(np.isfinite(d)) or np.any(d <= 0):
        return None
    indptr, indices = L.indptr.astype(np.int64), L.indices.astype(np.int64)
    lower, diag, ok = _takahashi(indptr, indices, L.data.astype(float), d.astype(float))
    if not ok:
        # an entry of the filled pattern cancelled to an exact zero (SuperLU drops it):
        # put the symbolic pattern back, with explicit zeros, and go again
        L = _closed_pattern(L)
        indptr, indices = L.indptr.astype(np.int64), L.indices.astype(np.int64)
        lower, diag, ok = _takahashi(indptr, indices, L.data.astype(float), d.astype(float))
        if not ok:
            return None
    # Pr A Pc = L U with Pc[i, perm_c[i]] = 1: original index s sits at perm_c[s]
    return SelectedInverse(indptr, indices, lower, diag, np.asarray(lu.perm_c, dtype=np.int64))


def _closed_pattern(L: sp.csc_matrix) -> sp.csc_matrix:
    """``L`` with explicit zeros where the symbolic Cholesky pattern has entries: each
    column's rows below its first go into the column of that first row (elimination
    tree)."""
    n = L.shape[0]
    rows = [L.indices[L.indptr[j]:L.indptr[j + 1]] for j in range(n)]
    for j in range(n):
        if len(rows[j]):
            parent = rows[j][0]
            rows[parent] = np.union1d(rows[parent], rows[j][1:])
    extra_r = np.concatenate([r for r in rows] + [np.empty(0, dtype=np.int64)])
    extra_c = np.repeat(np.arange(n), [len(r) for r in rows])
    coo = L.tocoo()
    # duplicates are summed (L's value + 0) and explicit zeros kept (not so with L + …)
    out = sp.coo_matrix((np.r_[coo.data, np.zeros(len(extra_r))],
                         (np.r_[coo.row, extra_r], np.r_[coo.col, extra_c])),
                        shape=L.shape).tocsc()
    out.sort_indices()
    return out


@numba.njit(cache=True)
def _find(indptr, indices, col, row):
    """Position of (row, col) in the CSC pattern, −1 if absent (binary search)."""
    lo, hi = indptr[col], indptr[col + 1]
    while lo < hi:
        mid = (lo + hi) // 2
        r = indices[mid]
        if r == row:
            return mid
        if r < row:
            lo = mid + 1
        else:
            hi = mid
    return -1


@numba.njit(cache=True)
def _z_at(indptr, indices, lower, diag, a, b):
    if a == b:
        return diag[a]
    if a < b:
        a, b = b, a
    p = _find(indptr, indices, b, a)
    if p < 0:
        return np.nan
    return lower[p]


@numba.njit(cache=True)
def _takahashi(indptr, indices, data, d):
    n = len(d)
    lower = np.zeros(len(data))
    diag = np.zeros(n)
    for j in range(n - 1, -1, -1):
        start, end = indptr[j], indptr[j + 1]
        for p in range(start, end):
            i = indices[p]
            s = 0.0
            for q in range(start, end):
                z = _z_at(indptr, indices, lower, diag, i, indices[q])
                if np.isnan(z):
                    return lower, diag, False
                s += z * data[q]
            lower[p] = -s
        s = 0.0
        for q in range(start, end):
            s += data[q] * lower[q]
        diag[j] = 1.0 / d[j] - s
    return lower, diag, True


@numba.njit(cache=True)
def _quadratic_rows(h_ptr, h_col, h_val, indptr, indices, lower, diag):
    m = len(h_ptr) - 1
    out = np.zeros(m)
    for r in range(m):
        s = 0.0
        for p in range(h_ptr[r], h_ptr[r + 1]):
            for q in range(h_ptr[r], h_ptr[r + 1]):
                s += h_val[p] * h_val[q] * _z_at(indptr, indices, lower, diag,
                                                 h_col[p], h_col[q])
        out[r] = s
    return out
