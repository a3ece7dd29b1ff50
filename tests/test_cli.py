"""``python -m ufm.solve`` end to end, in subprocesses (small problems: k <= 4, n-min <= 3).

All the subprocesses are started once, a few at a time, by the module-scoped ``runs`` fixture
(each pays the JAX import and compile cost, so running them side by side saves wall time).
"""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import ufm
from reference import brute_scl_loss

ROOT = Path(__file__).resolve().parents[1]

PROBLEM = ["--k", "4", "--R", "2", "--n-min", "3", "--nonneg"]

BAD_INPUTS = [
    (["--k", "1"], "--k"),
    (["--R", "0.5"], "--R"),
    (["--tau", "0"], "--tau"),
    (["--tau", "-1"], "--tau"),
    (["--n-min", "1"], "--n-min"),
    (["--rho", "0"], "--rho"),
    (["--rho", "1"], "--rho"),
    (["--rho", "1.5"], "--rho"),
    (["--d", "0"], "--d"),
    (["--counts", "5,1,5"], "--counts"),
    (["--counts", "a,b"], "--counts"),
    (["--k", "abc"], "--k"),
    (["--R", "nan"], "--R"),
    (["--tau-path", "0.1,0"], "--tau-path"),
    (["--tau-path", "a"], "--tau-path"),
    (["--tau-path", ","], "--tau-path"),
]


def _run(args, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "ufm.solve", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    out_json = tmp / "sub" / "report.json"
    out_npz = tmp / "emb.npz"
    jobs = {
        "json": PROBLEM + ["--json", "--quiet", "--out", str(out_json),
                           "--save-embeddings", str(out_npz)],
        "text": PROBLEM + ["--quiet"],
        "warn": ["--k", "4", "--R", "2", "--n-min", "3", "--d", "3", "--nonneg", "--quiet"],
        "path": PROBLEM + ["--tau", "0.02", "--tau-path", "0.1,0.05", "--json", "--quiet"],
        "path_text": PROBLEM + ["--tau", "0.02", "--tau-path", "0.1", "--quiet"],
    }
    for i, (args, _) in enumerate(BAD_INPUTS):
        jobs[f"bad{i}"] = PROBLEM + ["--quiet"] + args  # the bad value comes last and wins
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = {name: pool.submit(_run, args) for name, args in jobs.items()}
        results = {name: f.result() for name, f in futures.items()}
    results["paths"] = (out_json, out_npz)
    return results


def _report(runs):
    proc = runs["json"]
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


def test_json_report_structure(runs):
    report = _report(runs)
    assert isinstance(report, dict)
    for key in ("config", "counts", "loss", "optimum", "metrics", "timing", "versions"):
        assert key in report, key
    for key in ("delta_gm_of", "delta_gm_etf", "nc1", "class_mean_gram"):
        assert key in report["metrics"], key
    for key in ("solve_seconds", "steps"):
        assert key in report["timing"], key
    assert isinstance(report["versions"], dict) and report["versions"]
    assert report["timing"]["solve_seconds"] >= 0
    assert report["timing"]["steps"] >= 1


def test_json_report_values(runs):
    report = _report(runs)
    counts = ufm.step_counts(4, 2, 0.5, 3).tolist()
    assert counts == [6, 6, 3, 3]  # 2 majority classes of 2 * 3, then 2 minority of 3
    assert report["counts"] == counts
    of = ufm.of_loss(counts, 0.1)
    n = np.array(counts, dtype=float)
    assert of == pytest.approx(np.sum(n * np.log(n - 1 + (n.sum() - n) * np.exp(-10.0))), rel=1e-12)
    assert report["optimum"] == pytest.approx(of, rel=1e-12)
    assert (report["loss"] - of) / of <= 1e-6
    assert (report["loss"] - of) / of >= -1e-9
    assert report["metrics"]["delta_gm_of"] <= 1e-3
    g = np.asarray(report["metrics"]["class_mean_gram"])
    assert g.shape == (4, 4)
    np.testing.assert_allclose(g, np.eye(4), atol=2e-3)


def test_out_file_is_the_same_json(runs):
    report = _report(runs)
    out_json, _ = runs["paths"]
    assert out_json.exists()
    assert json.loads(out_json.read_text()) == report
    leftovers = [p.name for p in out_json.parent.iterdir() if p.name != out_json.name]
    assert leftovers == []  # no temp files left behind


def test_saved_embeddings_match_reported_loss(runs):
    report = _report(runs)
    _, out_npz = runs["paths"]
    with np.load(out_npz) as data:
        z, labels, counts = data["z"], data["labels"], data["counts"]
    assert counts.tolist() == report["counts"]
    assert labels.tolist() == [c for c, m in enumerate(report["counts"]) for _ in range(m)]
    assert z.shape == (labels.size, 4)
    assert z.min() >= 0.0
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1.0, atol=1e-12)
    tau = report["config"]["tau"]
    assert tau == 0.1
    assert brute_scl_loss(z, labels, tau, normalize=False) == pytest.approx(report["loss"], rel=1e-9)
    # the reported class-mean Gram is that of the saved embeddings
    means = np.array([z[labels == c].mean(axis=0) for c in range(4)])
    means /= np.linalg.norm(means, axis=1, keepdims=True)
    np.testing.assert_allclose(report["metrics"]["class_mean_gram"], means @ means.T, atol=1e-9)


def test_text_report(runs):
    proc = runs["text"]
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "rel. gap" in proc.stdout
    assert "Delta_GM" in proc.stdout
    assert not proc.stdout.lstrip().startswith("{")
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("i", range(len(BAD_INPUTS)),
                         ids=[" ".join(a) for a, _ in BAD_INPUTS])
def test_bad_input_one_line_exit_2(runs, i):
    args, name = BAD_INPUTS[i]
    proc = runs[f"bad{i}"]
    assert proc.returncode == 2, (args, proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, (args, proc.stderr)
    assert lines[0].strip()
    assert name in lines[0], (args, lines[0])
    assert proc.stdout == ""


def test_d_below_k_with_nonneg_warns(runs):
    proc = runs["warn"]
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    assert "warning" in proc.stderr.lower()
    assert "rel. gap" not in proc.stdout  # no closed-form optimum to compare with at d < k


def test_tau_path_json(runs):
    proc = runs["path"]
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    counts = [6, 6, 3, 3]
    assert report["config"]["tau"] == 0.02 and report["config"]["tau_path"] == [0.1, 0.05]
    assert report["config"]["warm_start"] is True
    assert [row["tau"] for row in report["path"]] == [0.1, 0.05, 0.02]
    for row in report["path"]:
        of = ufm.of_loss(counts, row["tau"])
        assert abs(row["loss"] - of) / of <= 1e-12 and row["status"] == "optimal"
    assert report["path"][-1]["loss"] == report["loss"]
    assert report["metrics"]["delta_gm_of"] <= 1e-6  # the OF, followed down from tau = 0.1
    np.testing.assert_allclose(report["metrics"]["class_mean_gram"], np.eye(4), atol=1e-6)
    assert report["warnings"]  # the loss alone does not pin it at tau = 0.02
    assert report["path"][-1]["warnings"] == report["warnings"]
    assert report["path"][0]["warnings"] == []  # tau = 0.1 pins the geometry
    assert all(row["compile_seconds"] < 0.05 for row in report["path"][1:])  # tau is data


def test_tau_path_text(runs):
    proc = runs["path_text"]
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("tau path")
    assert lines[2].split()[0] == "0.1" and lines[3].split()[0] == "0.02"
    assert "tau=0.02" in proc.stdout and "warning" in proc.stdout
