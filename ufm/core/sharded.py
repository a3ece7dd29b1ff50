"""The full-batch Gram-path loss and gradient sharded by anchor rows over several devices.

The N x N logits are what must never sit on one device; the ``N x d`` embedding is small (``d``
is). So every device holds all of ``Z`` (replicated: the keys) and the anchor rows
``[j R, (j + 1) R)`` of a 1-D mesh with axis ``"rows"`` (``R = ceil(N / n_dev)``, rounded up to a
multiple of the row chunk), and runs ``ufm.core.gram_grad.anchor_block_terms`` on them: the
same row-chunked algebra as ``value_and_grad_chunked`` (one ``chunk x N`` block of logits at a
time). Its three parts combine as::

    loss = psum_j(sum_{i in rows j} w_i lse_i) - sum_i w_i <z_i, mean of i's positives> / tau
    grad = ( [P Z]_{rows, sharded} + psum_j((diag(w) P)_{rows j}^T Z_{rows j}) - 2 w (s_y - Z)/(n_y - 1) ) / tau

(``w_i`` = 1 when anchor ``i`` has a positive; padding rows, when ``n_dev`` does not divide
``N``, have ``w = 0`` and are never keys, so they change nothing). The only communication is
the two ``psum``s (a scalar and one ``N x d`` array) that ``shard_map`` compiles; the class
terms are ``O(N d)``.

Per device the peak is about ``5 chunk N`` entries of logits in ``matmul_dtype`` (at most
float64, 8 bytes) plus a few ``N x d`` arrays: ``ufm.solvers.memory.sharded_device_bytes``.

On the CPU, several host devices need ``XLA_FLAGS=--xla_force_host_platform_device_count=4``
in the environment before JAX is imported.

>>> import jax.numpy as jnp
>>> z = jnp.eye(2)[jnp.array([0, 0, 1, 1])]
>>> loss, grad = value_and_grad_sharded(z, jnp.array([0, 0, 1, 1]), jnp.array([2, 2]), 1.0,
...                                     make_mesh(1))
>>> round(float(loss), 4)
2.2058
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, PartitionSpec

from ufm.core.gram_grad import _class_terms, _resolve_shift, anchor_block_terms

try:  # JAX >= 0.6 has it at the top level (its replication check: check_vma)
    from jax import shard_map as _shard_map
    _UNCHECKED = {"check_vma": False}
except ImportError:  # pragma: no cover - older JAX
    from jax.experimental.shard_map import shard_map as _shard_map
    _UNCHECKED = {"check_rep": False}

__all__ = ["AXIS", "make_mesh", "shard_rows", "value_and_grad_sharded"]

#: The mesh axis the anchor rows are split over.
AXIS = "rows"


def make_mesh(devices: int) -> Mesh:
    """A 1-D mesh ``("rows",)`` over the first ``devices`` of ``jax.devices()``.

    Args:
      devices: how many devices, an integer in ``[1, len(jax.devices())]``.

    Returns:
      The ``jax.sharding.Mesh``.

    Raises:
      ValueError: naming ``devices`` when it is out of range (with the ``XLA_FLAGS`` hint for
        host devices on the CPU).
    """
    available = jax.devices()
    if isinstance(devices, bool) or not isinstance(devices, (int, np.integer)) or not (
            1 <= devices <= len(available)):
        raise ValueError(
            f"devices must be an integer in [1, {len(available)}] (the devices JAX sees: "
            f"{len(available)} {available[0].platform}), got {devices!r}; on the CPU set "
            "XLA_FLAGS=--xla_force_host_platform_device_count=N before JAX is imported")
    return Mesh(np.array(available[:int(devices)]), (AXIS,))


def shard_rows(n: int, devices: int, chunk: int) -> tuple[int, int]:
    """``(rows per device, chunk)``: the anchor rows each device owns (``ceil(n / devices)``
    rounded up to a multiple of the chunk) and the chunk used (at most the rows per device).

    >>> shard_rows(10, 4, 1024), shard_rows(100, 4, 7)
    ((3, 3), (28, 7))
    """
    per = -(-n // devices)
    chunk = max(1, min(chunk, per))
    return -(-per // chunk) * chunk, chunk


def value_and_grad_sharded(z, y, counts, tau, mesh: Mesh, chunk: int = 1024,
                           matmul_dtype=jnp.float32, shared_shift: bool | None = None):
    """``gram_grad.value_and_grad`` with the anchor rows sharded over ``mesh``'s ``"rows"`` axis.

    Same loss and gradient (up to the order of the sums): see the module docstring. One device
    (a 1-device mesh) is the row-chunked path of ``value_and_grad_chunked``.

    Args:
      z, y, counts, tau, matmul_dtype, shared_shift: as in ``gram_grad.value_and_grad``.
      mesh: a 1-D mesh with axis ``"rows"`` (``make_mesh``).
      chunk: anchor rows per block on each device, an integer ``>= 1`` (static; capped at the
        rows per device, ``shard_rows``).

    Returns:
      ``(loss, grad)`` as in ``gram_grad.value_and_grad`` (``grad`` is ``N x d``; its sharding is
      left to XLA).
    """
    mm = jnp.dtype(matmul_dtype)
    return _value_and_grad_sharded(z, y, counts, tau, mesh, int(chunk), mm,
                                   _resolve_shift(shared_shift, tau, mm))


@partial(jax.jit, static_argnames=("mesh", "chunk", "mm", "shared_shift"))
def _value_and_grad_sharded(z, y, counts, tau, mesh, chunk, mm, shared_shift):
    n, d = z.shape
    per, chunk = shard_rows(n, mesh.shape[AXIS], chunk)
    pad = per * mesh.shape[AXIS] - n
    pos_mean, others, has_pos = _class_terms(z, y, counts, tau)
    z_pad = jnp.pad(z, ((0, pad), (0, 0)))
    w_pad = jnp.pad(has_pos, (0, pad))  # padding anchors weigh 0 (and are no keys)

    def local(z_rows, w_rows, z_all, tau):
        offset = jax.lax.axis_index(AXIS) * per  # first global row of this device's anchors
        lse_sum, g_cols, g_rows = anchor_block_terms(z_rows, w_rows, z_all, offset, tau, chunk,
                                                     mm, shared_shift)
        return jax.lax.psum(lse_sum, AXIS), jax.lax.psum(g_cols, AXIS), g_rows

    rows, whole = PartitionSpec(AXIS), PartitionSpec()
    lse_sum, g_cols, g_rows = _shard_map(
        local, mesh=mesh, in_specs=(rows, rows, whole, whole), out_specs=(whole, whole, rows),
        # the scan's carries start replicated and become per-device sums: psum'd before leaving
        **_UNCHECKED,
    )(z_pad, w_pad, z, tau)
    loss = lse_sum - jnp.sum(has_pos * pos_mean)
    grad = (g_rows[:n] + g_cols - 2.0 * has_pos[:, None] * others) / tau
    return loss, grad
