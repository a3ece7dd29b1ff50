"""Convex relaxation of the SC-loss problem: a certified lower bound (DESIGN.md section 5).

The SC loss (DESIGN.md section 2, sum convention) depends on the unit embeddings only through
``G = Z Z^T`` and is convex in ``G``::

    L(G) = sum_B sum_{i in B, n_{B,y_i} >= 2} [ logsumexp_{l in B, l != i} G_il/tau
                                                - 1/(n_{B,y_i} - 1) sum_{j in B, j != i, y_j = y_i} G_ij/tau ]

Minimizing it over ``{G PSD, diag(G) = 1}`` (UFM), plus ``G >= 0`` entrywise (UFM+, the doubly
non-negative relaxation), is a convex problem (PSD cone + exponential cones) whose value is a
LOWER BOUND on the non-convex problem for every dimension ``d``.

- ``full_relaxation``: the ``N x N`` problem above for any batching. The log-sum-exp rows are
  grouped by their number of terms and built with one sparse selection matrix per group, so
  compilation stays well under a second at ``N = 120``.
- ``reduced_relaxation``: the full-batch problem reduced by within-class permutation symmetry.
  An optimal ``G`` exists with ``G_ij = A_{y_i y_j}`` (``i != j``), ``A`` a ``k x k`` symmetric
  matrix (``A_cc`` within-class, ``A_cc'`` cross-class). ``G`` is PSD iff ``A_cc <= 1`` and
  ``diag(1 - A_cc) + D^{1/2} A D^{1/2}`` is PSD (``D = diag(n_c)``); equivalently (congruence
  by ``D^{-1/2}``, the better scaled form used here) ``A + diag((1 - A_cc)/n_c)`` is PSD. The
  loss becomes::

      sum_c n_c [ -A_cc/tau + logsumexp( A_cc/tau + log(n_c - 1), {A_cc'/tau + log n_c'}_{c' != c} ) ]

  a ``k x k`` SDP for any ``N``.

Under UFM+ (``nonneg=True``) the bound equals ``L*_OF`` for any counts (``ufm.of_loss``);
without ReLU it equals the ETF value when balanced and is lower than ``L*_OF`` under imbalance,
where ``class_gram`` shows the broken symmetry.

``lower_bound`` is the solver's optimal objective value; trust it only when ``ok`` (status
``"optimal"``; ``"optimal_inaccurate"`` is not ok).

>>> import ufm
>>> res = reduced_relaxation([2, 2], tau=1.0, nonneg=True)
>>> res.ok, round(res.lower_bound, 5), round(ufm.of_loss([2, 2], 1.0), 5)
(True, 2.20578, 2.20578)
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import cvxpy as cp
import numpy as np
import scipy.sparse as sp

from ufm.labels import check_counts, counts_from_labels

__all__ = ["RelaxationResult", "reduced_relaxation", "full_relaxation", "SOLVERS"]

#: Solvers accepted by ``solver=`` (case-insensitive).
SOLVERS = ("CLARABEL", "SCS")

#: ``full_relaxation`` uses Clarabel up to this many samples and SCS above.
CLARABEL_MAX_N = 40

# SCS settings for the full relaxation: tight tolerances, the value is then accurate to about
# 1e-8 relative at N = 120 (measured against the closed forms).
SCS_OPTIONS: dict[str, Any] = {"eps_abs": 1e-9, "eps_rel": 1e-9, "max_iters": 100_000}


@dataclass
class RelaxationResult:
    """Outcome of a convex relaxation solve.

    Attributes:
      lower_bound: optimal value of the relaxation (sum convention); NaN if no value came back.
      status: cvxpy status string (``"optimal"``, ``"optimal_inaccurate"``, ``"infeasible"``,
        ...) or ``"solver_error"``.
      solver: solver name used (``"CLARABEL"`` or ``"SCS"``).
      seconds: wall clock of the whole call (model building, cvxpy compilation, solve).
      compile_seconds: cvxpy compilation time (part of ``seconds``).
      method: ``"reduced"`` or ``"full"``.
      class_gram: ``k x k`` class-level inner products (``A_cc`` within-class, ``A_cc'`` cross).
      gram: the ``N x N`` optimal ``G`` (full method only).
      ok: True only if ``status == "optimal"``.
    """

    lower_bound: float
    status: str
    solver: str
    seconds: float
    method: str
    compile_seconds: float = float("nan")
    class_gram: np.ndarray | None = None
    gram: np.ndarray | None = field(default=None, repr=False)
    ok: bool = False

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (lists and floats; NaN/inf as None)."""
        from ufm.io import to_jsonable

        return to_jsonable(
            {
                "lower_bound": float(self.lower_bound),
                "status": str(self.status),
                "solver": str(self.solver),
                "seconds": float(self.seconds),
                "compile_seconds": float(self.compile_seconds),
                "method": str(self.method),
                "class_gram": None if self.class_gram is None else np.asarray(self.class_gram),
                "gram": None if self.gram is None else np.asarray(self.gram),
                "ok": bool(self.ok),
            }
        )


# ----------------------------------------------------------------------------- helpers


def _check_tau(tau: float) -> float:
    tau = float(tau)
    if not math.isfinite(tau) or tau <= 0:
        raise ValueError(f"tau must be a finite number > 0, got {tau}")
    return tau


def _check_solver(solver: str | None, default: str) -> str:
    name = default if solver is None else str(solver).upper()
    if name not in SOLVERS:
        raise ValueError(f"unknown solver {solver!r}; choose one of {SOLVERS}")
    return name


def _solver_kwargs(name: str) -> dict[str, Any]:
    return dict(SCS_OPTIONS) if name == "SCS" else {}


def _solve(prob: cp.Problem, name: str) -> tuple[str, float, float]:
    """Solve; return (status, value, compile_seconds). Solver failures become a status."""
    try:
        prob.solve(solver=name, **_solver_kwargs(name))
    except cp.error.SolverError:
        return "solver_error", float("nan"), float(getattr(prob, "compilation_time", None) or 0.0)
    value = prob.value
    value = float("nan") if value is None else float(value)
    compile_s = getattr(prob, "compilation_time", None)
    return str(prob.status), value, float("nan") if compile_s is None else float(compile_s)


# ----------------------------------------------------------------------------- reduced


def reduced_relaxation(
    counts: Sequence[int], tau: float, *, nonneg: bool, solver: str | None = None
) -> RelaxationResult:
    """Symmetry-reduced ``k x k`` relaxation of the full-batch problem (DESIGN.md section 5).

    Args:
      counts: samples per class (each >= 2).
      tau: temperature > 0.
      nonneg: add ``A >= 0`` (UFM+, ReLU).
      solver: ``"CLARABEL"`` (default) or ``"SCS"``.
    """
    t0 = time.perf_counter()
    n = check_counts(counts).astype(np.float64)
    tau = _check_tau(tau)
    name = _check_solver(solver, "CLARABEL")
    k = n.size
    big_n = float(n.sum())

    A = cp.Variable((k, k), symmetric=True)
    a_diag = cp.diag(A)
    # log-multiplicities: n_c - 1 same-class others on the diagonal, n_c' off it.
    log_mult = np.tile(np.log(n)[None, :], (k, 1))
    log_mult[np.diag_indices(k)] = np.log(n - 1.0)
    lse = cp.log_sum_exp(A / tau + log_mult, axis=1)
    # Objective scaled by 1/N for the solver's sake; the value is rescaled below.
    w = n / big_n
    objective = cp.Minimize(w @ lse - (w / tau) @ a_diag)
    psd = A + cp.diag(cp.multiply(1.0 / n, 1.0 - a_diag))
    constraints = [a_diag <= 1.0, (psd + psd.T) / 2 >> 0]
    if nonneg:
        constraints.append(A >= 0)
    prob = cp.Problem(objective, constraints)
    status, value, compile_s = _solve(prob, name)
    class_gram = None if A.value is None else np.array(A.value, dtype=np.float64)
    return RelaxationResult(
        lower_bound=value * big_n,
        status=status,
        solver=name,
        seconds=time.perf_counter() - t0,
        compile_seconds=compile_s,
        method="reduced",
        class_gram=class_gram,
        gram=None,
        ok=status == cp.OPTIMAL,
    )


# ----------------------------------------------------------------------------- full


def _check_batches(batches, n_samples: int) -> list[np.ndarray]:
    if batches is None:
        return [np.arange(n_samples, dtype=np.int64)]
    out = []
    for b in batches:
        arr = np.asarray(b)
        if arr.ndim != 1 or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
            raise ValueError("each batch must be a flat list of integer sample indices")
        arr = arr.astype(np.int64)
        if arr.size and (arr.min() < 0 or arr.max() >= n_samples):
            raise ValueError(f"batch index out of range [0, {n_samples})")
        out.append(arr)
    if not out:
        raise ValueError("batches is empty")
    return out


def _loss_terms(labels: np.ndarray, batches: list[np.ndarray], n_samples: int):
    """Anchor rows of the loss as flat indices into vec(G).

    Returns ``groups`` {number of terms T: (flat index array (R, T), row weights (R,))} for the
    log-sum-exp parts (identical rows merged, weight = multiplicity) and ``pos`` (N*N,) with the
    linear positive part ``sum_rows 1/(n_pos) sum_pos G_ij`` as coefficients of vec(G).
    """
    rows: dict[int, dict[tuple[int, ...], int]] = {}
    pos = np.zeros(n_samples * n_samples)
    for b in batches:
        m = b.size
        if m < 2:
            continue
        yb = labels[b]
        same = yb[:, None] == yb[None, :]
        np.fill_diagonal(same, False)
        n_pos = same.sum(axis=1)
        # flat index of the symmetric pair (i, l) in a fixed triangle (G is symmetric).
        lo = np.minimum(b[:, None], b[None, :])
        hi = np.maximum(b[:, None], b[None, :])
        flat = lo * n_samples + hi
        off = ~np.eye(m, dtype=bool)
        for p in np.flatnonzero(n_pos > 0):
            terms = np.sort(flat[p][off[p]])
            group = rows.setdefault(m - 1, {})
            key = tuple(terms.tolist())
            group[key] = group.get(key, 0) + 1
            np.add.at(pos, flat[p][same[p]], 1.0 / n_pos[p])
    groups = {
        t: (np.array(list(d.keys()), dtype=np.int64), np.array(list(d.values()), dtype=np.float64))
        for t, d in rows.items()
    }
    return groups, pos


def full_relaxation(
    labels: Sequence[int],
    tau: float,
    *,
    nonneg: bool,
    batches: Sequence[Sequence[int]] | None = None,
    solver: str | None = None,
) -> RelaxationResult:
    """The ``N x N`` relaxation: minimize ``L(G)`` over ``G`` PSD, ``diag(G) = 1`` (``G >= 0``).

    Args:
      labels: class of each sample (``0..k-1``, each class with >= 2 samples).
      tau: temperature > 0.
      nonneg: add ``G >= 0`` entrywise (UFM+, ReLU).
      batches: list of index lists (repeats count repeatedly); ``None`` is the full batch.
      solver: ``"CLARABEL"`` or ``"SCS"``; default Clarabel for ``N <= 40``, SCS above.
    """
    t0 = time.perf_counter()
    y = np.asarray(labels)
    if y.ndim != 1 or (y.size and not np.issubdtype(y.dtype, np.integer)):
        raise ValueError("labels must be a flat sequence of integers")
    y = y.astype(np.int64)
    if y.size and y.min() < 0:
        raise ValueError("labels must be >= 0")
    counts = check_counts(counts_from_labels(y))
    tau = _check_tau(tau)
    n_samples = y.size
    name = _check_solver(solver, "CLARABEL" if n_samples <= CLARABEL_MAX_N else "SCS")
    batch_list = _check_batches(batches, n_samples)
    groups, pos = _loss_terms(y, batch_list, n_samples)

    G = cp.Variable((n_samples, n_samples), PSD=True)
    g_vec = cp.vec(G, order="C")  # entry (i, j) at i*N + j, matching the flat indices
    # Scale by 1/N for the solver; rescaled below.
    scale = 1.0 / n_samples
    objective = 0
    for n_terms, (flat, weight) in sorted(groups.items()):
        n_rows = flat.shape[0]
        # row r, term t -> position r*T + t (C order), picks G entry flat[r, t], times 1/tau
        sel = sp.csr_matrix(
            (np.full(flat.size, 1.0 / tau), (np.arange(flat.size), flat.ravel())),
            shape=(flat.size, n_samples * n_samples),
        )
        logits = cp.reshape(sel @ g_vec, (n_rows, n_terms), order="C")
        objective = objective + (scale * weight) @ cp.log_sum_exp(logits, axis=1)
    # positive part; coefficients fold onto the upper triangle used above
    objective = objective - (scale / tau) * (pos @ g_vec)
    constraints = [cp.diag(G) == 1.0]
    if nonneg:
        constraints.append(G >= 0)
    prob = cp.Problem(cp.Minimize(objective), constraints)
    status, value, compile_s = _solve(prob, name)

    gram = class_gram = None
    if G.value is not None:
        gram = np.array(G.value, dtype=np.float64)
        gram = (gram + gram.T) / 2
        class_gram = _block_means(gram, y, counts.size)
    return RelaxationResult(
        lower_bound=value / scale,
        status=status,
        solver=name,
        seconds=time.perf_counter() - t0,
        compile_seconds=compile_s,
        method="full",
        class_gram=class_gram,
        gram=gram,
        ok=status == cp.OPTIMAL,
    )


def _block_means(gram: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Class-block averages of ``gram``; within-class blocks average off-diagonal entries."""
    onehot = np.eye(k)[labels]
    n = onehot.sum(axis=0)
    sums = onehot.T @ gram @ onehot
    diag_sums = onehot.T @ np.diag(gram)
    out = sums / np.outer(n, n)
    within = (np.diag(sums) - diag_sums) / (n * (n - 1.0))
    out[np.diag_indices(k)] = within
    return out
