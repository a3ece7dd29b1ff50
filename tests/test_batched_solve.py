"""The batched UFM / UFM+ problem: ``batched_of_loss``, ``solve(batches=...)`` and the
``ufm.solve`` batching flags (issue 5, part 3).

References: a loop over batches and classes written out here; the brute-force batched loss of
``reference.py``; the full convex relaxation (a certificate); the batch-condition check.
"""

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import ufm
from reference import batched_of_value, brute_scl_loss
from theory_checks.schedules import schedule_batches

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("tau", [0.05, 0.5])
def test_batched_of_loss_matches_loop_and_of_point(seed, tau):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, 30)
    labels[:8] = np.repeat(np.arange(4), 2)
    batches = [rng.choice(30, size=int(rng.integers(1, 9)), replace=False).tolist() for _ in range(12)]
    value = ufm.batched_of_loss(labels, batches, tau)
    assert math.isclose(value, batched_of_value(labels.tolist(), batches, tau), rel_tol=1e-12, abs_tol=1e-12)
    # the collapsed OF point attains it under the brute-force batched loss
    z = np.eye(4)[labels]
    assert math.isclose(brute_scl_loss(z, labels, tau, batches=batches), value, rel_tol=1e-10, abs_tol=1e-10)


def test_batched_of_loss_full_batch_is_of_loss():
    counts = [7, 3, 2]
    y = ufm.labels_from_counts(counts)
    assert math.isclose(ufm.batched_of_loss(y, [list(range(12))], 0.1), ufm.of_loss(counts, 0.1),
                        rel_tol=1e-12)


@pytest.mark.parametrize("schedule", ["shuffle", "binding"])
def test_batched_solve_reaches_reference_and_certificate(schedule):
    counts = [6, 3, 3]
    y = ufm.labels_from_counts(counts)
    batches = schedule_batches(y, schedule=schedule, batch_size=4, epochs=3, seed=1)
    res = ufm.solve(counts, nonneg=True, batches=batches, seed=0)
    ref = batched_of_value(y.tolist(), [b.tolist() for b in batches], 0.1)
    assert res.optimum_kind == "batched_of" and math.isclose(res.optimum, ref, rel_tol=1e-12)
    assert res.status == "optimal" and res.rel_gap <= 1e-6
    assert math.isclose(brute_scl_loss(res.z, y, 0.1, batches=batches), res.loss, rel_tol=1e-9)
    bound = ufm.certify(counts, 0.1, nonneg=True, method="full", batches=batches)
    assert bound.ok and ufm.certificate(res.loss, bound)["certified"]


def test_batched_no_relu_has_no_reference_but_is_certified():
    counts = [4, 4, 2]
    y = ufm.labels_from_counts(counts)
    batches = schedule_batches(y, schedule="shuffle", batch_size=5, epochs=2, seed=0)
    res = ufm.solve(counts, nonneg=False, batches=batches, seed=0)
    assert res.optimum is None and res.status == "converged"
    bound = ufm.certify(counts, 0.1, nonneg=False, method="full", batches=batches)
    cert = ufm.certificate(res.loss, bound)
    assert cert["certified"], cert


def _run(*args):
    return subprocess.run([sys.executable, "-m", "ufm.solve", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)


def test_cli_schedule_binding_json():
    out = _run("--k", "3", "--R", "2", "--n-min", "3", "--nonneg", "--batch-size", "4",
               "--schedule", "binding", "--epochs", "2", "--json", "--quiet")
    assert out.returncode == 0, out.stderr
    rep = json.loads(out.stdout)
    bt = rep["config"]["batching"]
    assert bt["schedule"] == "binding" and bt["conditions_hold"] is True
    assert rep["optimum_kind"] == "batched_of"
    assert rep["metrics"]["delta_gm_of"] < 1e-3  # binding: the OF is the unique optimum


def test_cli_batches_file_unsorted_labels(tmp_path):
    """Labels in any order: the file's samples are reordered by class internally, and the
    saved embeddings come back in the file's order."""
    labels = [1, 0, 2, 1, 0, 2, 0]
    batches = [[0, 1, 2, 3, 4, 5, 6], [0, 3, 1], [2, 5, 4, 6]]
    path = tmp_path / "b.json"
    path.write_text(json.dumps({"labels": labels, "batches": batches}))
    npz = tmp_path / "z.npz"
    out = _run("--batches", str(path), "--nonneg", "--certify", "--json", "--quiet",
               "--save-embeddings", str(npz))
    assert out.returncode == 0, out.stderr
    rep = json.loads(out.stdout)
    assert math.isclose(rep["optimum"], batched_of_value(labels, batches, 0.1), rel_tol=1e-12)
    # auto: the dual bound at the solver's point first (the full relaxation only if it is loose)
    assert rep["certificate"]["certified"] is True and rep["certificate"]["tried"][0] == "dual"
    saved = np.load(npz)
    assert saved["labels"].tolist() == labels
    assert math.isclose(brute_scl_loss(saved["z"], np.array(labels), 0.1, batches=batches),
                        rep["loss"], rel_tol=1e-9)


@pytest.mark.parametrize("content,needle", [
    ("not json", "--batches"),
    ('{"labels": [0, 0, 1, 1]}', "--batches"),
    ('{"labels": [0, 0, 1, 1], "batches": [[0, 5]]}', "--batches"),
    ('{"labels": [0, 0, 1], "batches": [[0, 1, 2]]}', "--batches"),
])
def test_cli_bad_batches_file(tmp_path, content, needle):
    path = tmp_path / "b.json"
    path.write_text(content)
    out = _run("--batches", str(path), "--quiet")
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr and needle in lines[0]


def test_cli_batch_size_with_batches_file_is_usage_error(tmp_path):
    path = tmp_path / "b.json"
    path.write_text('{"labels": [0, 0, 1, 1], "batches": [[0, 1, 2, 3]]}')
    out = _run("--batches", str(path), "--batch-size", "2")
    assert out.returncode == 2 and "--batch-size" in out.stderr
