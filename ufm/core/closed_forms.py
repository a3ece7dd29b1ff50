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

from ufm.core.checks import check_batch_indices, check_labels, check_tau
from ufm.core.labels import check_counts

__all__ = ["collapsed_loss", "of_loss", "etf_loss", "batched_of_loss", "cosine_sensitivity"]


def _log_terms(counts: Sequence[int], tau: float, class_gram: np.ndarray):
    """``(n, tau, log_w, log_d)``: ``log_w = (A - 1)/tau`` and ``log_d[c] = log D_c``, the
    log-sum-exp of ``log(n_c - 1)`` and ``log n_c' + log_w[c, c']`` over ``c' != c``."""
    n = check_counts(counts).astype(np.float64)
    tau = check_tau(tau)
    log_w = (_check_class_gram(class_gram, n.size) - 1.0) / tau
    terms = np.log(n)[None, :] + log_w
    terms[np.diag_indices(n.size)] = np.log(n - 1.0)
    return n, tau, log_w, logsumexp(terms, axis=1)


def _check_class_gram(class_gram: np.ndarray, k: int) -> np.ndarray:
    try:
        a = np.asarray(class_gram, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"class_gram must be a finite real {k} x {k} matrix") from None
    if a.shape != (k, k) or not np.all(np.isfinite(a)):
        raise ValueError(f"class_gram must be a finite real {k} x {k} matrix (k = len(counts)), got "
                         f"shape {a.shape}" + ("" if a.shape != (k, k) else " with NaN or inf"))
    return a


def collapsed_loss(counts: Sequence[int], tau: float, class_gram: np.ndarray) -> float:
    """SC loss of a collapsed configuration whose class vectors have Gram matrix ``A``::

        sum_c n_c log(n_c - 1 + sum_{c' != c} n_c' e^{(A_cc' - 1)/tau})

    Args:
      counts: ``k >= 2`` class sizes, each ``>= 2`` (``ufm.core.labels.check_counts``).
      tau: temperature, a finite number ``> 0``.
      class_gram: the ``k x k`` Gram matrix ``A`` of the class vectors (its diagonal unused).

    Returns:
      The loss (float, sum convention), computed as log-sum-exps (finite for tiny ``tau``).

    Raises:
      ValueError: naming ``counts``, ``tau`` or ``class_gram`` (not a finite ``k x k``
        matrix) when it is outside its range.

    References:
      DESIGN.md section 4 (the collapsed configurations and their loss).
    """
    n, _, _, log_d = _log_terms(counts, tau, class_gram)
    return float(np.sum(n * log_d))


def cosine_sensitivity(counts: Sequence[int], tau: float, class_gram: np.ndarray) -> float:
    """How strongly the loss pins the class-mean cosines (relative slope, least pinned pair).

    The relative change of ``collapsed_loss`` per unit change of the LEAST pinned class-pair
    cosine, ``min_{c != c'} |dL/dA_cc'| / L`` with::

        dL/dA_cc' = n_c n_c' e^{(A_cc' - 1)/tau} (1/D_c + 1/D_c') / tau,
        D_c = n_c - 1 + sum_{c'' != c} n_c'' e^{(A_cc'' - 1)/tau}

    (the pair enters both classes' terms). Computed in log space, so it is accurate however
    small. Where ``0.01 * cosine_sensitivity`` is below the relative precision a solver reaches
    (about 1e-12 in float64), that cosine can move by 0.01 without the loss changing visibly:
    the loss does not determine the geometry at this ``tau`` (``e^{-1/tau}`` vanishes). For
    the OF at k = 10, STEP R = 100, n_min = 5 it is 3.5e-7 at tau = 0.1, 3.3e-11 at 0.05 and
    9e-17 at 0.03.

    Args:
      counts: ``k >= 2`` class sizes, each ``>= 2``.
      tau: temperature, a finite number ``> 0``.
      class_gram: the ``k x k`` Gram matrix ``A`` of the class vectors (its diagonal unused).

    Returns:
      ``min_{c != c'} |dL/dA_cc'| / L`` (float, ``>= 0``); ``inf`` when the loss is 0.

    Raises:
      ValueError: naming ``counts``, ``tau`` or ``class_gram`` when it is outside its range.

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
    """Loss at collapse onto an orthogonal frame (OF, class Gram ``I_k``)::

        L*_OF = sum_c n_c log(n_c - 1 + (N - n_c) exp(-1/tau))

    The full-batch global minimum under ReLU (UFM+, ``d >= k``) for any class counts.

    Args:
      counts: ``k >= 2`` class sizes, each ``>= 2``.
      tau: temperature, a finite number ``> 0``.

    Returns:
      The loss (float, sum convention).

    Raises:
      ValueError: naming ``counts`` or ``tau`` when it is outside its range.

    References:
      Kini et al., "Symmetric Neural-Collapse Representations with Supervised Contrastive
      Loss: The Impact of ReLU and Batching", ICLR 2024 (arXiv:2306.07960): under ReLU
      (UFM+) the OF minimizes the full-batch SC loss for any imbalance;
      DESIGN.md section 4.

    >>> round(of_loss([2, 2], tau=1.0), 4)  # 4 * log(1 + 2/e)
    2.2058
    """
    n = check_counts(counts)
    return collapsed_loss(n, tau, np.eye(n.size))


def etf_loss(counts: Sequence[int], tau: float) -> float:
    """Loss at collapse onto the simplex ETF (cross-class cosine ``-1/(k-1)``)::

        sum_c n_c log(n_c - 1 + (N - n_c) exp(-k / ((k-1) tau)))

    Args:
      counts: ``k >= 2`` class sizes, each ``>= 2`` (the ETF needs ``k >= 2``).
      tau: temperature, a finite number ``> 0``.

    Returns:
      The loss (float, sum convention). It is the global minimum without ReLU only when the
      classes are balanced and ``d >= k - 1``.

    Raises:
      ValueError: naming ``counts`` or ``tau`` when it is outside its range.

    References:
      Graf, Hofer, Niethammer, Kwitt, "Dissecting Supervised Contrastive Learning", ICML 2021: the
      balanced SC loss is minimized at collapse onto a regular simplex; DESIGN.md section 4.

    >>> bool(np.isclose(etf_loss([2, 2], 1.0), 4 * np.log(1 + 2 * np.exp(-2))))
    True
    """
    n = check_counts(counts)
    k = n.size
    return collapsed_loss(n, tau, k / (k - 1) * (np.eye(k) - 1.0 / k))


def batched_of_loss(
    labels: Sequence[int],
    batches: Sequence[Sequence[int]] | np.ndarray,
    tau: float,
    *,
    num_classes: int | None = None,
) -> float:
    """Sum over batches of the OF value of each batch's own counts (vectorized over batches)::

        sum_B sum_{c: n_{B,c} >= 2} n_{B,c} log(n_{B,c} - 1 + (|B| - n_{B,c}) e^{-1/tau})

    Args:
      labels: integer labels ``0..k-1`` (``ufm.core.checks.check_labels``): every class present
        unless ``num_classes`` is given.
      batches: list of index lists, or a padded 2-D int array (-1 pads), indices in
        ``[0, N)`` (``ufm.core.checks.check_batch_indices``).
      tau: temperature, a finite number ``> 0``.
      num_classes: the number of classes; give it to allow absent classes (they add 0).

    Returns:
      The loss (float, sum convention): the optimum under ReLU (UFM+, ``d >= k``) for this
      batching, whether or not the OF is its unique minimizer.

    Raises:
      ValueError: naming ``labels``, ``batches``, ``tau`` or ``num_classes`` when it is
        outside its range.

    References:
      Kini et al., "Symmetric Neural-Collapse Representations with Supervised Contrastive
      Loss: The Impact of ReLU and Batching", ICLR 2024 (arXiv:2306.07960): mini-batch
      SC loss under ReLU (the OF minimizes every batch's term);
      DESIGN.md sections 4 and 6.

    >>> round(batched_of_loss([0, 0, 1, 1], [[0, 1, 2, 3]], 1.0), 4) == round(of_loss([2, 2], 1.0), 4)
    True
    >>> batched_of_loss([0, 0, 1, 1], [[0, 2], [1, 3]], 1.0)  # no anchor has a positive
    0.0
    """
    tau = check_tau(tau)
    y, k = check_labels(labels, num_classes)
    padded = check_batch_indices(batches, y.size)
    valid = padded >= 0
    sizes = valid.sum(axis=1)
    bid = np.repeat(np.arange(padded.shape[0]), sizes)
    n_bc = np.bincount(bid * k + y[padded[valid]], minlength=padded.shape[0] * k).reshape(-1, k)
    rest = (sizes[:, None] - n_bc).astype(np.float64)
    keep = n_bc >= 2
    n = n_bc[keep].astype(np.float64)
    # log(n - 1 + rest e^{-1/tau}) as a two-term log-sum-exp (finite for tiny tau)
    with np.errstate(divide="ignore"):
        terms = np.logaddexp(np.log(n - 1.0), np.log(rest[keep]) - 1.0 / tau)
    return float(np.sum(n * terms))
