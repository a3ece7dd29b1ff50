"""The problem in dimension ``d = 1``: every unit embedding is ``+1`` or ``-1`` (the sphere
``S^0`` is two points), so the problem is combinatorial and gradient steps cannot move (the
derivative of ``h / |h|`` is 0). ``solve`` hands the full-batch ``d = 1`` problem here.

**Reduction.** Samples of a class are exchangeable, so the full-batch loss depends only on
``a_c`` = the number of class-``c`` samples at ``+1`` (``0 <= a_c <= n_c``). With ``A = sum a_c``
and ``s = 1/tau``, an anchor at ``+1`` of class ``c`` sees ``A - 1`` others at ``+1`` and
``N - A`` at ``-1``, ``a_c - 1`` positives at ``+1`` and ``n_c - a_c`` at ``-1``::

    L(a) = sum_c a_c [ log((A-1) e^s + (N-A) e^-s) - s (2 a_c - n_c - 1)/(n_c - 1) ]
         + (n_c - a_c) [ log(A e^-s + (N-A-1) e^s) - s (n_c - 2 a_c - 1)/(n_c - 1) ]

(``sign_pattern_loss``; ``O(k)`` a pattern, in float64 log space).

**Search.** All ``prod (n_c + 1)`` count vectors when there are at most ``ENUMERATE_MAX``
(then the result is the exact optimum, ``optimum_kind = "enumeration"``); otherwise every
collapsed class sign pattern (``2^(k-1)``, up to ``k = 17``; above, ``RANDOM_PATTERNS`` random
ones) followed by coordinate descent on each ``a_c`` in turn (each over all its ``n_c + 1``
values) until no single class improves. Such a point is reported ``"optimal"`` only when it
meets a proven lower bound valid for every ``d``: ``L*_OF`` under ReLU, the simplex ETF value
for balanced counts, the reduced relaxation's bound otherwise (``ufm.certificates``); else
``"converged"`` with a warning that it is the best found, not proven. Under ReLU (``z >= 0``)
every embedding is ``+1``: the only feasible point, hence the optimum (``optimum_kind =
"only_point"``).

>>> res = solve_d1([3, 3], tau=0.1, nonneg=False)
>>> res.status, res.optimum_kind, res.z[:, 0].tolist()
('optimal', 'enumeration', [1.0, 1.0, 1.0, -1.0, -1.0, -1.0])
"""

from __future__ import annotations

import itertools
import time

import numpy as np

from ufm.core.closed_forms import etf_loss, of_loss
from ufm.core.problem import Problem

__all__ = ["sign_pattern_loss", "solve_d1", "ENUMERATE_MAX", "RANDOM_PATTERNS"]

ENUMERATE_MAX = 200_000  # count vectors searched exhaustively
RANDOM_PATTERNS = 4096  # collapsed patterns tried when 2^(k-1) is larger than this
_CHUNK = 50_000


def sign_pattern_loss(a: np.ndarray, counts: np.ndarray, tau: float) -> np.ndarray:
    """Full-batch loss in ``d = 1`` of the count vectors ``a`` (``M x k``: class ``c`` has
    ``a_c`` samples at ``+1``, the rest at ``-1``), float64, one value per row (module doc)."""
    a = np.atleast_2d(np.asarray(a, dtype=np.float64))
    n = np.asarray(counts, dtype=np.float64)[None, :]
    big_n = float(n.sum())
    s = 1.0 / tau
    plus = a.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore"):
        lse_p = np.logaddexp(np.log(np.maximum(plus - 1, 0)) + s, np.log(big_n - plus) - s)
        lse_m = np.logaddexp(np.log(plus) - s, np.log(np.maximum(big_n - plus - 1, 0)) + s)
    pos_p = s * (2 * a - n - 1) / (n - 1)
    pos_m = s * (n - 2 * a - 1) / (n - 1)
    # a term whose anchors do not exist (a_c = 0 or a_c = n_c) contributes 0, whatever its lse
    term_p = np.where(a > 0, a * (lse_p - pos_p), 0.0)
    term_m = np.where(a < n, (n - a) * (lse_m - pos_m), 0.0)
    return np.sum(term_p + term_m, axis=1)


def _best(cands: np.ndarray, counts, tau) -> tuple[np.ndarray, float]:
    best_a, best_l = None, np.inf
    for i in range(0, len(cands), _CHUNK):
        part = cands[i:i + _CHUNK]
        losses = sign_pattern_loss(part, counts, tau)
        j = int(np.argmin(losses))
        if losses[j] < best_l:
            best_a, best_l = part[j].copy(), float(losses[j])
    return best_a, best_l


def _descend(a: np.ndarray, loss: float, counts, tau) -> tuple[np.ndarray, float]:
    """Coordinate descent: set each ``a_c`` in turn to its best value, until no class moves."""
    improved = True
    while improved:
        improved = False
        for c in range(counts.size):
            cand = np.repeat(a[None, :], counts[c] + 1, axis=0)
            cand[:, c] = np.arange(counts[c] + 1)
            values = sign_pattern_loss(cand, counts, tau)
            j = int(np.argmin(values))
            if values[j] < loss * (1 - 1e-15) - 1e-300:
                a, loss, improved = cand[j].copy(), float(values[j]), True
    return a, loss


def _lower_bound(problem: Problem) -> tuple[float | None, str | None]:
    """A proven lower bound valid for every ``d`` (the minimum over ``d = 1`` is at least the
    minimum over any larger sphere): closed forms, else the reduced relaxation."""
    counts, tau = problem.counts, problem.tau
    if problem.nonneg:
        return of_loss(counts, tau), "of"
    if np.all(counts == counts[0]):
        return etf_loss(counts, tau), "etf"
    from ufm.certificates.relaxation import reduced_relaxation

    rel = reduced_relaxation(problem)
    if rel.ok and np.isfinite(rel.lower_bound):
        return float(rel.lower_bound), "relaxation"
    return None, None


def solve_d1(counts, *, tau: float = 0.1, nonneg: bool = False, seed: int = 0,
             accept_tol: float = 1e-6, config: dict | None = None):
    """The exact / searched solution of the full-batch problem in ``d = 1`` (module doc).

    Args:
      counts: a ``Problem`` with ``d = 1`` and the full batch, or class counts.
      tau, nonneg: as for ``Problem.create`` (ignored with a ``Problem``).
      seed: seed of the random collapsed patterns (large ``k`` only).
      accept_tol: relative gap to the lower bound that counts as optimal.
      config: extra entries of the report's ``config``.

    Returns:
      ``ufm.solvers.solver.SolveResult`` with ``z`` in ``{-1, +1}^(N x 1)``.

    Raises:
      ValueError: naming ``d`` for a problem with ``d != 1`` or with batches.
    """
    from ufm.solvers.solver import SolveResult, _rel_gap, point_metrics

    problem = counts if isinstance(counts, Problem) else Problem.create(counts, tau=tau, nonneg=nonneg, d=1)
    if problem.d != 1 or problem.batched:
        raise ValueError("d: solve_d1 solves the full-batch problem with d = 1 only")
    counts, k, tau = problem.counts, problem.k, problem.tau
    t0 = time.perf_counter()
    warnings: list[str] = []
    if problem.nonneg:
        a = counts.copy()
        loss = float(sign_pattern_loss(a[None, :], counts, tau)[0])
        ref, kind = loss, "only_point"
    elif np.prod(counts.astype(float) + 1) <= ENUMERATE_MAX:
        grid = np.array(list(itertools.product(*(range(int(c) + 1) for c in counts))), dtype=np.int64)
        a, loss = _best(grid, counts, tau)
        ref, kind = loss, "enumeration"
    else:
        if k - 1 <= 12 or 2 ** (k - 1) <= RANDOM_PATTERNS:
            signs = np.array(list(itertools.product((1, 0), repeat=k - 1)), dtype=np.int64)
        else:
            signs = np.random.default_rng(seed).integers(0, 2, size=(RANDOM_PATTERNS, k - 1))
        signs = np.hstack([np.ones((len(signs), 1), np.int64), signs])  # class 0 at +1 (symmetry)
        a, loss = _best(signs * counts[None, :], counts, tau)
        a, loss = _descend(a, loss, counts, tau)
        ref, kind = _lower_bound(problem)
        searched = ("every collapsed class sign pattern" if k - 1 <= 12 or 2 ** (k - 1) <= RANDOM_PATTERNS
                    else f"{RANDOM_PATTERNS} random collapsed class sign patterns")
        if ref is None or (loss - ref) / abs(ref) > accept_tol:
            warnings.append(f"d = 1: the embeddings are +-1, a combinatorial problem; this is the best of "
                            f"{searched}, each improved class by class, and it is not proven optimal "
                            "(no lower bound met)")
            ref, kind = None, None
    if a[0] == 0:  # the loss is even in z: put class 0's first sample at +1
        a = counts - a
    solve_seconds = time.perf_counter() - t0
    labels = problem.labels
    # class c: its first a_c samples at +1, the others at -1
    rank = np.arange(labels.size) - np.repeat(np.cumsum(counts) - counts, counts)
    z = np.where(rank < np.repeat(a, counts), 1.0, -1.0)[:, None]
    gap = _rel_gap(loss, ref)
    status = "converged" if ref is None else "optimal" if gap <= accept_tol else "not_optimal"
    metrics = {
        **point_metrics(z, labels, k, counts, tau, batched=False),
        # on the two points +-1 the tangent space is {0}: every point is stationary
        "grad_norm": 0.0,
        "grad_norm_rel": 0.0,
    }
    cfg = {"k": k, "d": 1, "tau": tau, "nonneg": problem.nonneg, "seed": seed,
           "method": "signs", "warm_start": False, "n_samples": int(labels.size), "batches": None,
           **(config or {})}
    return SolveResult(
        config=cfg, counts=[int(c) for c in counts], loss=loss, optimum=ref, optimum_kind=kind,
        rel_gap=gap, status=status, metrics=metrics,
        timing={"solve_seconds": solve_seconds, "compile_seconds": 0.0, "reference_seconds": 0.0,
                "steps": 0},
        attempts=1, z=z, labels=labels, warnings=warnings)
