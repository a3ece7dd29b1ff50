"""``SolverConfig``: the solver's knobs, apart from the solver so that the CLIs can show the
defaults in ``--help`` without importing JAX.

>>> SolverConfig().sphere_steps
2000
>>> SolverConfig(restarts=-1)
Traceback (most recent call last):
...
ValueError: restarts must be an integer >= 0, got -1
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

__all__ = ["SolverConfig"]

_DTYPES = ("auto", "float32", "float64")


@dataclass(frozen=True)
class SolverConfig:
    """Knobs of the two-phase solver (defaults: float64-level accuracy).

    Stationarity (``grad_tol``): the Frobenius norm of the Riemannian gradient
    ``r_i = g_i - <g_i, z_i> z_i`` (``g = dL/dZ``; under ReLU the KKT residual of the projected
    problem, ``ufm.solvers.optim.kkt_residual``) must be at most ``grad_tol * M / tau``, with ``M`` the
    sum of the batch sizes (``N`` for the full batch): each of the ``M`` anchor terms moves a row's
    gradient by at most ~2/tau. A run whose loss stops decreasing above that is ``"stalled"``,
    not ``"converged"``.
    """

    sphere_steps: int = 2000  # L-BFGS iterations, sphere phase (a cap; most runs stop earlier)
    polish_steps: int = 3000  # projected-gradient iterations, orthant phase
    lbfgs_memory: int = 10
    gap_tol: float = 1e-12  # stop when (loss - reference)/|reference| <= gap_tol (and stationary)
    accept_tol: float = 1e-6  # a run ending above this gap (reference known) is restarted
    # stop when the relative decrease over `patience` steps is below this; small, because without
    # a reference value the dual certificate at the point is only as tight as its stationarity
    ftol: float = 1e-14
    patience: int = 20
    restarts: int = 4  # extra attempts from new seeds when the reference is not reached / a run stalls
    matmul_dtype: str = "auto"  # N x N work: "auto" = float32 then float64 refinement (N > 1024)
    # "converged"/"optimal" need ||Riemannian gradient (KKT residual)||_F <= grad_tol * M / tau
    grad_tol: float = 1e-7
    # devices the full-batch samples loss is sharded over by anchor rows (ufm.core.sharded);
    # 1 = one device, today's path; at most len(jax.devices()) (checked by solve)
    devices: int = 1

    def __post_init__(self) -> None:
        for name, lo in (("sphere_steps", 1), ("polish_steps", 1), ("lbfgs_memory", 1),
                         ("patience", 1), ("restarts", 0), ("devices", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < lo:
                raise ValueError(f"{name} must be an integer >= {lo}, got {value!r}")
        for name in ("gap_tol", "accept_tol", "ftol", "grad_tol"):
            value = getattr(self, name)
            if (isinstance(value, bool) or not isinstance(value, numbers.Real)
                    or not math.isfinite(value) or value < 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if self.matmul_dtype not in _DTYPES:
            raise ValueError(f"matmul_dtype must be 'auto', 'float32' or 'float64', got {self.matmul_dtype!r}")
