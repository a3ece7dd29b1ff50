"""The full-batch loss+gradient sharded by anchor rows over several devices (``ufm.core.sharded``,
issue 37): equal to the one-device Gram path, a sharded solve reaching the closed form, and its
memory per device (``ufm.solvers.memory.sharded_device_bytes``).

Several host devices need ``XLA_FLAGS=--xla_force_host_platform_device_count=4`` before JAX is
imported, so every multi-device check runs in a fresh Python process (``_run``); what it prints
last is one JSON line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ufm.solvers.config import SolverConfig
from ufm.solvers.memory import (CHUNK_ROWS, F64, SHARD_BLOCK_BYTES, sharded_chunk_rows,
                                sharded_device_bytes, solve_bytes)

ROOT = Path(__file__).resolve().parents[1]
DEVICES = 4


def _env(devices: int = DEVICES) -> dict:
    env = dict(os.environ)
    env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={devices}".strip()
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = f"{ROOT}{os.pathsep}{env.get('PYTHONPATH', '')}"
    return env


def _run(code: str, timeout: float = 600) -> dict:
    """Run ``code`` in a fresh interpreter with 4 host devices; return its last stdout line
    parsed as JSON."""
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, env=_env(),
                         capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stderr[-4000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- equality


EQUALITY = """
import json
import numpy as np
import jax, jax.numpy as jnp
from ufm.core import gram_grad, sharded

assert len(jax.devices()) == 4, jax.devices()
rows = []
with jax.enable_x64(True):
    rng = np.random.default_rng(37)
    # (counts, d): classes of different sizes, N not divisible by 2, 3 or 4 (padding rows), one
    # class of size 1 (anchors without a positive, still keys)
    for counts, d in (([5, 3, 2, 2, 1], 4), ([400, 250, 180, 90, 50, 24, 7], 10)):
        counts = np.asarray(counts)
        y = np.repeat(np.arange(counts.size), counts)
        n = y.size
        h = rng.normal(size=(n, d))
        for nonneg in (False, True):
            z = np.abs(h) if nonneg else h
            z = jnp.asarray(z / np.linalg.norm(z, axis=1, keepdims=True))
            for tau in (0.1, 0.01):  # one shared exp shift / per-row maxima (float64)
                args = (z, jnp.asarray(y), jnp.asarray(counts), tau)
                l0, g0 = gram_grad.value_and_grad(*args, matmul_dtype=jnp.float64)
                for devices in (1, 2, 3, 4):
                    for chunk in (7, 1024):
                        l, g = sharded.value_and_grad_sharded(*args, sharded.make_mesh(devices),
                                                              chunk=chunk, matmul_dtype=jnp.float64)
                        g, g0n = np.asarray(g), np.asarray(g0)
                        rows.append({"n": int(n), "devices": devices, "chunk": chunk, "tau": tau,
                                     "nonneg": nonneg, "pad": sharded.shard_rows(n, devices, chunk)[0] * devices - int(n),
                                     "loss_rel": abs(float(l) - float(l0)) / abs(float(l0)),
                                     "grad_rel": float(np.max(np.abs(g - g0n)) / np.max(np.abs(g0n))),
                                     "shape": list(g.shape), "finite": bool(np.all(np.isfinite(g)))})
print(json.dumps(rows))
"""


@pytest.fixture(scope="module")
def equality_rows():
    return _run(EQUALITY)


def test_sharded_loss_and_gradient_equal_one_device(equality_rows):
    """float64, random unit rows (and non-negative ones), two temperatures, 1-4 host devices,
    chunks of 7 rows and of all the device's rows: loss and gradient equal the dense
    one-device Gram path to rounding (rtol 1e-12)."""
    assert len(equality_rows) == 2 * 2 * 2 * 4 * 2
    for row in equality_rows:
        assert row["finite"] and row["shape"][0] == row["n"], row
        assert row["loss_rel"] <= 1e-12, row
        assert row["grad_rel"] <= 1e-12, row


def test_padding_rows_were_exercised(equality_rows):
    """N = 13 and 1001 over 2, 3, 4 devices need padding anchor rows; they weigh 0."""
    padded = [r for r in equality_rows if r["pad"] > 0]
    assert {r["n"] for r in padded} == {13, 1001}
    assert {r["devices"] for r in padded} >= {2, 3, 4}
    assert max(r["loss_rel"] for r in padded) <= 1e-12


# ----------------------------------------------------------------------------- solve


def test_sharded_solve_reaches_the_closed_form():
    """``python -m ufm.solve --devices 4`` (17 samples: padding rows on 4 devices) under
    --nonneg reaches L*_OF, as the one-device ``ufm.solve`` does, to 1e-9 relative."""
    import ufm

    counts = [7, 5, 5]
    out = subprocess.run([sys.executable, "-m", "ufm.solve", "--counts", "7,5,5", "--nonneg",
                          "--devices", str(DEVICES), "--json", "--quiet"],
                         cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-4000:]
    sharded = json.loads(out.stdout)
    assert sharded["config"]["solver"]["devices"] == DEVICES
    assert sharded["status"] == "optimal" and sharded["optimum_kind"] == "of"
    assert abs(sharded["rel_gap"]) <= 1e-9
    one = ufm.solve(counts, nonneg=True, seed=0)
    assert one.status == "optimal" and one.config["solver"]["devices"] == 1
    assert sharded["optimum"] == pytest.approx(one.optimum, rel=1e-15)
    assert sharded["loss"] == pytest.approx(one.loss, rel=1e-9)


def test_devices_beyond_what_jax_sees_is_refused():
    """The flag names the limit and the XLA_FLAGS hint; the API raises ValueError naming config."""
    out = subprocess.run([sys.executable, "-m", "ufm.solve", "--counts", "3,3", "--devices", "5",
                          "--quiet"], cwd=ROOT, env=_env(), capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 2
    assert "--devices: 5 but JAX sees 4 device(s)" in out.stderr
    import jax
    import ufm

    with pytest.raises(ValueError, match="config: devices = .* but JAX sees"):
        ufm.solve([3, 3], config=SolverConfig(devices=len(jax.devices()) + 1))


def test_devices_with_batches_or_out_of_range_is_refused():
    import ufm

    with pytest.raises(ValueError, match="devices must be an integer >= 1"):
        SolverConfig(devices=0)
    with pytest.raises(ValueError, match="config: devices = 2 shards the full-batch loss"):
        ufm.solve([2, 2], batches=[[0, 1, 2, 3]], config=SolverConfig(devices=2))


def test_one_device_is_the_default():
    assert SolverConfig().devices == 1
    assert solve_bytes(20_000, 10, 10, method="samples") == solve_bytes(
        20_000, 10, 10, method="samples", devices=1)


# ----------------------------------------------------------------------------- memory


def test_sharded_memory_estimate():
    """Per device: ~5 blocks of chunk x N float64 logits within SHARD_BLOCK_BYTES, plus a few
    N x d arrays; never N x N. At N = 10^6, d = 10 on 8 devices: 1.1 GB each."""
    for n, devices in ((100_000, 4), (10**6, 8), (10**6, 4), (17, 4)):
        chunk = sharded_chunk_rows(n, devices)
        assert 1 <= chunk <= min(CHUNK_ROWS, -(-n // devices))
        assert 5 * chunk * n * F64 <= max(SHARD_BLOCK_BYTES, 5 * 8 * n * F64)
    assert sharded_device_bytes(10**6, 10, 8) < 1.2e9
    assert sharded_device_bytes(10**6, 10, 8) < 8 * 10**12 / 1000  # a dense N x N float64: 8 TB
    one, _ = solve_bytes(10**6, 10, 10, method="samples")
    four, what = solve_bytes(10**6, 10, 10, method="samples", devices=4)
    assert four < one and "on each of 4 devices" in what


DEMO = """
import json, resource, sys, time
import numpy as np
import jax, jax.numpy as jnp
from ufm.core import sharded
from ufm.solvers.memory import sharded_chunk_rows, sharded_device_bytes

n, d, k, devices = {n}, 10, 10, 4
rss = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # bytes (Linux: KiB)
with jax.enable_x64(True):
    y = np.repeat(np.arange(k), n // k)
    rng = np.random.default_rng(0)
    z = rng.normal(size=(n, d))
    z = jnp.asarray(z / np.linalg.norm(z, axis=1, keepdims=True))
    args = (z, jnp.asarray(y), jnp.asarray(np.bincount(y)), 0.1)
    mesh, chunk = sharded.make_mesh(devices), sharded_chunk_rows(n, devices)
    compiled = sharded._value_and_grad_sharded.lower(*args, mesh, chunk, jnp.dtype(jnp.float64),
                                                     True).compile()
    mem = compiled.memory_analysis()
    xla = mem.temp_size_in_bytes + mem.argument_size_in_bytes + mem.output_size_in_bytes
    before = rss()
    t0 = time.perf_counter()
    loss, grad = sharded.value_and_grad_sharded(*args, mesh, chunk=chunk, matmul_dtype=jnp.float64)
    jax.block_until_ready(grad)
    seconds = time.perf_counter() - t0
    print(json.dumps({{"n": n, "devices": devices, "chunk": chunk, "seconds": seconds,
                      "loss": float(loss), "finite": bool(np.all(np.isfinite(np.asarray(grad)))),
                      "rss_before": before, "peak_rss": rss(), "xla_device_bytes": xla,
                      "estimate_device_bytes": sharded_device_bytes(n, d, devices)}}))
"""


def _demo(n: int) -> dict:
    res = _run(DEMO.format(n=n))
    assert res["finite"] and res["devices"] == DEVICES
    # XLA's own per-device accounting is within the estimate
    assert res["xla_device_bytes"] <= res["estimate_device_bytes"]
    # the whole process grew by at most the devices' estimates (+ 256 MiB for the runtime),
    # far below one dense N x N float64 array
    grew = res["peak_rss"] - res["rss_before"]
    assert grew <= DEVICES * res["estimate_device_bytes"] + 2**28, res
    assert grew < 8 * n * n / 4, res
    print(json.dumps(res))
    return res


def test_sharded_evaluation_n20000():
    """One float64 loss+gradient at N = 20,000, d = 10, k = 10 on 4 host devices."""
    _demo(20_000)


@pytest.mark.slow
def test_sharded_evaluation_n100000():
    """The same at N = 100,000 (a dense N x N float64 array would be 80 GB); docs/performance.md."""
    res = _demo(100_000)
    assert res["peak_rss"] < 4 * 2**30
