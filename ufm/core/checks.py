"""Argument checks shared by the core functions (NumPy only; the CLIs check their flags before
calling them).

Every check raises ``ValueError`` with a one-line message that names the argument and the
allowed range. Values traced by JAX (inside ``jit`` / ``grad`` / ``vmap``) have no value to
check: ``is_traced`` detects them without importing JAX, and the checks that need a value raise
``TypeError`` for them; the JAX functions (``ufm.core.loss``) skip their value checks for tracers.

>>> check_tau(0.1)
0.1
>>> check_tau(0)
Traceback (most recent call last):
...
ValueError: tau must be a finite number > 0, in [1e-06, 1e+06], got 0
>>> check_labels([1, 0, 1])[1]
2
>>> check_labels([0, 0, 5, 5, 9, 9])
Traceback (most recent call last):
...
ValueError: labels must be integers 0..k-1 with every class present (got classes [0, 5, 9], class 1 absent); pass num_classes to allow empty classes
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Sequence

import numpy as np

__all__ = [
    "TAU_MIN",
    "TAU_MAX",
    "check_bool",
    "check_tau",
    "check_int",
    "check_nonneg_ints",
    "check_labels",
    "check_classes_present",
    "check_rows",
    "check_batch_indices",
    "is_traced",
]


#: The temperatures float64 can carry (``check_tau``). Below ``TAU_MIN`` the logits
#: ``<z_i, z_l> / tau`` reach ``1e6`` and beyond, and the loss, a sum of differences of such
#: logits (log-sum-exp minus the positive mean, each of size ``~1/tau``), carries an absolute
#: rounding error of ``~N * 2.2e-16 / tau``: at ``tau = 1e-12`` the computed loss of ``counts
#: 3,3`` lies 1e-4 BELOW the proven optimum, at ``1e-16`` it is 0, and from ``~1e-20`` the
#: gradient (``~N / tau``) squared overflows in L-BFGS (NaN). At ``1e-6`` the error is
#: ``~N * 2e-10``, below the solver's acceptance tolerance (1e-6 relative), and the conic
#: certificates still solve (their objective coefficients are ``1/tau``). Above ``TAU_MAX`` the
#: part of the loss that depends on the geometry is a fraction ``~1/tau`` of the loss: at
#: ``1e6`` the solver's default gap tolerance (1e-12 relative) still resolves it to ``1e-6`` of
#: its range, at ``~1e10`` it resolves nothing, and from ``~1e16`` the float64 loss is the same
#: for every embedding (the solver stalls). Small temperatures are reached by continuation
#: (``ufm.solvers.continuation``) within the range.
TAU_MIN = 1e-6
TAU_MAX = 1e6


def is_traced(x: Any) -> bool:
    """Whether ``x`` is a JAX tracer (an abstract value inside ``jit`` / ``grad`` / ``vmap``).

    Detected from the class hierarchy (a class named ``Tracer`` defined in a ``jax`` module),
    so this module imports without JAX.

    >>> is_traced(1.0), is_traced(np.zeros(2))
    (False, False)
    """
    return any(c.__name__ == "Tracer" and c.__module__.startswith("jax") for c in type(x).__mro__)


def _no_tracer(name: str, value: Any) -> None:
    if is_traced(value):
        raise TypeError(f"{name} is traced (inside jit/grad/vmap): its value cannot be checked; "
                        f"check it before tracing")


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


def check_bool(name: str, value: Any) -> bool:
    """``value`` as a bool; ``ValueError`` unless it is ``True`` or ``False`` (a NumPy bool
    counts; ``1``, ``"yes"`` do not).

    >>> check_bool("nonneg", True)
    True
    """
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def check_tau(tau: Any) -> float:
    """The temperature as a float.

    Accepts a real number (not a bool or a string) or a 0-d NumPy / concrete JAX array of a
    real dtype; ``ValueError`` unless it is finite and in ``[TAU_MIN, TAU_MAX] = [1e-6, 1e6]``,
    the temperatures whose loss float64 carries (see ``TAU_MIN``). A traced ``tau`` (inside
    ``jit`` / ``grad``) cannot be checked: ``TypeError`` (``ufm.core.loss`` skips the check there).

    >>> check_tau(np.float32(0.5))
    0.5
    >>> check_tau(np.array(-0.1))
    Traceback (most recent call last):
    ...
    ValueError: tau must be a finite number > 0, in [1e-06, 1e+06], got -0.1
    """
    _no_tracer("tau", tau)
    shown: Any = repr(tau)
    value = math.nan
    if isinstance(tau, (bool, np.bool_, str, bytes)):
        pass
    elif isinstance(tau, numbers.Real):
        value = float(tau)
        shown = repr(tau) if not isinstance(tau, np.generic) else value
    else:
        try:
            arr = np.asarray(tau)
        except Exception:  # noqa: BLE001 - anything NumPy cannot read is "not a number" here
            arr = None
        if arr is not None and arr.ndim != 0:
            raise ValueError(f"tau must be a finite number > 0 (a scalar), got an array of shape {arr.shape}")
        if arr is not None and arr.dtype.kind in "iuf":
            value = float(arr)
            shown = value
    if not (math.isfinite(value) and TAU_MIN <= value <= TAU_MAX):
        raise ValueError(f"tau must be a finite number > 0, in [{TAU_MIN:g}, {TAU_MAX:g}], got {shown}")
    return value


def check_nonneg_ints(name: str, values: Sequence[int]) -> np.ndarray:
    """``values`` as a 1-D int64 array; ``ValueError`` unless non-empty non-negative integers
    (an integer dtype: float values are rejected even when integral).

    >>> check_nonneg_ints("labels", [1, 0, 1]).tolist()
    [1, 0, 1]
    """
    _no_tracer(name, values)
    try:
        arr = np.asarray(values)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a non-empty 1-D sequence of non-negative integers, got "
                         f"{type(values).__name__} that is not an array") from None
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D sequence of integers, got shape {arr.shape}")
    if arr.dtype.kind not in "iu":
        raise ValueError(f"{name} must be non-negative integers (an integer dtype: floats are "
                         f"rejected even when integral), got dtype {arr.dtype}")
    if arr.min() < 0:
        i = int(np.argmax(arr < 0))
        raise ValueError(f"{name} must be non-negative integers, {name}[{i}] = {int(arr[i])}")
    return arr.astype(np.int64, copy=False)


def _show_classes(present: np.ndarray) -> str:
    if present.size <= 12:
        return str(present.tolist())
    return f"[{', '.join(map(str, present[:5].tolist()))}, ..., {int(present[-1])}] ({present.size} distinct)"


def check_labels(
    labels: Sequence[int],
    num_classes: int | None = None,
    *,
    name: str = "labels",
    num_classes_name: str = "num_classes",
) -> tuple[np.ndarray, int]:
    """Class labels as ``(int64 array, k)``.

    Labels must be a non-empty 1-D array of an integer dtype (floats are rejected even when
    integral, and so are bools and strings), each in ``0..k-1``:

    - ``num_classes=None``: ``k = max(labels) + 1`` and every class ``0..k-1`` must occur (a
      skipped value such as ``[0, 0, 5, 5]`` would create empty classes silently);
    - ``num_classes`` given: ``k = num_classes`` (an integer ``>= 1``), labels must be ``< k``
      and absent classes are allowed (the caller decides whether it can handle them, see
      ``check_classes_present``).

    Args:
      labels: the labels.
      num_classes: the number of classes, or ``None`` to infer it (no class may be absent).
      name, num_classes_name: argument names used in the messages.

    Returns:
      ``(labels as a 1-D int64 array, k)``.

    >>> y, k = check_labels([0, 2, 2], num_classes=4)
    >>> y.tolist(), k
    ([0, 2, 2], 4)
    """
    y = check_nonneg_ints(name, labels)
    present = np.unique(y)
    top = int(present[-1])
    if num_classes is None:
        k = top + 1
        if present.size != k:
            missing = int(np.flatnonzero(np.bincount(y, minlength=k) == 0)[0])
            raise ValueError(f"{name} must be integers 0..k-1 with every class present (got classes "
                             f"{_show_classes(present)}, class {missing} absent); pass "
                             f"{num_classes_name} to allow empty classes")
        return y, k
    k = check_int(num_classes_name, num_classes, 1)
    if top >= k:
        raise ValueError(f"{name} must lie in 0..{k - 1} for {num_classes_name} = {k}, got label {top}")
    return y, k


def check_classes_present(labels: np.ndarray, k: int, what: str, name: str = "labels") -> None:
    """``ValueError`` naming the first empty class unless every class ``0..k-1`` occurs in the
    (already checked) ``labels``; ``what`` says who needs it.

    >>> check_classes_present(np.array([0, 2]), 3, "nc1")
    Traceback (most recent call last):
    ...
    ValueError: labels leave class 1 of k = 3 empty; nc1 needs every class present
    """
    counts = np.bincount(labels, minlength=k)
    empty = np.flatnonzero(counts[:k] == 0)
    if empty.size:
        raise ValueError(f"{name} leave class {int(empty[0])} of k = {k} empty; {what} needs every class present")


def check_rows(
    x: Any,
    labels: Sequence[int],
    what: str,
    num_classes: int | None = None,
    *,
    num_classes_name: str = "num_classes",
) -> tuple[np.ndarray, np.ndarray]:
    """``(x as float64, labels as int64)``; ``ValueError`` unless ``x`` is 2-D, finite, with at
    least one column and one row per label, and the labels pass ``check_labels(labels,
    num_classes)`` (every class present unless ``num_classes`` is given).

    >>> x, y = check_rows(np.eye(2), [0, 1], "z")
    >>> x.dtype, y.tolist()
    (dtype('float64'), [0, 1])
    """
    _no_tracer(what, x)
    try:
        x = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a real N x d array, got {type(x).__name__}") from None
    y, _ = check_labels(labels, num_classes, num_classes_name=num_classes_name)
    if x.ndim != 2 or x.shape[0] != y.size:
        raise ValueError(f"{what} needs one row per label (shape (N, ...) and N labels), got "
                         f"shape {x.shape} and {y.size} labels")
    if x.shape[1] == 0:
        raise ValueError(f"{what} must have d >= 1 columns (shape (N, d)), got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{what} holds NaN or inf")
    return x, y


def check_batch_indices(batches: Any, n: int | None = None) -> np.ndarray:
    """Batches as one ``(n_batches, max_size)`` int64 array padded with -1: the one validation
    of ``ufm.core.batching.Batching.coerce``, in the padded form the JAX loss takes.

    ``batches`` is a ``Batching``, a list of index lists (each 1-D, integer dtype, no -1) or an
    already padded 2-D integer array (NumPy, or a concrete JAX array; -1 marks an empty slot).
    ``ValueError`` naming ``batches`` for no batch, a 1-D array, non-integer indices (floats are
    rejected even when integral), and an index outside ``[0, n)`` (without ``n``: a negative
    index). ``TypeError`` for a traced array.

    >>> check_batch_indices([[0, 1, 2], [3]], n=4).tolist()
    [[0, 1, 2], [3, -1, -1]]
    >>> check_batch_indices([[0, 1.9]], n=4)
    Traceback (most recent call last):
    ...
    ValueError: batches must hold integer sample indices in [0, 4): batches[0] holds floats (dtype float64)
    """
    from ufm.core.batching import Batching

    _no_tracer("batches", batches)
    return Batching.coerce(batches, 2 ** 62 if n is None else n).padded()


