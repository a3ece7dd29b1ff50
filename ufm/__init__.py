"""scl-geometry: the geometry supervised contrastive loss gives to embeddings (UFM / UFM+).

Public API (explicit re-exports; one concern per module):

- labels: ``step_counts``, ``exp_counts``, ``labels_from_counts``
- loss: ``scl_loss`` (JAX, jit-able, differentiable)
- closed forms: ``of_loss``, ``etf_loss``, ``collapsed_loss``, ``batched_of_loss``
- geometry: ``class_mean_gram``, ``delta_gm``, ``nc1``
- solver: ``solve`` -> ``SolveResult``
- cross-entropy under the UFM (Graf et al.): ``ufm.ce`` (``solve_ce``, ``ce_weight_radius``)
- certificates: ``certify`` (reduced / full relaxation, dual bound), ``dual_bound``
"""

from ufm.certificate import certificate, certify
from ufm.closed_forms import batched_of_loss, collapsed_loss, etf_loss, of_loss
from ufm.geometry import class_mean_gram, class_means, delta_gm, etf_gram, nc1, of_gram
from ufm.labels import counts_from_labels, exp_counts, labels_from_counts, step_counts
from ufm.dual import dual_bound
from ufm.loss import gram_loss, scl_loss
from ufm.solver import SolveResult, SolverConfig, solve

__version__ = "0.1.0"

__all__ = [
    "scl_loss",
    "gram_loss",
    "step_counts",
    "exp_counts",
    "labels_from_counts",
    "counts_from_labels",
    "of_loss",
    "etf_loss",
    "collapsed_loss",
    "batched_of_loss",
    "class_means",
    "class_mean_gram",
    "of_gram",
    "etf_gram",
    "delta_gm",
    "nc1",
    "solve",
    "SolveResult",
    "SolverConfig",
    "certify",
    "certificate",
    "dual_bound",
]
