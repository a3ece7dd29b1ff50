"""How much memory a solve needs, estimated from the problem's sizes BEFORE anything is
allocated (NumPy only, no JAX: the command lines check their flags with it before JAX loads).

The estimates follow what ``ufm.solvers.solver.solve`` holds at its peak (float64 = 8 bytes):

- the labels: ``N`` integers (held as int32 and int64 copies: 16 bytes a sample);
- ``method="samples"``: the ``N x d`` iterate with L-BFGS's ``2 m`` history vectors (``m =
  lbfgs_memory``, 10) and ~10 more ``N x d`` arrays (gradient, line-search points, the metrics'
  copies), plus the loss's logits: with the full batch up to ``CHUNK_ABOVE`` samples ~4 dense
  ``N x N`` float64 arrays (logits, their exp, the symmetric weights, the mask), above it
  ~5 blocks of ``1024 x N`` (``ufm.core.gram_grad.value_and_grad_chunked``); with batches ~6
  ``B x B`` arrays per batch (autodiff keeps them) and the gathered ``B x d`` rows;
- ``method="samples"`` on ``devices > 1`` (``ufm.core.sharded``, full batch): the host part
  above, plus on each device ``sharded_device_bytes``: ~5 blocks of ``chunk x N`` logits
  (``chunk = sharded_chunk_rows(N, devices)``: at most ``SHARD_BLOCK_BYTES`` of logits in all)
  and ``SHARD_ROW_COPIES`` ``N x d`` arrays (``Z`` replicated, its ``matmul_dtype`` copy, the
  keys' gradient accumulator and its ``psum``) with the device's ``N / devices`` anchor rows;
  on the CPU the host devices share the host's memory, so the devices' parts add up there;
- ``method="classes"``: the ``k x d`` class vectors with their L-BFGS history, ~6 ``k x k``
  arrays, and the ``N x d`` embedding ``V[labels]`` the result reports (with two copies for the
  metrics);
- under ReLU the ``d x d`` rotation of the orthant phase, when ``d <= 2 k`` (above, it is
  applied in a ``2k``-dimensional subspace).

``check_fits`` turns an estimate into a ``ValueError`` naming ``counts`` when it exceeds the
machine's physical memory (``physical_memory``): a request that can never be served fails at
once instead of after minutes of swapping or an allocation the kernel kills. The command lines
compare the same estimate with the memory available now (``ufm.cli.limits``).

>>> n, what = solve_bytes(6, 2, 2)
>>> n < 2**20, what
(True, 'the N x d float64 embeddings with their L-BFGS history and the dense N x N float64 logits')
"""

from __future__ import annotations

import os

__all__ = ["solve_bytes", "certify_bytes", "physical_memory", "check_fits", "CHUNK_ABOVE",
           "CLASSES_ABOVE", "F64", "SHARD_BLOCK_BYTES", "sharded_chunk_rows", "sharded_device_bytes"]

CHUNK_ABOVE = 8192  # samples; above this the loss runs in row blocks (no N x N array)
CLASSES_ABOVE = 20000  # samples; above this method="auto" solves over class vectors
CHUNK_ROWS = 1024  # anchor rows of a block of the chunked loss
F64 = 8
_LABEL_BYTES = 16  # int32 labels and an int64 copy per sample
_ROW_COPIES = 10  # N x d arrays besides the L-BFGS history (gradient, line search, metrics)
SHARD_BLOCK_BYTES = 2**29  # logits a device holds at once on the sharded path (5 chunk x N blocks)
SHARD_ROW_COPIES = 8  # N x d arrays per device on the sharded path (Z, its copies, the key gradient)


def sharded_chunk_rows(n: int, devices: int) -> int:
    """Anchor rows per block on each device of the sharded loss: as many as keep its ~5 blocks of
    ``chunk x N`` float64 logits within ``SHARD_BLOCK_BYTES`` (at least 8, at most
    ``CHUNK_ROWS``, at most the device's ``ceil(N / devices)`` rows).

    >>> sharded_chunk_rows(100_000, 4), sharded_chunk_rows(10**6, 8), sharded_chunk_rows(100, 4)
    (134, 13, 25)
    """
    n, devices = int(n), int(devices)
    per = -(-n // devices)
    return max(1, min(CHUNK_ROWS, per, max(8, SHARD_BLOCK_BYTES // (5 * F64 * n))))


def sharded_device_bytes(n: int, d: int, devices: int) -> int:
    """Peak memory of ONE device in the sharded loss+gradient (module docstring)::

        5 * chunk * N * 8  +  SHARD_ROW_COPIES * N * d * 8  +  2 * ceil(N / devices) * d * 8

    with ``chunk = sharded_chunk_rows(N, devices)``; never the ``N x N`` logits (``8 N^2``).

    >>> sharded_device_bytes(100_000, 10, 4) / 2**20 < 600   # MiB; dense N x N: 76,294 MiB
    True
    """
    n, d, devices = int(n), int(d), int(devices)
    chunk = sharded_chunk_rows(n, devices)
    per = -(-n // devices)
    return 5 * chunk * n * F64 + SHARD_ROW_COPIES * n * d * F64 + 2 * per * d * F64


def _fmt(n: float) -> str:
    return f"{n:.0f}" if n < 1e15 else f"{n:.3g}"


def solve_bytes(n: int, k: int, d: int, *, method: str = "auto", nonneg: bool = False,
                batch_shape: tuple[int, int] | None = None, lbfgs_memory: int = 10,
                devices: int = 1) -> tuple[int, str]:
    """Peak memory of ``solve`` (module docstring): ``(bytes, what dominates)``.

    Args:
      n: N, the number of samples; k: the number of classes; d: the embedding dimension.
      method: ``"auto"`` (``"classes"`` above ``CLASSES_ABOVE`` samples with the full batch),
        ``"samples"`` or ``"classes"``.
      nonneg: the ReLU constraint (adds the ``d x d`` rotation when ``d <= 2 k``).
      batch_shape: ``(number of batches, largest batch)`` or ``None`` for the full batch.
      lbfgs_memory: L-BFGS's history length.
      devices: devices the full-batch samples loss is sharded over (``ufm.core.sharded``); above
        1 the estimate adds ``devices`` times ``sharded_device_bytes`` (the host devices of the
        CPU share its memory; on GPUs that part sits on the devices, so this overestimates the
        host's share).

    Returns:
      ``(bytes, what)``: the estimate (a Python int, exact for any size) and a phrase naming
      its main parts.
    """
    n, k, d = int(n), int(k), int(d)
    if method == "auto":
        method = "classes" if batch_shape is None and n > CLASSES_ABOVE else "samples"
    rows = n if method == "samples" else k
    total = n * _LABEL_BYTES + rows * d * F64 * (2 * lbfgs_memory + _ROW_COPIES)
    if nonneg and d <= 2 * k:
        total += 3 * d * d * F64
    if method == "classes":
        total += 6 * k * k * F64 + 3 * n * d * F64
        return total, ("the N x d float64 embedding V[labels] and the k x k class Gram of "
                       "the class-vector method")
    if batch_shape is not None:
        nb, size = (int(v) for v in batch_shape)
        total += nb * (6 * size * size + 3 * size * d) * F64
        return total, "the N x d float64 embeddings and 6 B x B float64 arrays per batch"
    if int(devices) > 1:
        total += int(devices) * sharded_device_bytes(n, d, devices)
        return total, (f"the N x d float64 embeddings with their L-BFGS history and, on each of "
                       f"{int(devices)} devices, {sharded_chunk_rows(n, devices)} x N blocks of logits")
    if n > CHUNK_ABOVE:
        total += 5 * min(n, CHUNK_ROWS) * n * F64
        return total, ("the N x d float64 embeddings with their L-BFGS history and 1024 x N "
                       "blocks of logits")
    total += 4 * n * n * F64
    return total, ("the N x d float64 embeddings with their L-BFGS history and the dense N x N "
                   "float64 logits")


def certify_bytes(n: int, k: int, d: int, method: str, *, nonneg: bool = False) -> tuple[int, str]:
    """Peak memory of ``ufm.certify``'s ``certify`` by method: ``reduced`` (the ``k x k`` SDP
    only: it needs the counts, not the labels, so any N), ``full`` (the ``N x N`` SDP, ~40 dense ``N x N`` float64 arrays in the conic
    solver; capped at ``FULL_MAX_N`` anyway), ``dual`` (the solve that gives its point, then the
    ``N x k`` one-hot class sums of ``ufm.certificates.dual``; ``dual-point``: the same at a
    given point, no solve)."""
    n, k, d = int(n), int(k), int(d)
    if method == "full":
        return n * _LABEL_BYTES + 40 * n * n * F64, "the N x N semidefinite relaxation"
    base = 40 * k * k * F64  # the reduced SDP needs the counts only, never the N labels
    if method == "dual-point":  # the point z is given
        return (base + n * _LABEL_BYTES + n * k * F64 + 2 * n * d * F64,
                "the N x k class indicator at the point")
    if method == "dual":
        need, what = solve_bytes(n, k, d, nonneg=nonneg)
        return max(base, need) + n * k * F64, what + ", then the N x k class indicator"
    return base, "the k x k relaxation"


def physical_memory() -> int | None:
    """The machine's physical memory in bytes (``os.sysconf``), or ``None`` where unknown."""
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None
    return pages * size if pages > 0 and size > 0 else None


def _gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB"


def check_fits(nbytes: int, what: str, n: int, budget: int | None = None) -> None:
    """``ValueError`` naming ``counts`` when ``nbytes`` exceeds ``budget`` (default: the
    physical memory; nothing is checked where it is unknown).

    >>> check_fits(2**50, "the N x d embeddings", 10**11, budget=2**30)
    Traceback (most recent call last):
    ...
    ValueError: counts: N = 100000000000 samples needs about 1048576.0 GiB (the N x d embeddings); this machine has 1.0 GiB of memory
    """
    budget = physical_memory() if budget is None else budget
    if budget is not None and nbytes > budget:
        raise ValueError(f"counts: N = {_fmt(n)} samples needs about {_gib(nbytes)} ({what}); this "
                         f"machine has {_gib(budget)} of memory")
