"""Feature networks: CIFAR ResNet-18 and DenseNet-40 (growth 12), Flax linen.

Why linen (not NNX): a linen model is a pure function ``apply(variables, x) -> features`` over
an explicit pytree ``{"params", "batch_stats"}``. Training S seeds at once is then one
``jax.vmap`` over that pytree (and the optimizer state) inside ONE ``jax.jit``-ed step, with no
object state to split and merge; BatchNorm statistics are just another vmapped leaf.

The network output is the PENULTIMATE feature vector ``h`` (the SC loss normalizes it):

- ``resnet18``: 3x3 stem conv (64), no max-pool; BasicBlocks ``[2, 2, 2, 2]`` of widths
  ``64, 128, 256, 512`` (strides 1, 2, 2, 2); global average pool -> ``h`` in R^512,
  11.17M parameters for 3-channel input.
- ``densenet40``: 3x3 stem conv (16); 3 dense blocks of 12 BN-ReLU-Conv3x3 layers (growth 12),
  1x1-conv + 2x2 average-pool transitions (no compression); final BN, global average pool ->
  ``h`` in R^448, 1.04M parameters.

The ReLU on the features (``relu=True``) is applied to ``h`` itself, after the pool; the last
block's own output activation (the ReLU after the final residual sum, or DenseNet's final
BN-ReLU) is left out, so ``relu=False`` really gives features of both signs.

Convolutions (``conv``): ``"xla"`` is ``flax.linen.Conv`` (cuDNN / Eigen / XNNPACK).
``"dotgrad"`` is the same module and parameters with the weight gradient computed by matrix
products (``deep.conv``; 1.2x-2x faster weight gradients on the CPU). ``"auto"`` (the default)
is ``dotgrad`` on the CPU and ``xla`` elsewhere. ``"matmul"`` computes
the same convolution as im2col by shifted slices + ONE matrix product (``MatmulConv``, same
parameters): under ``jax.vmap`` over seeds it becomes a batched matrix product instead of a
grouped convolution whose weight gradient (``batch_group_count > 1``) some backends run slowly.
Which is faster is a per-device question: ``python -m deep.bench --conv ...`` measures it.

BatchNorm: PyTorch's conventions (momentum 0.1, i.e. flax ``momentum=0.9``, eps 1e-5); batch
statistics in training, running averages in evaluation; statistics in float32 even when
``dtype=bfloat16`` (flax reduces in float32). Parameters are always float32.

>>> net = make_model("resnet18", relu=True)
>>> param_count(net), feature_dim(net)
(11168832, 512)
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from deep.configs import ARCHITECTURES, CONVS, resolve_conv
from deep.conv import conv_general_dilated as dotgrad_conv

__all__ = [
    "MatmulConv",
    "ResNet",
    "DenseNet",
    "FeatureNet",
    "ARCHS",
    "make_model",
    "param_count",
    "feature_dim",
]

Dtype = Any

_conv_init = nn.initializers.variance_scaling(2.0, "fan_out", "normal")  # Kaiming (ReLU)


class MatmulConv(nn.Module):
    """Convolution without bias as im2col + one matmul: ``y = patches(x) @ K.reshape(-1, F)``.

    ``patches`` stacks the ``kh*kw`` shifted (strided) slices of the zero-padded input along
    the channel axis in ``(i, j, c)`` order, matching ``K`` of shape ``(kh, kw, C, F)`` (the
    layout of ``flax.linen.Conv``), so both give the same output for the same kernel.
    """

    features: int
    kernel_size: tuple[int, int]
    strides: int = 1
    padding: int = 0
    use_bias: bool = False
    dtype: Dtype = jnp.float32
    kernel_init: Callable = _conv_init

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kh, kw = self.kernel_size
        s, p = self.strides, self.padding
        kernel = self.param("kernel", self.kernel_init, (kh, kw, x.shape[-1], self.features), jnp.float32)
        x, kernel = x.astype(self.dtype), kernel.astype(self.dtype)
        if p:
            x = jnp.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
        ho, wo = (x.shape[1] - kh) // s + 1, (x.shape[2] - kw) // s + 1
        cols = [x[:, i:i + s * (ho - 1) + 1:s, j:j + s * (wo - 1) + 1:s, :]
                for i in range(kh) for j in range(kw)]
        patches = cols[0] if len(cols) == 1 else jnp.concatenate(cols, axis=-1)
        return patches @ kernel.reshape(-1, self.features)


def _conv(impl: str, dtype: Dtype) -> Callable[..., nn.Module]:
    """Factory of bias-free convolutions: ``(features, kernel_size, strides=, padding=)``."""
    if impl == "xla":
        return functools.partial(nn.Conv, use_bias=False, dtype=dtype, kernel_init=_conv_init)
    if impl == "dotgrad":  # the same module and parameters; only the weight gradient differs
        return functools.partial(nn.Conv, use_bias=False, dtype=dtype, kernel_init=_conv_init,
                                 conv_general_dilated=dotgrad_conv)
    if impl == "matmul":
        return functools.partial(MatmulConv, dtype=dtype, kernel_init=_conv_init)
    raise ValueError(f"conv must be one of {', '.join(CONVS[1:])}; got {impl!r}")


def _bn(train: bool, dtype: Dtype, name: str | None = None) -> nn.BatchNorm:
    return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                        dtype=dtype, name=name)


class BasicBlock(nn.Module):
    """Two 3x3 convs with BN; identity or 1x1-conv shortcut; ``relu(out + shortcut)``.

    ``last=True`` returns ``out + shortcut`` without the final ReLU.
    """

    features: int
    strides: int = 1
    last: bool = False
    dtype: Dtype = jnp.float32
    conv: str = "xla"

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        conv = _conv(self.conv, self.dtype)
        y = conv(self.features, (3, 3), strides=self.strides, padding=1)(x)
        y = nn.relu(_bn(train, self.dtype)(y))
        y = conv(self.features, (3, 3), padding=1)(y)
        y = _bn(train, self.dtype)(y)
        if self.strides != 1 or x.shape[-1] != self.features:
            x = conv(self.features, (1, 1), strides=self.strides, padding=0)(x)
            x = _bn(train, self.dtype)(x)
        y = y + x
        return y if self.last else nn.relu(y)


class ResNet(nn.Module):
    """CIFAR ResNet (BasicBlocks, 3x3 stem, no max-pool); returns pooled features (B, 8*width)."""

    stage_sizes: Sequence[int] = (2, 2, 2, 2)
    width: int = 64
    dtype: Dtype = jnp.float32
    conv: str = "xla"

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        x = _conv(self.conv, self.dtype)(self.width, (3, 3), padding=1)(x)
        x = nn.relu(_bn(train, self.dtype)(x))
        n_stages = len(self.stage_sizes)
        for s, n_blocks in enumerate(self.stage_sizes):
            for b in range(n_blocks):
                last = s == n_stages - 1 and b == n_blocks - 1
                x = BasicBlock(self.width * 2**s, strides=2 if (s > 0 and b == 0) else 1,
                               last=last, dtype=self.dtype, conv=self.conv)(x, train)
        return jnp.mean(x, axis=(1, 2))


class DenseNet(nn.Module):
    """DenseNet (BC-free): ``(depth - 4) / 3`` BN-ReLU-Conv3x3 layers per block, 3 blocks.

    Returns the globally pooled output of the final BN (no ReLU), (B, channels).
    """

    depth: int = 40
    growth: int = 12
    stem: int = 16
    n_blocks: int = 3
    dtype: Dtype = jnp.float32
    conv: str = "xla"

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        conv = _conv(self.conv, self.dtype)
        layers = (self.depth - 4) // self.n_blocks
        x = conv(self.stem, (3, 3), padding=1)(x)
        for blk in range(self.n_blocks):
            for _ in range(layers):
                y = conv(self.growth, (3, 3), padding=1)(nn.relu(_bn(train, self.dtype)(x)))
                x = jnp.concatenate([x, y], axis=-1)
            if blk < self.n_blocks - 1:
                x = conv(x.shape[-1], (1, 1), padding=0)(nn.relu(_bn(train, self.dtype)(x)))
                x = nn.avg_pool(x, (2, 2), strides=(2, 2))
        x = _bn(train, self.dtype)(x)
        return jnp.mean(x, axis=(1, 2))


ARCHS: dict[str, Callable[..., nn.Module]] = {
    "resnet18": functools.partial(ResNet, stage_sizes=(2, 2, 2, 2), width=64),
    "densenet40": functools.partial(DenseNet, depth=40, growth=12, stem=16),
    # ResNet-10 at a quarter width (128-d features, 0.31M parameters): CPU-scale experiments
    "resnet-small": functools.partial(ResNet, stage_sizes=(1, 1, 1, 1), width=16),
    # tiny variants: the same code paths at a size a 2-core CPU trains in seconds (tests, smoke runs)
    "resnet-tiny": functools.partial(ResNet, stage_sizes=(1, 1), width=8),
    "densenet-tiny": functools.partial(DenseNet, depth=10, growth=4, stem=8),
}
if tuple(ARCHS) != ARCHITECTURES:  # the light name list the command line offers
    raise ImportError(f"deep.models.ARCHS {tuple(ARCHS)} != deep.configs.ARCHITECTURES {ARCHITECTURES}")


class FeatureNet(nn.Module):
    """Backbone -> features ``h`` (float32), optional ReLU on ``h``, optional linear head.

    Returns ``(h, logits)``; ``logits`` is ``None`` unless ``num_classes`` is set (CE).
    """

    arch: str = "resnet18"
    relu: bool = True
    num_classes: int | None = None
    dtype: Dtype = jnp.float32
    conv: str = "xla"
    activation: str | None = None  # ufm.core.activations name; None: relu / none by ``relu``
    slope: float | None = None  # leaky_relu's alpha

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> tuple[jax.Array, jax.Array | None]:
        h = ARCHS[self.arch](dtype=self.dtype, conv=self.conv, name="backbone")(x.astype(self.dtype), train)
        name = self.activation if self.activation is not None else ("relu" if self.relu else "none")
        if name == "relu":
            h = nn.relu(h)
        elif name != "none":
            from ufm.core.activations import activation_fn

            h = activation_fn(name, self.slope)(h)
        h = h.astype(jnp.float32)
        logits = None
        if self.num_classes is not None:
            logits = nn.Dense(self.num_classes, name="head")(h)
        return h, logits


def make_model(arch: str, *, relu: bool = True, num_classes: int | None = None,
               dtype: str | Dtype = "float32", conv: str = "auto", activation: str | None = None,
               slope: float | None = None) -> FeatureNet:
    """The feature network of a preset ``arch`` (a key of ``ARCHS``); ``activation`` (a name of
    ``ufm.core.activations``, with ``slope`` for leaky_relu) replaces the ``relu`` switch."""
    if activation is not None:
        from ufm.core.activations import check_activation

        activation, slope = check_activation(activation, slope)
    if arch not in ARCHS:
        raise ValueError(f"arch must be one of {', '.join(ARCHS)}; got {arch!r}")
    conv = resolve_conv(conv)
    if conv not in CONVS[1:]:
        raise ValueError(f"conv must be one of {', '.join(CONVS)}; got {conv!r}")
    return FeatureNet(arch=arch, relu=relu, num_classes=num_classes, dtype=jnp.dtype(dtype), conv=conv,
                      activation=activation, slope=slope)


def _abstract_variables(model: nn.Module, image_shape: Sequence[int]):
    x = jax.ShapeDtypeStruct((1, *image_shape), jnp.float32)
    return jax.eval_shape(functools.partial(model.init, train=False), jax.random.PRNGKey(0), x)


def param_count(model: nn.Module, image_shape: Sequence[int] = (32, 32, 3)) -> int:
    """Number of trainable parameters, from shapes only (``jax.eval_shape``, no compute)."""
    params = _abstract_variables(model, image_shape)["params"]
    return int(sum(int(jnp.prod(jnp.array(p.shape))) for p in jax.tree_util.tree_leaves(params)))


def feature_dim(model: nn.Module, image_shape: Sequence[int] = (32, 32, 3)) -> int:
    """Dimension ``d`` of the features ``h`` (shapes only)."""
    x = jax.ShapeDtypeStruct((1, *image_shape), jnp.float32)
    variables = _abstract_variables(model, image_shape)
    h, _ = jax.eval_shape(functools.partial(model.apply, train=False), variables, x)
    return int(h.shape[-1])
