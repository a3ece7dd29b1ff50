"""deep.conv: the product-based weight gradient against XLA's own convolution gradient (an
independent implementation: lax.conv_general_dilated's transpose rules) and a NumPy sum."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import deep.conv as dc
from deep.configs import TrainConfig, resolve, resolve_conv
from deep.models import make_model

DN = ("NHWC", "HWIO", "NHWC")


def _xla(x, k, s, pad):
    return jax.lax.conv_general_dilated(x, k, (s, s), pad, dimension_numbers=DN)


def _numpy_weight_grad(x, g, kh, kw, s, pad):
    """dK[i, j, c, f] = sum_{n,h,w} xpad[n, i + s h, j + s w, c] g[n, h, w, f], by loops."""
    xp = np.pad(np.asarray(x, np.float64), ((0, 0), pad[0], pad[1], (0, 0)))
    g = np.asarray(g, np.float64)
    n, ho, wo, f = g.shape
    out = np.zeros((kh, kw, x.shape[-1], f))
    for i in range(kh):
        for j in range(kw):
            for h in range(ho):
                for w in range(wo):
                    out[i, j] += xp[:, i + s * h, j + s * w, :].T @ g[:, h, w, :]
    return out


@pytest.mark.parametrize("n,hw,c,f,k,s,pad", [
    (3, 16, 2, 3, 3, 1, ((1, 1), (1, 1))),     # one chunk
    (7, 17, 3, 2, 3, 2, ((1, 1), (1, 1))),     # odd size, stride 2
    (5, 16, 4, 3, 1, 2, ((0, 0), (0, 0))),     # 1x1 shortcut
    (4, 18, 2, 2, 3, 1, ((2, 0), (0, 1))),     # asymmetric padding
])
def test_weight_grad_matches_numpy_and_xla(n, hw, c, f, k, s, pad, monkeypatch):
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(n, hw, hw, c)), jnp.float32)
    kern = jnp.asarray(rng.normal(size=(k, k, c, f)), jnp.float32)
    g = jnp.asarray(rng.normal(size=_xla(x, kern, s, pad).shape), jnp.float32)
    ref = _numpy_weight_grad(x, g, k, k, s, pad)
    xla = jax.vjp(lambda kk: _xla(x, kk, s, pad), kern)[1](g)[0]
    for budget in (10**9, hw * hw * c * 4 * 2):  # one chunk; chunks of 2 images (+ zero padding)
        monkeypatch.setattr(dc, "CHUNK_BYTES", budget)
        got = jax.jit(lambda x, g: dc.weight_grad(x, g, (k, k), (s, s), pad))(x, g)
        np.testing.assert_allclose(np.asarray(got), ref, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(np.asarray(xla), ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("n,h,w,c,f,k,pad", [
    (3, 8, 8, 12, 2, 3, ((1, 1), (1, 1))),     # DenseNet-like: many inputs, few outputs
    (2, 7, 9, 5, 1, 3, ((2, 0), (0, 1))),     # asymmetric padding, non-square
    (2, 9, 9, 6, 2, 5, ((0, 0), (0, 0))),     # 5x5, no padding
    (2, 6, 6, 4, 3, 1, ((0, 0), (0, 0))),     # 1x1
    (2, 8, 8, 3, 2, 3, ((3, 3), (1, 1))),     # padding beyond the kernel's reach
    (2, 8, 8, 3, 2, 3, ((-1, 1), (1, -1))),   # negative (cropping) padding
])
def test_weight_grad_shifted_matches_numpy_and_xla(n, h, w, c, f, k, pad, monkeypatch):
    """The one-product form against the loop sum over (i, j, h, w) and XLA's own gradient, in
    one chunk and in chunks of 2 images (the last padded with a zero image)."""
    rng = np.random.default_rng(4)
    x = jnp.asarray(rng.normal(size=(n, h, w, c)), jnp.float32)
    kern = jnp.asarray(rng.normal(size=(k, k, c, f)), jnp.float32)
    g = jnp.asarray(rng.normal(size=_xla(x, kern, 1, pad).shape), jnp.float32)
    xla = jax.vjp(lambda kk: _xla(x, kk, 1, pad), kern)[1](g)[0]
    for budget in (10**9, h * w * c * 4 * 2):
        monkeypatch.setattr(dc, "CHUNK_BYTES", budget)
        got = jax.jit(lambda x, g: dc.weight_grad_shifted(x, g, (k, k), pad))(x, g)
        if min(min(p) for p in pad) >= 0:  # the loop reference pads with np.pad
            np.testing.assert_allclose(np.asarray(got), _numpy_weight_grad(x, g, k, k, 1, pad),
                                       rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(np.asarray(got), np.asarray(xla), rtol=1e-4, atol=1e-4)


def test_use_shifted_rule():
    assert dc.use_shifted((3, 3), (1, 1), 148, 12)              # DenseNet-40, block 1
    assert dc.use_shifted((1, 1), (1, 1), 160, 160)             # DenseNet transition
    assert not dc.use_shifted((3, 3), (1, 1), 16, 16)           # ResNet layer
    assert not dc.use_shifted((3, 3), (2, 2), 376, 12)          # strided: the per-offset products
    assert dc.use_shifted((3, 3), (1, 1), 3 * 12, 12) and not dc.use_shifted((3, 3), (1, 1), 35, 12)


@pytest.mark.parametrize("hw,s,c,f", [
    (16, 1, 3, 5), (32, 2, 3, 5), (8, 1, 3, 5),  # per-offset products; 8x8 output: XLA's
    (16, 1, 12, 4), (8, 1, 12, 4),                # C >= 3 F: the shifted form, at any size
])
def test_conv_value_and_both_gradients_equal_xla(hw, s, c, f):
    assert dc.use_shifted((3, 3), (s, s), c, f) == (c == 12)
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.normal(size=(4, hw, hw, c)), jnp.float32)
    kern = jnp.asarray(rng.normal(size=(3, 3, c, f)), jnp.float32)
    w = jnp.asarray(rng.normal(size=_xla(x, kern, s, [(1, 1), (1, 1)]).shape), jnp.float32)

    def loss(conv):
        return lambda x, k: jnp.sum(w * jnp.tanh(conv(x, k, (s, s), [(1, 1), (1, 1)],
                                                      dimension_numbers=DN)))

    a = jax.jit(jax.value_and_grad(loss(dc.conv_general_dilated), argnums=(0, 1)))(x, kern)
    b = jax.jit(jax.value_and_grad(loss(jax.lax.conv_general_dilated), argnums=(0, 1)))(x, kern)
    np.testing.assert_allclose(float(a[0]), float(b[0]), rtol=1e-6)
    for ga, gb in zip(a[1], b[1]):
        np.testing.assert_allclose(np.asarray(ga), np.asarray(gb), rtol=2e-4, atol=2e-4)


def test_vmapped_over_kernels_equals_per_kernel():
    """Seeds are vmapped in deep.training: the custom gradient must batch correctly."""
    rng = np.random.default_rng(2)
    x = jnp.asarray(rng.normal(size=(2, 3, 16, 16, 2)), jnp.float32)
    kern = jnp.asarray(rng.normal(size=(2, 3, 3, 2, 4)), jnp.float32)
    pad = [(1, 1), (1, 1)]
    f = lambda x, k: jnp.sum(dc.conv_general_dilated(x, k, (1, 1), pad, dimension_numbers=DN) ** 2)
    got = jax.vmap(jax.grad(f, argnums=1))(x, kern)
    ref = [jax.grad(lambda k: jnp.sum(_xla(x[i], k, 1, pad) ** 2))(kern[i]) for i in range(2)]
    np.testing.assert_allclose(np.asarray(got), np.asarray(jnp.stack(ref)), rtol=1e-4, atol=1e-4)


def test_unsupported_arguments_fall_back_to_xla():
    rng = np.random.default_rng(3)
    x = jnp.asarray(rng.normal(size=(2, 16, 16, 4)), jnp.float32)
    kern = jnp.asarray(rng.normal(size=(3, 3, 2, 4)), jnp.float32)
    a = dc.conv_general_dilated(x, kern, (1, 1), "SAME", dimension_numbers=DN, feature_group_count=2)
    b = jax.lax.conv_general_dilated(x, kern, (1, 1), "SAME", dimension_numbers=DN, feature_group_count=2)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("arch", ["resnet-tiny", "densenet-tiny"])  # densenet: shifted dK
def test_dotgrad_model_has_xla_parameters_and_gradients(arch):
    x = jax.random.normal(jax.random.PRNGKey(0), (6, 16, 16, 1))
    nets = {c: make_model(arch, conv=c) for c in ("xla", "dotgrad")}
    v = nets["xla"].init(jax.random.PRNGKey(1), x, train=False)
    v2 = nets["dotgrad"].init(jax.random.PRNGKey(1), x, train=False)
    assert jax.tree.structure(v) == jax.tree.structure(v2)  # checkpoints are interchangeable

    def loss(net):
        def f(p):
            (h, _), _ = net.apply({"params": p, "batch_stats": v["batch_stats"]}, x, train=True,
                                  mutable=["batch_stats"])
            return jnp.sum(jnp.sin(h))
        return f

    ga = jax.grad(loss(nets["xla"]))(v["params"])
    gb = jax.grad(loss(nets["dotgrad"]))(v["params"])
    for a, b in zip(jax.tree.leaves(ga), jax.tree.leaves(gb)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-3, atol=1e-5)


def test_auto_conv_resolves_by_backend_and_devices():
    expect = "dotgrad" if jax.default_backend() == "cpu" else "xla"
    assert resolve_conv("auto") == expect
    assert resolve_conv("auto", devices=2) == "xla"  # data-parallel: XLA's own reduction
    assert resolve_conv("dotgrad", devices=2) == "dotgrad"
    assert resolve(TrainConfig()).conv == "auto"  # resolved by setup, where the mesh is known
    from deep.data import load_digits
    from deep.training import config_record, setup

    run = setup(TrainConfig(arch="resnet-tiny", n_maj=20, R=2, epochs=1), load_digits())
    assert run.cfg.conv == expect
    assert config_record(run, TrainConfig(), {})["conv_used"] == expect


def test_chunk_images():
    assert dc.chunk_images(100, 10**9) == 1
    assert dc.chunk_images(3, 1) == 3
    assert dc.chunk_images(100, 1000, budget=4000) == 4


@pytest.mark.parametrize("arch,stages,width", [("resnet-tiny", (1, 1), 8), ("resnet-small", (1, 1, 1, 1), 16),
                                               ("resnet18", (2, 2, 2, 2), 64)])
def test_conv_layers_are_the_models_convolutions(arch, stages, width):
    """deep.benchmark.conv_layers against the kernels of the Flax model itself."""
    from deep.benchmark import conv_layers

    net = make_model(arch)
    v = jax.eval_shape(lambda: net.init(jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 3)), train=False))
    kernels = {tuple(x.shape) for path, x in jax.tree_util.tree_flatten_with_path(v["params"])[0]
               if "kernel" in jax.tree_util.keystr(path) and x.ndim == 4}
    layers = conv_layers(stages, width)
    assert {(k, k, cin, cout) for _, cin, cout, k, _ in layers} == kernels
    assert len(layers) == len(set(layers))


def test_bench_layers_json(capsys):
    import json

    from deep.bench_cmd import main

    assert main(["--quick", "--layers", "--conv", "all", "--no-torch", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["tables"]) == {"xla", "dotgrad"} and out["config"]["batch"] == 16
    for rows in out["tables"].values():
        assert [r["layer"] for r in rows] == [list(x) for x in out["layers"]]
        assert all(0 < r[key] < 1e4 for r in rows for key in ("fwd_ms", "dx_ms", "dw_ms"))
