"""scl-geometry: the geometry supervised contrastive loss gives to embeddings (UFM / UFM+).

Public API (explicit re-exports; one concern per module):

- labels: ``step_counts``, ``exp_counts``, ``labels_from_counts``, ``counts_from_labels``
- loss: ``scl_loss``, ``gram_loss`` (JAX, jit-able, differentiable)
- closed forms: ``of_loss``, ``etf_loss``, ``collapsed_loss``, ``batched_of_loss``
- geometry: ``class_means``, ``class_mean_gram``, ``of_gram``, ``etf_gram``, ``delta_gm``, ``nc1``
- solver: ``solve`` -> ``SolveResult``, ``SolverConfig``; temperature continuation ``solve_path``
- certificates: ``certify`` -> ``Bound`` (registry ``ufm.certification.METHODS``),
  ``certificate``, ``dual_bound``
- cross-entropy under the UFM (Graf et al.): ``ufm.ce`` (``solve_ce``, ``ce_weight_radius``)

The names are loaded on first use (PEP 562), so JAX-free modules (``ufm.io``, ``ufm.labels``)
and the command lines' ``--help`` import without JAX or cvxpy; the same names are imported
explicitly under ``TYPE_CHECKING`` so that type checkers and IDEs see every export.

>>> import ufm
>>> float(ufm.of_loss([2, 2], tau=1.0)) > 0
True
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ufm.lazy import lazy_exports

__version__ = "0.1.0"

if TYPE_CHECKING:  # what the lazy table below loads at run time
    from ufm.bound import Bound
    from ufm.certification import certificate, certify
    from ufm.closed_forms import batched_of_loss, collapsed_loss, etf_loss, of_loss
    from ufm.config import SolverConfig
    from ufm.continuation import solve_path
    from ufm.dual import dual_bound
    from ufm.geometry import class_mean_gram, class_means, delta_gm, etf_gram, nc1, of_gram
    from ufm.labels import counts_from_labels, exp_counts, labels_from_counts, step_counts
    from ufm.loss import gram_loss, scl_loss
    from ufm.solver import SolveResult, solve

_EXPORTS = {
    "scl_loss": "ufm.loss",
    "gram_loss": "ufm.loss",
    "step_counts": "ufm.labels",
    "exp_counts": "ufm.labels",
    "labels_from_counts": "ufm.labels",
    "counts_from_labels": "ufm.labels",
    "of_loss": "ufm.closed_forms",
    "etf_loss": "ufm.closed_forms",
    "collapsed_loss": "ufm.closed_forms",
    "batched_of_loss": "ufm.closed_forms",
    "class_means": "ufm.geometry",
    "class_mean_gram": "ufm.geometry",
    "of_gram": "ufm.geometry",
    "etf_gram": "ufm.geometry",
    "delta_gm": "ufm.geometry",
    "nc1": "ufm.geometry",
    "solve": "ufm.solver",
    "SolveResult": "ufm.solver",
    "solve_path": "ufm.continuation",
    "SolverConfig": "ufm.config",
    "certify": "ufm.certification",
    "certificate": "ufm.certification",
    "Bound": "ufm.bound",
    "dual_bound": "ufm.dual",
}

__all__ = [
    "scl_loss", "gram_loss", "step_counts", "exp_counts", "labels_from_counts",
    "counts_from_labels", "of_loss", "etf_loss", "collapsed_loss", "batched_of_loss",
    "class_means", "class_mean_gram", "of_gram", "etf_gram", "delta_gm", "nc1", "solve",
    "SolveResult", "solve_path", "SolverConfig", "certify", "certificate", "Bound", "dual_bound",
]

__getattr__, __dir__ = lazy_exports(globals(), "ufm", _EXPORTS)
