"""``to_jsonable``: results as plain JSON values (a pure function; the file writing is ``ufm.cli.io``).

>>> to_jsonable({"a": np.float64(1.5), "b": np.array([1, 2]), "c": float("nan")})
{'a': 1.5, 'b': [1, 2], 'c': None}
>>> to_json({"x": float("inf"), "y": np.int64(3)})
'{"x": null, "y": 3}'
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

__all__ = ["to_jsonable", "to_json"]


def to_jsonable(obj: Any) -> Any:
    """NumPy scalars and arrays as plain Python numbers and lists; NaN/inf as None.

    Args:
      obj: a dict, list, tuple, NumPy array or scalar, or a plain value.

    Returns:
      The same structure with only JSON types (dict keys as strings).
    """
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


def to_json(obj: Any, **dumps_kwargs: Any) -> str:
    """Strict JSON text of ``obj`` (``to_jsonable`` first, so NaN and inf are ``null``):
    ``json.dumps(..., allow_nan=False)``, which every JSON parser accepts (plain ``json.dumps``
    would write ``NaN`` / ``Infinity``). Every command line prints and writes JSON through it."""
    return json.dumps(to_jsonable(obj), allow_nan=False, **dumps_kwargs)
