"""The class geometry of N x d features in one pass, in two metric conventions, and their health.

Conventions (DESIGN.md sections 4 and 8; docs/analyze.md says when they differ):

- ``"project"`` (the default, ``ufm.core.geometry``): rows normalized, ``z_i = h_i/||h_i||``
  (a zero row stays zero); class means ``mu_c`` of the ``z_i``; ``G_M`` = the cosines of the
  means (each mean scaled to unit norm); ``NC1 = tr(Sigma_W Sigma_B^+) / k``.
- ``"kini"`` (Kini et al.'s official code): the RAW features ``h_i``; class means of the
  ``h_i``; ``G_M = M M^T`` of the raw means, not normalized (``Delta_GM`` divides by the
  Frobenius norm, so only the means' relative norms matter); ``NC1 = tr(Sigma_W Sigma_B^+)``,
  without the ``1/k``.

In both, ``Sigma_W = 1/N sum_i (x_i - mu_{y_i})(x_i - mu_{y_i})^T``,
``Sigma_B = 1/k sum_c (mu_c - mu_G)(mu_c - mu_G)^T`` with ``mu_G`` the mean of the class means,
and ``Sigma_B^+`` a pseudo-inverse with relative cutoff ``rcond``.

Speed: one float64 copy of the features and two N x d x k products (``class_geometry``); about
20-40 ms for 10,000 x 512 float32 features (``python -m ufm.bench --only analyze``). The values
agree with ``ufm.core.geometry`` to rounding (1e-15).

>>> import numpy as np
>>> g = class_geometry(np.eye(3)[[0, 0, 1, 1, 2, 2]] * 2.0, np.array([0, 0, 1, 1, 2, 2]), 3)
>>> g.gram.tolist() == np.eye(3).tolist(), g.nc1
(True, 0.0)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["CONVENTIONS", "ClassGeometry", "class_geometry", "feature_health", "check_features",
           "row_squares"]

#: The metric conventions, the project's first (the default).
CONVENTIONS = ("project", "kini")


@dataclass(frozen=True)
class ClassGeometry:
    """What ``class_geometry`` returns (float64 arrays; ``k`` classes, ``d`` coordinates).

    Attributes:
      convention: ``"project"`` or ``"kini"``.
      counts: ``(k,)`` samples per class.
      means: ``(k, d)`` class means (of the normalized rows for ``project``, raw for ``kini``).
      gram: ``(k, k)`` the ``G_M`` that ``Delta_GM`` compares (the cosines for ``project``, the
        raw ``M M^T`` for ``kini``); all zero when every mean is zero.
      cosines: ``(k, k)`` cosines between the class means (a zero mean: its row and column 0).
      nc1: NC1 of the convention, or ``None`` when every class mean is the same (``Sigma_B = 0``).
      spread: ``(k,)`` per class, the mean squared distance of its rows to its mean (the same
        rows as NC1: normalized for ``project``, raw for ``kini``).
    """

    convention: str
    counts: np.ndarray
    means: np.ndarray
    gram: np.ndarray
    cosines: np.ndarray
    nc1: float | None
    spread: np.ndarray


def _unit_rows(a: np.ndarray) -> np.ndarray:
    norm = np.sqrt(np.einsum("ij,ij->i", a, a))
    return a / np.where(norm > 0, norm, 1.0)[:, None]


def row_squares(x: np.ndarray) -> np.ndarray:
    """``||x_i||^2`` of every row (float64); ``ValueError`` (one line, starting ``features``,
    with the first bad row) when a row holds NaN or inf."""
    sq = np.einsum("ij,ij->i", x, x, dtype=np.float64)
    if not np.isfinite(sq).all():  # NaN / inf, or a huge finite row whose square overflows
        bad = np.flatnonzero(~np.isfinite(x).all(axis=1))
        if bad.size:
            raise ValueError(f"features hold NaN or inf in {bad.size} of {x.shape[0]} rows (first: "
                             f"row {int(bad[0])}): a diverged network, or a broken file")
    return sq


def class_geometry(h: Any, labels: np.ndarray, k: int, convention: str = "project",
                   rcond: float = 1e-6, row_sq: np.ndarray | None = None) -> ClassGeometry:
    """Class means, their Gram and cosine matrices, NC1 and per-class spread of ``h``.

    No argument checks beyond the convention (callers check once: ``check_features``): ``h``
    must be a finite real ``N x d`` array, ``labels`` an int array of ``N`` values in
    ``0..k-1`` with every class present.

    How (one float64 copy of ``h`` at most, never changed; two N x d x k products; no
    ``np.add.at``, no centred N x d copy, no d x d matrix): with row weights ``w_i``
    (``1/||h_i||`` for ``project``, 0 for a zero row; 1 for ``kini``), the class means are
    ``(X^T diag(w) U)^T / n_c``; NC1 projects ``w_i x_i - mu_{y_i}`` on the (<= k) right singular
    vectors ``V`` of the centred means as ``w_i (x_i V^T) - (mu V^T)_{y_i}``, so exactly
    collapsed features give exactly 0.

    Args:
      h: ``N x d`` features (any real dtype; float32 is read once into float64).
      labels: ``(N,)`` integer labels ``0..k-1``.
      k: the number of classes.
      convention: ``"project"`` or ``"kini"`` (module docstring).
      rcond: relative cutoff of the pseudo-inverse of ``Sigma_B``.
      row_sq: ``row_squares(h)`` when the caller has it (saves a pass).

    Returns:
      A ``ClassGeometry``.

    Raises:
      ValueError: naming ``convention`` when it is not one of ``CONVENTIONS``.

    References:
      Papyan, Han, Donoho, "Prevalence of neural collapse during the terminal phase of deep
      learning training", PNAS 2020 (NC1); Kini et al., "Symmetric Neural-Collapse
      Representations with Supervised Contrastive Loss: The Impact of ReLU and Batching",
      ICLR 2024 (arXiv:2306.07960; ``G_M``, ``Delta_GM``, their code's conventions).
    """
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {', '.join(CONVENTIONS)}, got {convention!r}")
    x = np.asarray(h, dtype=np.float64)  # read-only from here on
    y = np.asarray(labels)
    n = x.shape[0]
    sq = np.einsum("ij,ij->i", x, x) if row_sq is None else row_sq
    if convention == "project":
        w = np.zeros(n)
        np.divide(1.0, np.sqrt(sq), out=w, where=sq > 0)
        wsq = (sq > 0).astype(np.float64)  # ||z_i||^2
    else:
        w, wsq = np.ones(n), sq
    counts = np.bincount(y, minlength=k).astype(np.float64)
    # the class means as (d x N) @ (N x k): OpenBLAS runs the (k x N) @ (N x d) form ~25x slower
    # on a loaded 2-core machine (its threads wait for the scheduler), this one does not
    weights = np.zeros((n, k))
    weights[np.arange(n), y] = w
    means = (x.T @ weights).T / counts[:, None]  # sums, then / n_c: exact for exact collapse
    unit = _unit_rows(means)
    cosines = unit @ unit.T
    gram = cosines if convention == "project" else means @ means.T
    # mean ||w_i x_i - mu_c||^2 over class c = mean ||w_i x_i||^2 - ||mu_c||^2 (>= 0)
    spread = np.maximum(np.bincount(y, weights=wsq, minlength=k) / counts
                        - np.einsum("ij,ij->i", means, means), 0.0)
    return ClassGeometry(convention, counts.astype(np.int64), means, gram, cosines,
                         _nc1(x, w, y, means, k, rcond, per_class=convention == "project"),
                         spread)


def _nc1(x: np.ndarray, w: np.ndarray, y: np.ndarray, means: np.ndarray, k: int, rcond: float,
         per_class: bool) -> float | None:
    """``tr(Sigma_W Sigma_B^+)`` (``/ k`` when ``per_class``) of the rows ``w_i x_i``:
    ``Sigma_B = V diag(s^2/k) V^T`` by the thin SVD of the k x d centred means, so the trace
    needs only the projections of the centred rows on ``V``'s (<= k) directions."""
    mb = means - means.mean(axis=0)
    scale = 1.0 if per_class else max(float(np.abs(means).max()), np.finfo(float).tiny)
    if not np.any(np.abs(mb) > 1e-12 * scale):
        return None
    _, sv, vt = np.linalg.svd(mb, full_matrices=False)
    eig = sv * sv / k
    keep = eig > rcond * eig.max()
    v = np.ascontiguousarray(vt[keep].T)  # d x r
    proj = (x @ v) * w[:, None] - (means @ v)[y]  # N x r: (w_i x_i - mu_{y_i}) V^T
    value = float(np.sum(np.einsum("ij,ij->j", proj, proj) / x.shape[0] / eig[keep]))
    return max(value / k if per_class else value, 0.0)


def feature_health(h: Any, row_sq: np.ndarray | None = None) -> dict[str, Any]:
    """Entries and rows a network left degenerate, for any array (NaN and inf allowed).

    Args:
      h: ``N x d`` features.
      row_sq: ``row_squares(h)`` when the caller has it (then ``h`` is finite; saves passes).

    Returns:
      ``{"zero_rows"``: fraction of rows that are exactly 0 (no direction; a NaN row is not
      zero), ``"nonfinite_rows"``: fraction holding NaN or inf, ``"negative_fraction"``:
      fraction of entries < 0, ``"dead_coordinates"``: how many of the ``d`` coordinates are 0
      in every row, ``"nonnegative"``: no entry < 0 (a ReLU was applied, or looks so)``}``.

    >>> feature_health(np.array([[0.0, 1.0], [0.0, 0.0]]))["dead_coordinates"]
    1
    """
    a = np.asarray(h)
    nonzero = a != 0
    negative = int(np.count_nonzero(a < 0))
    n = a.shape[0]
    if row_sq is not None:
        zero, finite = row_sq == 0, np.ones(n, bool)
    else:
        zero = ~nonzero.any(axis=1)
        finite = np.isfinite(a).all(axis=1) if a.dtype.kind == "f" else np.ones(n, bool)
    return {
        "zero_rows": float(np.mean(zero)) if n else 0.0,
        "nonfinite_rows": float(np.mean(~finite)) if n else 0.0,
        "negative_fraction": negative / a.size if a.size else 0.0,
        "dead_coordinates": int(a.shape[1] - np.count_nonzero(nonzero.any(axis=0))),
        "nonnegative": negative == 0,
    }


def check_features(features: Any, labels: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Features and labels checked once: ``(h, y, classes, counts)``.

    ``h`` is the ``N x d`` real array (its dtype kept: float32 stays float32; its finiteness is
    ``row_squares``' check, done with the pass that needs the squares anyway), ``classes`` the
    sorted distinct label values, ``y`` the labels as indices ``0..k-1`` into ``classes`` and
    ``counts`` the samples per class. Any integer labels are accepted (``[3, 3, 7, 7]`` are
    classes 3 and 7); floats, booleans and strings are not.

    Raises:
      ValueError: one line starting with ``features`` or ``labels`` and naming the problem:
        not a real 2-D array, no row or column, labels
        not a flat integer array, a label count other than N, fewer than 2 classes, a class
        with fewer than 2 samples (no positive pair: DESIGN.md section 1).
    """
    try:
        h = np.asarray(features)
    except (TypeError, ValueError):
        raise ValueError(f"features must be a real N x d array, got {type(features).__name__}") from None
    if h.dtype.kind not in "fiu" or h.dtype.itemsize > 8:
        raise ValueError(f"features must be a real N x d array, got dtype {h.dtype}")
    if h.ndim != 2 or h.shape[0] == 0 or h.shape[1] == 0:
        raise ValueError(f"features must be an N x d array with N, d >= 1, got shape {h.shape}")
    try:
        y_raw = np.asarray(labels)
    except (TypeError, ValueError):
        raise ValueError(f"labels must be a flat array of integers, got {type(labels).__name__}") from None
    if y_raw.dtype.kind not in "iu":
        raise ValueError(f"labels must be integers (an integer dtype; floats are rejected even when "
                         f"integral), got dtype {y_raw.dtype}")
    if y_raw.ndim != 1:
        raise ValueError(f"labels must be a flat array (shape (N,)), got shape {y_raw.shape}")
    if y_raw.size != h.shape[0]:
        raise ValueError(f"labels must give one label per feature row: {y_raw.size} labels for "
                         f"{h.shape[0]} rows")
    classes, y, counts = np.unique(y_raw, return_inverse=True, return_counts=True)
    if classes.size < 2:
        raise ValueError(f"labels must hold at least 2 classes, got {classes.size} "
                         f"({classes.tolist()})")
    small = np.flatnonzero(counts < 2)
    if small.size:
        raise ValueError(f"labels give class {classes[small[0]].item()} only {int(counts[small[0]])} "
                         f"sample ({small.size} such classes): every class needs >= 2 (a sample "
                         "without a positive has no SC loss term)")
    return h, y.reshape(-1).astype(np.int64), classes, counts.astype(np.int64)
