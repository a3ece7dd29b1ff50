"""``SolverConfig``: the solver's knobs, apart from the solver so that the CLIs can show the
defaults in ``--help`` without importing JAX.

>>> SolverConfig().sphere_steps
2000
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SolverConfig"]


@dataclass(frozen=True)
class SolverConfig:
    """Knobs of the two-phase solver (defaults: float64-level accuracy)."""

    sphere_steps: int = 2000  # L-BFGS iterations, sphere phase (a cap; most runs stop earlier)
    polish_steps: int = 3000  # projected-gradient iterations, orthant phase
    lbfgs_memory: int = 10
    gap_tol: float = 1e-12  # stop when (loss - reference)/|reference| <= gap_tol
    accept_tol: float = 1e-6  # a run ending above this gap (reference known) is restarted
    # stop when the relative decrease over `patience` steps is below this; small, because without
    # a reference value the dual certificate at the point is only as tight as its stationarity
    ftol: float = 1e-14
    patience: int = 20
    restarts: int = 4  # extra attempts from new seeds when the reference is not reached
    matmul_dtype: str = "auto"  # N x N work: "auto" = float32 then float64 refinement (N > 1024)
