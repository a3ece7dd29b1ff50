"""Argument checks shared by the core functions (standard library only; the CLIs check their
flags before calling them).

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
from typing import Any

__all__ = ["check_tau", "check_int"]


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
