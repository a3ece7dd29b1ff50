"""A convolution whose weight gradient is computed by matrix products (``conv="dotgrad"``).

The forward pass and the input gradient are XLA's own (``lax.conv_general_dilated`` and its
transpose). The weight gradient of a 2-D convolution (NHWC input ``x``, HWIO kernel ``K`` of
size ``kh x kw``, stride ``s``, zero padding; output gradient ``g`` of shape ``(N, Ho, Wo, F)``)
is a sum of ``kh * kw`` products of shifted input slices with ``g``:

    dL/dK[i, j, c, f] = sum_{n, h, w} xpad[n, i + s h, j + s w, c] * g[n, h, w, f],

i.e. ``dK[i, j] = X_ij^T G`` with ``X_ij`` the ``(N Ho Wo) x C`` slice at offset ``(i, j)``
and ``G`` the ``(N Ho Wo) x F`` output gradient, accumulated over chunks of images sized so a
chunk of padded input stays in cache (``chunk_images``).

When the output has few channels next to the input (a DenseNet layer: ``C`` up to 376 in,
``F = 12`` out) those ``kh * kw`` products have only ``F`` columns each and read ``X`` ``kh * kw``
times. For stride 1 the same sum is ONE product of the unpadded input with the ``kh * kw``
shifted copies of ``g`` side by side (per chunk of images; ``weight_grad_shifted``):

    dL/dK[i, j, c, f] = sum_{n, u, v} x[n, u, v, c] * g[n, u + pt - i, v + pl - j, f]

(``g`` read as zero outside its range; ``pt``, ``pl`` the top and left padding), i.e.
``dK = X^T [G_00 | G_01 | ... ]`` with ``X`` the ``(N H W) x C`` input and ``G_ij`` the shifted
gradient. It is taken where the shifted stack is at most ``SHIFT_RATIO`` times the input
(``kh kw F <= SHIFT_RATIO * C``): 2.1x-6.5x faster than the per-offset products on DenseNet-40's
3x3 layers alone, 1.24x on its whole training step; slower where ``F >= C`` (ResNets, which keep
the per-offset products); measured in docs/performance.md.

Why: on the CPU, XLA computes this gradient as a convolution over transposed (CHWN) copies of
the activations; for the large-resolution layers of a small ResNet the transposes and that
convolution took more than half of a training step (profile in docs/performance.md). Layers
whose output has fewer than ``MIN_PIXELS`` pixels keep XLA's weight gradient, which is as fast
there (the shifted form is taken at any size where it applies). On a GPU use ``conv="xla"``
(cuDNN); for ``conv="auto"``, ``deep.configs.resolve_conv`` picks ``dotgrad`` on one CPU
device and ``xla`` otherwise.

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
import math
from typing import Any, Sequence

import jax
import jax.numpy as jnp
from jax import lax

__all__ = ["conv_general_dilated", "weight_grad", "weight_grad_shifted", "use_shifted",
           "chunk_images", "MIN_PIXELS", "CHUNK_BYTES", "SHIFT_RATIO"]

#: Output pixels (Ho * Wo) from which the weight gradient is computed by products.
MIN_PIXELS = 256
#: Bytes of padded input per chunk of images (about a 2-core CPU's L2 share).
CHUNK_BYTES = 2 * 2**20
#: ``weight_grad_shifted`` where ``kh * kw * F <= SHIFT_RATIO * C`` (and stride 1): measured
#: crossover near ``C = 3 F`` for 3x3 kernels at 32x32 and 16x16 (docs/performance.md).
SHIFT_RATIO = 3

_NHWC = lax.conv_dimension_numbers((1, 1, 1, 1), (1, 1, 1, 1), ("NHWC", "HWIO", "NHWC"))


def chunk_images(n: int, padded_image_bytes: int, budget: int | None = None) -> int:
    """Images per chunk: ``max(1, budget // padded_image_bytes)``, at most ``n``; ``budget``
    defaults to ``CHUNK_BYTES`` (read at each call).

    >>> chunk_images(100, 34 * 34 * 16 * 4)
    28
    """
    budget = CHUNK_BYTES if budget is None else budget
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
    _, ho, wo, f = g.shape
    c = x.shape[-1]
    xp = jnp.pad(x, ((0, 0), tuple(padding[0]), tuple(padding[1]), (0, 0)))
    acc = jnp.promote_types(x.dtype, jnp.float32)

    def products(xc: jax.Array, gc: jax.Array) -> jax.Array:
        g2 = gc.reshape(-1, f)
        cols = [xc[:, i:i + sh * (ho - 1) + 1:sh, j:j + sw * (wo - 1) + 1:sw, :].reshape(-1, c)
                for i in range(kh) for j in range(kw)]
        return jnp.stack([jnp.matmul(col.T, g2, preferred_element_type=acc) for col in cols])

    dk = _sum_over_chunks(products, xp, g, (kh * kw, c, f), acc)
    return dk.reshape(kh, kw, c, f).astype(x.dtype)


def _sum_over_chunks(products: Any, x: jax.Array, g: jax.Array, shape: Sequence[int],
                     dtype: Any) -> jax.Array:
    """``sum_t products(x_t, g_t)`` over chunks of images of ``x`` and ``g`` (axis 0): chunks
    of ``chunk_images`` images of ``x`` (as even as possible: 100 = 4 x 25), the last padded
    with zero images, which contribute nothing; one chunk: one call, else a ``fori_loop``
    accumulating a ``shape`` array of ``dtype``."""
    n = x.shape[0]
    m = chunk_images(n, math.prod(x.shape[1:]) * x.dtype.itemsize)
    chunks = -(-n // m)
    if chunks == 1:
        return products(x, g)
    m = -(-n // chunks)
    if chunks * m != n:
        x = jnp.pad(x, ((0, chunks * m - n),) + ((0, 0),) * (x.ndim - 1))
        g = jnp.pad(g, ((0, chunks * m - n),) + ((0, 0),) * (g.ndim - 1))
    xs = x.reshape(chunks, m, *x.shape[1:])
    gs = g.reshape(chunks, m, *g.shape[1:])
    return lax.fori_loop(0, chunks, lambda t, a: a + products(xs[t], gs[t]),
                         jnp.zeros(shape, dtype))


def use_shifted(kernel_size: Sequence[int], strides: Sequence[int], channels_in: int,
                channels_out: int) -> bool:
    """Whether ``weight_grad_shifted`` applies and pays: stride 1 and
    ``kh * kw * F <= SHIFT_RATIO * C``.

    >>> use_shifted((3, 3), (1, 1), 148, 12), use_shifted((3, 3), (1, 1), 16, 16)
    (True, False)
    """
    kh, kw = kernel_size
    return (tuple(strides) == (1, 1)
            and kh * kw * channels_out <= SHIFT_RATIO * channels_in)


def weight_grad_shifted(x: jax.Array, g: jax.Array, kernel_size: Sequence[int],
                        padding: Sequence[tuple[int, int]]) -> jax.Array:
    """``dL/dK`` (HWIO) of a stride-1 NHWC convolution as one product with shifted gradients.

    ``dK[i, j, c, f] = sum_{n,u,v} x[n, u, v, c] g[n, u + pt - i, v + pl - j, f]`` (``g`` zero
    outside its range): per chunk of images (``chunk_images``, a ``fori_loop``), the
    ``kh * kw`` shifted copies of ``g`` (``lax.pad``, negative where it crops) side by side,
    ``D`` of shape ``(m H W, kh kw F)``, and ``dK += X^T D``. A 1x1 kernel is one product
    ``X^T G``. With several chunks the loop also makes XLA compute ``g`` once (a DenseNet-40
    step at 100 images has several in every layer): with the pads outside a loop it fused
    ``g``'s producer (in a DenseNet, the sum of the later layers' gradient contributions) into
    every pad and recomputed it ``kh * kw`` times (``optimization_barrier`` does not survive
    XLA's CPU pipeline).

    Args:
      x: input ``(N, H, W, C)``.
      g: output gradient ``(N, Ho, Wo, F)``, ``Ho = H + pt + pb - kh + 1`` (stride 1).
      kernel_size: ``(kh, kw)``.
      padding: ``((pt, pb), (pl, pr))`` zero padding (negative crops).

    Returns:
      ``(kh, kw, C, F)`` in ``x``'s dtype (the products accumulate in float32 at least).

    >>> x, g = jnp.ones((1, 4, 4, 1)), jnp.ones((1, 4, 4, 1))
    >>> weight_grad_shifted(x, g, (3, 3), ((1, 1), (1, 1)))[:, :, 0, 0].tolist()
    [[9.0, 12.0, 9.0], [12.0, 16.0, 12.0], [9.0, 12.0, 9.0]]
    """
    kh, kw = kernel_size
    (pt, _), (pl, _) = padding
    _, h, w, c = x.shape
    _, ho, wo, f = g.shape
    acc = jnp.promote_types(x.dtype, jnp.float32)
    dims = (((0,), (0,)), ((), ()))
    if (kh, kw) == (1, 1):
        g = lax.pad(g, jnp.zeros((), g.dtype), ((0, 0, 0), (-pt, h - ho + pt, 0),
                                                (-pl, w - wo + pl, 0), (0, 0, 0)))
        dk = lax.dot_general(x.reshape(-1, c), g.reshape(-1, f), dims, preferred_element_type=acc)
        return dk.reshape(1, 1, c, f).astype(x.dtype)
    zero = jnp.zeros((), g.dtype)

    def products(xc: jax.Array, gc: jax.Array) -> jax.Array:
        # shift (i, j): shifted[n, u, v] = gc[n, u + pt - i, v + pl - j]
        d = jnp.concatenate([lax.pad(gc, zero, ((0, 0, 0), (i - pt, h - ho - i + pt, 0),
                                                (j - pl, w - wo - j + pl, 0), (0, 0, 0)))
                             for i in range(kh) for j in range(kw)], axis=-1)
        return lax.dot_general(xc.reshape(-1, c), d.reshape(-1, kh * kw * f), dims,
                               preferred_element_type=acc)

    dk = _sum_over_chunks(products, x, g, (c, kh * kw * f), acc)
    return dk.reshape(c, kh, kw, f).transpose(1, 2, 0, 3).astype(x.dtype)


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
    shifted = use_shifted(k.shape[:2], strides, k.shape[2], k.shape[3])
    if not shifted and g.shape[1] * g.shape[2] < MIN_PIXELS:
        return jax.vjp(lambda x, k: _xla_conv(x, k, strides, padding), x, k)[1](g)
    (dx,) = jax.vjp(lambda x: _xla_conv(x, k, strides, padding), x)[1](g)
    if shifted:
        return dx, weight_grad_shifted(x, g, k.shape[:2], padding)
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
        return lax.conv_general_dilated(
            lhs, rhs, window_strides, padding, lhs_dilation=lhs_dilation,
            rhs_dilation=rhs_dilation, dimension_numbers=dimension_numbers,
            feature_group_count=feature_group_count, precision=precision, **kw)
    pads = tuple((int(a), int(b)) for a, b in padding)
    return _conv(lhs, rhs, tuple(int(s) for s in window_strides), pads)
