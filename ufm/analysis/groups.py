"""Majority and minority classes for any class counts, and the cosine summaries by group.

Which classes are the majority (``majority_classes``):

- one class size (balanced): every class is a majority class, there is no minority;
- two sizes (STEP imbalance, DESIGN.md section 1): the classes of the larger size;
- three or more sizes (EXP / long tail, or any custom counts): the classes with
  ``n_c > median(n)``; when none is (the median equals the largest count), those with the
  largest count.

The minority classes are the others. ``deep`` passes its STEP split directly (the first
``n_majority`` classes), which is the two-size rule for its counts.

>>> majority_classes([500, 500, 5, 5]).tolist(), majority_classes([100, 50, 25, 12, 6]).tolist()
([True, True, False, False], [True, True, False, False, False])
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["COSINE_KEYS", "majority_classes", "cosine_summaries", "GROUP_RULE"]

COSINE_KEYS = ("cos_maj_maj", "cos_min_min", "cos_maj_min", "cos_min", "cos_max")

#: The rule of ``majority_classes``, in words (for reports).
GROUP_RULE = ("majority = the larger size when there are two class sizes (STEP), every class when "
              "balanced, else the classes with n_c > median (the largest count if none)")


def majority_classes(counts: Sequence[int]) -> np.ndarray:
    """``(k,)`` booleans: which classes are the majority (module docstring)."""
    n = np.asarray(counts)
    sizes = np.unique(n)
    if sizes.size <= 2:
        return n == sizes[-1]
    above = n > np.median(n)
    return above if above.any() else n == sizes[-1]


def _mean_or_none(values: np.ndarray) -> float | None:
    return float(values.mean()) if values.size else None


def cosine_summaries(gram: np.ndarray, majority: np.ndarray) -> dict[str, float | None]:
    """Mean off-diagonal class-mean cosines by class group, and their min and max.

    Args:
      gram: ``k x k`` class-mean cosines (``G_M``).
      majority: ``(k,)`` booleans, the majority classes (``majority_classes``).

    Returns:
      ``{"cos_maj_maj", "cos_min_min", "cos_maj_min", "cos_min", "cos_max"}``: a group mean is
      ``None`` when the group has no pair; all ``None`` for a zero ``gram`` (every class mean
      zero: no cosines).
    """
    gram = np.asarray(gram)
    k = gram.shape[0]
    if not np.any(gram):
        return dict.fromkeys(COSINE_KEYS)
    maj = np.asarray(majority, dtype=bool)
    off = ~np.eye(k, dtype=bool)
    return {
        "cos_maj_maj": _mean_or_none(gram[off & maj[:, None] & maj[None, :]]),
        "cos_min_min": _mean_or_none(gram[off & ~maj[:, None] & ~maj[None, :]]),
        "cos_maj_min": _mean_or_none(gram[maj[:, None] & ~maj[None, :]]),
        "cos_min": float(gram[off].min()),
        "cos_max": float(gram[off].max()),
    }
