"""The supervised contrastive (SC) loss, sum convention (DESIGN.md section 2).

For batches ``B`` of sample indices, normalized embeddings ``z_i = h_i / ||h_i||`` and
temperature ``tau``::

    L = sum_B sum_{i in B, n_{B,y_i} >= 2} 1/(n_{B,y_i} - 1) sum_{j in B, j != i, y_j = y_i}
        -log( exp(<z_i, z_j>/tau) / sum_{l in B, l != i} exp(<z_i, z_l>/tau) )

Anchors without a positive in their batch add 0 but still act as negatives. ``reduction="mean"``
divides by the number of (batch, anchor) pairs that have a positive.

This is the reference implementation: plain JAX, jit-able and differentiable with autodiff.
The solver uses the hand-written Gram-matrix gradient of ``ufm.gram_grad`` for speed.

>>> import jax.numpy as jnp
>>> h = jnp.array([[1., 0.], [1., 0.], [0., 1.], [0., 1.]])
>>> round(float(scl_loss(h, jnp.array([0, 0, 1, 1]), tau=1.0)), 4)  # 4 * log(1 + 2/e)
2.2058
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ufm.checks import check_tau

__all__ = ["scl_loss", "gram_loss", "normalize", "pad_batches"]


def normalize(h: jax.Array) -> jax.Array:
    """Rows of ``h`` scaled to unit norm; a zero row stays zero with a zero gradient (no NaN),
    while a row holding NaN or inf stays NaN (a diverged network shows in the loss)."""
    sq = jnp.sum(h * h, axis=-1, keepdims=True)
    zero = sq == 0
    # double where: the rsqrt never sees 0, so neither its value nor its derivative overflows
    return jnp.where(zero, 0.0, h * jax.lax.rsqrt(jnp.where(zero, 1.0, sq)))


def pad_batches(batches: Sequence[Sequence[int]] | np.ndarray, n: int | None = None) -> np.ndarray:
    """A list of index lists as one ``(n_batches, max_size)`` int array padded with -1.

    With ``n`` (the number of rows) every index must lie in ``[0, n)`` (``ValueError``
    otherwise: JAX would clamp an out-of-range index silently). A JAX array (maybe traced) is
    passed through unchecked.

    >>> pad_batches([[0, 1, 2], [3]], n=4).tolist()
    [[0, 1, 2], [3, -1, -1]]
    """
    if isinstance(batches, jax.Array) and batches.ndim == 2:  # already padded (maybe traced)
        return batches
    if isinstance(batches, np.ndarray) and batches.ndim == 2:
        out = batches.astype(np.int64)
        if n is not None and np.any((out < -1) | (out >= n)):
            bad = out[(out < -1) | (out >= n)][0]
            raise ValueError(f"batches hold index {bad}, outside [0, {n}) (-1 pads)")
        return out
    sizes = [len(b) for b in batches]
    if not sizes:
        raise ValueError("batches is empty")
    out = np.full((len(sizes), max(sizes)), -1, dtype=np.int64)
    for r, b in enumerate(batches):
        out[r, : len(b)] = np.asarray(b, dtype=np.int64)
    if n is not None:
        filled = np.arange(out.shape[1])[None, :] < np.asarray(sizes)[:, None]
        bad = filled & ((out < 0) | (out >= n))
        if bad.any():
            r, c = np.argwhere(bad)[0]
            raise ValueError(f"batches[{r}] holds index {out[r, c]}, outside [0, {n}) for {n} rows")
    return out


def _check(rows: jax.Array, y: jax.Array, tau, what: str) -> None:
    """Shapes always (static under jit); ``tau`` unless it is a JAX array (maybe a tracer)."""
    if y.ndim != 1 or rows.shape[0] != y.shape[0]:
        raise ValueError(f"labels must be 1-D with one label per row of {what}: got labels of shape "
                         f"{tuple(y.shape)} for {what} of shape {tuple(rows.shape)}")
    if not isinstance(tau, jax.Array):
        check_tau(tau)


def _batch_terms(z: jax.Array, y: jax.Array, valid: jax.Array, tau: float):
    """Per-anchor loss and has-positive flag for one batch (rows may be padding)."""
    return _gram_batch_terms(z @ z.T, y, valid, tau)


def _gram_batch_terms(g: jax.Array, y: jax.Array, valid: jax.Array, tau: float):
    """Per-anchor loss and has-positive flag of one batch given its Gram block ``g``."""
    s = g / tau
    size = g.shape[0]
    off_diag = ~jnp.eye(size, dtype=bool)
    pair = off_diag & valid[:, None] & valid[None, :]
    pos = pair & (y[:, None] == y[None, :])
    n_pos = jnp.sum(pos, axis=1)
    has_pos = valid & (n_pos > 0)
    # Finite fill (not -inf): keeps logsumexp and its gradient NaN-free on empty rows.
    fill = jnp.finfo(s.dtype).min / 2
    lse = jax.nn.logsumexp(jnp.where(pair, s, fill), axis=1)
    pos_mean = jnp.sum(jnp.where(pos, s, 0.0), axis=1) / jnp.maximum(n_pos, 1)
    per_anchor = jnp.where(has_pos, lse - pos_mean, 0.0)
    return per_anchor, has_pos


def scl_loss(
    h: jax.Array,
    labels: jax.Array,
    tau: float = 0.1,
    *,
    batches: Sequence[Sequence[int]] | np.ndarray | None = None,
    normalize: bool = True,
    reduction: str = "sum",
) -> jax.Array:
    """SC loss of embeddings ``h`` (N x d) with integer ``labels`` (N,).

    Args:
      h: embeddings; normalized row-wise first unless ``normalize=False``.
      labels: class of each row.
      tau: temperature > 0.
      batches: list of index lists (or a padded int array, -1 = empty slot); ``None`` is the
        full batch. Each batch's loss is summed.
      normalize: project rows onto the unit sphere first.
      reduction: ``"sum"`` (theory convention) or ``"mean"`` (per anchor with a positive).
    """
    if reduction not in ("sum", "mean"):
        raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")
    h = jnp.asarray(h)
    if not jnp.issubdtype(h.dtype, jnp.floating):
        h = h.astype(jnp.float32)
    y = jnp.asarray(labels)
    if h.ndim != 2:
        raise ValueError(f"h must be N x d, got shape {tuple(h.shape)}")
    _check(h, y, tau, "h")
    z = _normalize(h) if normalize else h
    if batches is None:
        valid = jnp.ones(z.shape[0], dtype=bool)
        per_anchor, has_pos = _batch_terms(z, y, valid, tau)
    else:
        idx = jnp.asarray(pad_batches(batches, z.shape[0]))
        valid = idx >= 0
        safe = jnp.where(valid, idx, 0)
        per_anchor, has_pos = jax.vmap(_batch_terms, in_axes=(0, 0, 0, None))(
            z[safe], y[safe], valid, tau
        )
    total = jnp.sum(per_anchor)
    if reduction == "mean":
        total = total / jnp.maximum(jnp.sum(has_pos), 1)
    return total


def gram_loss(
    g: jax.Array,
    labels: jax.Array,
    tau: float = 0.1,
    *,
    batches: Sequence[Sequence[int]] | np.ndarray | None = None,
) -> jax.Array:
    """The SC loss (sum convention) as a function of the Gram matrix ``G = Z Z^T`` (N x N).

    Convex in ``G``: ``scl_loss(z, ...) == gram_loss(z @ z.T, ...)`` for unit rows. The
    diagonal of ``G`` does not enter (self-pairs are excluded). Used by the certificates.
    """
    g = jnp.asarray(g)
    y = jnp.asarray(labels)
    if g.ndim != 2 or g.shape[0] != g.shape[1]:
        raise ValueError(f"g must be N x N, got shape {tuple(g.shape)}")
    _check(g, y, tau, "g")
    if batches is None:
        per_anchor, _ = _gram_batch_terms(g, y, jnp.ones(g.shape[0], dtype=bool), tau)
        return jnp.sum(per_anchor)
    idx = jnp.asarray(pad_batches(batches, g.shape[0]))
    valid = idx >= 0
    safe = jnp.where(valid, idx, 0)
    blocks = g[safe[:, :, None], safe[:, None, :]]
    per_anchor, _ = jax.vmap(_gram_batch_terms, in_axes=(0, 0, 0, None))(blocks, y[safe], valid, tau)
    return jnp.sum(per_anchor)


_normalize = normalize
