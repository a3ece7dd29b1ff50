"""Class counts and labels: STEP and EXP imbalance, custom counts.

A problem has ``k`` classes with counts ``n_1..n_k`` and ``N = sum n_c`` samples. Labels are
``0..k-1`` laid out class by class (``labels_from_counts``). Every class needs ``n_c >= 2``,
otherwise its samples have no positive and the SC loss ignores them as anchors.

>>> step_counts(4, R=10, rho=0.5, n_min=2)
array([20, 20,  2,  2])
>>> exp_counts(3, R=4, n_max=8)
array([8, 4, 2])
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from ufm.core.checks import check_int, check_labels, check_nonneg_ints

__all__ = [
    "step_counts",
    "exp_counts",
    "labels_from_counts",
    "check_counts",
    "counts_from_labels",
]


def _round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def step_counts(k: int, R: float, rho: float = 0.5, n_min: int = 5) -> np.ndarray:
    """(R, rho)-STEP imbalance: ``round(rho*k)`` minority classes of ``n_min`` samples.

    The other ``k - round(rho*k)`` classes are majority classes with ``round(R*n_min)``
    samples; majority classes come first. ``R = 1`` is balanced. Rounding is half-up.

    Args:
      k: the number of classes, an integer ``>= 2``.
      R: the imbalance ratio ``n_majority / n_min``, a number ``>= 1``.
      rho: the fraction of MINORITY classes, in ``(0, 1)`` (default 0.5).
      n_min: samples per minority class, an integer ``>= 2``.

    Returns:
      ``(k,)`` int64 counts, majority classes first.

    Raises:
      ValueError: naming ``k``, ``n_min``, ``R`` or ``rho`` when it is outside its range.

    References:
      Kini et al., "Symmetric Neural-Collapse Representations with Supervised Contrastive
      Loss: The Impact of ReLU and Batching", ICLR 2024 (arXiv:2306.07960): the STEP
      imbalance of its experiments; DESIGN.md section 1.
    """
    k, n_min = check_int("k", k, 2), check_int("n_min", n_min, 2)
    if not R >= 1:  # also NaN
        raise ValueError(f"R must be >= 1, got {R}")
    if not 0 < rho < 1:
        raise ValueError(f"rho must be in (0, 1), got {rho}")
    n_minority = _round_half_up(rho * k)
    n_major = _round_half_up(R * n_min)
    return np.array([n_major] * (k - n_minority) + [n_min] * n_minority, dtype=np.int64)


def exp_counts(k: int, R: float, n_max: int) -> np.ndarray:
    """EXP (long-tail) imbalance: ``n_c = floor(n_max * R^(-c/(k-1)))`` for ``c = 0..k-1``.

    The smallest class has ``floor(n_max / R)`` samples (a 1e-9 slack absorbs float error).

    Args:
      k: the number of classes, an integer ``>= 2``.
      R: the ratio ``n_max / n_min``, a number ``>= 1``.
      n_max: samples of the largest class (class 0), an integer ``>= 2``.

    Returns:
      ``(k,)`` int64 counts, non-increasing.

    Raises:
      ValueError: naming ``k``, ``n_max`` or ``R`` when it is outside its range, or
        ``counts`` when a class ends up with fewer than 2 samples (``floor(n_max / R) < 2``).

    References:
      DESIGN.md section 1.
    """
    k, n_max = check_int("k", k, 2), check_int("n_max", n_max, 2)
    if not R >= 1:  # also NaN
        raise ValueError(f"R must be >= 1, got {R}")
    c = np.arange(k)
    counts = np.floor(n_max * float(R) ** (-c / (k - 1)) + 1e-9).astype(np.int64)
    check_counts(counts)
    return counts


def check_counts(counts: Sequence[int]) -> np.ndarray:
    """Validate class counts; return them as an int64 array.

    Args:
      counts: a 1-D list of ``k >= 2`` integers, each ``>= 2`` (a class needs a positive).
        Integral floats (``2.0``) are accepted as counts.

    Returns:
      ``(k,)`` int64 counts.

    Raises:
      ValueError: naming ``counts`` for anything else (not 1-D, fewer than 2 classes, a
        non-integer or a count below 2).

    >>> check_counts([3, 2.0]).tolist()
    [3, 2]
    """
    try:
        arr = np.asarray(counts)
    except (TypeError, ValueError):
        raise ValueError("counts must be a 1-D list of k >= 2 integers, each >= 2") from None
    if arr.ndim != 1 or arr.size < 2:
        got = f"{arr.size} class" if arr.ndim == 1 else f"shape {arr.shape}"
        raise ValueError(f"counts needs at least 2 classes (a 1-D list of k >= 2 integers >= 2), got {got}")
    if arr.dtype.kind not in "iuf" or not np.all(np.equal(np.mod(arr, 1), 0)):
        raise ValueError(f"counts must be integers >= 2, got {arr.tolist()}")
    arr = arr.astype(np.int64)
    bad = np.flatnonzero(arr < 2)
    if bad.size:
        raise ValueError(
            f"every class needs >= 2 samples: counts must be integers >= 2 (class {int(bad[0])} "
            f"has {int(arr[bad[0]])})"
        )
    return arr


def labels_from_counts(counts: Sequence[int]) -> np.ndarray:
    """Labels in class order: ``[0]*n_0 + [1]*n_1 + ...`` (int32).

    Args:
      counts: a non-empty 1-D sequence of non-negative integers (an integer dtype; a class
        with count 0 gets no label).

    Returns:
      ``(N,)`` int32 labels, ``N = sum(counts)``.

    Raises:
      ValueError: naming ``counts`` unless it is a non-empty 1-D sequence of non-negative
        integers (``ufm.core.checks.check_nonneg_ints``).

    >>> labels_from_counts([2, 1]).tolist()
    [0, 0, 1]
    """
    counts = check_nonneg_ints("counts", counts)
    return np.repeat(np.arange(counts.size, dtype=np.int32), counts)


def counts_from_labels(labels: Sequence[int], k: int | None = None) -> np.ndarray:
    """Samples per class, ``n_c = #{i : labels_i = c}`` for ``c = 0..k-1``.

    Args:
      labels: integer labels (``ufm.core.checks.check_labels``: float labels are rejected).
      k: the number of classes. ``None``: ``k = max(label) + 1`` and every class must occur
        (``ValueError`` for labels that skip a value, e.g. ``[0, 0, 5, 5]``); given: labels must
        be ``< k`` and an absent class counts 0.

    Returns:
      ``(k,)`` int64 counts.

    Raises:
      ValueError: naming ``labels`` (not 1-D non-negative integers, a skipped class without
        ``k``, a label ``>= k``) or ``k`` (not an integer ``>= 1``).

    >>> counts_from_labels([0, 2, 2], k=4).tolist()
    [1, 0, 2, 0]
    """
    y, k = check_labels(labels, k, num_classes_name="k")
    return np.bincount(y, minlength=k).astype(np.int64)
