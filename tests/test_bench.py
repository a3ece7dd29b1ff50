"""Smoke test of ``python -m ufm.bench --quick``: it runs, and its figures are consistent.

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
