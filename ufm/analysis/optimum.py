"""The certified UFM optimum at given class counts, with and without ReLU, cached.

- ReLU (UFM+): the orthogonal frame, class-mean cosines ``I_k``, value ``L*_OF``
  (``ufm.core.closed_forms.of_loss``), certified by the reduced relaxation
  (``ufm.certify(counts, tau, nonneg=True, method="reduced")``).
- No ReLU (UFM): ``ufm.solve(counts, tau=tau, nonneg=False, method="classes")`` (one vector per
  class, ``d = k``), certified by ``ufm.certify(counts, tau, nonneg=False, method="reduced")``.
  Its class-mean cosines are the prediction (the ETF when balanced; under imbalance the broken
  symmetry of DESIGN.md section 4).

The relaxation's bound holds for every ``d``; the optimum is attained for ``d >= k`` (ReLU) and
``d >= k - 1`` balanced without ReLU. ``ufm_optimum`` caches each ``(counts, tau, relu)`` (an
``functools.lru_cache`` on a tuple key), so a training loop that analyzes its features every
epoch pays the solve (seconds) once.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Sequence

import numpy as np

from ufm.core.checks import check_tau
from ufm.core.labels import check_counts

__all__ = ["UFMOptimum", "ufm_optimum", "CERT_TOL"]

#: Relative gap under which the optimum counts as certified (``ufm.certificate``'s default).
CERT_TOL = 1e-6


@dataclass(frozen=True)
class UFMOptimum:
    """A certified UFM optimum.

    Attributes:
      relu: UFM+ (ReLU) or UFM.
      counts: samples per class.
      tau: temperature.
      kind: ``"of"`` (closed form, ReLU) or the solver's ``optimum_kind`` (``"etf"``,
        ``"relaxation"``).
      cosines: ``k x k`` class-mean cosines of the optimum (the predicted ``G_M``).
      loss: the SC loss there (sum convention).
      lower_bound: the proven lower bound of the reduced relaxation.
      rel_gap: ``(loss - lower_bound) / |loss|``.
      certified: ``rel_gap <= CERT_TOL`` with a finite bound.
      status: ``"closed_form"`` (ReLU) or the solver's status.
    """

    relu: bool
    counts: tuple[int, ...]
    tau: float
    kind: str
    cosines: np.ndarray
    loss: float
    lower_bound: float
    rel_gap: float
    certified: bool
    status: str

    def to_dict(self) -> dict[str, Any]:
        """Plain values (the cosines as a nested list)."""
        return {"relu": self.relu, "kind": self.kind, "tau": self.tau, "loss": self.loss,
                "lower_bound": self.lower_bound, "rel_gap": self.rel_gap,
                "certified": self.certified, "status": self.status,
                "cosines": self.cosines.tolist()}


@lru_cache(maxsize=64)
def _optimum(counts: tuple[int, ...], tau: float, relu: bool) -> UFMOptimum:
    from ufm.certificates.certification import certificate, certify

    if relu:
        from ufm.core.closed_forms import of_loss

        cosines, loss, kind, status = np.eye(len(counts)), float(of_loss(counts, tau)), "of", "closed_form"
    else:
        from ufm.solvers.solver import solve

        res = solve(list(counts), tau=tau, nonneg=False, method="classes")
        cosines = np.asarray(res.metrics["class_mean_gram"], dtype=np.float64)
        loss, kind, status = float(res.loss), str(res.optimum_kind), str(res.status)
    cert = certificate(loss, certify(list(counts), tau, nonneg=relu, method="reduced"), CERT_TOL)
    cosines.setflags(write=False)  # shared by every caller of the cache
    return UFMOptimum(relu, counts, tau, kind, cosines, loss, float(cert["lower_bound"]),
                      float(cert["rel_gap"]), bool(cert["certified"]), status)


def ufm_optimum(counts: Sequence[int], tau: float = 0.1, relu: bool = False) -> UFMOptimum:
    """The certified optimum of the full-batch UFM (``relu``: UFM+) at ``counts`` (cached).

    Args:
      counts: ``k >= 2`` class sizes, each ``>= 2``.
      tau: temperature (``ufm.core.checks.check_tau``).
      relu: the ReLU (non-negativity) constraint.

    Returns:
      A ``UFMOptimum`` (the same object for the same arguments: do not modify it).

    Raises:
      ValueError: naming ``counts`` or ``tau`` when outside its range.

    References:
      Kini et al., "Symmetric Neural-Collapse Representations with Supervised Contrastive
      Loss: The Impact of ReLU and Batching", ICLR 2024 (arXiv:2306.07960): the OF under ReLU;
      DESIGN.md sections 4 and 5.
    """
    key = tuple(int(c) for c in check_counts(counts))
    return _optimum(key, check_tau(tau), bool(relu))
