"""Degenerate and diverged inputs: undefined geometry is an error or an explicit null, never a
NaN or a misleading number (an all-zero feature set used to report NC1 = 0, "perfect
collapse"), and NaN features show in the loss instead of being read as zero rows.
"""

from __future__ import annotations

import subprocess

import jax.numpy as jnp
import numpy as np
import pytest

import ufm
from ufm.core.loss import normalize

Y = np.array([0, 0, 1, 1, 2, 2])


# ----------------------------------------------------------------------------- ufm.core.geometry


def test_delta_gm_rejects_an_undefined_gram():
    with pytest.raises(ValueError, match="finite and nonzero"):
        ufm.delta_gm(np.zeros((3, 3)))  # every class mean zero: no direction
    with pytest.raises(ValueError, match="finite and nonzero"):
        ufm.delta_gm(np.full((3, 3), np.nan), "etf")
    with pytest.raises(ValueError, match="k x k"):
        ufm.delta_gm(np.ones((3, 2)))
    with pytest.raises(ValueError, match="target must be"):
        ufm.delta_gm(np.eye(3), np.eye(2))
    # a nonzero Gram of equal means is defined: all-ones against I_3
    want = np.linalg.norm(np.ones((3, 3)) / 3 - np.eye(3) / np.sqrt(3))
    assert ufm.delta_gm(np.ones((3, 3))) == pytest.approx(want, rel=1e-12)


def test_nc1_is_undefined_when_the_class_means_coincide():
    with pytest.raises(ValueError, match="every class mean is the same"):
        ufm.nc1(np.zeros((6, 3)), Y)  # all features zero (a dead ReLU)
    with pytest.raises(ValueError, match="every class mean is the same"):
        ufm.nc1(np.ones((6, 3)), Y)  # one direction for everyone
    z = np.eye(3)[Y]
    assert ufm.nc1(z, Y) == 0.0  # true collapse is still 0


def test_class_means_check_their_inputs():
    z = np.eye(3)[Y]
    with pytest.raises(ValueError, match="N labels"):
        ufm.class_means(z, Y[:5])
    with pytest.raises(ValueError, match="non-negative integers"):
        ufm.class_means(z, Y - 1)
    with pytest.raises(ValueError, match="non-negative integers"):
        ufm.class_means(z, Y.astype(float))
    with pytest.raises(ValueError, match="k = 2"):
        ufm.class_means(z, Y, k=2)
    with pytest.raises(ValueError, match="NaN or inf"):
        ufm.class_mean_gram(np.where(z == 1, np.nan, z), Y)


# ----------------------------------------------------------------------------- the loss


def test_normalize_keeps_zero_rows_zero_and_nan_rows_nan():
    h = jnp.array([[3.0, 4.0], [0.0, 0.0], [np.nan, 1.0], [np.inf, 1.0]])
    z = np.asarray(normalize(h))
    assert np.allclose(z[0], [0.6, 0.8]) and np.all(z[1] == 0)
    assert np.all(np.isnan(z[2])) and np.any(np.isnan(z[3]))  # inf * rsqrt(inf) = NaN


def test_a_nan_feature_makes_the_loss_nan_not_finite():
    """Before, a NaN row was normalized to 0 and the loss stayed finite: a diverged network
    trained on silently."""
    h = np.eye(3)[Y] + 0.1
    assert np.isfinite(float(ufm.scl_loss(h, Y, 0.1)))
    h[4, 0] = np.nan
    assert np.isnan(float(ufm.scl_loss(h, Y, 0.1)))
    h[4] = 0.0  # a zero row is still a legal (if useless) input
    assert np.isfinite(float(ufm.scl_loss(h, Y, 0.1)))


# ----------------------------------------------------------------------------- deep metrics


def test_epoch_metrics_of_dead_and_diverged_features():
    from deep.metrics import epoch_metrics

    kw = {"k": 3, "n_majority": 2}
    dead = epoch_metrics(np.zeros((6, 4)), Y, np.zeros((3, 4)), [0, 1, 2], **kw)
    assert dead["zero_features"] == 1.0 and dead["nonfinite_features"] == 0.0
    for key in ("delta_gm_of", "delta_gm_etf", "nc1", "cos_maj_maj", "cos_min", "cos_max"):
        assert dead[key] is None, key  # undefined, not 0 and not NaN

    h = np.eye(4)[Y]
    h[1, 2] = np.inf
    gone = epoch_metrics(h, Y, np.eye(4)[[0, 1, 2]], [0, 1, 2], **kw)
    assert gone["nonfinite_features"] == pytest.approx(1 / 9)
    assert all(gone[key] is None for key in ("delta_gm_of", "nc1", "ncm_test_acc", "class_mean_gram"))

    fine = epoch_metrics(np.eye(4)[Y], Y, np.eye(4)[[0, 1, 2]], [0, 1, 2], **kw)
    assert fine["delta_gm_of"] == 0.0 and fine["nc1"] == 0.0 and fine["zero_features"] == 0.0


# ----------------------------------------------------------------------------- deep.train


def _exit(main, argv, capsys, monkeypatch) -> subprocess.CompletedProcess:
    monkeypatch.setenv("SCL_GEOMETRY_CACHE", "off")
    code = main(argv)
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(argv, code, captured.out, captured.err)


TINY = ["--arch", "resnet-tiny", "--n-maj", "20", "--R", "2", "--epochs", "2", "--quiet"]


def test_training_stops_when_it_diverges(tmp_path, capsys, monkeypatch):
    """A non-finite epoch loss ends the run: exit 1, one line, nothing of the epoch saved."""
    pytest.importorskip("flax")
    pytest.importorskip("sklearn")
    import deep.training
    from deep.train_cmd import main

    monkeypatch.setattr(deep.training, "train_epoch", lambda run, state, epoch, on_step: (
        state, np.array([np.nan])))
    run = tmp_path / "run"
    proc = _exit(main, TINY + ["--lr", "0.5", "--out", str(run)], capsys, monkeypatch)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "epoch 1" in lines[0] and "diverged" in lines[0] and "--lr (this run: 0.5)" in lines[0]
    assert (run / "metrics.jsonl").read_text() == "" and not (run / "checkpoint.npz").exists()


def test_training_warns_once_when_the_geometry_is_undefined(tmp_path, capsys, monkeypatch):
    """All-zero features (a dead ReLU) train on, logged as null with one warning line."""
    pytest.importorskip("flax")
    pytest.importorskip("sklearn")
    import deep.training
    from deep.metrics import epoch_metrics
    from deep.train_cmd import main

    monkeypatch.setattr(deep.training, "train_epoch", lambda run, state, epoch, on_step: (
        state, np.array([1.5])))
    monkeypatch.setattr(deep.training, "evaluate", lambda run, state, test="full": [epoch_metrics(
        np.zeros((run.labels.size, 8)), run.labels, np.zeros((run.y_test.size, 8)), run.y_test,
        k=run.num_classes, n_majority=run.n_majority)])
    run = tmp_path / "run"
    proc = _exit(main, TINY + ["--out", str(run)], capsys, monkeypatch)
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "100% of the training features are all zero" in warnings[0]
    assert "dOF=undefined" in proc.stdout and "nc1=undefined" in proc.stdout
    rows = [ln for ln in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all('"delta_gm_of": null' in r and '"nc1": null' in r for r in rows)


# ----------------------------------------------------------------------------- ufm.solve


def test_solve_reports_an_undefined_nc1_as_none():
    """d = 1 under ReLU: every row is +1, all class means equal; NC1 used to read 0."""
    res = ufm.solve([5, 5], d=1, nonneg=True, seed=0)
    assert res.metrics["nc1"] is None
    want = np.linalg.norm(np.ones((2, 2)) / 2 - np.eye(2) / np.sqrt(2))  # all-ones Gram vs I
    assert res.metrics["delta_gm_of"] == pytest.approx(want, rel=1e-9)


def test_cosine_sensitivity_is_the_least_pinned_pair_by_finite_differences():
    from ufm.core.closed_forms import cosine_sensitivity

    rng = np.random.default_rng(0)
    counts, tau = [6, 5, 3, 2], 0.3
    v = rng.normal(size=(4, 3))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    a = v @ v.T
    loss = ufm.collapsed_loss(counts, tau, a)
    rel = []
    for i in range(4):
        for j in range(i + 1, 4):
            e = np.zeros((4, 4))
            e[i, j] = e[j, i] = 1e-6
            fd = (ufm.collapsed_loss(counts, tau, a + e) - ufm.collapsed_loss(counts, tau, a - e)) / 2e-6
            rel.append(abs(fd) / loss)
    assert cosine_sensitivity(counts, tau, a) == pytest.approx(min(rel), rel=1e-6)
    # at the OF it falls like exp(-1/tau): still exact (log space) where the loss cannot see it
    s = [cosine_sensitivity([500] * 5 + [5] * 5, t, np.eye(10)) for t in (0.1, 0.05, 0.02)]
    assert s[0] > 1e-8 > s[1] > 1e-12 > 1e-20 > s[2] > 0


def test_solve_warns_when_the_loss_does_not_pin_the_geometry():
    counts = [6, 6, 3, 3]
    fine = ufm.solve(counts, tau=0.1, nonneg=True, seed=0)
    assert fine.warnings == [] and fine.metrics["cosine_sensitivity"] > 1e-8
    flat = ufm.solve(counts, tau=0.02, nonneg=True, seed=0)
    assert flat.status == "optimal"  # the value is still right ...
    assert flat.metrics["cosine_sensitivity"] < 1e-15  # ... but e^{-50} hides the cosines
    assert len(flat.warnings) == 1 and "not determined by the loss" in flat.warnings[0]
    assert flat.to_dict()["warnings"] == flat.warnings


# ----------------------------------------------------------------------------- batches and the dual bound


def test_out_of_range_batch_indices_are_errors():
    """JAX clamps an out-of-range gather index: a batch naming sample 7 of 6 used to be read
    as sample 5, and ufm.solve returned a loss for a problem nobody posed."""
    h = jnp.eye(6)
    y = [0, 0, 0, 1, 1, 1]
    with pytest.raises(ValueError, match="index 7, outside"):
        ufm.scl_loss(h, y, batches=[[0, 1, 7]])
    with pytest.raises(ValueError, match="index -2, outside"):
        ufm.scl_loss(h, y, batches=[[0, -2]])
    with pytest.raises(ValueError, match="index 9, outside"):
        ufm.gram_loss(h, y, batches=np.array([[0, 9]]))  # padded form: -1 pads, 9 does not
    with pytest.raises(ValueError, match="index 7, outside"):
        ufm.solve([3, 3], batches=[[0, 1, 7]])
    padded = np.array([[0, 1, 2], [3, 4, -1]])
    assert float(ufm.scl_loss(h, y, batches=padded)) == pytest.approx(
        float(ufm.scl_loss(h, y, batches=[[0, 1, 2], [3, 4]])), rel=1e-12)


def test_dual_bound_checks_its_point_and_survives_a_row_with_no_direction():
    labels = [0, 0, 1, 1, 2, 2]
    z = np.eye(4)[labels]
    optimum = ufm.of_loss([2, 2, 2], 0.1)
    with pytest.raises(ValueError, match="NaN or inf"):
        ufm.dual_bound(np.where(z == 1, np.nan, z), labels, 0.1, nonneg=True)
    with pytest.raises(ValueError, match="one row per label"):
        ufm.dual_bound(z, labels[:5], 0.1, nonneg=True)
    with pytest.raises(ValueError, match="tau must be"):
        ufm.dual_bound(z, labels, 0.0, nonneg=True)
    bad = z.copy()
    bad[0] = -1.0  # nothing left after the ReLU clip: the bound must stay finite and valid
    cert = ufm.dual_bound(bad, labels, 0.1, nonneg=True)
    assert np.isfinite(cert.lower_bound) and cert.lower_bound <= optimum
    assert ufm.dual_bound(z, labels, 0.1, nonneg=True).lower_bound == pytest.approx(optimum, rel=1e-9)


def test_count_and_dimension_arguments_are_checked():
    from theory_checks.interaction import check_batches

    with pytest.raises(ValueError, match="k must be an integer >= 2, got 10.5"):
        ufm.step_counts(10.5, 100)
    with pytest.raises(ValueError, match="R must be >= 1, got nan"):
        ufm.step_counts(10, float("nan"))
    with pytest.raises(ValueError, match="non-negative integers"):
        ufm.labels_from_counts([3, -1])
    with pytest.raises(ValueError, match="non-negative integers"):
        ufm.counts_from_labels([0, -1])
    with pytest.raises(ValueError, match="d must be an integer >= 1, got 0"):
        check_batches([0, 0, 1, 1], [[0, 1, 2, 3]], d=0)
    assert ufm.step_counts(np.int64(4), 2).tolist() == [10, 10, 5, 5]  # NumPy ints are ints
