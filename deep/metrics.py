"""Per-epoch geometry metrics of learned features (NumPy; the geometry is ``ufm.analyze``'s:
``ufm.analysis.features.class_geometry``, ``feature_health`` and ``ufm.analysis.groups``).

On the row-normalized features ``z`` of the (imbalanced) training set, with class means
``mu_c`` and ``G_M`` their cosine matrix (DESIGN.md section 4):

- ``delta_gm_of`` / ``delta_gm_etf``: ``|| G_M/||G_M||_F - G_T/||G_T||_F ||_F``;
- ``nc1``: ``tr(Sigma_W Sigma_B^+) / k``;
- cosine summaries of ``G_M`` off the diagonal: mean over majority-majority, minority-minority
  and majority-minority pairs (majority = the first ``n_majority`` labels, as in STEP), and the
  overall min / max;
- nearest-class-mean accuracy: ``argmax_c <z, mu_c/||mu_c||>`` with the TRAINING class means,
  on the training and on the test features (``None`` when no test feature is given);
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

import base64
from typing import Any, Sequence

import numpy as np

from ufm.analysis.features import class_geometry, feature_health
from ufm.analysis.groups import COSINE_KEYS
from ufm.analysis.groups import cosine_summaries as group_cosine_summaries
from ufm.core.checks import check_classes_present, check_labels
from ufm.core.geometry import delta_gm, metric_or_none, normalize_rows

__all__ = ["epoch_metrics", "ncm_accuracy", "cosine_summaries", "group_accuracies",
           "linear_probe_hits", "pack_hits", "unpack_hits"]

TEST_KEYS = ("ncm_test_acc", "ncm_test_acc_maj", "ncm_test_acc_min", "ncm_test_hits",
             "probe_test_acc", "probe_test_acc_maj", "probe_test_acc_min", "probe_test_hits")


def _ncm_hits(means: np.ndarray, z: np.ndarray, labels: Sequence[int]) -> np.ndarray:
    pred = np.argmax(normalize_rows(z) @ normalize_rows(means).T, axis=1)
    return pred == np.asarray(labels)


def ncm_accuracy(means: np.ndarray, z: np.ndarray, labels: Sequence[int]) -> float:
    """Fraction of rows of ``z`` whose most cosine-similar class mean is their own class."""
    return float(np.mean(_ncm_hits(means, z, labels)))


def cosine_summaries(gram: np.ndarray, n_majority: int) -> dict[str, float | None]:
    """Mean off-diagonal cosines by class group (``None`` for an empty group), min and max;
    all ``None`` for a zero ``gram`` (every class mean zero: no cosines). The majority is the
    first ``n_majority`` classes (STEP order); ``ufm.analysis.groups.cosine_summaries`` does
    the work."""
    return group_cosine_summaries(gram, np.arange(gram.shape[0]) < n_majority)


def pack_hits(hits: np.ndarray) -> str:
    """Per-image correctness (bool) as base64 of ``np.packbits``: 10,000 test images in 1,668
    characters, so a paired test between two runs can be computed from their metrics files.

    >>> unpack_hits(pack_hits(np.array([True, False, True])), 3).tolist()
    [True, False, True]
    """
    return base64.b64encode(np.packbits(np.asarray(hits, dtype=bool)).tobytes()).decode()


def unpack_hits(text: str, n: int) -> np.ndarray:
    """Inverse of ``pack_hits`` for ``n`` images."""
    return np.unpackbits(np.frombuffer(base64.b64decode(text), dtype=np.uint8))[:n].astype(bool)


def group_accuracies(hits: np.ndarray, labels: np.ndarray, n_majority: int) -> tuple[float, float]:
    """Mean per-class accuracy over the majority classes (``< n_majority``) and over the
    minority classes (each class weighs the same, whatever its test count)."""
    labels = np.asarray(labels)
    per = {int(c): float(np.mean(hits[labels == c])) for c in np.unique(labels)}
    maj = [a for c, a in per.items() if c < n_majority]
    mino = [a for c, a in per.items() if c >= n_majority]
    return (float(np.mean(maj)) if maj else None, float(np.mean(mino)) if mino else None)


def linear_probe_hits(z_train: np.ndarray, y_train: np.ndarray, z_test: np.ndarray,
                      y_test: np.ndarray) -> np.ndarray:
    """Per-test-image correctness of a linear probe: multinomial logistic regression
    (scikit-learn, L-BFGS, weak regularization C = 100, deterministic) fitted on the
    normalized training features."""
    from sklearn.linear_model import LogisticRegression

    probe = LogisticRegression(C=100.0, max_iter=5000)
    probe.fit(z_train, y_train)
    return probe.predict(normalize_rows(z_test)) == np.asarray(y_test)


def epoch_metrics(h_train: np.ndarray, y_train: Sequence[int], h_test: np.ndarray,
                  y_test: Sequence[int], *, k: int, n_majority: int,
                  probe: bool = False) -> dict[str, Any]:
    """All geometry and accuracy metrics of one epoch's features (see the module docstring).

    With test features, also the NCM test accuracy averaged per class over the majority and
    the minority classes (``ncm_test_acc_maj`` / ``_min``) and each test image's hit
    (``ncm_test_hits``, ``pack_hits``); with ``probe``, the same for a linear probe
    (``probe_test_acc``, ``_maj``, ``_min``, ``probe_test_hits``; else ``None``).

    Features holding NaN or inf (a diverged network) get every metric ``None`` but the two
    feature fractions."""
    h_train = np.asarray(h_train, dtype=np.float64)
    h_test = np.asarray(h_test, dtype=np.float64)
    y_train = np.asarray(y_train, dtype=np.int64)
    health = {"zero_features": feature_health(h_train)["zero_rows"],
              "nonfinite_features": feature_health(np.concatenate([h_train, h_test]))["nonfinite_rows"]}
    if health["nonfinite_features"] > 0:
        return {**dict.fromkeys(("delta_gm_of", "delta_gm_etf", "nc1")), **health,
                **dict.fromkeys(COSINE_KEYS), **dict.fromkeys(("ncm_train_acc", *TEST_KEYS)),
                "class_mean_gram": None}
    y_train, k = check_labels(y_train, k, num_classes_name="k")
    check_classes_present(y_train, k, "epoch_metrics")
    geometry = class_geometry(h_train, y_train, k, "project")  # ufm.analyze's geometry
    gram, means = geometry.gram, geometry.means
    z = normalize_rows(h_train)
    test = dict.fromkeys(TEST_KEYS)
    y_test = np.asarray(y_test, dtype=np.int64)
    if y_test.size:
        hits = _ncm_hits(means, h_test, y_test)
        test.update(ncm_test_acc=float(hits.mean()), ncm_test_hits=pack_hits(hits))
        test["ncm_test_acc_maj"], test["ncm_test_acc_min"] = group_accuracies(hits, y_test, n_majority)
        if probe:
            hits = linear_probe_hits(z, y_train, h_test, y_test)
            test.update(probe_test_acc=float(hits.mean()), probe_test_hits=pack_hits(hits))
            test["probe_test_acc_maj"], test["probe_test_acc_min"] = group_accuracies(
                hits, y_test, n_majority)
    return {
        "delta_gm_of": metric_or_none(delta_gm, gram, "of"),
        "delta_gm_etf": metric_or_none(delta_gm, gram, "etf"),
        "nc1": geometry.nc1,
        **health,
        **cosine_summaries(gram, n_majority),
        "ncm_train_acc": ncm_accuracy(means, z, y_train),
        **test,
        "class_mean_gram": np.round(gram, 6).tolist(),
    }
