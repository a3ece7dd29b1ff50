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

``lower_bound`` is never the conic solver's objective (that is only as exact as the solver's
tolerance, and measured here it overshoots the optimum by 1e-11..1e-7 relative): it is the dual
certificate of ``ufm.certificates.dual`` evaluated at the conic solution, proven in float64
whatever the solver's accuracy (reduced: at the class-level ``A``, at ``A`` snapped to collapse
and, without ReLU, at ``A`` polished; full: at ``G``, at the OF under ReLU or at ``G`` polished
without it, and for the full batch also at its class-block average; the largest is kept, each
being valid). The solver's objective is reported as ``solver_objective``; ``ok`` says the conic
status was exactly ``"optimal"``.

>>> import ufm
>>> res = reduced_relaxation([2, 2], tau=1.0, nonneg=True)
>>> res.ok, round(res.lower_bound, 5), round(ufm.of_loss([2, 2], 1.0), 5)
(True, 2.20578, 2.20578)
"""

from __future__ import annotations

import math
import time
import warnings
from typing import Any, Sequence

import cvxpy as cp
import numpy as np
import scipy.sparse as sp

from ufm.core.batching import Batching
from ufm.certificates.bound import Bound
from ufm.core.checks import check_bool, check_labels, check_tau
from ufm.certificates.dual import (class_block_means, class_dual_bound, gram_dual_bound, polish_class_gram,
                      polish_gram)
from ufm.core.labels import check_counts
from ufm.core.problem import Problem, as_problem

__all__ = ["RelaxationResult", "reduced_relaxation", "full_relaxation", "SOLVERS"]

#: The result type of the relaxations: the project's one ``Bound`` (kept under this name too).
RelaxationResult = Bound

#: Solvers accepted by ``solver=`` (case-insensitive).
SOLVERS = ("CLARABEL", "SCS")

#: ``full_relaxation`` uses Clarabel up to this many samples and SCS above.
CLARABEL_MAX_N = 40

# Clarabel settings: tighter than its defaults (1e-8), which leave the optimal A off by ~1e-3
# in flat directions (balanced, no ReLU); with these the value matches the closed forms to
# ~1e-12 relative at no measurable cost for k x k problems.
CLARABEL_OPTIONS: dict[str, Any] = {
    "tol_gap_abs": 1e-10,
    "tol_gap_rel": 1e-10,
    "tol_feas": 1e-10,
    "tol_ktratio": 1e-8,
}

# SCS settings for the full relaxation (objective NOT rescaled by 1/N). A fixed step scale
# (0.01, adaptive scaling off) converges ~4x faster than SCS's adaptive default, which drifts to
# tiny scales and oscillates here; at N = 120, k = 4 the solve takes ~5 s and the rigorous bound
# computed at its G (see ``full_relaxation``) is within ~1e-6 relative of L*_OF.
SCS_OPTIONS: dict[str, Any] = {
    "eps_abs": 3e-5,
    "eps_rel": 3e-5,
    "scale": 0.01,
    "adaptive_scale": False,
    "max_iters": 20_000,
}
SCS_TIGHT_OPTIONS: dict[str, Any] = {"eps_abs": 1e-9, "eps_rel": 1e-9, "max_iters": 100_000}


# ----------------------------------------------------------------------------- helpers


def _result(method: str, bound: float, status: str, solver: str, t0: float, compile_s: float,
            objective: float, class_gram, gram) -> Bound:
    """The ``Bound`` of a conic method: ``ok`` iff the status is exactly optimal and the proven
    bound finite; the conic objective only as ``solver_objective``."""
    return Bound(lower_bound=bound, method=method, solver=solver, status=status,
                 seconds=time.perf_counter() - t0, compile_seconds=compile_s,
                 solver_objective=objective, class_gram=class_gram, gram=gram,
                 ok=status == cp.OPTIMAL and bool(np.isfinite(bound)))


def _check_solver(solver: str | None, default: str) -> str:
    name = default if solver is None else str(solver).upper()
    if name not in SOLVERS:
        raise ValueError(f"unknown solver {solver!r}; choose one of {SOLVERS}")
    return name


def _attempts(name: str, *, full: bool, n_samples: int = 0, fallback: bool = False):
    """``[(solver, options), ...]`` tried in order until one returns "optimal".

    Clarabel: tight tolerances, then its defaults (they succeed on degenerate UFM+ problems the
    tight settings call inaccurate); for the default choice of the full relaxation, SCS after
    that. SCS: tight (1e-9) on the reduced problem, 1e-7 on small full ones, and the fast fixed-
    scale settings ``SCS_OPTIONS`` above ``CLARABEL_MAX_N`` samples.
    """
    if name == "SCS":
        if not full:
            return [("SCS", dict(SCS_TIGHT_OPTIONS))]
        if n_samples <= CLARABEL_MAX_N:
            return [("SCS", dict(SCS_OPTIONS, eps_abs=1e-7, eps_rel=1e-7, max_iters=100_000))]
        return [("SCS", dict(SCS_OPTIONS))]
    out = [("CLARABEL", dict(CLARABEL_OPTIONS)), ("CLARABEL", {})]
    return out + (_attempts("SCS", full=True, n_samples=n_samples) if fallback else [])


def _solve(prob: cp.Problem, attempts) -> tuple[str, float, float, str]:
    """Solve; return ``(status, compile_seconds, objective, solver)``. Solver failures become a
    status. The objective is the solver's, only as exact as its tolerance: it is reported as
    ``solver_objective`` and never used as a bound (the bound is ``ufm.certificates.dual``'s).
    """
    t0 = time.perf_counter()
    status, compile_s, objective = "solver_error", float("nan"), float("nan")
    for name, opts in attempts:
        try:
            data, chain, inverse = prob.get_problem_data(name, solver_opts=opts)
            if not np.isfinite(compile_s):
                compile_s = time.perf_counter() - t0
            raw = chain.solve_via_data(prob, data, warm_start=False, verbose=False, solver_opts=opts)
            with warnings.catch_warnings():  # "may be inaccurate": reported as the status
                warnings.simplefilter("ignore", UserWarning)
                prob.unpack_results(raw, chain, inverse)
        except cp.error.SolverError:
            continue
        status = str(prob.status)
        if prob.value is None or status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE):
            objective = float("nan")
            continue
        objective = float(prob.value)
        if status == cp.OPTIMAL:
            break
    return status, compile_s, objective, name


# ----------------------------------------------------------------------------- shared


def _lse_sum(x: cp.Expression, rows: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]):
    """``sum_r w_r logsumexp_t (x[idx[r, t]] + const[r, t])`` over row groups of equal width.

    ``rows`` maps a width ``T`` to ``(idx (R, T), const (R, T), w (R,))``. Each group is one
    sparse selection matrix and one ``cp.log_sum_exp(..., axis=1)``.
    """
    total = 0
    size = x.shape[0]
    for width, (idx, const, weight) in sorted(rows.items()):
        n_rows = idx.shape[0]
        sel = sp.csr_matrix(
            (np.ones(idx.size), (np.arange(idx.size), idx.ravel())), shape=(idx.size, size)
        )
        logits = cp.reshape(sel @ x, (n_rows, width), order="C") + const
        total = total + weight @ cp.log_sum_exp(logits, axis=1)
    return total


# ----------------------------------------------------------------------------- reduced


def reduced_relaxation(
    counts: Sequence[int] | Problem,
    tau: float | None = None,
    *,
    nonneg: bool | None = None,
    solver: str | None = None,
    merge_equal: bool = True,
) -> Bound:
    """Symmetry-reduced ``k x k`` relaxation of the full-batch problem (DESIGN.md section 5).

    Minimizes, over ``A`` with ``A_cc <= 1`` and ``A + diag((1 - A_cc)/n_c)`` PSD (and
    ``A >= 0`` under ReLU)::

        sum_c n_c [ -A_cc/tau + logsumexp( A_cc/tau + log(n_c - 1),
                                           {A_cc'/tau + log n_c'}_{c' != c} ) ]

    With groups ``g`` of ``s_g`` classes of ``n_g`` samples, the unknowns are ``a_g`` (= A_cc)
    and an ``m x m`` symmetric ``B`` (``B_gh`` = A_cc' across groups, ``B_gg`` = A_cc' between
    two classes of group ``g``; for ``s_g = 1``, ``B_gg`` is the placeholder ``d_g`` below).
    The PSD condition ``A + diag((1 - A_cc)/n_c) >= 0`` (diagonal ``d_g = a_g + (1 - a_g)/n_g``)
    reduces the same way as ``G`` to ``A``: ``d_g >= B_gg`` and
    ``B + diag((d_g - B_gg)/s_g)`` PSD.

    Args:
      counts: samples per class (each >= 2), or a ``Problem`` (validated already; then ``tau``
        and ``nonneg`` come from it and must not be given).
      tau: temperature, a finite number > 0 (required with counts).
      nonneg: add ``A >= 0`` (UFM+, ReLU), ``True`` or ``False`` (required with counts).
      solver: ``"CLARABEL"`` (default) or ``"SCS"`` (case-insensitive).
      merge_equal: also use the symmetry among classes with EQUAL counts (exact, by the same
        convexity argument): classes are grouped by count and ``A`` is taken constant on
        group blocks, so e.g. a STEP problem is a 2 x 2 SDP for any ``k``. ``False`` solves the
        plain ``k x k`` SDP. ``class_gram`` is ``k x k`` either way.

    Returns:
      ``Bound`` with ``method="reduced"``: ``lower_bound`` is the dual certificate at the
      conic ``A`` (and at it snapped to collapse or polished), proven whatever the solver's
      accuracy (NaN when the solve gave no point); ``solver_objective`` the conic objective
      (not a bound); ``class_gram`` the ``k x k`` ``A``; ``ok`` iff the conic status is
      exactly optimal and the bound finite.

    Raises:
      ValueError: for a batched ``Problem``, a ``Problem`` passed with ``tau`` or
        ``nonneg``, counts without them, a bad ``counts``, ``tau`` or ``nonneg``, or an
        unknown ``solver``.

    References:
      Kini et al., "Symmetric Neural-Collapse Representations with Supervised Contrastive
      Loss: The Impact of ReLU and Batching", ICLR 2024 (arXiv:2306.07960): the UFM /
      UFM+ problem, its OF optimum under ReLU; Boyd and Vandenberghe, "Convex
      Optimization", Cambridge University Press 2004 (semidefinite programming, weak
      duality); DESIGN.md section 5.
    """
    t0 = time.perf_counter()
    problem = as_problem(counts, tau=tau, nonneg=nonneg)
    if problem.batched:
        raise ValueError("reduced_relaxation needs the full batch (the problem has batches)")
    n_cls, tau, nonneg = problem.counts, problem.tau, problem.nonneg
    name = _check_solver(solver, "CLARABEL")
    attempts = _attempts(name, full=False)
    k = n_cls.size
    big_n = float(n_cls.sum())

    if merge_equal:
        values, group_of = np.unique(n_cls, return_inverse=True)
    else:
        values, group_of = n_cls, np.arange(k)
    group_of = np.asarray(group_of).ravel()
    m = values.size
    n = values.astype(np.float64)  # samples per class of each group
    s = np.bincount(group_of, minlength=m).astype(np.float64)  # classes per group
    single = s == 1

    # P = B + diag((d - B_gg)/s) is the PSD matrix itself (a PSD variable: no extra
    # equality rows). Off the diagonal B = P; on it, d_g = P_gg for a single-class group and
    # B_gg = (s_g P_gg - d_g)/(s_g - 1) otherwise, with P_gg <= d_g (i.e. B_gg <= d_g).
    P = cp.Variable((m, m), PSD=True)
    a = cp.Variable(m)
    p_vec = cp.vec(P, order="C")
    p_diag = p_vec[np.arange(m) * (m + 1)]  # (not cp.diag: a 1 x 1 P would stay 2-D)
    d = cp.multiply(1.0 - 1.0 / n, a) + 1.0 / n
    multi = np.flatnonzero(~single)
    ss = s[multi]
    b_multi = (
        cp.multiply(1.0 / (ss - 1.0), cp.multiply(ss, p_diag[multi]) - d[multi])
        if multi.size
        else None
    )

    # x = [vec(P) (C order) ; a ; B_gg of multi-class groups] / tau; one LSE row per group.
    parts = [p_vec, a] + ([b_multi] if multi.size else [])
    x = cp.hstack(parts) / tau
    b_pos = {int(g): m * m + m + r for r, g in enumerate(multi)}
    rows: dict[int, list[tuple[list[int], list[float], float]]] = {}
    for g in range(m):
        idx = [m * m + g]  # own class: a_g, n_g - 1 terms
        const = [math.log(n[g] - 1.0)]
        for h in range(m):
            if h != g:
                idx.append(g * m + h)
                const.append(math.log(s[h] * n[h]))
            elif s[g] > 1:
                idx.append(b_pos[g])
                const.append(math.log((s[g] - 1.0) * n[g]))
        rows.setdefault(len(idx), []).append((idx, const, s[g] * n[g] / big_n))
    packed = {
        width: (
            np.array([r[0] for r in group], dtype=np.int64),
            np.array([r[1] for r in group]),
            np.array([r[2] for r in group]),
        )
        for width, group in rows.items()
    }
    # Objective scaled by 1/N for the solver's sake; the value is rescaled below.
    objective = _lse_sum(x, packed) - ((s * n / big_n) / tau) @ a
    constraints = [a <= 1.0]
    if np.any(single):
        sg = np.flatnonzero(single)
        constraints.append(p_diag[sg] == d[sg])
    if multi.size:
        constraints.append(p_diag[multi] <= d[multi])
    if nonneg:
        constraints += [a >= 0, P >= 0]
        if multi.size:
            constraints.append(b_multi >= 0)
    prob = cp.Problem(cp.Minimize(objective), constraints)
    status, compile_s, primal, name = _solve(prob, attempts)

    class_gram = None
    if P.value is not None and a.value is not None:
        bv = np.array(P.value, dtype=np.float64)
        bv = (bv + bv.T) / 2
        if multi.size:
            bv[multi, multi] = np.asarray(b_multi.value, dtype=np.float64)
        class_gram = bv[np.ix_(group_of, group_of)]
        class_gram[np.diag_indices(k)] = np.asarray(a.value, dtype=np.float64)[group_of]
    bound = math.nan
    if class_gram is not None:
        bound = _best_class_bound(class_gram, n_cls, tau, nonneg)
    return _result("reduced", bound, status, name, t0, compile_s, primal * big_n, class_gram, None)


def _best_class_bound(class_gram: np.ndarray, counts: np.ndarray, tau: float, nonneg: bool) -> float:
    """The largest of the dual certificates at ``class_gram``, at it snapped to collapse
    (``A_cc = 1``; under ReLU also ``A >= 0``) and, without ReLU, at it polished
    (``ufm.certificates.dual.polish_class_gram``): each is a proven bound, and a conic solver's ``A`` is only
    near the optimal face."""
    snapped = np.array(class_gram, dtype=np.float64)
    snapped[np.diag_indices(snapped.shape[0])] = 1.0
    points = [class_gram]
    if nonneg:
        points.append(np.maximum(snapped, 0.0))
    else:
        points.append(polish_class_gram(snapped, counts, tau))
    return max(class_dual_bound(a, counts, tau, nonneg=nonneg).lower_bound for a in points)


# ----------------------------------------------------------------------------- full


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
    labels: Sequence[int] | Problem,
    tau: float | None = None,
    *,
    nonneg: bool | None = None,
    batches: Sequence[Sequence[int]] | None = None,
    solver: str | None = None,
) -> Bound:
    """The ``N x N`` relaxation: minimize ``L(G)`` over ``G`` PSD, ``diag(G) = 1`` (``G >= 0``).

    Args:
      labels: class of each sample (``0..k-1``, each class with >= 2 samples; any order), or a
        ``Problem`` (validated already; samples in class order; then ``tau``, ``nonneg`` and
        ``batches`` come from it and must not be given).
      tau: temperature > 0.
      nonneg: add ``G >= 0`` entrywise (UFM+, ReLU).
      batches: list of index lists (repeats count repeatedly); ``None`` is the full batch.
      solver: ``"CLARABEL"`` or ``"SCS"``; default: Clarabel for ``N <= 40`` (SCS if Clarabel
        ends inaccurate), SCS above. ``solver`` given: that solver only.

    Returns:
      ``Bound``: ``lower_bound`` is the dual certificate (``ufm.certificates.dual.gram_dual_bound``) at the
      conic solution, proven whatever the solver's accuracy; ``solver_objective`` is the conic
      objective (not a bound); ``gram`` the conic ``G``.

    Raises:
      ValueError: for a ``Problem`` passed with ``tau``, ``nonneg`` or ``batches``; bad
        ``labels`` (a class with fewer than 2 samples: naming ``counts``), ``tau``,
        ``nonneg`` or ``batches``; an unknown ``solver``.

    References:
      Kini et al., "Symmetric Neural-Collapse Representations with Supervised Contrastive
      Loss: The Impact of ReLU and Batching", ICLR 2024 (arXiv:2306.07960): the UFM /
      UFM+ problem; Boyd and Vandenberghe, "Convex Optimization", Cambridge University Press 2004
      (semidefinite programming, weak duality); DESIGN.md section 5.
    """
    t0 = time.perf_counter()
    if isinstance(labels, Problem):
        if tau is not None or nonneg is not None or batches is not None:
            raise ValueError("pass either a Problem or labels, tau, nonneg and batches, not both")
        y, counts, tau, nonneg, batching = (labels.labels, labels.counts, labels.tau,
                                            labels.nonneg, labels.batching)
    else:
        y, _ = check_labels(labels)
        counts = check_counts(np.bincount(y))
        tau = check_tau(tau)
        nonneg = check_bool("nonneg", nonneg)
        batching = None if batches is None else Batching.coerce(batches, y.size)
    n_samples = y.size
    name = _check_solver(solver, "CLARABEL" if n_samples <= CLARABEL_MAX_N else "SCS")
    attempts = _attempts(name, full=True, n_samples=n_samples, fallback=solver is None)
    batch_list = list(Batching.full(n_samples) if batching is None else batching)
    groups, pos = _loss_terms(y, batch_list, n_samples)

    G = cp.Variable((n_samples, n_samples), PSD=True)
    g_vec = cp.vec(G, order="C")  # entry (i, j) at i*N + j, matching the flat indices
    # (no 1/N rescaling of the objective here: SCS converges far worse on the rescaled one)
    objective = 0
    for n_terms, (flat, weight) in sorted(groups.items()):
        n_rows = flat.shape[0]
        # row r, term t -> position r*T + t (C order), picks G entry flat[r, t], times 1/tau
        sel = sp.csr_matrix(
            (np.full(flat.size, 1.0 / tau), (np.arange(flat.size), flat.ravel())),
            shape=(flat.size, n_samples * n_samples),
        )
        logits = cp.reshape(sel @ g_vec, (n_rows, n_terms), order="C")
        objective = objective + weight @ cp.log_sum_exp(logits, axis=1)
    # positive part; coefficients fold onto the upper triangle used above
    objective = objective - (pos @ g_vec) / tau
    constraints = [cp.diag(G) == 1.0]
    if nonneg:
        # strict upper triangle only: G is symmetric and diag(G) = 1, so G >= 0 on every
        # entry would repeat each constraint twice (redundant rows slow SCS down a lot)
        iu, ju = np.triu_indices(n_samples, 1)
        constraints.append(g_vec[iu * n_samples + ju] >= 0)
    prob = cp.Problem(cp.Minimize(objective), constraints)
    status, compile_s, primal, name = _solve(prob, attempts)

    gram = class_gram = None
    bound = math.nan
    if G.value is not None:
        gram = np.array(G.value, dtype=np.float64)
        gram = (gram + gram.T) / 2
        class_gram = class_block_means(gram, y, counts.size)
        # The dual certificate (ufm.certificates.dual) at the conic solver's G, proven whatever the conic
        # accuracy; for the full batch also at its class-block average (an optimal G of the
        # symmetric relaxation is class-block). The largest is kept: each is a valid bound.
        points = [gram]
        if nonneg:  # the OF minimizes every batch's term under ReLU (DESIGN.md section 4)
            points.append((y[:, None] == y[None, :]).astype(np.float64))
        else:  # the conic G is inexact in flat directions: polish it (ufm.certificates.dual.polish_gram)
            points.append(polish_gram(gram, y, tau, batches=batching))
        bound = max(gram_dual_bound(p, y, tau, nonneg=nonneg, batches=batching).lower_bound
                    for p in points)
        if batching is None:
            bound = max(bound, _best_class_bound(class_gram, counts, tau, nonneg))
    return _result("full", bound, status, name, t0, compile_s, primal, class_gram, gram)
