"""scl-geometry: the geometry supervised contrastive loss gives to embeddings (UFM / UFM+).

Public API (explicit re-exports; one concern per module):

- the problem: ``Problem`` (counts, tau, ReLU, d, batching; validated once), ``Batching``
- labels: ``step_counts``, ``exp_counts``, ``labels_from_counts``, ``counts_from_labels``
- loss: ``scl_loss``, ``gram_loss`` (JAX, jit-able, differentiable)
- closed forms: ``of_loss``, ``etf_loss``, ``collapsed_loss``, ``batched_of_loss``
- geometry: ``class_means``, ``class_mean_gram``, ``of_gram``, ``etf_gram``, ``delta_gm``, ``nc1``
- solver: ``solve`` -> ``SolveResult``, ``SolverConfig``; temperature continuation ``solve_path``
- certificates: ``certify`` -> ``Bound`` (registry ``ufm.certificates.certification.METHODS``),
  ``certificate``, ``dual_bound``
- cross-entropy under the UFM (Graf et al.): ``ufm.solvers.ce`` (``solve_ce``, ``ce_weight_radius``)
- features trained anywhere: ``analyze`` -> ``AnalysisReport`` (``ufm.analysis``; docs/analyze.md)

Subpackages by job: ``ufm.core`` (the math), ``ufm.solvers``, ``ufm.certificates``,
``ufm.analysis`` (features trained elsewhere) and ``ufm.cli`` (command lines and file I/O);
docs/architecture.md has the module map.

The names are loaded on first use (PEP 562), so JAX-free modules (``ufm.cli.io``, ``ufm.core.labels``)
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
    from ufm.analysis.report import AnalysisReport, analyze
    from ufm.certificates.bound import Bound
    from ufm.core.batching import Batching
    from ufm.core.problem import Problem
    from ufm.certificates.certification import certificate, certify
    from ufm.core.closed_forms import batched_of_loss, collapsed_loss, etf_loss, of_loss
    from ufm.solvers.config import SolverConfig
    from ufm.solvers.continuation import solve_path
    from ufm.certificates.dual import dual_bound
    from ufm.core.geometry import class_mean_gram, class_means, delta_gm, etf_gram, nc1, of_gram
    from ufm.core.labels import counts_from_labels, exp_counts, labels_from_counts, step_counts
    from ufm.core.loss import gram_loss, scl_loss
    from ufm.solvers.solver import SolveResult, solve

_EXPORTS = {
    "scl_loss": "ufm.core.loss",
    "gram_loss": "ufm.core.loss",
    "step_counts": "ufm.core.labels",
    "exp_counts": "ufm.core.labels",
    "labels_from_counts": "ufm.core.labels",
    "counts_from_labels": "ufm.core.labels",
    "of_loss": "ufm.core.closed_forms",
    "etf_loss": "ufm.core.closed_forms",
    "collapsed_loss": "ufm.core.closed_forms",
    "batched_of_loss": "ufm.core.closed_forms",
    "class_means": "ufm.core.geometry",
    "class_mean_gram": "ufm.core.geometry",
    "of_gram": "ufm.core.geometry",
    "etf_gram": "ufm.core.geometry",
    "delta_gm": "ufm.core.geometry",
    "nc1": "ufm.core.geometry",
    "solve": "ufm.solvers.solver",
    "SolveResult": "ufm.solvers.solver",
    "solve_path": "ufm.solvers.continuation",
    "SolverConfig": "ufm.solvers.config",
    "certify": "ufm.certificates.certification",
    "certificate": "ufm.certificates.certification",
    "Bound": "ufm.certificates.bound",
    "Problem": "ufm.core.problem",
    "Batching": "ufm.core.batching",
    "dual_bound": "ufm.certificates.dual",
    "analyze": "ufm.analysis.report",
    "AnalysisReport": "ufm.analysis.report",
}

__all__ = [
    "scl_loss", "gram_loss", "step_counts", "exp_counts", "labels_from_counts",
    "counts_from_labels", "of_loss", "etf_loss", "collapsed_loss", "batched_of_loss",
    "class_means", "class_mean_gram", "of_gram", "etf_gram", "delta_gm", "nc1", "solve",
    "SolveResult", "solve_path", "SolverConfig", "certify", "certificate", "Bound", "dual_bound",
    "Problem", "Batching", "analyze", "AnalysisReport",
]

__getattr__, __dir__ = lazy_exports(globals(), "ufm", _EXPORTS)
