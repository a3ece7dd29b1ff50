"""``Batching``: the one representation of a family of batches (DESIGN.md sections 2 and 6).

A batching is a list of batches, each a list of sample indices into ``0..N-1``; repeated
batches (epochs) count repeatedly. It is stored flat, as compressed rows (CSR)::

    batch b = indices[offsets[b] : offsets[b + 1]]

Why this form: it holds ragged batches (a last, smaller batch; binding batches of size
``B + k``) without padding, costs 16 bytes per index whatever the sizes, and every consumer
works from it without copying a Python list per batch: the batch-condition check sorts the flat
arrays (``theory_checks.interaction``; a million samples in seconds), the JAX loss takes the
padded ``(n_batches, max_size)`` array ``padded()`` gives once, and the relaxations and the dual
certificate iterate over the rows. Validation happens once, in ``Batching.coerce``: every other
function takes a ``Batching`` and trusts it.

>>> b = Batching.coerce([[0, 1, 2], [3, 1]], n_samples=4)
>>> len(b), b.sizes.tolist(), b.padded().tolist()
(2, [3, 2], [[0, 1, 2], [3, 1, -1]])
>>> Batching.coerce([[0, 5]], n_samples=4)
Traceback (most recent call last):
...
ValueError: batches[0] holds index 5, outside [0, 4) (out of range)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np

__all__ = ["Batching", "BATCHES_FORM"]

_UNBOUNDED = 2 ** 62  # "no N given": only negative indices are out of range


def _kind(arr: np.ndarray) -> str:
    """What a non-integer array holds, in words (for messages)."""
    what = {"b": "booleans", "f": "floats", "c": "complex numbers"}.get(arr.dtype.kind,
                                                                      "non-integers")
    return f"{what} (dtype {arr.dtype})"


#: What ``batches`` may be, for error messages.
BATCHES_FORM = "a list of index lists or a 2-D padded int array (-1 pads)"


@dataclass(frozen=True, eq=False)
class Batching:
    """Batches as one flat index array and row offsets (see the module docstring).

    Attributes:
      indices: int64 array of every batch's sample indices, batch after batch.
      offsets: int64 array of ``len + 1`` row starts (``offsets[0] = 0``).
      n_samples: N; every index lies in ``[0, N)``.

    Build it with ``Batching.coerce`` (validates) or ``Batching.full`` (one batch of all).

    References:
      DESIGN.md sections 2 (the batched loss) and 6 (batches, batches.json).
    """

    indices: np.ndarray
    offsets: np.ndarray
    n_samples: int

    # ------------------------------------------------------------------ construction

    @classmethod
    def full(cls, n_samples: int) -> "Batching":
        """The full batch: one batch holding ``0..N-1``.

        Args:
          n_samples: N, an integer ``>= 0`` (not checked).

        Returns:
          The ``Batching`` of one batch, ``[0, 1, ..., N-1]``.

        >>> Batching.full(3).to_lists()
        [[0, 1, 2]]
        """
        return cls(np.arange(n_samples, dtype=np.int64), np.array([0, n_samples], dtype=np.int64),
                   int(n_samples))

    @classmethod
    def coerce(cls, batches: Any, n_samples: int, *, allow_empty: bool = True) -> "Batching":
        """Validate ``batches`` once and return it as a ``Batching``.

        Args:
          batches: a ``Batching`` (its ``n_samples`` must match), a sequence of index sequences,
            or a 2-D padded integer array (NumPy, or a concrete JAX array; ``-1`` pads).
          n_samples: N, the number of samples the indices refer to.
          allow_empty: whether a batch may be empty (the loss ignores it; the batch-condition
            check does not allow it).

        Returns:
          The ``Batching`` (``batches`` itself when it is one with the same ``n_samples``).

        Raises:
          ValueError: naming ``batches`` for no batch, a 1-D array, a non-integer index
            (floats and booleans are rejected even when integral), an index outside
            ``[0, N)``, or (``allow_empty=False``) an empty batch.
        """
        n = int(n_samples)
        if isinstance(batches, Batching):
            out = batches
            if out.n_samples != n:  # e.g. from_lists without N: re-check the range against N
                out = cls._checked(out.indices, out.offsets, n)
        elif hasattr(batches, "ndim") and hasattr(batches, "shape"):
            out = cls._from_padded(batches, n)
        else:
            out = cls._from_rows(batches, n)
        if not allow_empty and np.any(out.sizes == 0):
            r = int(np.argmax(out.sizes == 0))
            raise ValueError(f"batch {r} is empty (batches[{r}] holds no index)")
        return out

    @classmethod
    def from_lists(cls, batches: Sequence[Sequence[int]], n_samples: int | None = None) -> "Batching":
        """``coerce`` with ``N`` inferred as the largest index + 1 when not given.

        Args:
          batches: as for ``coerce``.
          n_samples: N; ``None``: the largest index + 1 (0 when every batch is empty).

        Returns:
          The ``Batching``.

        Raises:
          ValueError: naming ``batches``, as in ``coerce`` (a negative index, also when
            ``n_samples`` is inferred).

        >>> Batching.from_lists([[0, 1], [2, 3, 4]]).n_samples
        5
        """
        if n_samples is None:
            probe = cls.coerce(batches, _UNBOUNDED)
            n_samples = int(probe.indices.max()) + 1 if probe.indices.size else 0
            return cls(probe.indices, probe.offsets, n_samples)
        return cls.coerce(batches, n_samples)

    @classmethod
    def _checked(cls, flat: np.ndarray, offsets: np.ndarray, n: int) -> "Batching":
        bad = (flat < 0) | (flat >= n)
        if bad.any():
            pos = int(np.argmax(bad))
            r = int(np.searchsorted(offsets, pos, side="right") - 1)
            raise ValueError(f"batches[{r}] holds index {flat[pos]}, outside [0, {n}) (out of range)")
        return cls(flat, offsets, n)

    @classmethod
    def _from_padded(cls, batches: Any, n: int) -> "Batching":
        arr = np.asarray(batches)
        if arr.ndim != 2:
            raise ValueError(f"batches must be {BATCHES_FORM}, got an array of shape {arr.shape}")
        if arr.shape[0] == 0:
            raise ValueError("batches is empty (it needs at least one batch)")
        if arr.size and arr.dtype.kind not in "iu":
            raise ValueError(f"batches must hold integer sample indices in [0, {n}) (-1 pads), "
                             f"got {_kind(arr)}")
        arr = arr.astype(np.int64, copy=False)
        bad = (arr < -1) | (arr >= n)
        if bad.any():
            raise ValueError(f"batches hold index {arr[bad][0]}, outside [0, {n}) (out of range; "
                             "-1 pads)")
        keep = arr >= 0
        sizes = keep.sum(axis=1)
        offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        return cls(arr[keep], offsets, n)

    @classmethod
    def _from_rows(cls, batches: Any, n: int) -> "Batching":
        if isinstance(batches, (str, bytes, dict)) or not hasattr(batches, "__len__"):
            raise ValueError(f"batches must be {BATCHES_FORM}, got {type(batches).__name__}")
        if len(batches) == 0:
            raise ValueError("batches is empty (it needs at least one batch)")
        rows = list(batches)
        if all(isinstance(b, np.ndarray) and b.ndim == 1 and b.dtype.kind in "iu" for b in rows):
            parts = rows  # fast path: arrays (theory_checks.io, schedules)
        else:
            parts = []
            for r, b in enumerate(rows):
                if isinstance(b, (str, bytes, dict)):
                    raise ValueError(f"batches must be {BATCHES_FORM}: batches[{r}] is not a flat "
                                     f"list of indices (a {type(b).__name__})")
                if isinstance(b, (list, tuple)) and any(isinstance(v, bool) for v in b):
                    raise ValueError(f"batches[{r}] must hold integer sample indices, got booleans")
                try:
                    arr = np.asarray(b)
                except (TypeError, ValueError):
                    raise ValueError(f"batches must be {BATCHES_FORM}: batches[{r}] is ragged "
                                     "or not numeric") from None
                if arr.ndim != 1:
                    raise ValueError(f"batches must be {BATCHES_FORM}: batches[{r}] is not a flat "
                                     f"list of indices (shape {arr.shape})")
                if arr.size and arr.dtype.kind not in "iu":
                    raise ValueError(f"batches must hold integer sample indices in [0, {n}): "
                                     f"batches[{r}] holds {_kind(arr)}")
                parts.append(arr)
        sizes = np.fromiter((p.size for p in parts), dtype=np.int64, count=len(parts))
        offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        flat = (np.concatenate(parts).astype(np.int64, copy=False) if offsets[-1]
                else np.zeros(0, dtype=np.int64))
        return cls._checked(flat, offsets, n)

    # ------------------------------------------------------------------ views

    @property
    def sizes(self) -> np.ndarray:
        """Samples per batch (int64 array)."""
        return np.diff(self.offsets)

    @property
    def is_full(self) -> bool:
        """Whether this is exactly one batch holding every sample once, in order."""
        return len(self) == 1 and self.indices.size == self.n_samples and bool(
            np.array_equal(self.indices, np.arange(self.n_samples)))

    def __len__(self) -> int:
        return int(self.offsets.size - 1)

    def __iter__(self) -> Iterator[np.ndarray]:
        for b in range(len(self)):
            yield self.indices[self.offsets[b]:self.offsets[b + 1]]

    def batch(self, b: int) -> np.ndarray:
        """The indices of batch ``b``.

        Args:
          b: the batch number, ``0 <= b < len(self)`` (not checked).

        Returns:
          An int64 view into ``indices`` (do not modify it).
        """
        return self.indices[self.offsets[b]:self.offsets[b + 1]]

    def padded(self) -> np.ndarray:
        """``(n_batches, max_size)`` int64 array, rows padded with ``-1`` (the JAX loss's form).

        Returns:
          A new int64 array; ``max_size`` is the largest batch size (0 with no index at all).

        >>> Batching.coerce([[2], [0, 1]], 3).padded().tolist()
        [[2, -1], [0, 1]]
        """
        sizes = self.sizes
        width = int(sizes.max()) if sizes.size else 0
        out = np.full((len(self), width), -1, dtype=np.int64)
        cols = np.arange(self.indices.size) - np.repeat(self.offsets[:-1], sizes)
        out[np.repeat(np.arange(len(self)), sizes), cols] = self.indices
        return out

    def to_lists(self) -> list[list[int]]:
        """Plain lists (batches.json's form).

        Returns:
          One list of Python ints per batch, in order.
        """
        return [b.tolist() for b in self]

    def renumbered(self, new_index: np.ndarray) -> "Batching":
        """The same batches with sample ``i`` renamed ``new_index[i]``.

        E.g. to put the samples of a batches.json in class order (``Problem.from_labels``).

        Args:
          new_index: ``(N,)`` integer array, a permutation of ``0..N-1`` (not checked).

        Returns:
          A new ``Batching`` with the same offsets and ``n_samples``.

        >>> Batching.coerce([[0, 2]], 3).renumbered(np.array([2, 0, 1])).to_lists()
        [[2, 1]]
        """
        new_index = np.asarray(new_index, dtype=np.int64)
        return Batching(new_index[self.indices], self.offsets, self.n_samples)

    def __repr__(self) -> str:
        sizes = self.sizes
        lo, hi = (int(sizes.min()), int(sizes.max())) if sizes.size else (0, 0)
        return f"Batching({len(self)} batches of sizes {lo}..{hi}, N={self.n_samples})"
