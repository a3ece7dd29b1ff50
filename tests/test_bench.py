"""Smoke tests of ``python -m ufm.bench --quick`` (it runs, and its figures are consistent) and
of ``python -m deep.bench`` with the DenseNets (layer lists, JSON output, the PyTorch twin).

The figures themselves are measured by the benchmark (see docs/performance.md), not asserted here.
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import ufm

ROOT = Path(__file__).resolve().parents[1]


def test_bench_quick_json():
    out = subprocess.run(
        [sys.executable, "-m", "ufm.bench", "--quick", "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout)
    solve = res["solve"]
    assert solve["status"] == "optimal"
    assert solve["seeds_certified"] == solve["seeds"]
    # the bench's own gap agrees with the closed form recomputed here
    assert solve["rel_gap"] <= 1e-6
    assert solve["solve_seconds"] > 0 and solve["compile_seconds"] >= 0
    gram = res["gram"]
    assert gram["floor_seconds"] > 0 and gram["fast_seconds"] > 0
    assert gram["fast_over_floor"] == gram["fast_seconds"] / gram["floor_seconds"]
    chunked = res["chunked"]
    assert chunked["finite"] is True
    assert chunked["peak_rss_mib"] >= chunked["rss_before_mib"] > 0
    # the chunked loss equals the brute-force loss of the same random problem
    n, d = chunked["n"], chunked["d"]
    rng = np.random.default_rng(0)
    y = np.arange(n) % 10
    z = rng.normal(size=(n, d))
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    assert np.isclose(chunked["loss"], float(ufm.scl_loss(z, y, 0.1)), rtol=1e-5)
    first = res["firstrun"]  # a fresh process: the CLI's own report, certified
    assert first["status"] == "optimal" and first["certified"] is True
    assert first["evaluations"] >= 1 and first["floor_seconds"] > 0
    assert first["wall_seconds"] > first["compile_plus_solve_seconds"] > 0
    cert = res["cert10k"]
    assert cert["certified"] and cert["bound_rel_to_of"] <= 1e-15  # never above L*_OF
    assert cert["tried"] == ["dual"] and abs(cert["bound_rel_to_of"]) <= 1e-9
    methods = res["methods"]["cases"]
    assert methods[0]["over_default"] == 1.0 and all(c["status"] in ("optimal", "converged") for c in methods)
    assert [c["method"] for c in methods] == ["classes", "samples"]  # d = 2 < k - 1: samples
    assert "jax" in res["versions"]
    assert res["config"]["quick"] is True and res["config"]["chunk_n"] == n


def test_bench_quick_certify():
    out = subprocess.run(
        [sys.executable, "-m", "ufm.bench", "--quick", "--json", "--only", "certify"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert out.returncode == 0, out.stderr
    cases = json.loads(out.stdout)["certify"]["cases"]
    assert {c["method"] for c in cases} == {"reduced", "full", "dual"}
    counts = {66: ufm.step_counts(4, 10, n_min=3), 12: [3] * 4}
    for c in cases:  # ReLU cases: every bound equals the closed form L*_OF (recomputed here)
        assert c["ok"] and c["seconds"] > 0
        of = ufm.of_loss(counts[c["n_samples"]], 0.1)
        assert abs(c["lower_bound"] - of) <= 1e-6 * of


def test_bench_bad_input_one_line_exit_2(capsys):
    from ufm.cli.bench_cmd import main

    for argv, flag in ((["--seeds", "0"], "--seeds"), (["--chunk-n", "1"], "--chunk-n"),
                       (["--only", "nope"], "--only")):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        err = capsys.readouterr().err.strip().splitlines()
        assert exc.value.code == 2 and len(err) == 1 and f"argument {flag}" in err[0], err


# ----------------------------------------------------------------------------- deep.bench: DenseNet


def _flax_convs(arch: str) -> list[tuple[int, int, int, int, int]]:
    """``(H, in, out, kernel, stride)`` of every convolution the Flax preset ``arch`` calls, in
    call order (recorded by a method interceptor while ``init`` is traced, shapes only)."""
    jax = pytest.importorskip("jax")
    nn = pytest.importorskip("flax.linen")
    from deep.models import make_model

    calls = []

    def record(next_fun, args, kwargs, context):
        m = context.module
        if isinstance(m, nn.Conv) and context.method_name == "__call__":
            s = m.strides if isinstance(m.strides, int) else (m.strides or (1,))[0]
            calls.append((args[0].shape[1], args[0].shape[-1], m.features, m.kernel_size[0], s))
        return next_fun(*args, **kwargs)

    net = make_model(arch, conv="xla")
    x = jax.ShapeDtypeStruct((1, 32, 32, 3), jax.numpy.float32)
    with nn.intercept_methods(record):
        variables = jax.eval_shape(lambda x: net.init(jax.random.PRNGKey(0), x, train=False), x)
    kernels = [tuple(v.shape) for p, v in jax.tree_util.tree_flatten_with_path(variables["params"])[0]
               if "kernel" in jax.tree_util.keystr(p) and v.ndim == 4]
    assert sorted(kernels) == sorted((k, k, cin, cout) for _, cin, cout, k, _ in calls)
    return calls


@pytest.mark.parametrize("arch", ["densenet-tiny", "densenet40"])
def test_densenet_conv_layers_are_the_models_convolutions(arch):
    """deep.benchmark.densenet_conv_layers against the Flax DenseNet: its kernel shapes, and
    each convolution's input size and stride, in network order."""
    from deep.bench_cmd import _DENSENET_SHAPES
    from deep.benchmark import densenet_conv_layers

    calls = _flax_convs(arch)
    layers = densenet_conv_layers(*_DENSENET_SHAPES[arch])
    assert layers == list(dict.fromkeys(calls))
    assert len(layers) == len(set(layers)) == len(calls)  # every DenseNet convolution is distinct
    depth, growth, stem = _DENSENET_SHAPES[arch]
    assert len(layers) == 1 + (depth - 4) + 2 and layers[0] == (32, 3, stem, 3, 1)


@pytest.mark.parametrize("arch", ["resnet-tiny", "resnet-small", "densenet-tiny"])
def test_arch_layers_are_the_models_convolutions_in_order(arch):
    from deep.bench_cmd import arch_layers

    assert arch_layers(arch) == list(dict.fromkeys(_flax_convs(arch)))


def test_densenet_conv_layers_other_shapes():
    from deep.benchmark import densenet_conv_layers

    # one channel, 2 blocks of 2 layers: the stem reads 1 channel, one transition halves 28 -> 14
    assert densenet_conv_layers(8, 3, 5, (28, 28, 1), n_blocks=2) == [
        (28, 1, 5, 3, 1), (28, 5, 3, 3, 1), (28, 8, 3, 3, 1), (28, 11, 11, 1, 1),
        (14, 11, 3, 3, 1), (14, 14, 3, 3, 1)]


def test_deep_bench_arch_choices_are_the_presets():
    """bench_cmd's JAX-free shapes name exactly deep.models.ARCHS's presets and keywords."""
    pytest.importorskip("flax")
    from deep.bench_cmd import _DENSENET_SHAPES, ARCH_CHOICES
    from deep.models import ARCHS

    assert set(ARCH_CHOICES) == set(ARCHS)
    for arch, (depth, growth, stem) in _DENSENET_SHAPES.items():
        assert ARCHS[arch].keywords == {"depth": depth, "growth": growth, "stem": stem}, arch


def test_deep_bench_arch_reaches_bench_jax(capsys, monkeypatch):
    """--arch densenet40 is what bench_jax is asked to time; --quick alone stays resnet-tiny."""
    pytest.importorskip("flax")
    import deep.benchmark as benchmark
    from deep.bench_cmd import main

    seen = []

    def fake_bench(*, arch, batch_size, seeds, conv, **kw):
        seen.append(arch)
        return {"arch": arch, "batch_size": batch_size, "seeds": seeds, "conv": conv,
                "images_per_s": 1.0, "step_ms": 1.0, "compile_seconds": 0.0, "final_loss": 1.0,
                "params": 1, "device": "cpu"}

    monkeypatch.setattr(benchmark, "bench_jax", fake_bench)
    for argv, arch in ((["--quick"], "resnet-tiny"), (["--quick", "--arch", "densenet40"], "densenet40"),
                       (["--arch", "densenet-tiny", "--batch-sizes", "4", "--seeds", "2", "--steps", "1"],
                        "densenet-tiny")):
        seen.clear()
        assert main(argv + ["--no-torch", "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        assert report["config"]["arch"] == arch and set(seen) == {arch}, (argv, seen)


def test_deep_bench_quick_densenet_json(capsys):
    """``python -m deep.bench --quick --arch densenet-tiny --no-torch --json``, in process (one
    batch size, as tests/test_deep_cli.py's ResNet run: half the compilations, the same path)."""
    pytest.importorskip("flax")
    from deep.bench_cmd import main
    from deep.models import make_model, param_count

    assert main(["--quick", "--arch", "densenet-tiny", "--batch-sizes", "8", "--no-torch", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["config"]["arch"] == "densenet-tiny" and report["config"]["torch"] is False
    assert [(r["batch_size"], r["seeds"]) for r in report["rows"]] == [(8, 1), (8, 2)]
    assert all(r["arch"] == "densenet-tiny" and r["images_per_s"] > 0 and np.isfinite(r["final_loss"])
               for r in report["rows"])
    assert report["params_jax"] == param_count(make_model("densenet-tiny")) == 5296
    assert report["torch_rows"] == [] and report["params_torch"] is None


def test_deep_bench_layers_densenet_json(capsys):
    """``--layers --arch densenet-tiny --quick --conv all --no-torch --json``: a row per layer."""
    pytest.importorskip("flax")
    from deep.bench_cmd import arch_layers, main

    assert main(["--layers", "--arch", "densenet-tiny", "--quick", "--conv", "all", "--no-torch",
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["config"]["arch"] == "densenet-tiny" and out["config"]["batch"] == 16
    assert out["layers"] == [list(x) for x in arch_layers("densenet-tiny")]
    assert set(out["tables"]) == {"xla", "dotgrad"} and set(out["totals"]) == {"xla", "dotgrad"}
    for rows in out["tables"].values():
        assert [r["layer"] for r in rows] == out["layers"]
        assert all(0 < r[key] < 1e4 for r in rows for key in ("fwd_ms", "dx_ms", "dw_ms"))


def test_deep_bench_bad_arch_one_line_exit_2(capsys):
    from deep.bench_cmd import main

    with pytest.raises(SystemExit) as exc:
        main(["--arch", "densenet121", "--no-torch"])
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and len(err) == 1 and "argument --arch" in err[0], err


@pytest.mark.parametrize("arch", ["densenet-tiny", "densenet40"])
def test_torch_densenet_is_the_flax_network(arch):
    """The PyTorch DenseNet has the Flax model's parameter count, feature size and kernels."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("flax")
    from deep.bench_cmd import arch_layers, torch_network
    from deep.models import feature_dim, make_model, param_count
    from deep.torch_ref import torch_densenet

    net = torch_densenet(*torch_network(arch)["densenet"])
    assert sum(p.numel() for p in net.parameters()) == param_count(make_model(arch))
    with torch.no_grad():
        h = net.eval()(torch.zeros(2, 3, 32, 32))
    assert tuple(h.shape) == (2, feature_dim(make_model(arch))) and bool((h >= 0).all())  # ReLU on h
    kernels = [tuple(m.weight.shape) for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert kernels == [(cout, cin, k, k) for _, cin, cout, k, _ in arch_layers(arch)]


def test_torch_densenet_bench_step_and_layers():
    """bench_torch's DenseNet step (tiny) and bench_conv_layers_torch on DenseNet layers."""
    pytest.importorskip("torch")
    from deep.bench_cmd import arch_layers, torch_network
    from deep.torch_ref import bench_conv_layers_torch, bench_torch

    r = bench_torch(batch_size=4, steps=1, warmup=1, pool=16, **torch_network("densenet-tiny"))
    assert r["params"] == 5296 and np.isfinite(r["final_loss"]) and r["images_per_s"] > 0
    layers = arch_layers("densenet-tiny")[2:4]  # a 3x3 dense layer and the 1x1 transition
    rows = bench_conv_layers_torch(layers, batch=2, repeats=1)
    assert [r["layer"] for r in rows] == [list(x) for x in layers]
    assert all(r[key] > 0 for r in rows for key in ("fwd_ms", "dx_ms", "dw_ms"))
