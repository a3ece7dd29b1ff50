"""Closed-form SC loss values of collapsed configurations (DESIGN.md section 4).

If every class collapses to one unit vector and the class vectors have Gram matrix ``A``
(``A_cc = 1``), each anchor of class ``c`` pays ``log(n_c - 1 + sum_{c' != c} n_c'
exp((A_cc' - 1)/tau))``, so::

    collapsed_loss(counts, tau, A) = sum_c n_c log(n_c - 1 + sum_{c' != c} n_c' e^{(A_cc'-1)/tau})

- Orthogonal frame (``A = I``): ``of_loss = sum_c n_c log(n_c - 1 + (N - n_c) e^{-1/tau})``,
  the global minimum under ReLU (UFM+, d >= k) for any counts.
- Any batching under ReLU (d >= k): the OF minimizes every batch's term at once, so the optimum
  is ``batched_of_loss = sum_B sum_{c: n_{B,c} >= 2} n_{B,c} log(n_{B,c} - 1 + (|B| - n_{B,c})
  e^{-1/tau})`` (DESIGN.md section 4); the batch conditions decide only uniqueness.
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

from ufm.checks import check_tau
from ufm.labels import check_counts

__all__ = ["collapsed_loss", "of_loss", "etf_loss", "batched_of_loss", "cosine_sensitivity"]


def _log_terms(counts: Sequence[int], tau: float, class_gram: np.ndarray):
    """``(n, tau, log_w, log_d)``: ``log_w = (A - 1)/tau`` and ``log_d[c] = log D_c``, the
    log-sum-exp of ``log(n_c - 1)`` and ``log n_c' + log_w[c, c']`` over ``c' != c``."""
    n = check_counts(counts).astype(np.float64)
    tau = check_tau(tau)
    log_w = (np.asarray(class_gram, dtype=np.float64) - 1.0) / tau
    terms = np.log(n)[None, :] + log_w
    terms[np.diag_indices(n.size)] = np.log(n - 1.0)
    return n, tau, log_w, logsumexp(terms, axis=1)


def collapsed_loss(counts: Sequence[int], tau: float, class_gram: np.ndarray) -> float:
    """Loss of the collapsed configuration whose class vectors have Gram matrix ``class_gram``."""
    n, _, _, log_d = _log_terms(counts, tau, class_gram)
    return float(np.sum(n * log_d))


def cosine_sensitivity(counts: Sequence[int], tau: float, class_gram: np.ndarray) -> float:
    """How strongly the loss pins the class-mean cosines: the relative change of
    ``collapsed_loss`` per unit change of the LEAST pinned class-pair cosine,
    ``min_{c != c'} |dL/dA_cc'| / L`` with::

        dL/dA_cc' = n_c n_c' e^{(A_cc' - 1)/tau} (1/D_c + 1/D_c') / tau,
        D_c = n_c - 1 + sum_{c'' != c} n_c'' e^{(A_cc'' - 1)/tau}

    (the pair enters both classes' terms). Computed in log space, so it is accurate however
    small. Where ``0.01 * cosine_sensitivity`` is below the relative precision a solver reaches
    (about 1e-12 in float64), that cosine can move by 0.01 without the loss changing visibly:
    the loss does not determine the geometry at this ``tau`` (``e^{-1/tau}`` vanishes). For
    the OF at k = 10, STEP R = 100, n_min = 5 it is 3.5e-7 at tau = 0.1, 3.3e-11 at 0.05 and
    9e-17 at 0.03.

    >>> s = cosine_sensitivity([5, 5], 0.1, np.eye(2))  # n n' w (2/D) / tau / L, D = 4 + 5w
    >>> w = np.exp(-10)
    >>> bool(np.isclose(s, 25 * w * 2 / (4 + 5 * w) / 0.1 / of_loss([5, 5], 0.1), rtol=1e-12))
    True
    """
    n, tau, log_w, log_d = _log_terms(counts, tau, class_gram)
    off = ~np.eye(n.size, dtype=bool)
    loss = float(np.sum(n * log_d))
    log_grad = (np.log(n)[:, None] + np.log(n)[None, :] + log_w - np.log(tau)
                + np.logaddexp(-log_d[:, None], -log_d[None, :]))
    best = float(np.min(log_grad[off]))
    return float(np.exp(best - np.log(loss))) if loss > 0 else float("inf")


def of_loss(counts: Sequence[int], tau: float) -> float:
    """``L*_OF = sum_c n_c log(n_c - 1 + (N - n_c) exp(-1/tau))``."""
    k = len(counts)
    return collapsed_loss(counts, tau, np.eye(k))


def etf_loss(counts: Sequence[int], tau: float) -> float:
    """Loss at collapse onto the simplex ETF (cross-class cosine ``-1/(k-1)``)."""
    k = len(counts)
    return collapsed_loss(counts, tau, k / (k - 1) * (np.eye(k) - 1.0 / k))


def batched_of_loss(labels: Sequence[int], batches: Sequence[Sequence[int]], tau: float) -> float:
    """Sum over batches of the OF value of each batch's own counts (vectorized over batches).

    >>> round(batched_of_loss([0, 0, 1, 1], [[0, 1, 2, 3]], 1.0), 4) == round(of_loss([2, 2], 1.0), 4)
    True
    >>> batched_of_loss([0, 0, 1, 1], [[0, 2], [1, 3]], 1.0)  # no anchor has a positive
    0.0
    """
    tau = check_tau(tau)
    y = np.asarray(labels, dtype=np.int64)
    k = int(y.max()) + 1
    sizes = np.array([len(b) for b in batches], dtype=np.int64)
    flat = np.concatenate([np.asarray(b, dtype=np.int64) for b in batches]) if sizes.sum() else np.zeros(0, np.int64)
    bid = np.repeat(np.arange(sizes.size), sizes)
    n_bc = np.bincount(bid * k + y[flat], minlength=sizes.size * k).reshape(sizes.size, k)
    rest = (sizes[:, None] - n_bc).astype(np.float64)
    keep = n_bc >= 2
    n = n_bc[keep].astype(np.float64)
    # log(n - 1 + rest e^{-1/tau}) as a two-term log-sum-exp (finite for tiny tau)
    with np.errstate(divide="ignore"):
        terms = np.logaddexp(np.log(n - 1.0), np.log(rest[keep]) - 1.0 / tau)
    return float(np.sum(n * terms))
