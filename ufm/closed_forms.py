"""Closed-form SC loss values of collapsed configurations (DESIGN.md section 4).

If every class collapses to one unit vector and the class vectors have Gram matrix ``A``
(``A_cc = 1``), each anchor of class ``c`` pays ``log(n_c - 1 + sum_{c' != c} n_c'
exp((A_cc' - 1)/tau))``, so::

    collapsed_loss(counts, tau, A) = sum_c n_c log(n_c - 1 + sum_{c' != c} n_c' e^{(A_cc'-1)/tau})

- Orthogonal frame (``A = I``): ``of_loss = sum_c n_c log(n_c - 1 + (N - n_c) e^{-1/tau})``,
  the global minimum under ReLU (UFM+, d >= k) for any counts.
- Simplex ETF (``A_cc' = -1/(k-1)``): ``etf_loss``, the global minimum without ReLU when the
  classes are balanced (Graf et al.) and ``d >= k - 1``.

All sums are done as log-sum-exp, so they stay finite for tiny ``tau``.

>>> round(of_loss([2, 2], tau=1.0), 4)  # 4 * log(1 + 2/e)
2.2058
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy.special import logsumexp

from ufm.labels import check_counts

__all__ = ["collapsed_loss", "of_loss", "etf_loss"]


def collapsed_loss(counts: Sequence[int], tau: float, class_gram: np.ndarray) -> float:
    """Loss of the collapsed configuration whose class vectors have Gram matrix ``class_gram``."""
    n = check_counts(counts).astype(np.float64)
    a = np.asarray(class_gram, dtype=np.float64)
    k = n.size
    # log-terms: log(n_c - 1) on the diagonal, log n_c' + (A_cc' - 1)/tau off it.
    terms = np.log(n)[None, :] + (a - 1.0) / tau
    terms[np.diag_indices(k)] = np.log(n - 1.0)
    return float(np.sum(n * logsumexp(terms, axis=1)))


def of_loss(counts: Sequence[int], tau: float) -> float:
    """``L*_OF = sum_c n_c log(n_c - 1 + (N - n_c) exp(-1/tau))``."""
    k = len(counts)
    return collapsed_loss(counts, tau, np.eye(k))


def etf_loss(counts: Sequence[int], tau: float) -> float:
    """Loss at collapse onto the simplex ETF (cross-class cosine ``-1/(k-1)``)."""
    k = len(counts)
    return collapsed_loss(counts, tau, k / (k - 1) * (np.eye(k) - 1.0 / k))
