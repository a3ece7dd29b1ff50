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
from typing import Any

__all__ = ["check_tau"]


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
