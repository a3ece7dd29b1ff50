"""A convolution whose weight gradient is computed by matrix products (``conv="dotgrad"``).

The forward pass and the input gradient are XLA's own (``lax.conv_general_dilated`` and its
transpose). The weight gradient of a 2-D convolution (NHWC input ``x``, HWIO kernel ``K`` of
size ``kh x kw``, stride ``s``, zero padding; output gradient ``g`` of shape ``(N, Ho, Wo, F)``)
is a sum of ``kh * kw`` products of shifted input slices with ``g``:

    dL/dK[i, j, c, f] = sum_{n, h, w} xpad[n, i + s h, j + s w, c] * g[n, h, w, f],

i.e. ``dK[i, j] = X_ij^T G`` with ``X_ij`` the ``(N Ho Wo) x C`` slice at offset ``(i, j)``
and ``G`` the ``(N Ho Wo) x F`` output gradient, accumulated over chunks of images sized so a
chunk of padded input stays in cache (``chunk_images``).

Why: on the CPU, XLA computes this gradient as a convolution over transposed (CHWN) copies of
the activations; for the large-resolution layers of a small ResNet the transposes and that
convolution took more than half of a training step (profile in docs/performance.md). Layers
whose output has fewer than ``MIN_PIXELS`` pixels keep XLA's weight gradient, which is as fast
there. On a GPU use ``conv="xla"`` (cuDNN); for ``conv="auto"``, ``deep.configs.resolve_conv``
picks ``dotgrad`` on one CPU device and ``xla`` otherwise.

>>> import jax, jax.numpy as jnp
>>> x = jax.random.normal(jax.random.PRNGKey(0), (2, 16, 16, 3))
>>> k = jax.random.normal(jax.random.PRNGKey(1), (3, 3, 3, 4))
>>> f = lambda k: conv_general_dilated(x, k, (1, 1), [(1, 1), (1, 1)],
...                                    dimension_numbers=("NHWC", "HWIO", "NHWC")).sum()
>>> ref = lambda k: jax.lax.conv_general_dilated(x, k, (1, 1), [(1, 1), (1, 1)],
...                                              dimension_numbers=("NHWC", "HWIO", "NHWC")).sum()
>>> bool(jnp.allclose(jax.grad(f)(k), jax.grad(ref)(k), rtol=1e-4, atol=1e-4))
True
"""

from __future__ import annotations

import functools
from typing import Any, Sequence

import jax
import jax.numpy as jnp
from jax import lax

__all__ = ["conv_general_dilated", "weight_grad", "chunk_images", "MIN_PIXELS", "CHUNK_BYTES"]

#: Output pixels (Ho * Wo) from which the weight gradient is computed by products.
MIN_PIXELS = 256
#: Bytes of padded input per chunk of images (about a 2-core CPU's L2 share).
CHUNK_BYTES = 2 * 2**20

_NHWC = lax.conv_dimension_numbers((1, 1, 1, 1), (1, 1, 1, 1), ("NHWC", "HWIO", "NHWC"))


def chunk_images(n: int, padded_image_bytes: int, budget: int = CHUNK_BYTES) -> int:
    """Images per chunk: ``max(1, budget // padded_image_bytes)``, at most ``n``.

    >>> chunk_images(100, 34 * 34 * 16 * 4)
    28
    """
    return int(max(1, min(n, budget // max(1, padded_image_bytes))))


def weight_grad(x: jax.Array, g: jax.Array, kernel_size: Sequence[int], strides: Sequence[int],
                padding: Sequence[tuple[int, int]]) -> jax.Array:
    """``dL/dK`` (HWIO) of an NHWC convolution, by ``kh * kw`` products per chunk of images.

    Args:
      x: input ``(N, H, W, C)``.
      g: output gradient ``(N, Ho, Wo, F)``.
      kernel_size: ``(kh, kw)``.
      strides: ``(sh, sw)``.
      padding: ``((top, bottom), (left, right))`` zero padding.

    Returns:
      ``(kh, kw, C, F)`` in ``x``'s dtype (products accumulate in float32 at least).
    """
    (kh, kw), (sh, sw) = kernel_size, strides
    n, ho, wo, f = g.shape
    c = x.shape[-1]
    xp = jnp.pad(x, ((0, 0), tuple(padding[0]), tuple(padding[1]), (0, 0)))
    acc = jnp.promote_types(x.dtype, jnp.float32)
    m = chunk_images(n, xp.shape[1] * xp.shape[2] * c * xp.dtype.itemsize)
    chunks = -(-n // m)
    m = -(-n // chunks)  # the same number of chunks, as even as possible (100 = 4 x 25, no padding)
    if chunks * m != n:  # zero images contribute nothing
        xp = jnp.pad(xp, ((0, chunks * m - n), (0, 0), (0, 0), (0, 0)))
        g = jnp.pad(g, ((0, chunks * m - n), (0, 0), (0, 0), (0, 0)))

    def products(xc: jax.Array, gc: jax.Array) -> jax.Array:
        g2 = gc.reshape(-1, f)
        cols = [xc[:, i:i + sh * (ho - 1) + 1:sh, j:j + sw * (wo - 1) + 1:sw, :].reshape(-1, c)
                for i in range(kh) for j in range(kw)]
        return jnp.stack([jnp.matmul(col.T, g2, preferred_element_type=acc) for col in cols])

    if chunks == 1:
        dk = products(xp, g)
    else:
        xs = xp.reshape(chunks, m, *xp.shape[1:])
        gs = g.reshape(chunks, m, *g.shape[1:])
        dk = lax.fori_loop(0, chunks, lambda t, a: a + products(xs[t], gs[t]),
                           jnp.zeros((kh * kw, c, f), acc))
    return dk.reshape(kh, kw, c, f).astype(x.dtype)


def _xla_conv(x: jax.Array, k: jax.Array, strides: tuple[int, int],
              padding: tuple[tuple[int, int], tuple[int, int]]) -> jax.Array:
    return lax.conv_general_dilated(x, k, strides, padding, dimension_numbers=_NHWC)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _conv(x: jax.Array, k: jax.Array, strides: tuple[int, int],
          padding: tuple[tuple[int, int], tuple[int, int]]) -> jax.Array:
    return _xla_conv(x, k, strides, padding)


def _conv_fwd(x, k, strides, padding):
    return _conv(x, k, strides, padding), (x, k)


def _conv_bwd(strides, padding, res, g):
    x, k = res
    if g.shape[1] * g.shape[2] < MIN_PIXELS:
        return jax.vjp(lambda x, k: _xla_conv(x, k, strides, padding), x, k)[1](g)
    (dx,) = jax.vjp(lambda x: _xla_conv(x, k, strides, padding), x)[1](g)
    return dx, weight_grad(x, g, k.shape[:2], strides, padding)


_conv.defvjp(_conv_fwd, _conv_bwd)


def _is_nhwc(dn: Any) -> bool:
    if dn is None:
        return False
    if isinstance(dn, lax.ConvDimensionNumbers):
        return tuple(dn) == tuple(_NHWC)
    return tuple(dn) == ("NHWC", "HWIO", "NHWC")


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
                         dimension_numbers=None, feature_group_count=1, precision=None, **kw: Any):
    """Drop-in for ``lax.conv_general_dilated`` (as ``flax.linen.Conv(conv_general_dilated=...)``
    calls it): 2-D NHWC / HWIO convolutions without dilation or groups and with explicit padding
    take the product-based weight gradient (``weight_grad``); anything else is XLA's."""
    simple = (lhs.ndim == 4 and _is_nhwc(dimension_numbers) and feature_group_count == 1
              and not kw and precision is None and not isinstance(padding, str)
              and all(d == 1 for d in (lhs_dilation or (1, 1)))
              and all(d == 1 for d in (rhs_dilation or (1, 1))))
    if not simple:
        return lax.conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=lhs_dilation,
                                        rhs_dilation=rhs_dilation, dimension_numbers=dimension_numbers,
                                        feature_group_count=feature_group_count, precision=precision,
                                        **kw)
    pads = tuple((int(a), int(b)) for a, b in padding)
    return _conv(lhs, rhs, tuple(int(s) for s in window_strides), pads)
