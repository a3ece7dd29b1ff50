"""``Bound``: what every certificate method returns (one type for the reduced, full and dual
methods).

``lower_bound`` is always a proven lower bound on the relaxation, hence on the UFM / UFM+
problem (DESIGN.md section 5): it is computed in float64 from the method's dual information
with rounding accounted for (``ufm.certificates.dual``, ``ufm.certificates.rigorous``), whatever the conic solver's
accuracy. A conic solver's own objective is reported beside it as ``solver_objective`` and is
never used as the bound. ``ok`` is the method's own success flag (the conic status is exactly
"optimal"; the dual method has no solver to fail); whether a point is *certified* is decided on
the proven gap alone (``ufm.certificates.certification.certificate``).

>>> b = Bound(lower_bound=1.0, method="dual", solver="cholesky", status="optimal", seconds=0.0,
...           ok=True)
>>> b.to_dict()["lower_bound"], b.rigorous_bound
(1.0, 1.0)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Bound"]


@dataclass
class Bound:
    """A proven lower bound on the SC loss and how it was obtained.

    Attributes:
      lower_bound: the bound (sum convention); valid whatever the solver accuracy; ``-inf`` or
        NaN when no bound could be formed.
      method: the registry name (``"reduced"``, ``"full"``, ``"dual"``).
      solver: ``"CLARABEL"`` / ``"SCS"`` (conic methods) or ``"cholesky"`` (dual method).
      status: the conic solver's status (``"optimal"``, ``"optimal_inaccurate"``, ...,
        ``"solver_error"``); ``"optimal"`` for the dual method.
      seconds: wall clock of the whole call.
      ok: the method's own success: conic status exactly ``"optimal"`` and a finite bound.
      solver_objective: the conic solver's objective (NOT a bound: it is only as exact as the
        solver's tolerance); NaN for the dual method.
      compile_seconds: cvxpy's compilation time (part of ``seconds``).
      class_gram: ``k x k`` class-level inner products of the point the bound was computed at.
      gram: ``N x N`` point (full method only).
      loss: the loss at that point (float64), for comparison; NaN if not computed.
      lambda_min: the proven lower bound on ``lambda_min(C)`` the bound used.
      tried: the methods run, in order (``method="auto"`` may run a second one when the first
        bound is loose; the larger proven bound is kept and ``method`` names its method).
    """

    lower_bound: float
    method: str
    solver: str
    status: str
    seconds: float
    ok: bool = False
    solver_objective: float = float("nan")
    compile_seconds: float = float("nan")
    class_gram: np.ndarray | None = None
    gram: np.ndarray | None = field(default=None, repr=False)
    loss: float = float("nan")
    lambda_min: float = float("nan")
    tried: tuple[str, ...] = ()

    @property
    def rigorous_bound(self) -> float:
        """The same as ``lower_bound`` (every reported bound is rigorous)."""
        return self.lower_bound

    @property
    def valid(self) -> bool:
        """Whether a finite bound was formed (it may still be loose)."""
        return bool(np.isfinite(self.lower_bound))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (lists and floats; NaN / inf become None)."""
        from ufm.core.jsonable import to_jsonable

        return to_jsonable({
            "lower_bound": float(self.lower_bound),
            "method": str(self.method),
            "solver": str(self.solver),
            "status": str(self.status),
            "seconds": float(self.seconds),
            "ok": bool(self.ok),
            "solver_objective": float(self.solver_objective),
            "compile_seconds": float(self.compile_seconds),
            "class_gram": None if self.class_gram is None else np.asarray(self.class_gram),
            "gram": None if self.gram is None else np.asarray(self.gram),
            "loss": float(self.loss),
            "lambda_min": float(self.lambda_min),
            "tried": list(self.tried or (self.method,)),
        })
