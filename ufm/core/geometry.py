"""Geometry metrics of embeddings: class means, their Gram matrix, Delta_GM and NC1.

Definitions (DESIGN.md section 4), on row-normalized embeddings ``z``:

- ``mu_c`` = mean of class ``c``; ``M`` = the means scaled to unit norm; ``G_M = M M^T``.
- ``delta_gm(G_M, T) = || G_M/||G_M||_F - G_T/||G_T||_F ||_F`` with ``T`` the orthogonal frame
  (``G_T = I_k``) or the simplex ETF (``G_T = k/(k-1) (I_k - 11^T/k)``).
- ``nc1 = tr(Sigma_W Sigma_B^+) / k`` with ``Sigma_W = 1/N sum_i (z_i - mu_{y_i})(...)^T`` and
  ``Sigma_B = 1/k sum_c (mu_c - mu_G)(...)^T``, ``mu_G`` the mean of the class means.

These are float64 NumPy functions: they run once per report or epoch, not in the hot loop.

>>> import numpy as np
>>> z = np.eye(3)[[0, 0, 1, 1, 2, 2]]
>>> float(delta_gm(class_mean_gram(z, [0, 0, 1, 1, 2, 2]), "of"))
0.0
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from ufm.core.checks import check_classes_present, check_rows

__all__ = [
    "class_means",
    "class_mean_gram",
    "of_gram",
    "etf_gram",
    "delta_gm",
    "nc1",
    "normalize_rows",
    "metric_or_none",
]


def metric_or_none(metric: Callable[..., float], *args: Any) -> float | None:
    """``metric(*args)``, or ``None`` where the metric is undefined for this input.

    Undefined means the metric raised ``ValueError`` (``delta_gm`` / ``nc1`` on a degenerate
    input: every class mean zero, or all equal, as with ``d = 1``). For reports, where
    ``None`` becomes JSON null.

    Args:
      metric: a function of ``args`` returning a float, e.g. ``delta_gm`` or ``nc1``.
      *args: its positional arguments.

    Returns:
      ``metric(*args)``, or ``None`` when it raised ``ValueError`` (other errors propagate).

    >>> metric_or_none(nc1, np.ones((4, 1)), [0, 0, 1, 1]) is None
    True
    """
    try:
        return metric(*args)
    except ValueError:
        return None


def normalize_rows(h: np.ndarray) -> np.ndarray:
    """Rows scaled to unit Euclidean norm, ``h_i / ||h_i||`` (zero rows stay zero).

    Args:
      h: an array of real rows along the last axis (e.g. ``N x d``).

    Returns:
      A float64 array of ``h``'s shape.
    """
    h = np.asarray(h, dtype=np.float64)
    norm = np.linalg.norm(h, axis=-1, keepdims=True)
    return h / np.where(norm > 0, norm, 1.0)


def _rows_and_k(z: Any, labels: Sequence[int], k: int | None) -> tuple[np.ndarray, np.ndarray, int]:
    """``(z as float64, labels as int64, k)`` after ``check_rows`` (every class present unless
    ``k`` is given)."""
    z, y = check_rows(z, labels, "z", k, num_classes_name="k")
    return z, y, int(y.max()) + 1 if k is None else int(k)


def class_means(z: np.ndarray, labels: Sequence[int], k: int | None = None) -> np.ndarray:
    """``(k, d)`` matrix of class means ``mu_c = 1/n_c sum_{i: y_i = c} z_i``.

    The rows of ``z`` are used as given (not normalized).

    Args:
      z: ``N x d`` finite features, ``d >= 1``.
      labels: integer labels ``0..k-1`` (``ufm.core.checks.check_labels``; float labels are
        rejected). Without ``k`` every class must occur.
      k: the number of classes. Given, labels must be ``< k`` and an absent class is allowed:
        its mean is the zero vector.

    Returns:
      The ``(k, d)`` float64 means.

    Raises:
      ValueError: naming ``z`` (not 2-D, finite, ``d >= 1``, one row per label), ``labels``
        or ``k`` when it is outside its range.
    """
    z, y, k = _rows_and_k(z, labels, k)
    sums = np.zeros((k, z.shape[1]))
    np.add.at(sums, y, z)
    counts = np.bincount(y, minlength=k).astype(np.float64)
    return sums / np.maximum(counts, 1.0)[:, None]


def class_mean_gram(z: np.ndarray, labels: Sequence[int], k: int | None = None) -> np.ndarray:
    """``G_M = M M^T``: cosines between class means of the row-normalized embeddings.

    ``M`` = the class means of ``z_i / ||z_i||``, each scaled to unit norm (a zero mean stays
    zero).

    Args:
      z: ``N x d`` finite features, ``d >= 1``.
      labels: integer labels ``0..k-1``; every class must occur, also when ``k`` is given (an
        empty class has no mean direction: ``ValueError`` naming it).
      k: the number of classes (``max(labels) + 1`` by default).

    Returns:
      The ``k x k`` float64 matrix ``G_M`` (unit diagonal unless a class mean is zero).

    Raises:
      ValueError: naming ``z``, ``labels`` or ``k`` when it is outside its range, or the
        first empty class.

    References:
      Kini et al., "Symmetric Neural-Collapse Representations with Supervised Contrastive
      Loss: The Impact of ReLU and Batching", ICLR 2024 (arXiv:2306.07960): the
      class-mean Gram ``G_M``; DESIGN.md sections 4 and 8 (here the means of the NORMALIZED
      features).
    """
    z, y, k = _rows_and_k(z, labels, k)
    check_classes_present(y, k, "class_mean_gram")
    m = normalize_rows(class_means(normalize_rows(z), y, k))
    return m @ m.T


def of_gram(k: int) -> np.ndarray:
    """Gram matrix of the orthogonal frame (OF): ``I_k``.

    Args:
      k: the number of classes, an integer ``>= 1``.

    Returns:
      The ``k x k`` float64 identity.

    References:
      Kini et al., "Symmetric Neural-Collapse Representations with Supervised Contrastive
      Loss: The Impact of ReLU and Batching", ICLR 2024 (arXiv:2306.07960): the OF
      geometry of the SC loss under ReLU.
    """
    return np.eye(k)


def etf_gram(k: int) -> np.ndarray:
    """Gram matrix of the simplex ETF: ``k/(k-1) (I_k - 11^T/k)``.

    Unit diagonal, off-diagonal ``-1/(k-1)``.

    Args:
      k: the number of classes, an integer ``>= 2`` (no check: ``k = 1`` divides by 0).

    Returns:
      The ``k x k`` float64 matrix.

    References:
      Papyan, Han, Donoho, "Prevalence of neural collapse during the terminal phase of deep
      learning training", PNAS 2020: the simplex ETF.
    """
    return k / (k - 1) * (np.eye(k) - np.ones((k, k)) / k)


def delta_gm(gram: np.ndarray, target: str | np.ndarray = "of") -> float:
    """Frobenius distance between the unit-Frobenius-norm ``gram`` and target Gram matrices::

        delta_gm(G_M, T) = || G_M/||G_M||_F - G_T/||G_T||_F ||_F

    Args:
      gram: a finite, nonzero ``k x k`` matrix, ``k >= 2`` (e.g. ``class_mean_gram``).
      target: ``"of"`` (``I_k``), ``"etf"`` (``etf_gram(k)``) or a finite nonzero ``k x k``
        matrix.

    Returns:
      The distance (float), in ``[0, 2]``.

    Raises:
      ValueError: naming ``gram`` when it is not ``k x k`` with ``k >= 2``, or is zero or
        non-finite (every class mean zero: no direction, so no geometry); naming ``target``
        for an unknown name, a mismatched shape, or a zero or non-finite matrix.

    References:
      Kini et al., "Symmetric Neural-Collapse Representations with Supervised Contrastive
      Loss: The Impact of ReLU and Batching", ICLR 2024 (arXiv:2306.07960): the
      ``Delta_GM`` metric; DESIGN.md section 4.
    """
    g = np.asarray(gram, dtype=np.float64)
    if g.ndim != 2 or g.shape[0] != g.shape[1] or g.shape[0] < 2:
        raise ValueError(f"gram must be k x k with k >= 2, got shape {g.shape}")
    if not np.all(np.isfinite(g)) or not np.any(g):
        raise ValueError("gram must be finite and nonzero (a zero Gram: every class mean is 0)")
    k = g.shape[0]
    if isinstance(target, str):
        if target not in ("of", "etf"):
            raise ValueError(f"target must be 'of', 'etf' or a matrix, got {target!r}")
        t = of_gram(k) if target == "of" else etf_gram(k)
    else:
        t = np.asarray(target, dtype=np.float64)
        if t.shape != g.shape or not np.all(np.isfinite(t)) or not np.any(t):
            raise ValueError(f"target must be a finite nonzero {k} x {k} matrix, got shape {t.shape}")
    return float(np.linalg.norm(g / np.linalg.norm(g) - t / np.linalg.norm(t)))


def nc1(z: np.ndarray, labels: Sequence[int], k: int | None = None, rcond: float = 1e-6) -> float:
    """Within-class variability ``tr(Sigma_W Sigma_B^+) / k`` of the row-normalized ``z``::

        Sigma_W = 1/N sum_i (z_i - mu_{y_i})(z_i - mu_{y_i})^T,
        Sigma_B = 1/k sum_c (mu_c - mu_G)(mu_c - mu_G)^T,  mu_G = 1/k sum_c mu_c

    ``Sigma_B^+`` is a pseudo-inverse with relative cutoff ``rcond``; the result is clipped at 0
    (it is a trace of a product of PSD matrices, so a negative value is rounding only).

    Args:
      z: ``N x d`` finite features, ``d >= 1``.
      labels: integer labels ``0..k-1``; every class must occur, also when ``k`` is given (an
        empty class has no mean: ``ValueError`` naming it).
      k: the number of classes (``max(labels) + 1`` by default).
      rcond: relative cutoff of the pseudo-inverse.

    Returns:
      NC1 (float, >= 0).

    Raises:
      ValueError: when every class mean is the same (``Sigma_B = 0``: no between-class
        spread to compare with, e.g. all features zero), where the pseudo-inverse would give
        0; naming ``z``, ``labels`` or ``k`` when it is outside its range, or the first empty
        class.

    References:
      Papyan, Han, Donoho, "Prevalence of neural collapse during the terminal phase of deep
      learning training", PNAS 2020: NC1 = ``tr(Sigma_W Sigma_B^+) / C``; DESIGN.md
      sections 4 and 8.
    """
    z, y, k = _rows_and_k(z, labels, k)
    check_classes_present(y, k, "nc1")
    z = normalize_rows(z)
    mu = class_means(z, y, k)
    mb = mu - mu.mean(axis=0)
    if not np.any(np.abs(mb) > 1e-12):
        raise ValueError("nc1 is undefined: every class mean is the same (Sigma_B = 0)")
    # Sigma_B = V diag(s^2 / k) V^T from the thin SVD of the k x d centered means: its
    # pseudo-inverse lives in the (<= k)-dimensional span of V, so the trace needs only the
    # projections of the centered rows on it, O(N d k), never a d x d matrix
    _, sv, vt = np.linalg.svd(mb, full_matrices=False)
    eig = sv * sv / k
    keep = eig > rcond * eig.max()
    proj = (z - mu[y]) @ vt[keep].T  # N x r
    value = np.sum(np.sum(proj * proj, axis=0) / z.shape[0] / eig[keep]) / k
    return float(max(value, 0.0))
