"""``certify``: a lower bound on the UFM / UFM+ SC loss, and the certificate of a solver point.

Three methods (DESIGN.md section 5):

- ``reduced``: the k x k symmetry-reduced SDP (full batch, any N) - ``ufm.relaxation``.
- ``full``: the N x N relaxation, any batching, small N - ``ufm.relaxation``.
- ``dual``: the dual bound from a point ``z`` (any batching, any N) - ``ufm.dual``.

``auto`` takes ``reduced`` for the full batch, ``dual`` for batches when ``z`` is given, else
``full``. ``certificate(loss, bound)`` turns a bound into the report of ``solve --certify``:
certified iff the method succeeded (conic status exactly "optimal") and
``(loss - bound) / |loss| <= tol``.

>>> res = certify([3, 3], 1.0, nonneg=True, method="dual", z=np.eye(2)[[0, 0, 0, 1, 1, 1]])
>>> res.method, res.ok, round(res.lower_bound, 5)  # = of_loss([3, 3], 1.0)
('dual', True, 6.79545)
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ufm.checks import check_tau
from ufm.labels import check_counts, labels_from_counts

__all__ = ["certify", "certificate", "METHODS"]

METHODS = ("auto", "reduced", "full", "dual")


def certify(
    counts: Sequence[int],
    tau: float,
    *,
    nonneg: bool,
    method: str = "auto",
    batches: Sequence[Sequence[int]] | None = None,
    z: np.ndarray | None = None,
    solver: str | None = None,
) -> Any:
    """Lower bound on the SC loss over unit (and, with ``nonneg``, non-negative) embeddings.

    Returns a result with ``lower_bound``, ``status``, ``solver``, ``seconds``, ``method``,
    ``ok`` and ``to_dict()``; ``class_gram`` (k x k) for the conic methods.
    """
    counts = check_counts(counts)
    tau = check_tau(tau)
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    labels = labels_from_counts(counts)
    if method == "auto":
        method = "reduced" if batches is None else ("dual" if z is not None else "full")
    if method == "reduced":
        if batches is not None:
            raise ValueError("method 'reduced' needs the full batch; use 'full' or 'dual' with batches")
        from ufm.relaxation import reduced_relaxation

        return reduced_relaxation(counts, tau, nonneg=nonneg, solver=solver)
    if method == "full":
        from ufm.relaxation import full_relaxation

        return full_relaxation(labels, tau, nonneg=nonneg, batches=batches, solver=solver)
    if z is None:
        raise ValueError("method 'dual' needs a point z (solve first, or pass z)")
    from ufm.dual import dual_bound

    return dual_bound(z, labels, tau, nonneg=nonneg, batches=batches)


def certificate(loss: float, bound: Any, tol: float = 1e-6) -> dict[str, Any]:
    """The ``certificate`` object of a report: bound, gap, rel. gap, certified, method, ..."""
    gap = loss - bound.lower_bound
    rel_gap = gap / abs(loss) if loss != 0 else gap
    certified = bool(bound.ok and rel_gap <= tol)
    out = {
        "lower_bound": bound.lower_bound,
        "gap": gap,
        "rel_gap": rel_gap,
        "tolerance": tol,
        "certified": certified,
        "method": bound.method,
        "solver": bound.solver,
        "status": bound.status,
        "seconds": bound.seconds,
    }
    if not bound.ok:
        out["note"] = f"not certified: the {bound.solver} status is {bound.status!r}, not 'optimal'"
    elif not certified:
        out["note"] = f"not certified: relative gap {rel_gap:.2e} > tolerance {tol:.0e}"
    return out
