"""``python -m figures.make --quick``: every figure is drawn and its numbers check out (issue 6).

The numbers in summary.json are compared with independent references: closed forms (the OF
Gram = identity under ReLU, the ETF cosine -1/(k-1) at R = 1, the ETF value, the regularized
CE optimum and its weight radius from a root finder run here), and the batched optimum
recomputed here from the recorded schedule with ``ufm.batched_of_loss`` and a plain loop.
"""

import json
import math
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import brentq

import ufm
from reference import batched_of_value
from theory_checks.schedules import schedule_batches

ROOT = Path(__file__).resolve().parents[1]
PNGS = ["fig1_heatmaps.png", "fig2_delta_gm.png", "fig3_cosines.png", "fig4_batching.png",
        "fig5_landscape.png", "fig6_graf_toy.png"]


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    out = tmp_path_factory.mktemp("figures")
    env = dict(os.environ)
    # tiny problems: compilation dominates, and XLA's codegen optimizations do not pay off
    env.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0")
    proc = subprocess.run([sys.executable, "-m", "figures.make", "--quick", "--out", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    return out, summary, proc.stdout


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path.name} is not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_every_png_is_a_real_figure_and_timed(made):
    out, summary, stdout = made
    for name in PNGS:
        path = out / name
        assert path.exists(), name
        width, height = _png_size(path)
        assert 600 <= width <= 1400 and 250 <= height <= 900, (name, width, height)
        assert path.stat().st_size > 15_000, name  # not blank
        assert name in stdout  # its run time is printed
    assert summary["mode"] == "quick"
    assert set(summary["figures"]) == {"heatmaps", "delta_gm", "cosines", "batching", "landscape", "graf_toy"}
    assert "jax" in summary["versions"]


def test_heatmaps_relu_is_the_identity_and_balanced_is_the_etf(made):
    fig = made[1]["figures"]["heatmaps"]
    k = fig["config"]["k"]
    assert fig["certified"]
    assert np.abs(np.array(fig["gram"]["relu"]) - np.eye(k)).max() <= 1e-3
    etf = np.array(fig["gram"]["etf"])
    off = etf[~np.eye(k, dtype=bool)]
    assert np.abs(off + 1.0 / (k - 1)).max() <= 1e-3
    # without ReLU under imbalance: neither OF nor ETF, and the certificate agrees with the solver
    norelu = np.array(fig["gram"]["norelu"])
    assert np.abs(norelu - np.eye(k)).max() > 0.1 and np.abs(norelu - etf).max() > 0.05
    assert fig["norelu_max_abs_solver_vs_certificate"] <= 1e-3
    # the ReLU loss is the closed form L*_OF
    relu = fig["panels"]["relu"]
    of = ufm.of_loss(fig["counts"], fig["config"]["tau"])
    assert abs(relu["loss"] - of) <= 1e-6 * of


def test_cosines_at_r1_are_the_etf_cosine(made):
    fig = made[1]["figures"]["cosines"]
    k = fig["k"]
    r1 = next(r for r in fig["rows"] if r["R"] == 1)
    for key in ("maj_maj", "maj_min", "min_min"):
        assert abs(r1[key] + 1.0 / (k - 1)) <= 1e-4, key
    r10 = next(r for r in fig["rows"] if r["R"] == 10)
    assert r10["min_min"] > r10["maj_min"] > r10["maj_maj"]  # the broken symmetry's ordering
    assert fig["all_ok"]


def test_delta_gm_relu_is_of_and_balanced_no_relu_is_etf(made):
    fig = made[1]["figures"]["delta_gm"]
    assert fig["certified"]
    for p in fig["points"]:
        if p["nonneg"]:
            assert p["delta_gm_of"] <= 1e-3
        elif p["R"] == 1:
            assert p["delta_gm_etf"] <= 1e-3
        else:
            assert p["delta_gm_etf"] > 1e-2 and p["delta_gm_of"] > 0.3


def test_batching_values_match_the_batched_of_optimum(made):
    fig = made[1]["figures"]["batching"]
    cfg = fig["config"]
    labels = ufm.labels_from_counts(fig["counts"])
    for run in fig["runs"]:
        batches = schedule_batches(labels, schedule=run["schedule"], batch_size=cfg["batch_size"],
                                   epochs=cfg["epochs"], seed=run["seed"])
        ref = batched_of_value(labels, batches, cfg["tau"])
        assert math.isclose(ufm.batched_of_loss(labels, batches, cfg["tau"]), ref, rel_tol=1e-12)
        assert math.isclose(run["batched_of_loss"], ref, rel_tol=1e-12)
        assert abs(run["loss"] - ref) <= 1e-6 * ref  # the optimal value is always reached
        if run["schedule"] == "binding":
            assert run["conditions_hold"]
            assert run["delta_gm_of"] <= 1e-3
        if run["schedule"] == "sorted":
            assert not run["conditions_hold"]


def test_landscape_without_relu_always_reaches_the_bound(made):
    fig = made[1]["figures"]["landscape"]
    assert fig["starts"] >= 50
    assert fig["norelu"]["fraction_within_tol"] == 1.0
    relu = fig["relu"]
    assert 0.0 <= relu["fraction_within_tol"] <= 1.0
    # nothing ends below the bound (beyond the conic solver's accuracy)
    assert min(relu["rel_gap"]) >= -1e-8 and min(fig["norelu"]["rel_gap"]) >= -1e-8
    # under ReLU the reduced bound is the closed form L*_OF
    assert abs(relu["lower_bound"] - fig["of_loss"]) <= 1e-7 * fig["of_loss"]


def test_graf_toy_matches_closed_forms(made):
    fig = made[1]["figures"]["graf_toy"]
    cfg = fig["config"]
    k, tau, lam, rho = cfg["k"], cfg["tau"], cfg["lam"], cfg["rho_z"]
    sc = fig["sc"]
    assert abs(sc["loss"] - ufm.etf_loss(fig["counts"], tau)) <= 1e-6 * sc["loss"]
    assert sc["certified"] and sc["max_abs_gram_minus_etf"] <= 1e-3
    r = brentq(lambda x: 2 * lam * x * (math.exp(k / (k - 1) * rho * x) + k - 1) - rho, 1e-9, 50.0)
    ce = fig["ce"]
    assert abs(ce["r_w"] - r) <= 1e-4 * r
    optimum = math.log(1 + (k - 1) * math.exp(-k / (k - 1) * rho * r)) + lam * k * r * r
    assert abs(ce["loss"] - optimum) <= 1e-7
    assert ce["delta_gm_etf"] <= 1e-3 and ce["max_angle_w_vs_mean_deg"] <= 0.1
