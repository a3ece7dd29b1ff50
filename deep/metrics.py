"""Per-epoch geometry metrics of learned features (NumPy, built on ``ufm.core.geometry``).

On the row-normalized features ``z`` of the (imbalanced) training set, with class means
``mu_c`` and ``G_M`` their cosine matrix (DESIGN.md section 4):

- ``delta_gm_of`` / ``delta_gm_etf``: ``|| G_M/||G_M||_F - G_T/||G_T||_F ||_F``;
- ``nc1``: ``tr(Sigma_W Sigma_B^+) / k``;
- cosine summaries of ``G_M`` off the diagonal: mean over majority-majority, minority-minority
  and majority-minority pairs (majority = the first ``n_majority`` labels, as in STEP), and the
  overall min / max;
- nearest-class-mean accuracy: ``argmax_c <z, mu_c/||mu_c||>`` with the TRAINING class means,
  on the training and on the test features;
- ``zero_features``: the fraction of training features that are exactly 0 (dead ReLU units
  everywhere); ``nonfinite_features``: the fraction of training and test features holding NaN
  or inf (diverged). Where the geometry is undefined (every class mean zero, or all equal) the
  Delta_GM and NC1 entries are ``None`` (JSON null), never NaN.

>>> import numpy as np
>>> z = np.eye(3)[[0, 0, 1, 1, 2, 2]]
>>> m = epoch_metrics(z, [0, 0, 1, 1, 2, 2], z, [0, 0, 1, 1, 2, 2], k=3, n_majority=2)
>>> m["delta_gm_of"], m["nc1"], m["ncm_test_acc"], m["cos_maj_min"]
(0.0, 0.0, 1.0, 0.0)
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ufm.core.geometry import (class_mean_gram, class_means, delta_gm, metric_or_none, nc1,
                           normalize_rows)

__all__ = ["epoch_metrics", "ncm_accuracy", "cosine_summaries"]

COSINE_KEYS = ("cos_maj_maj", "cos_min_min", "cos_maj_min", "cos_min", "cos_max")


def ncm_accuracy(means: np.ndarray, z: np.ndarray, labels: Sequence[int]) -> float:
    """Fraction of rows of ``z`` whose most cosine-similar class mean is their own class."""
    pred = np.argmax(normalize_rows(z) @ normalize_rows(means).T, axis=1)
    return float(np.mean(pred == np.asarray(labels)))


def _mean_or_none(values: np.ndarray) -> float | None:
    return float(values.mean()) if values.size else None


def cosine_summaries(gram: np.ndarray, n_majority: int) -> dict[str, float | None]:
    """Mean off-diagonal cosines by class group (``None`` for an empty group), min and max;
    all ``None`` for a zero ``gram`` (every class mean zero: no cosines)."""
    k = gram.shape[0]
    if not np.any(gram):
        return dict.fromkeys(COSINE_KEYS)
    maj = np.arange(k) < n_majority
    off = ~np.eye(k, dtype=bool)
    return {
        "cos_maj_maj": _mean_or_none(gram[off & maj[:, None] & maj[None, :]]),
        "cos_min_min": _mean_or_none(gram[off & ~maj[:, None] & ~maj[None, :]]),
        "cos_maj_min": _mean_or_none(gram[maj[:, None] & ~maj[None, :]]),
        "cos_min": float(gram[off].min()),
        "cos_max": float(gram[off].max()),
    }


def epoch_metrics(h_train: np.ndarray, y_train: Sequence[int], h_test: np.ndarray,
                  y_test: Sequence[int], *, k: int, n_majority: int) -> dict[str, Any]:
    """All geometry and accuracy metrics of one epoch's features (see the module docstring).

    Features holding NaN or inf (a diverged network) get every metric ``None`` but the two
    feature fractions."""
    h_train = np.asarray(h_train, dtype=np.float64)
    h_test = np.asarray(h_test, dtype=np.float64)
    y_train = np.asarray(y_train, dtype=np.int64)
    both = np.concatenate([h_train, h_test])
    health = {"zero_features": float(np.mean(~np.any(h_train != 0, axis=1))),
              "nonfinite_features": float(np.mean(~np.all(np.isfinite(both), axis=1)))}
    if health["nonfinite_features"] > 0:
        return {**dict.fromkeys(("delta_gm_of", "delta_gm_etf", "nc1")), **health,
                **dict.fromkeys(COSINE_KEYS),
                **dict.fromkeys(("ncm_train_acc", "ncm_test_acc", "class_mean_gram"))}
    z = normalize_rows(h_train)
    gram = class_mean_gram(z, y_train, k)
    means = class_means(z, y_train, k)
    return {
        "delta_gm_of": metric_or_none(delta_gm, gram, "of"),
        "delta_gm_etf": metric_or_none(delta_gm, gram, "etf"),
        "nc1": metric_or_none(nc1, z, y_train, k),
        **health,
        **cosine_summaries(gram, n_majority),
        "ncm_train_acc": ncm_accuracy(means, z, y_train),
        "ncm_test_acc": ncm_accuracy(means, h_test, y_test),
        "class_mean_gram": np.round(gram, 6).tolist(),
    }
