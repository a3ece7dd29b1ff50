"""deep.models: parameter counts of the real presets (shapes only) and tiny forward passes."""

from __future__ import annotations

import functools

import pytest

pytest.importorskip("flax")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from deep.models import ARCHS, feature_dim, make_model, param_count  # noqa: E402


def test_resnet18_parameter_count():
    n = param_count(make_model("resnet18"), (32, 32, 3))
    assert 11.1e6 < n < 11.3e6, n  # 11,168,832: the CIFAR ResNet-18 without its classifier
    assert feature_dim(make_model("resnet18")) == 512


def test_densenet40_parameter_count():
    n = param_count(make_model("densenet40"), (32, 32, 3))
    assert 0.95e6 < n < 1.1e6, n  # growth 12, no bottleneck/compression: ~1.0M
    assert feature_dim(make_model("densenet40")) == 16 + 3 * 12 * 12


def test_ce_head_adds_a_linear_layer():
    assert param_count(make_model("resnet18", num_classes=10)) == param_count(make_model("resnet18")) + 512 * 10 + 10


@pytest.mark.parametrize("arch", list(ARCHS))
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_output_shapes(arch, dtype):
    net = make_model(arch, num_classes=10, dtype=dtype)
    x = jax.ShapeDtypeStruct((5, 32, 32, 3), jnp.float32)
    variables = jax.eval_shape(functools.partial(net.init, train=False), jax.random.PRNGKey(0), x)
    assert all(p.dtype == jnp.float32 for p in jax.tree_util.tree_leaves(variables["params"]))
    (h, logits), _ = jax.eval_shape(
        functools.partial(net.apply, train=True, mutable=["batch_stats"]), variables, x)
    assert h.shape == (5, feature_dim(net)) and h.dtype == jnp.float32
    assert logits.shape == (5, 10)


def test_relu_flag_on_tiny_resnet():
    x = jnp.asarray(np.random.default_rng(1).normal(size=(6, 32, 32, 1)), jnp.float32)
    out = {}
    with jax.threefry_partitionable(False):  # compiles the initializers much faster on CPU
        v = jax.jit(functools.partial(make_model("resnet-tiny").init, train=False))(
            jax.random.PRNGKey(0), x)
    for relu in (True, False):  # the ReLU has no parameters: one set serves both
        net = make_model("resnet-tiny", relu=relu)
        apply = jax.jit(functools.partial(net.apply, train=True, mutable=["batch_stats"]))
        (h, _), _ = apply(v, x)
        out[relu] = np.asarray(h)
    assert out[True].shape == (6, 16) and np.all(np.isfinite(out[True]))
    assert np.all(out[True] >= 0)
    assert np.any(out[False] < 0)  # without --relu the features take both signs
    np.testing.assert_allclose(out[True], np.maximum(out[False], 0), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("strides,padding,k", [(1, 1, 3), (2, 1, 3), (2, 0, 1)])
def test_matmul_conv_equals_flax_conv(strides, padding, k):
    import flax.linen as nn

    from deep.models import MatmulConv

    x = jnp.asarray(np.random.default_rng(0).normal(size=(3, 9, 9, 4)), jnp.float32)
    ref = nn.Conv(5, (k, k), strides=strides, padding=padding, use_bias=False)
    mine = MatmulConv(5, (k, k), strides=strides, padding=padding)
    v = ref.init(jax.random.PRNGKey(0), x)
    assert jax.tree_util.tree_map(jnp.shape, v) == jax.tree_util.tree_map(
        jnp.shape, mine.init(jax.random.PRNGKey(0), x))
    np.testing.assert_allclose(jax.jit(mine.apply)(v, x), jax.jit(ref.apply)(v, x), atol=1e-5)


def test_matmul_conv_presets_have_the_same_parameters():
    for arch in ("resnet18", "densenet40"):
        assert param_count(make_model(arch, conv="matmul")) == param_count(make_model(arch))


def test_cli_choices_match_the_presets():
    """The JAX-free CLIs list the presets by hand; they must name exactly deep.models.ARCHS."""
    from deep.bench_cmd import _ARCH_SHAPES
    from deep.train_cmd import ARCH_CHOICES

    assert set(ARCH_CHOICES) == set(ARCHS)
    for arch, (stages, width) in _ARCH_SHAPES.items():
        assert ARCHS[arch].keywords == {"stage_sizes": stages, "width": width}, arch


def test_resnet_small_parameter_count():
    # ResNet-10 layout at width 16: conv/BN weights counted by hand from the block structure
    def block(c_in, c_out):
        n = 9 * c_in * c_out + 2 * c_out + 9 * c_out * c_out + 2 * c_out
        return n + (c_in * c_out + 2 * c_out if c_in != c_out else 0)

    widths = [16, 32, 64, 128]
    expected = 9 * 1 * 16 + 2 * 16 + sum(block(a, b) for a, b in zip([16] + widths[:-1], widths))
    assert param_count(make_model("resnet-small"), (32, 32, 1)) == expected
    assert feature_dim(make_model("resnet-small")) == 128
