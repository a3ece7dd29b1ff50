"""On-device augmentation (pure JAX, runs inside the jitted training step).

``augment``: for every image independently, zero-pad ``pad`` pixels on each side, take a
random ``H x W`` crop (offsets uniform in ``0..2*pad``), flip left-right with probability 1/2
(if ``flip``), then standardize per channel: ``(x/255 - mean) / std``. This is torchvision's
``RandomCrop(32, padding=4)``, ``RandomHorizontalFlip``, ``Normalize`` order (padding is a
black pixel before normalization). ``two_views`` draws two independent augmentations (SCL).

>>> import jax, jax.numpy as jnp
>>> x = jnp.arange(2 * 4 * 4, dtype=jnp.uint8).reshape(2, 4, 4, 1)
>>> v = augment(jax.random.PRNGKey(0), x, jnp.zeros(1), jnp.ones(1) / 255.0, pad=0, flip=False)
>>> bool((v == x.astype(jnp.float32)).all())
True
>>> two_views(jax.random.PRNGKey(1), x, jnp.zeros(1), jnp.ones(1), pad=1, flip=True).shape
(4, 4, 4, 1)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["standardize", "augment", "two_views"]


def standardize(x: jax.Array, mean: jax.Array, std: jax.Array, dtype=jnp.float32) -> jax.Array:
    """uint8 images to ``(x/255 - mean) / std`` in ``dtype`` (per-channel mean and std)."""
    return ((x.astype(jnp.float32) / 255.0 - mean) / std).astype(dtype)


def _crop(img: jax.Array, oy: jax.Array, ox: jax.Array, h: int, w: int) -> jax.Array:
    return jax.lax.dynamic_slice(img, (oy, ox, 0), (h, w, img.shape[-1]))


def augment(key: jax.Array, x: jax.Array, mean: jax.Array, std: jax.Array, *, pad: int,
            flip: bool, dtype=jnp.float32) -> jax.Array:
    """One random crop (+ flip) per image of the uint8 batch ``x`` (B, H, W, C), standardized."""
    b, h, w, _ = x.shape
    k_off, k_flip = jax.random.split(key)
    if pad > 0:
        xp = jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
        off = jax.random.randint(k_off, (2, b), 0, 2 * pad + 1)
        x = jax.vmap(_crop, in_axes=(0, 0, 0, None, None))(xp, off[0], off[1], h, w)
    if flip:
        do = jax.random.bernoulli(k_flip, 0.5, (b, 1, 1, 1))
        x = jnp.where(do, x[:, :, ::-1, :], x)
    return standardize(x, mean, std, dtype)


def two_views(key: jax.Array, x: jax.Array, mean: jax.Array, std: jax.Array, *, pad: int,
              flip: bool, dtype=jnp.float32) -> jax.Array:
    """Two independent augmentations of ``x`` stacked as ``[view1; view2]`` (2B, H, W, C)."""
    k1, k2 = jax.random.split(key)
    return jnp.concatenate([augment(k1, x, mean, std, pad=pad, flip=flip, dtype=dtype),
                            augment(k2, x, mean, std, pad=pad, flip=flip, dtype=dtype)])
