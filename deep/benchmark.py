"""Training throughput of ResNet / DenseNet + SCL: JAX (this package) and, if importable,
PyTorch (``python -m deep.bench``, whose command line is ``deep.bench_cmd``).

``bench_jax`` times the real training step of ``deep.training`` (two augmented views per image,
crop + flip on the device, ``ufm.scl_loss``, SGD) on a synthetic uint8 pool held on the
device, for ``seeds`` seeds vmapped in one step. Throughput counts distinct training images:
``images/s = seeds * batch_size * steps / seconds`` (each image is seen in two views, so the
network processes twice as many). The first call (compile) is timed apart and excluded.

``torch_status`` says whether PyTorch can be imported; ``deep.torch_ref.bench_torch`` is the
same step in PyTorch (bf16 autocast + channels_last on a GPU).

``conv_layers`` (ResNet) and ``densenet_conv_layers`` (DenseNet) list a network's distinct
convolutions, which ``bench_conv_layers`` (and ``deep.torch_ref.bench_conv_layers_torch``)
time one at a time.

>>> ok, message = torch_status()
>>> ok or message.startswith("PyTorch is not importable")
True
"""

from __future__ import annotations

import importlib.util
import time
from typing import Any, Sequence

import numpy as np

__all__ = ["bench_jax", "bench_conv_layers", "conv_layers", "densenet_conv_layers", "torch_status",
           "default_dtype", "ISSUE_TORCH_H100"]

Layer = tuple[int, int, int, int, int]  # (input size H, in channels, out channels, kernel, stride)

# the issue's own PyTorch measurement on one H100 (bf16 autocast, channels_last), images/s
ISSUE_TORCH_H100 = {50: 4348.0, 512: 24909.0}


def default_dtype() -> str:
    """bfloat16 on an accelerator, float32 on the CPU."""
    import jax

    return "float32" if jax.default_backend() == "cpu" else "bfloat16"


def torch_status() -> tuple[bool, str]:
    """``(importable, message)`` for PyTorch; when importable, one small operation starts its
    CPU thread pool (call this before JAX's backend starts: a pool started after it ran ~2.4x
    slower on the project's CPU)."""
    if importlib.util.find_spec("torch") is None:
        return False, "PyTorch is not importable (not installed): skipping the PyTorch comparison"
    try:
        import torch

        torch.ones(8).sum().item()
    except Exception as err:  # a broken install raises all kinds of errors
        return False, f"PyTorch is not importable ({type(err).__name__}: {err}): skipping the comparison"
    return True, f"PyTorch {torch.__version__}"


def bench_jax(*, arch: str = "resnet18", batch_size: int = 50, seeds: int = 1, steps: int = 20,
              warmup: int = 2, dtype: str | None = None, image_shape: Sequence[int] = (32, 32, 3),
              pool: int = 4096, conv: str = "auto", seed: int = 0,
              devices: int | None = 1) -> dict[str, Any]:
    """Images/s of ``seeds`` vmapped training steps at ``batch_size`` (after ``warmup`` calls);
    ``devices`` > 1 (None: all): the data-parallel step of ``deep.distributed`` (each global
    batch split over the devices, seeds replicated)."""
    import jax
    import jax.numpy as jnp

    from deep import distributed
    from deep.configs import TrainConfig, resolve_conv
    from deep.models import make_model
    from deep.training import DeviceData, init_states, make_optimizer, make_train_step

    dtype = dtype or default_dtype()
    conv = resolve_conv(conv)
    cfg = TrainConfig(arch=arch, batch_size=batch_size, seeds=seeds, dtype=dtype, epochs=350,
                      flip=True, seed=seed, conv=conv)
    rng = np.random.default_rng(seed)
    shape = tuple(image_shape)
    images = jnp.asarray(rng.integers(0, 256, (pool, *shape), dtype=np.uint8))
    labels = jnp.asarray(rng.integers(0, 10, pool), jnp.int32)
    c = shape[-1]
    data = DeviceData(images, labels, jnp.full((c,), 0.5), jnp.full((c,), 0.25))
    model = make_model(arch, relu=True, dtype=dtype, conv=conv)
    tx = make_optimizer(cfg, steps_per_epoch=1000)
    seed_list = tuple(range(seed, seed + seeds))
    mesh = distributed.make_mesh(devices, 1, seeds)
    step = make_train_step(cfg, model, tx, donate=jax.default_backend() != "cpu", mesh=mesh)
    state = init_states(model, tx, shape, seed_list)
    keys = jnp.stack([jax.random.PRNGKey(s) for s in seed_list])
    idx = rng.integers(0, pool, (warmup + steps, seeds, batch_size)).astype(np.int32)
    if mesh is not None:
        data = distributed.put(jax.device_get(data), mesh)
        state = distributed.put(jax.device_get(state), mesh, distributed.SEEDS)
        keys = distributed.put(jax.device_get(keys), mesh, distributed.SEEDS)
        idx = [distributed.put(i, mesh) for i in idx]

    t0 = time.perf_counter()
    state, loss = step(state, data, jnp.asarray(idx[0]), keys, 0, 0)
    jax.block_until_ready(loss)
    compile_s = time.perf_counter() - t0
    for t in range(1, warmup):
        state, loss = step(state, data, jnp.asarray(idx[t]), keys, 0, t)
    jax.block_until_ready(loss)
    t0 = time.perf_counter()
    for t in range(warmup, warmup + steps):
        state, loss = step(state, data, jnp.asarray(idx[t]), keys, 0, t)
    jax.block_until_ready(loss)
    seconds = time.perf_counter() - t0
    return {
        "framework": "jax",
        "arch": arch,
        "device": str(jax.devices()[0].device_kind),
        "dtype": dtype,
        "conv": conv,
        "devices": 1 if mesh is None else int(mesh.devices.size),
        "batch_size": batch_size,
        "seeds": seeds,
        "steps": steps,
        "seconds": seconds,
        "compile_seconds": compile_s,
        "images_per_s": seeds * batch_size * steps / seconds,
        "step_ms": 1e3 * seconds / steps,
        "final_loss": float(np.mean(jax.device_get(loss))),
        "params": int(sum(np.size(x) for x in jax.tree_util.tree_leaves(state.params)) // seeds),
    }


def conv_layers(stage_sizes: Sequence[int], width: int,
                image_shape: Sequence[int] = (32, 32, 3)) -> list[Layer]:
    """The distinct convolutions of ``deep.models.ResNet(stage_sizes, width)``:
    ``(input size H, in channels, out channels, kernel, stride)`` in network order.

    >>> conv_layers((1, 1), 8, (32, 32, 3))
    [(32, 3, 8, 3, 1), (32, 8, 8, 3, 1), (32, 8, 16, 3, 2), (16, 16, 16, 3, 1), (32, 8, 16, 1, 2)]
    """
    h, _, c = image_shape
    out = [(h, c, width, 3, 1)]
    cin = width
    for s, n in enumerate(stage_sizes):
        for b in range(n):
            cout, stride = width * 2**s, (2 if (s > 0 and b == 0) else 1)
            for layer in [(h, cin, cout, 3, stride), (h // stride, cout, cout, 3, 1)] + (
                    [(h, cin, cout, 1, stride)] if (stride != 1 or cin != cout) else []):
                if layer not in out:
                    out.append(layer)
            h, cin = h // stride, cout
    return out


def densenet_conv_layers(depth: int, growth: int, stem: int, image_shape: Sequence[int] = (32, 32, 3),
                         n_blocks: int = 3) -> list[Layer]:
    """The distinct convolutions of ``deep.models.DenseNet(depth, growth, stem, n_blocks)``:
    ``(input size H, in channels, out channels, kernel, stride)`` in network order.

    The 3x3 stem (``stem`` outputs); in each block ``(depth - 4) // n_blocks`` 3x3 layers of
    ``growth`` outputs on the growing concatenation; between blocks a 1x1 convolution keeping
    the channel count, then a 2x2 average pool halving H (no convolution: not listed).

    Args:
        depth: network depth (``densenet40``: 40).
        growth: outputs of each dense layer (the growth rate).
        stem: outputs of the stem convolution.
        image_shape: ``(H, W, C)`` of the input images (square: ``W`` is not used).
        n_blocks: dense blocks.

    Returns:
        The layer tuples, each once.

    >>> densenet_conv_layers(10, 4, 8)[:5]
    [(32, 3, 8, 3, 1), (32, 8, 4, 3, 1), (32, 12, 4, 3, 1), (32, 16, 16, 1, 1), (16, 16, 4, 3, 1)]
    >>> len(densenet_conv_layers(40, 12, 16))  # stem, 3 x 12 dense layers, 2 transitions
    39
    """
    h, _, c = image_shape
    out = [(h, c, stem, 3, 1)]
    cin = stem
    for blk in range(n_blocks):
        for _ in range((depth - 4) // n_blocks):
            out.append((h, cin, growth, 3, 1))
            cin += growth
        if blk < n_blocks - 1:
            out.append((h, cin, cin, 1, 1))
            h //= 2
    return list(dict.fromkeys(out))  # distinct, in order


def bench_conv_layers(layers: Sequence[Layer], *, batch: int,
                      conv: str = "xla", repeats: int = 10, seed: int = 0) -> list[dict[str, Any]]:
    """Per-layer milliseconds (best of ``repeats``) of one float32 NHWC convolution's forward
    pass, input gradient (``dx``) and weight gradient (``dw``) at ``batch`` images, each jitted
    alone; ``conv``: ``xla`` (``lax.conv_general_dilated``) or ``dotgrad`` (``deep.conv``)."""
    import jax
    import jax.numpy as jnp

    from deep.conv import conv_general_dilated as dotgrad
    from ufm.core.timing import best_of

    impl = {"xla": jax.lax.conv_general_dilated, "dotgrad": dotgrad}[conv]
    rng = np.random.default_rng(seed)
    rows = []
    for h, cin, cout, k, s in layers:
        p = k // 2
        x = jnp.asarray(rng.normal(size=(batch, h, h, cin)), jnp.float32)
        w = jnp.asarray(rng.normal(size=(k, k, cin, cout)), jnp.float32)

        def f(x, w, s=s, p=p):
            return impl(x, w, (s, s), [(p, p), (p, p)], dimension_numbers=("NHWC", "HWIO", "NHWC"))

        g = jnp.ones_like(f(x, w))
        fwd = jax.jit(f)
        dx = jax.jit(lambda x, w, g, f=f: jax.vjp(lambda x: f(x, w), x)[1](g)[0])
        dw = jax.jit(lambda x, w, g, f=f: jax.vjp(lambda w: f(x, w), w)[1](g)[0])
        rows.append({"layer": [h, cin, cout, k, s],
                     "fwd_ms": 1e3 * best_of(lambda: fwd(x, w), repeats),
                     "dx_ms": 1e3 * best_of(lambda: dx(x, w, g), repeats),
                     "dw_ms": 1e3 * best_of(lambda: dw(x, w, g), repeats)})
    return rows
