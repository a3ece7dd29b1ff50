"""Temperature continuation: solve along a path of temperatures, each solve warm-started from
the previous solution.

At small ``tau`` a negative pair at cosine ``c`` weighs ``exp((c - 1)/tau)`` against a collapsed
positive pair, so the loss stops pinning the class-mean cosines in float64 (README, "How the
solver works", item 7; ``ufm.core.closed_forms.cosine_sensitivity``): a solve from a random start
then stops anywhere on a numerically flat set. Following ``tau_1 > tau_2 > ... > tau`` from a
temperature where the geometry is pinned keeps the iterate on the path of minimizers, the
standard homotopy remedy. What the loss cannot see at the last temperature is still not
*verified* there: the result keeps its ``cosine_sensitivity`` warning.

>>> from ufm.core.labels import step_counts
>>> path = solve_path(step_counts(3, R=2, n_min=2), [0.5, 0.1], nonneg=True)
>>> [r.config["tau"] for r in path], path[-1].status
([0.5, 0.1], 'optimal')
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ufm.core.checks import check_tau
from ufm.solvers.solver import SolveResult, solve

__all__ = ["solve_path", "path_summary"]


def solve_path(counts: Sequence[int], taus: Sequence[float], *, init: np.ndarray | None = None,
               **kwargs: Any) -> list[SolveResult]:
    """Solve along a temperature path, each solve warm-started from the previous solution.

    ``[solve(counts, tau=t, init=z_prev, **kwargs) for t in taus]`` with ``z_prev`` the
    previous result's ``z`` (``init`` for the first; by default a random start from ``seed``).

    Args:
      counts: samples per class (each >= 2; samples in class order).
      taus: one or more temperatures, each a finite number > 0; decreasing from a
        temperature where the geometry is pinned (module docstring).
      init: warm start of the first solve, an ``N x d`` array, or ``None``.
      **kwargs: ``ufm.solve``'s (``d``, ``nonneg``, ``seed``, ``batches``, ``method``,
        ``config``, ``progress``).

    Returns:
      One ``SolveResult`` per temperature, in order.

    Raises:
      ValueError: naming ``tau`` for a bad temperature, ``taus`` when it is empty, or
        whatever ``ufm.solve`` rejects.
    """
    taus = [check_tau(t) for t in taus]
    if not taus:
        raise ValueError("taus must hold at least one temperature")
    results: list[SolveResult] = []
    z = init
    for tau in taus:
        res = solve(counts, tau=tau, init=z, **kwargs)
        results.append(res)
        z = res.z
    return results


def path_summary(results: Sequence[SolveResult]) -> list[dict[str, Any]]:
    """One small dict per temperature, for a path report.

    Holds tau, loss, gap, status, Delta_GM, sensitivity, steps, seconds (solve and compile:
    tau is an argument of the compiled solver, so later temperatures of a path reuse the
    first one's compilation) and the warnings.

    Args:
      results: a sequence of ``SolveResult``, e.g. from ``solve_path``.

    Returns:
      A list of dicts with keys ``tau``, ``loss``, ``rel_gap``, ``status``,
      ``delta_gm_of``, ``delta_gm_etf``, ``cosine_sensitivity``, ``steps``,
      ``solve_seconds``, ``compile_seconds``, ``warnings``.
    """
    return [{
        "tau": r.config["tau"],
        "loss": r.loss,
        "rel_gap": r.rel_gap,
        "status": r.status,
        "delta_gm_of": r.metrics["delta_gm_of"],
        "delta_gm_etf": r.metrics["delta_gm_etf"],
        "cosine_sensitivity": r.metrics["cosine_sensitivity"],
        "steps": r.timing["steps"],
        "solve_seconds": r.timing["solve_seconds"],
        "compile_seconds": r.timing["compile_seconds"],
        "warnings": list(r.warnings),
    } for r in results]
