"""Hand-written full-batch SC loss and gradient through the Gram matrix (the solver's hot path).

With ``S = Z Z^T / tau``, the softmax ``P_il = exp(S_il) / sum_{l' != i} exp(S_il')`` (P_ii = 0)
and ``n_c`` samples in class ``c``, the full-batch loss of unit rows ``Z`` is::

    L = sum_i [ logsumexp_{l != i} S_il - (<z_i, s_{y_i}> - ||z_i||^2) / ((n_{y_i} - 1) tau) ]

where ``s_c`` is the sum of class ``c``'s rows, and its Euclidean gradient in ``Z`` is::

    dL/dZ = ( (P + P^T) Z - 2 (s_y - Z) / (n_y - 1) ) / tau

The N x N work (``S``, ``exp``, ``P``, the two products) runs in ``matmul_dtype`` (float32 by
default); class sums, per-row totals and the loss stay in the input's dtype (float64 in the
solver), which keeps the loss accurate to ~1e-9 relative, enough for line searches near the
optimum. ``value_and_grad_chunked`` does the same in row blocks, never holding an N x N array
(``anchor_block_terms``, which ``ufm.core.sharded`` runs on each device of a mesh).

>>> import jax.numpy as jnp
>>> z = jnp.eye(2)[jnp.array([0, 0, 1, 1])]
>>> loss, grad = value_and_grad(z, jnp.array([0, 0, 1, 1]), jnp.array([2, 2]), 1.0)
>>> round(float(loss), 4)
2.2058
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

__all__ = ["value_and_grad", "value_and_grad_chunked", "anchor_block_terms", "shared_shift_fits"]

# Largest exponent range exp() covers without underflowing to 0 (float32: e^-87; float64: e^-708).
_EXP_RANGE = {jnp.dtype(jnp.float32): 80.0, jnp.dtype(jnp.float64): 700.0}


def shared_shift_fits(tau: float, matmul_dtype=jnp.float32) -> bool:
    """Whether one shared exp shift ``b = max ||z||^2 / tau`` is safe at this ``tau``.

    Logits of unit rows span ``2 / tau``, which must stay inside exp's range in
    ``matmul_dtype`` for ``exp(S - b)`` not to underflow: ``2 / tau < 80`` in float32
    (``tau > 0.025``), ``2 / tau < 700`` in float64 (``tau > 0.00286``).

    Args:
      tau: temperature, a number ``> 0`` (not checked).
      matmul_dtype: ``float32`` or ``float64`` (any other dtype: ``KeyError``).

    Returns:
      ``True`` when one shared shift fits, ``False`` when the row maxima are needed.

    >>> shared_shift_fits(0.1), shared_shift_fits(0.02)
    (True, False)
    """
    return 2.0 / float(tau) < _EXP_RANGE[jnp.dtype(matmul_dtype)]


def _resolve_shift(shared_shift: bool | None, tau, mm) -> bool:
    """``shared_shift`` as given, else decided from a Python-number ``tau``; a JAX-array ``tau``
    (maybe traced) gets the row maxima, which never underflow."""
    if shared_shift is not None:
        return bool(shared_shift)
    return isinstance(tau, (int, float)) and shared_shift_fits(tau, mm)


def _class_terms(z, y, counts, tau):
    """Positive-pair part: per-row mean positive logit and its gradient term (input dtype)."""
    k = counts.shape[0]
    sums = jax.ops.segment_sum(z, y, num_segments=k)  # (k, d)
    denom = jnp.maximum(counts[y] - 1, 1).astype(z.dtype)[:, None]
    has_pos = (counts[y] >= 2).astype(z.dtype)
    others = (sums[y] - z) / denom  # mean of the positives of each anchor
    pos_mean = jnp.sum(z * others, axis=1) / tau
    return pos_mean, others, has_pos


def _softmax_block(zb, z, row_offset, tau, mm_dtype, shared_shift):
    """Rows ``zb`` (block of anchors starting at ``row_offset``) against all of ``z``."""
    s = (zb.astype(mm_dtype) @ z.astype(mm_dtype).T) / tau
    rows = row_offset + jnp.arange(zb.shape[0])
    self_mask = rows[:, None] == jnp.arange(z.shape[0])[None, :]
    s = jnp.where(self_mask, -jnp.inf, s)
    if shared_shift:  # |S_il| <= max ||z||^2 / tau (Cauchy-Schwarz): one shift for all rows
        m = jnp.full((zb.shape[0], 1), jnp.max(jnp.sum(z * z, axis=1)).astype(mm_dtype) / tau)
    else:
        m = jnp.max(s, axis=1, keepdims=True)
    e = jnp.exp(s - m)
    r = jnp.sum(e, axis=1, keepdims=True)
    p = e / r
    lse = m[:, 0].astype(zb.dtype) + jnp.log(r[:, 0].astype(zb.dtype))
    return p, lse


def value_and_grad(z, y, counts, tau, matmul_dtype=jnp.float32, shared_shift: bool | None = None):
    """Full-batch SC loss and its Euclidean gradient in ``z`` (rows used as given).

    With ``S = Z Z^T / tau`` and ``P`` its row softmax over ``l != i`` (module docstring)::

        dL/dZ = ( (P + P^T) Z - 2 (s_y - Z) / (n_y - 1) ) / tau

    (rows of anchors without a positive dropped from ``P``). Uses the symmetry of ``S``: the
    gradient needs ONE N x N x d product ``Q Z`` besides ``Z Z^T``, with
    ``Q = diag(w) P + (diag(w) P)^T`` built elementwise (``w_i`` = 1 when anchor ``i`` has a
    positive), with no transposed product and no N x N transpose. ``S`` and ``Q`` being
    symmetric, from ``N >= 1024`` the work is tiled in ``min(N // 512, 4)`` row blocks and
    only the upper block triangle is formed: ``(b + 1) / (2 b)`` of the Gram's flops and of the
    elementwise work with ``b`` blocks (5/8 with 4); the self-pair mask touches the diagonal
    blocks only, and stays exact. Every
    logit lies in ``[-b, b]``, ``b = max ||z_i||^2 / tau``; when ``2/tau`` fits exp's range
    (tau > 0.025 in float32) one shared shift ``b`` replaces the row maxima: one exp pass.
    ``shared_shift`` forces the choice (``shared_shift_fits(tau)``, for a traced ``tau``); by
    default it is made from a Python-number ``tau``, and a JAX-array ``tau`` uses the row maxima.
    (A run-time ``lax.cond`` between the two was 1.9-3.3x slower on the CPU: it blocks fusion.)

    No argument is checked (the solver's hot path: ``ufm.core.problem.Problem`` checked them).

    Args:
      z: ``N x d`` floating rows of norm ``<= 1`` (unit rows in the solver; not
        re-normalized), ``N >= 1``.
      y: ``(N,)`` integer labels in ``0..k-1``, class by class or in any order.
      counts: ``(k,)`` integer class sizes ``n_c`` matching ``y`` (a class with
        ``n_c < 2`` has no positive: its anchors are dropped).
      tau: temperature ``> 0``, a Python number or a (possibly traced) JAX scalar.
      matmul_dtype: dtype of the N x N work, ``float32`` (default) or ``float64``.
      shared_shift: ``True`` / ``False`` forces one shared exp shift / the row maxima;
        ``None`` decides from a Python-number ``tau`` (``shared_shift_fits``).

    Returns:
      ``(loss, grad)``: the full-batch loss (0-d, ``z``'s dtype; sum convention) and
      ``dL/dZ`` (``N x d``, ``z``'s dtype).

    References:
      Khosla et al., "Supervised Contrastive Learning", NeurIPS 2020 (the loss); DESIGN.md
      section 2. The gradient is derived in the module docstring.
    """
    mm = jnp.dtype(matmul_dtype)
    return _value_and_grad(z, y, counts, tau, mm, _resolve_shift(shared_shift, tau, mm),
                           _n_blocks(jnp.shape(z)[0]))


#: Least anchor rows per block of ``value_and_grad``'s tiled N x N work, and the most blocks
#: (compile time grows with their number: ~0.25 s a block on the 2-core CPU, and the solver
#: inlines the kernel in several jitted pieces); ``N < 2 * _BLOCK_ROWS`` runs as one dense block.
_BLOCK_ROWS = 512
_MAX_BLOCKS = 4


def _n_blocks(n: int) -> int:
    """Row blocks for ``value_and_grad`` at ``n`` rows: ``n // 512``, clipped to ``1 .. 4``."""
    return max(1, min(_MAX_BLOCKS, n // _BLOCK_ROWS))


def _block_bounds(n: int, n_blocks: int) -> list[tuple[int, int]]:
    """``[(start, stop), ...]``: ``n`` rows in blocks of ``ceil(n / n_blocks)``; last shorter."""
    size = -(-n // n_blocks)
    return [(a, min(a + size, n)) for a in range(0, n, size)]


def _triangle_reduce(op, diag, strips, bounds, col_strips=None):
    """Per-row ``op`` (``jnp.sum`` / ``jnp.max``) of an N x N array held as its diagonal blocks and
    the strips right of them: each row's own blocks (axis 1), plus the strips above it read down
    their columns (axis 0). Every ``(i, l)`` pair is reduced exactly once. ``col_strips`` (default
    ``strips``): the values of the lower triangle, when they differ from the upper's (the
    row-maxima path's ``exp(S - m_l)``)."""
    combine = jnp.add if op is jnp.sum else jnp.maximum
    parts = [op(t, axis=1) for t in diag]
    for i, t in enumerate(strips):
        parts[i] = combine(parts[i], op(t, axis=1))
    acc = jnp.concatenate(parts)
    for (_, stop), t in zip(bounds, strips if col_strips is None else col_strips):
        col = op(t, axis=0)
        acc = acc.at[stop:].add(col) if op is jnp.sum else acc.at[stop:].max(col)
    return acc


@partial(jax.jit, static_argnames=("mm", "shared_shift", "n_blocks"))
def _value_and_grad(z, y, counts, tau, mm, shared_shift, n_blocks=1):
    """The tiled kernel. ``S``, the softmax weights and ``Q`` are symmetric, so only the upper
    block triangle is formed: for each row block ``I`` its diagonal block ``S_II`` (the only one
    with self pairs, masked to ``-inf`` exactly) and the strip ``S_I,>I`` right of it. Row sums
    (and row maxima) read the strips along rows and down columns; ``Q Z`` is ``Q_I,>=I Z`` for
    the rows of ``I`` plus ``(Z_I^T Q_I,>I)^T`` for the rows below (a plain product with the small
    ``Z_I^T`` as left factor: no transposed N x N operand). ``n_blocks=1`` is the dense
    computation."""
    pos_mean, others, has_pos = _class_terms(z, y, counts, tau)
    zm = z.astype(mm)
    n, d = z.shape
    zs = zm * jnp.asarray(1.0 / tau, mm)
    w = has_pos.astype(mm)
    bounds = _block_bounds(n, n_blocks)
    # logits: diagonal blocks (self pairs masked) and the strips right of them (no self pair)
    s_diag = [jnp.where(jnp.eye(b - a, dtype=bool), -jnp.inf, zs[a:b] @ zm[a:b].T)
              for a, b in bounds]
    s_strip = [zs[a:b] @ zm[b:].T for a, b in bounds[:-1]]
    if shared_shift:  # Cauchy-Schwarz: |S_il| <= max_i ||z_i||^2 / tau =: m (one exp per logit)
        m = jnp.max(jnp.sum(zm * zm, axis=1)) / jnp.asarray(tau, mm)
        e_diag = [jnp.exp(s - m) for s in s_diag]
        e_strip = [jnp.exp(s - m) for s in s_strip]
        r = _triangle_reduce(jnp.sum, e_diag, e_strip, bounds)
        c = w / r
        q_diag = [(c[a:b, None] + c[None, a:b]) * e for (a, b), e in zip(bounds, e_diag)]
        q_strip = [(c[a:b, None] + c[None, b:]) * e for (a, b), e in zip(bounds, e_strip)]
    else:  # row maxima m_i: q_il = c_i exp(S_il - m_i) + c_l exp(S_il - m_l), still symmetric
        m = _triangle_reduce(jnp.max, s_diag, s_strip, bounds)
        e_diag = [jnp.exp(s - m[a:b, None]) for (a, b), s in zip(bounds, s_diag)]
        e_rows = [jnp.exp(s - m[a:b, None]) for (a, b), s in zip(bounds, s_strip)]
        e_cols = [jnp.exp(s - m[None, b:]) for (a, b), s in zip(bounds, s_strip)]
        r = _triangle_reduce(jnp.sum, e_diag, e_rows, bounds, col_strips=e_cols)
        c = w / r
        q_diag = [c[a:b, None] * e + c[None, a:b] * jnp.exp(s - m[None, a:b])
                  for (a, b), e, s in zip(bounds, e_diag, s_diag)]
        q_strip = [c[a:b, None] * e1 + c[None, b:] * e2
                   for (a, b), e1, e2 in zip(bounds, e_rows, e_cols)]
    rows = [q @ zm[a:b] for (a, b), q in zip(bounds, q_diag)]
    sym_t = jnp.zeros((d, n), mm)  # (Q_I,>I)^T Z_I for the rows below each block, transposed
    for i, ((a, b), q) in enumerate(zip(bounds, q_strip)):
        rows[i] = rows[i] + q @ zm[b:]
        # the barrier keeps XLA from folding the small transpose into the product (a slower dot)
        sym_t = sym_t.at[:, b:].add(jax.lax.optimization_barrier(zm[a:b].T) @ q)
    sym = jnp.concatenate(rows) if len(rows) > 1 else rows[0]
    if len(bounds) > 1:
        sym = sym + sym_t.T
    sym = sym.astype(z.dtype)
    lse = m + jnp.log(r)
    # log r in the solver's dtype: float32 r carries ~1e-7 relative error, i.e. 1e-7 absolute.
    loss = jnp.sum(has_pos * (lse.astype(z.dtype) - pos_mean))
    grad = (sym - 2.0 * has_pos[:, None] * others) / tau
    return loss, grad


def value_and_grad_chunked(z, y, counts, tau, chunk=512, matmul_dtype=jnp.float32,
                           shared_shift: bool | None = None):
    """``value_and_grad`` in blocks of ``chunk`` anchor rows: memory O(chunk * N), not O(N^2).

    Same loss and gradient (up to rounding), accumulated block by block in a ``lax.scan``.

    Args:
      z, y, counts, tau, matmul_dtype, shared_shift: as in ``value_and_grad``.
      chunk: anchor rows per block, an integer ``>= 1`` (static: each value compiles once).

    Returns:
      ``(loss, grad)`` as in ``value_and_grad``.
    """
    mm = jnp.dtype(matmul_dtype)
    return _value_and_grad_chunked(z, y, counts, tau, chunk, mm, _resolve_shift(shared_shift, tau, mm))


@partial(jax.jit, static_argnames=("chunk", "matmul_dtype", "shared_shift"))
def _value_and_grad_chunked(z, y, counts, tau, chunk, matmul_dtype, shared_shift):
    n, d = z.shape
    pos_mean, others, has_pos = _class_terms(z, y, counts, tau)
    n_blocks = -(-n // chunk)
    pad = n_blocks * chunk - n
    z_pad = jnp.pad(z, ((0, pad), (0, 0)))
    w_pad = jnp.pad(has_pos, (0, pad))  # padded anchors weigh 0
    lse_sum, g_cols, g_rows = anchor_block_terms(z_pad, w_pad, z, None, tau, chunk, matmul_dtype,
                                                 shared_shift)
    g_rows = g_rows[:n]
    loss = lse_sum - jnp.sum(has_pos * pos_mean)
    grad = (g_rows + g_cols - 2.0 * has_pos[:, None] * others) / tau
    return loss, grad


def anchor_block_terms(z_anchors, w_anchors, z, row_offset, tau, chunk, matmul_dtype, shared_shift):
    """The N x N part of the loss and gradient for a block of anchor rows, ``chunk`` rows at a time.

    The anchors are rows ``row_offset .. row_offset + A - 1`` of ``z`` (``A = z_anchors.shape[0]``,
    a multiple of ``chunk``; ``row_offset=None`` means 0), weighted by ``w_anchors`` (``has_pos``;
    0 on padding rows, which then add nothing). With ``P`` the anchors' softmax rows over all
    ``N`` keys (self-pair excluded), returns, in ``z``'s dtype:

    - ``sum_i w_i lse_i`` over the block (0-d),
    - ``(diag(w) P)^T Z_anchors`` (``N x d``): the block's part of the gradient through the keys,
    - ``diag(w) P Z`` (``A x d``): the gradient through the anchors' own rows.

    ``value_and_grad_chunked`` runs it once over all rows; ``ufm.core.sharded`` once per device
    over that device's rows (the key parts summed over the devices).
    """
    n, d = z.shape
    zm = z.astype(matmul_dtype)

    def body(carry, b):
        loss, g_cols = carry
        start = b * chunk
        zb = jax.lax.dynamic_slice_in_dim(z_anchors, start, chunk)
        wb = jax.lax.dynamic_slice_in_dim(w_anchors, start, chunk)
        p, lse = _softmax_block(zb, z, start if row_offset is None else row_offset + start, tau,
                                matmul_dtype, shared_shift)
        p = p * wb.astype(p.dtype)[:, None]
        rows = (p @ zm).astype(z.dtype)  # P Z for this block's rows
        g_cols = g_cols + (p.T @ zb.astype(matmul_dtype)).astype(z.dtype)  # P^T Z
        loss = loss + jnp.sum(wb * lse)
        return (loss, g_cols), rows

    n_blocks = z_anchors.shape[0] // chunk
    init = (jnp.zeros((), z.dtype), jnp.zeros((n, d), z.dtype))
    (lse_sum, g_cols), g_rows = jax.lax.scan(body, init, jnp.arange(n_blocks))
    return lse_sum, g_cols, g_rows.reshape(n_blocks * chunk, d)
