"""The supervised contrastive (SC) loss, sum convention (DESIGN.md section 2).

For batches ``B`` of sample indices, normalized embeddings ``z_i = h_i / ||h_i||`` and
temperature ``tau``::

    L = sum_B sum_{i in B, n_{B,y_i} >= 2} 1/(n_{B,y_i} - 1) sum_{j in B, j != i, y_j = y_i}
        -log( exp(<z_i, z_j>/tau) / sum_{l in B, l != i} exp(<z_i, z_l>/tau) )

Anchors without a positive in their batch add 0 but still act as negatives. ``reduction="mean"``
divides by the number of (batch, anchor) pairs that have a positive.

This is the reference implementation: plain JAX, jit-able and differentiable with autodiff.
The solver uses the hand-written Gram-matrix gradient of ``ufm.core.gram_grad`` for speed.

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

from ufm.core.checks import check_batch_indices, check_int, check_labels, check_tau, is_traced

__all__ = ["scl_loss", "gram_loss", "collapsed_scl_loss", "normalize", "pad_batches"]


def normalize(h: jax.Array) -> jax.Array:
    """Rows of ``h`` scaled to unit norm: ``z_i = h_i / ||h_i||``.

    A zero row stays zero with a zero gradient (no NaN), while a row holding NaN or inf stays
    NaN (a diverged network shows in the loss). Jit-able and differentiable.

    Args:
      h: a floating array of rows along the last axis (e.g. ``N x d`` embeddings).

    Returns:
      An array of ``h``'s shape and dtype whose rows have norm 1 (or are zero).
    """
    sq = jnp.sum(h * h, axis=-1, keepdims=True)
    zero = sq == 0
    # double where: the rsqrt never sees 0, so neither its value nor its derivative overflows
    return jnp.where(zero, 0.0, h * jax.lax.rsqrt(jnp.where(zero, 1.0, sq)))


def pad_batches(batches: Sequence[Sequence[int]] | np.ndarray | jax.Array,
                n: int | None = None) -> np.ndarray | jax.Array:
    """Batches as one ``(n_batches, max_size)`` int array padded with -1.

    Args:
      batches: a list of index lists (each 1-D, integers, no -1 there) or an already padded
        2-D integer array (NumPy or JAX; -1 marks an empty slot).
      n: the number of rows the indices refer to: every index must lie in ``[0, n)`` (JAX
        would clamp an out-of-range gather index silently). ``None``: only negative indices
        are rejected.

    Returns:
      The padded ``(n_batches, max_size)`` int64 NumPy array. A traced JAX array (inside
      ``jit``) has no values to check: only its shape is checked and it is returned as is.

    Raises:
      ValueError: naming ``batches`` for no batch, a 1-D array, non-integer (e.g. float)
        indices and an index outside ``[0, n)`` (``ufm.core.checks.check_batch_indices``); for
        a traced array, a shape other than 2-D.

    >>> pad_batches([[0, 1, 2], [3]], n=4).tolist()
    [[0, 1, 2], [3, -1, -1]]
    """
    if is_traced(batches):
        if batches.ndim != 2:
            raise ValueError(f"batches must be a list of index lists or a 2-D padded int array "
                             f"(-1 pads), got a traced array of shape {batches.shape}")
        return batches
    return check_batch_indices(batches, n)


def _check(rows: jax.Array, labels, tau, what: str, num_classes: int | None) -> jax.Array:
    """Check the arguments at the Python level; return the labels as a JAX array.

    Shapes are static, so they are checked always (also under ``jit``). The values of
    ``labels`` and ``tau`` are checked when they are concrete (``ufm.core.checks.check_labels``,
    ``check_tau``) and skipped when traced: inside ``jit`` / ``grad`` / ``vmap`` there is no
    value to check, and nothing is added to the compiled computation.
    """
    n = rows.shape[0]
    if n == 0 or (what == "h" and rows.shape[1] == 0):
        shape = "N x d with N >= 1 and d >= 1" if what == "h" else "N x N with N >= 1"
        raise ValueError(f"{what} must be {shape}, got shape {tuple(rows.shape)}")
    try:
        y_shape = tuple(np.shape(labels))
    except (TypeError, ValueError):
        raise ValueError(f"labels must be a 1-D sequence of integers, got {type(labels).__name__}") from None
    if len(y_shape) != 1 or y_shape[0] != n:
        raise ValueError(f"labels must be 1-D with one label per row of {what}: got labels of shape "
                         f"{y_shape} for {what} of shape {tuple(rows.shape)}")
    if num_classes is not None:
        check_int("num_classes", num_classes, 1)
    if not is_traced(tau):
        check_tau(tau)
    if is_traced(labels):
        return labels
    y, _ = check_labels(labels, num_classes)
    return labels if isinstance(labels, jax.Array) else jnp.asarray(y)


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
    labels: jax.Array | Sequence[int],
    tau: float | jax.Array = 0.1,
    *,
    batches: Sequence[Sequence[int]] | np.ndarray | jax.Array | None = None,
    normalize: bool = True,
    reduction: str = "sum",
    num_classes: int | None = None,
) -> jax.Array:
    """Supervised contrastive loss of embeddings ``h`` (N x d), sum convention::

        L = sum_B sum_{i in B, n_{B,y_i} >= 2} 1/(n_{B,y_i} - 1) sum_{j in B, j != i, y_j = y_i}
            -log( exp(<z_i, z_j>/tau) / sum_{l in B, l != i} exp(<z_i, z_l>/tau) )

    Args:
      h: embeddings, N x d with N, d >= 1; normalized row-wise first unless
        ``normalize=False`` (then used as given). A zero row has no direction: it is kept as
        the zero vector (every inner product with it is 0, its gradient is 0), so the loss
        stays finite and well defined; a row holding NaN or inf makes the loss NaN (a
        diverged network shows).
      labels: class of each row, integers ``0..k-1``.
      tau: temperature > 0.
      batches: list of index lists (or a padded 2-D int array, -1 = empty slot); ``None`` is
        the full batch. Each batch's loss is summed.
      normalize: project rows onto the unit sphere first.
      reduction: ``"sum"`` (theory convention) or ``"mean"`` (per anchor with a positive).
      num_classes: the number of classes, an integer ``>= 1``; give it to allow classes
        absent from ``labels`` (e.g. a mini-batch that misses some classes).

    Returns:
      The loss, a 0-d JAX array (``>= 0``; an integer ``h`` is cast to float32 first).

    Raises:
      ValueError: naming the argument, before any JAX computation: ``h`` not ``N x d`` with
        ``N, d >= 1``; ``tau`` not a finite number > 0 (a Python number or a 0-d NumPy /
        concrete JAX array); ``labels`` not a 1-D integer array (floats, bools and strings are
        rejected, even integral floats) with one label per row in ``0..k-1`` and every class
        present unless ``num_classes`` is given (then labels must be ``< num_classes`` and
        absent classes are fine: the loss only compares labels); ``batches`` not integer
        indices in ``[0, N)`` (-1 pads only in the padded 2-D form); ``reduction`` not
        ``"sum"`` or ``"mean"``; ``num_classes`` not an integer ``>= 1``.

    Traced values are not checked: inside ``jit`` / ``grad`` / ``vmap`` a traced ``tau``,
    ``labels`` or ``batches`` has no value, so only shapes are checked and, e.g., a traced
    ``tau <= 0`` gives NaN or a meaningless number. Check such values before tracing (or close
    over concrete ones, which are checked once at trace time).

    References:
      Khosla et al., "Supervised Contrastive Learning", NeurIPS 2020 (the loss, ``L^sup_out``);
      Kini et al., "Symmetric Neural-Collapse Representations with Supervised Contrastive
      Loss: The Impact of ReLU and Batching", ICLR 2024 (arXiv:2306.07960) (the sum
      convention of its theory, no ``tau/base_tau`` factor);
      DESIGN.md section 2.
    """
    if reduction not in ("sum", "mean"):
        raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")
    h = jnp.asarray(h)
    if not jnp.issubdtype(h.dtype, jnp.floating):
        h = h.astype(jnp.float32)
    if h.ndim != 2:
        raise ValueError(f"h must be N x d, got shape {tuple(h.shape)}")
    y = _check(h, labels, tau, "h", num_classes)
    idx = None if batches is None else jnp.asarray(pad_batches(batches, h.shape[0]))
    z = _normalize(h) if normalize else h
    if idx is None:
        valid = jnp.ones(z.shape[0], dtype=bool)
        per_anchor, has_pos = _batch_terms(z, y, valid, tau)
    else:
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
    labels: jax.Array | Sequence[int],
    tau: float | jax.Array = 0.1,
    *,
    batches: Sequence[Sequence[int]] | np.ndarray | jax.Array | None = None,
    num_classes: int | None = None,
) -> jax.Array:
    """The SC loss (sum convention) as a function of the Gram matrix ``G = Z Z^T`` (N x N)::

        L(G) = sum_B sum_{i in B, n_{B,y_i} >= 2} [ logsumexp_{l in B, l != i} G_il/tau
               - 1/(n_{B,y_i} - 1) sum_{j in B, j != i, y_j = y_i} G_ij/tau ]

    Convex in ``G``: ``scl_loss(z, ...) == gram_loss(z @ z.T, ...)`` for unit rows. The
    diagonal of ``G`` does not enter (self-pairs are excluded). Used by the certificates.

    Args:
      g: the N x N Gram matrix (N >= 1); any real symmetric matrix (entries are used as given).
      labels, tau, batches, num_classes: as in ``scl_loss``.

    Returns:
      The loss, a 0-d JAX array (sum convention; no ``reduction`` here).

    Raises:
      ValueError: as in ``scl_loss``, naming ``g`` (not ``N x N`` with ``N >= 1``), ``tau``,
        ``labels``, ``batches`` or ``num_classes``; traced values are not checked (only shapes
        are, inside ``jit`` / ``grad``).

    References:
      DESIGN.md sections 2 and 5 (the loss through ``G``, its convexity, the relaxation).
    """
    g = jnp.asarray(g)
    if g.ndim != 2 or g.shape[0] != g.shape[1]:
        raise ValueError(f"g must be N x N, got shape {tuple(g.shape)}")
    y = _check(g, labels, tau, "g", num_classes)
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


def collapsed_scl_loss(v: jax.Array, counts: jax.Array, tau: float | jax.Array) -> jax.Array:
    """The SC loss (sum convention) of the collapsed embedding ``Z = V[labels]`` from the k unit
    class vectors ``V`` (rows of norm 1, not re-normalized), in ``O(k^2 d)``::

        L(V) = sum_c n_c log( n_c - 1 + sum_{c' != c} n_c' exp((<v_c, v_c'> - 1)/tau) )

    (``ufm.core.closed_forms.collapsed_loss`` is the same value in float64 NumPy from the
    class Gram matrix.) JAX, jit-able, differentiable: the solver's ``method="classes"`` and the
    polish of the certificates minimize it.

    Args:
      v: ``k x d`` class vectors of unit norm.
      counts: the ``k`` class sizes (each >= 2), a JAX or NumPy integer array.
      tau: temperature > 0 (not checked here: a traced value in the callers' jitted code).

    Returns:
      The loss, a 0-d JAX array.

    References:
      Kini et al., ICLR 2024 (arXiv:2306.07960); DESIGN.md section 4 (collapsed configurations).

    >>> round(float(collapsed_scl_loss(jnp.eye(2), jnp.array([2, 2]), 1.0)), 4)  # 4 log(1 + 2/e)
    2.2058
    """
    n = jnp.asarray(counts).astype(v.dtype)
    terms = jnp.log(n)[None, :] + (v @ v.T - 1.0) / tau
    k = n.shape[0]
    terms = jnp.where(jnp.eye(k, dtype=bool), jnp.log(n - 1.0)[:, None], terms)
    return jnp.sum(n * jax.nn.logsumexp(terms, axis=1))
