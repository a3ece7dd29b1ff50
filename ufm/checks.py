"""Argument checks shared by the core functions (NumPy only; the CLIs check their flags before
calling them).

>>> check_tau(0.1)
0.1
>>> check_tau(0)
Traceback (most recent call last):
...
ValueError: tau must be a finite number > 0, got 0
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Sequence

import numpy as np

__all__ = ["check_tau", "check_int", "check_nonneg_ints", "check_rows"]


def check_int(name: str, value: Any, lo: int) -> int:
    """``value`` as an int; ``ValueError`` unless it is an integer (not a bool) ``>= lo``.

    >>> check_int("k", 3, 2)
    3
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer >= {lo}, got {value!r}")
    if value < lo:
        raise ValueError(f"{name} must be an integer >= {lo}, got {value}")
    return int(value)


def check_tau(tau: Any) -> float:
    """The temperature as a float; ``ValueError`` unless it is a finite number > 0 (a string or
    a bool is not a number here)."""
    try:
        value = float(tau) if not isinstance(tau, (str, bytes, bool)) else math.nan
    except (TypeError, ValueError):
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"tau must be a finite number > 0, got {tau!r}")
    return value


def check_nonneg_ints(name: str, values: Sequence[int]) -> np.ndarray:
    """``values`` as a 1-D int64 array; ``ValueError`` unless non-empty non-negative integers.

    >>> check_nonneg_ints("labels", [1, 0, 1]).tolist()
    [1, 0, 1]
    """
    arr = np.asarray(values)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D sequence of integers, got shape {arr.shape}")
    if arr.dtype.kind not in "iu":
        raise ValueError(f"{name} must be non-negative integers, got dtype {arr.dtype}")
    if arr.min() < 0:
        i = int(np.argmax(arr < 0))
        raise ValueError(f"{name} must be non-negative integers, {name}[{i}] = {int(arr[i])}")
    return arr.astype(np.int64, copy=False)


def check_rows(x: Any, labels: Sequence[int], what: str) -> tuple[np.ndarray, np.ndarray]:
    """``(x as float64, labels as int64)``; ``ValueError`` unless ``x`` is 2-D and finite with
    one row per label, and the labels are non-negative integers.

    >>> x, y = check_rows(np.eye(2), [0, 1], "z")
    >>> x.dtype, y.tolist()
    (dtype('float64'), [0, 1])
    """
    x = np.asarray(x, dtype=np.float64)
    y = check_nonneg_ints("labels", labels)
    if x.ndim != 2 or x.shape[0] != y.size:
        raise ValueError(f"{what} needs one row per label (shape (N, ...) and N labels), got "
                         f"shape {x.shape} and {y.size} labels")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{what} holds NaN or inf")
    return x, y
