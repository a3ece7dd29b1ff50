"""``Problem``: one SC-loss problem under the UFM, validated once where it is built.

A problem is the class counts ``n_1..n_k`` (samples in class order: class 0's samples first),
the temperature ``tau``, whether features are non-negative (``nonneg``: the ReLU, UFM+), the
embedding dimension ``d``, and the batching (``None``: the full batch). DESIGN.md sections 1-3
define each. ``Problem.create`` checks every field once; ``solve``, ``certify``, the local runs,
the dual certificate, the relaxations and the batch check take a ``Problem`` and trust it.

Labels given in any order (a batches.json) are put in class order once by
``Problem.from_labels``, which also returns the permutation back to the file's order.

>>> p = Problem.create([3, 2], tau=0.5, nonneg=True)
>>> p.k, p.n_samples, p.d, p.labels.tolist(), p.batched
(2, 5, 2, [0, 0, 0, 1, 1], False)
>>> Problem.create([3, 2], tau=0)
Traceback (most recent call last):
...
ValueError: tau must be a finite number > 0, in [1e-06, 1e+06], got 0
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Sequence

import numpy as np

from ufm.core.batching import Batching
from ufm.core.checks import check_bool, check_int, check_labels, check_tau
from ufm.core.labels import check_counts, labels_from_counts

__all__ = ["Problem", "as_problem"]


@dataclass(frozen=True, eq=False)
class Problem:
    """A validated problem (build it with ``Problem.create`` or ``Problem.from_labels``).

    Attributes:
      counts: int64 array of k >= 2 class sizes, each >= 2.
      tau: temperature, a finite float > 0.
      nonneg: the ReLU constraint ``Z >= 0`` (UFM+).
      d: embedding dimension >= 1.
      batching: a ``Batching`` over the samples in class order, or ``None`` (full batch).

    References:
      DESIGN.md sections 1-3 (labels, the loss, UFM and UFM+).
    """

    counts: np.ndarray
    tau: float
    nonneg: bool
    d: int
    batching: Batching | None

    @classmethod
    def create(cls, counts: Sequence[int], *, tau: float = 0.1, nonneg: bool = False,
               d: int | None = None, batches: Any = None) -> "Problem":
        """Validate every field once.

        Args:
          counts: samples per class (k >= 2 classes, each >= 2), samples in class order.
          tau: temperature, a finite number in ``[TAU_MIN, TAU_MAX] = [1e-6, 1e6]``
            (``ufm.core.checks.TAU_MIN``: the range float64 carries).
          nonneg: UFM+ (ReLU), ``True`` or ``False``.
          d: embedding dimension, an integer >= 1 (default ``k``).
          batches: ``None`` (full batch), a ``Batching``, a list of index lists or a padded
            2-D int array over the ``N`` samples in class order.

        Returns:
          The ``Problem``.

        Raises:
          ValueError: naming the first bad argument and its range.
        """
        counts = check_counts(counts)
        tau = check_tau(tau)
        nonneg = check_bool("nonneg", nonneg)
        d = counts.size if d is None else check_int("d", d, 1)
        n = int(counts.sum())
        batching = None if batches is None else Batching.coerce(batches, n)
        return cls(counts, tau, nonneg, d, batching)

    @classmethod
    def from_labels(cls, labels: Sequence[int], *, tau: float = 0.1, nonneg: bool = False,
                    d: int | None = None, batches: Any = None,
                    num_classes: int | None = None) -> tuple["Problem", np.ndarray]:
        """A problem from labels in any order (e.g. a batches.json).

        The problem's samples are the labels sorted by class (stable). ``batches`` index the
        ORIGINAL samples; they are renumbered into class order once here.

        Args:
          labels: class of each sample, integers ``0..k-1`` (every class present unless
            ``num_classes`` is given; each class needs >= 2 samples).
          tau, nonneg, d: as for ``create``.
          batches: ``None`` (full batch) or batches over the ORIGINAL sample indices.
          num_classes: the number of classes, an integer >= 1 (``None``: ``max(labels) + 1``).

        Returns:
          ``(problem, order)``: ``order[j]`` is the original index of the problem's sample
          ``j``, so ``z_original[order] = z_problem``.

        Raises:
          ValueError: naming the first bad argument (``labels``, ``num_classes``, ``counts``
            for a class with fewer than 2 samples, ``tau``, ``nonneg``, ``d``, ``batches``).

        >>> p, order = Problem.from_labels([1, 0, 1, 0], batches=[[0, 1], [2, 3]])
        >>> p.counts.tolist(), order.tolist(), p.batching.to_lists()
        ([2, 2], [1, 3, 0, 2], [[2, 0], [3, 1]])
        """
        y, k = check_labels(labels, num_classes)
        counts = np.bincount(y, minlength=k)
        order = np.argsort(y, kind="stable")
        problem = cls.create(counts, tau=tau, nonneg=nonneg, d=d)
        if batches is not None:
            position = np.empty_like(order)
            position[order] = np.arange(order.size)
            batching = Batching.coerce(batches, y.size).renumbered(position)
            problem = replace(problem, batching=batching)
        return problem, order

    # ------------------------------------------------------------------ derived

    @property
    def k(self) -> int:
        """Number of classes."""
        return int(self.counts.size)

    @property
    def n_samples(self) -> int:
        """N = sum of the counts."""
        return int(self.counts.sum())

    @property
    def labels(self) -> np.ndarray:
        """Class of each sample, in class order (``labels_from_counts``)."""
        return labels_from_counts(self.counts)

    @property
    def batched(self) -> bool:
        """Whether the problem has a batching (not the full batch)."""
        return self.batching is not None

    def with_tau(self, tau: float) -> "Problem":
        """The same problem at another temperature.

        Args:
          tau: the new temperature, a finite number > 0.

        Returns:
          A new ``Problem`` (the other fields shared).

        Raises:
          ValueError: naming ``tau`` when it is outside its range.
        """
        return replace(self, tau=check_tau(tau))

    def to_dict(self) -> dict[str, Any]:
        """The JSON-able configuration.

        Returns:
          ``{"counts", "k", "n_samples", "tau", "nonneg", "d", "batches"}`` (``batches``: the
          number of batches, ``None`` for the full batch).
        """
        return {"counts": self.counts.tolist(), "k": self.k, "n_samples": self.n_samples,
                "tau": self.tau, "nonneg": self.nonneg, "d": self.d,
                "batches": None if self.batching is None else len(self.batching)}


def as_problem(counts: Sequence[int] | Problem, *, tau: float | None, nonneg: bool | None,
               d: int | None = None, batches: Any = None) -> Problem:
    """``counts`` if it is a ``Problem`` already, else ``Problem.create`` of the arguments.

    A problem is validated once and not re-checked.

    Args:
      counts: a ``Problem`` (then every other argument must be ``None``), or samples per
        class as for ``Problem.create``.
      tau: temperature > 0, required with counts.
      nonneg: UFM+ (ReLU), required with counts.
      d: embedding dimension (default ``k``).
      batches: as for ``Problem.create``.

    Returns:
      The ``Problem``.

    Raises:
      ValueError: for a ``Problem`` together with other arguments, counts without ``tau``
        or ``nonneg``, or a bad argument (``Problem.create``).

    >>> p = as_problem([2, 2], tau=1.0, nonneg=True)
    >>> as_problem(p, tau=None, nonneg=None) is p
    True
    """
    if isinstance(counts, Problem):
        if tau is not None or nonneg is not None or d is not None or batches is not None:
            raise ValueError("pass either a Problem or counts with tau, nonneg, d and batches, "
                             "not both")
        return counts
    if tau is None or nonneg is None:
        raise ValueError("tau and nonneg are required with counts (or pass a Problem)")
    return Problem.create(counts, tau=tau, nonneg=nonneg, d=d, batches=batches)
