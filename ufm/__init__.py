"""scl-geometry: the geometry supervised contrastive loss gives to embeddings (UFM / UFM+).

Public API (explicit re-exports; one concern per module):

- labels: ``step_counts``, ``exp_counts``, ``labels_from_counts``
- loss: ``scl_loss`` (JAX, jit-able, differentiable)
- closed forms: ``of_loss``, ``etf_loss``, ``collapsed_loss``, ``batched_of_loss``
- geometry: ``class_mean_gram``, ``delta_gm``, ``nc1``
- solver: ``solve`` -> ``SolveResult``; temperature continuation ``solve_path``
- cross-entropy under the UFM (Graf et al.): ``ufm.ce`` (``solve_ce``, ``ce_weight_radius``)
- certificates: ``certify`` (reduced / full relaxation, dual bound), ``dual_bound``

The names are loaded on first use, so JAX-free modules (``ufm.io``, ``ufm.labels``) import
without JAX or cvxpy.

>>> import ufm
>>> float(ufm.of_loss([2, 2], tau=1.0)) > 0
True
"""

from __future__ import annotations

from ufm.lazy import lazy_exports

__version__ = "0.1.0"

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
    "dual_bound": "ufm.dual",
}

__all__ = list(_EXPORTS)


__getattr__, __dir__ = lazy_exports(globals(), "ufm", _EXPORTS)
