"""ufm.solve on small problems: UFM+ reaches the orthogonal frame at the closed-form optimum,
balanced UFM reaches the simplex ETF, imbalanced UFM goes below the OF value. Every reported
number is re-derived here from res.z with the independent references."""

from __future__ import annotations

import numpy as np
import pytest

import ufm
from ufm.solvers.config import SolverConfig
from reference import brute_scl_loss, numpy_full_batch_loss


def _labels(counts):
    return np.concatenate([np.full(n, c) for c, n in enumerate(counts)])


def _class_mean_gram(z, labels, k):
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    means = np.array([z[labels == c].mean(axis=0) for c in range(k)])
    means /= np.linalg.norm(means, axis=1, keepdims=True)
    return means @ means.T


def _delta(g, t):
    return float(np.linalg.norm(g / np.linalg.norm(g) - t / np.linalg.norm(t)))


def _etf(k):
    t = np.full((k, k), -1.0 / (k - 1))
    np.fill_diagonal(t, 1.0)
    return t


def _check_result_consistency(res, counts, tau, d):
    """What every SolveResult must satisfy, whatever the problem."""
    k = len(counts)
    labels = _labels(counts)
    assert np.array_equal(np.asarray(res.labels), labels)
    assert [int(c) for c in res.counts] == list(counts)
    z = np.asarray(res.z, dtype=np.float64)
    assert z.shape == (labels.size, d)
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1.0, atol=1e-12)
    # the reported loss is the true SC loss of the returned embeddings
    want = brute_scl_loss(z, labels, tau, normalize=False) if labels.size <= 120 else \
        numpy_full_batch_loss(z, labels, tau)
    assert res.loss == pytest.approx(want, rel=1e-9)
    # the reported geometry is that of the returned embeddings
    g = _class_mean_gram(z, labels, k)
    np.testing.assert_allclose(np.asarray(res.metrics["class_mean_gram"]), g, atol=1e-9)
    assert res.metrics["delta_gm_of"] == pytest.approx(_delta(g, np.eye(k)), abs=1e-9)
    assert res.metrics["delta_gm_etf"] == pytest.approx(_delta(g, _etf(k)), abs=1e-9)
    assert res.metrics["nc1"] >= 0.0
    return z, labels, want


# ----------------------------------------------------------------------------- UFM+ (ReLU)

NONNEG_CASES = [
    ("step_R1", [int(c) for c in ufm.step_counts(3, 1, 0.5, 4)], 0),  # balanced, d = k
    ("step_R10", [20, 20, 2, 2], 2),  # step_counts(4, 10, 0.5, 2), d = k + 2
    ("step_rho0.75", [10, 2, 2, 2], 0),  # step_counts(4, 5, 0.75, 2)
    ("exp", [16, 8, 4, 2], 2),  # exp_counts(4, 8, 16)
    ("random", [7, 3, 2, 5], 0),
]


def test_nonneg_cases_are_what_they_claim():
    assert NONNEG_CASES[0][1] == [4, 4, 4]
    assert ufm.step_counts(4, 10, 0.5, 2).tolist() == NONNEG_CASES[1][1]
    assert ufm.step_counts(4, 5, 0.75, 2).tolist() == NONNEG_CASES[2][1]
    assert ufm.exp_counts(4, 8, 16).tolist() == NONNEG_CASES[3][1]


@pytest.mark.parametrize("name,counts,extra_d", NONNEG_CASES, ids=[c[0] for c in NONNEG_CASES])
def test_nonneg_reaches_orthogonal_frame(name, counts, extra_d):
    tau = 0.1
    k = len(counts)
    d = k + extra_d
    res = ufm.solve(counts, d=d, tau=tau, nonneg=True, seed=0, method="samples")  # every sample free
    z, labels, loss = _check_result_consistency(res, counts, tau, d)
    assert res.status == "optimal"
    assert z.min() >= 0.0
    of = ufm.of_loss(counts, tau)
    gap = (loss - of) / abs(of)
    assert gap <= 1e-6
    assert gap >= -1e-9  # L*_OF is the global minimum under ReLU: nothing goes below it
    assert res.metrics["delta_gm_of"] <= 1e-3
    # collapse onto orthogonal class directions, checked directly on z
    g = _class_mean_gram(z, labels, k)
    np.testing.assert_allclose(g, np.eye(k), atol=2e-3)
    assert res.optimum == pytest.approx(of, rel=1e-12)
    assert res.rel_gap == pytest.approx((res.loss - of) / of, abs=1e-12)


def test_default_problem():
    """The paper's setting: k = 10, R = 100, rho = 0.5, n_min = 5 (N = 2525), tau = 0.1, ReLU.
    (``python -m ufm.bench`` solves it from several seeds and certifies each.)"""
    counts = [int(c) for c in ufm.step_counts(10, 100)]
    assert counts == [500] * 5 + [5] * 5
    of = ufm.of_loss(counts, 0.1)
    for method in ("auto", "samples"):  # auto: the class vectors, certified in sample space
        res = ufm.solve(counts, nonneg=True, seed=0, method=method)
        z, labels, loss = _check_result_consistency(res, counts, 0.1, 10)
        assert z.min() >= 0.0
        gap = (loss - of) / abs(of)
        assert -1e-9 <= gap <= 1e-5, (seed, gap)
        assert res.metrics["delta_gm_of"] <= 1e-3
        assert _delta(_class_mean_gram(z, labels, 10), np.eye(10)) <= 1e-3


def test_one_compilation_serves_every_temperature():
    """tau is an argument of the compiled solver too (a --tau-path compiles once): a second
    temperature with the same shapes compiles nothing and reaches its own L*_OF, not the first
    temperature's (a stale constant tau would land on the other value)."""
    counts = [7, 5, 3, 2]
    res1 = ufm.solve(counts, nonneg=True, tau=0.4, seed=0)
    res2 = ufm.solve(counts, nonneg=True, tau=0.15, seed=0)
    assert res2.timing["compile_seconds"] < 0.05  # a recompile takes seconds
    for res, tau in ((res1, 0.4), (res2, 0.15)):
        of = ufm.of_loss(counts, tau)
        assert abs(res.loss - of) <= 1e-9 * abs(of)
    assert abs(ufm.of_loss(counts, 0.4) - ufm.of_loss(counts, 0.15)) > 1.0


# ----------------------------------------------------------------------------- UFM (no ReLU)


def test_one_compilation_serves_problems_of_the_same_shapes():
    """The labels and counts are arguments of the compiled solver, not constants: a second
    imbalance with the same N, k, d and tau compiles nothing, and each still reaches its own
    closed form L*_OF (a stale compiled problem would land on the other's value)."""
    first, second = [10, 5, 3, 3], [6, 6, 6, 3]  # N = 21, k = 4 for both
    res1 = ufm.solve(first, nonneg=True, tau=0.35, seed=0)
    res2 = ufm.solve(second, nonneg=True, tau=0.35, seed=1)
    assert res2.timing["compile_seconds"] < 0.05 < res1.timing["compile_seconds"]
    for res, counts in ((res1, first), (res2, second)):
        of = ufm.of_loss(counts, 0.35)
        assert abs(res.loss - of) <= 1e-9 * abs(of)
        assert abs(brute_scl_loss(res.z, res.labels, 0.35, normalize=False) - of) <= 1e-9 * abs(of)
    assert ufm.of_loss(first, 0.35) != pytest.approx(ufm.of_loss(second, 0.35), rel=1e-3)


@pytest.mark.parametrize("k", [3, 4, 5])
def test_balanced_no_relu_reaches_simplex_etf(k):
    tau = 0.1
    counts = [4] * k
    res = ufm.solve(counts, tau=tau, seed=0, method="samples")
    z, labels, loss = _check_result_consistency(res, counts, tau, k)
    etf = ufm.etf_loss(counts, tau)
    assert (loss - etf) / etf <= 1e-6
    assert (loss - etf) / etf >= -1e-9  # the ETF value is the global minimum here
    assert res.metrics["delta_gm_etf"] <= 1e-3
    g = _class_mean_gram(z, labels, k)
    off = g[~np.eye(k, dtype=bool)]
    np.testing.assert_allclose(off, -1.0 / (k - 1), atol=2e-3)
    assert z.min() < -0.1  # no sign constraint: the ETF needs negative entries
    assert res.status == "optimal"


@pytest.mark.parametrize("counts", [[7, 3, 2, 5]])
def test_imbalanced_no_relu_beats_orthogonal_frame(counts):
    tau = 0.1
    k = len(counts)
    res = ufm.solve(counts, tau=tau, seed=0, method="samples")
    z, labels, loss = _check_result_consistency(res, counts, tau, k)
    of = ufm.of_loss(counts, tau)
    # the OF is feasible but not optimal without ReLU: strictly lower, by a clear margin
    assert loss < of - 1e-5 * of
    # the simplex ETF (feasible, d = k) is not optimal either under imbalance; the solver beats it
    assert loss <= ufm.etf_loss(counts, tau) + 1e-9 * of
    # no closed form here: the reduced relaxation's lower bound (tight for d >= k) is the
    # reference, and the solver reaches it at a stationary point
    from ufm.certificates.relaxation import reduced_relaxation

    bound = reduced_relaxation(counts, tau, nonneg=False)
    assert bound.ok
    assert res.optimum_kind == "relaxation" and res.optimum == pytest.approx(bound.lower_bound, rel=1e-12)
    assert (loss - bound.lower_bound) / abs(bound.lower_bound) <= 1e-6
    assert res.status == "optimal"


# ----------------------------------------------------------------------------- invalid input


@pytest.mark.parametrize(
    "counts,kwargs",
    [
        ([3, 3], {"tau": 0.0}),
        ([3, 3], {"tau": -0.1}),
        ([3, 3], {"tau": float("nan")}),  # not > 0 either; must not slip past `tau <= 0`
        ([3, 3], {"d": 0}),
        ([3, 3], {"d": -2}),
        ([3, 1, 3], {}),
        ([1, 4], {"nonneg": True}),
        ([5], {}),
    ],
)
def test_solve_invalid_inputs(counts, kwargs):
    with pytest.raises(ValueError):
        ufm.solve(counts, **kwargs)


# ----------------------------------------------------------------------------- method="auto"


def test_auto_solves_over_classes_and_certifies_in_sample_space():
    """Full batch, d >= k: auto takes the class vectors and keeps them only with a proven
    sample-space bound; the bound sits below the closed form L*_OF by at most rounding."""
    counts = [int(c) for c in ufm.step_counts(10, 100)]
    res = ufm.solve(counts, nonneg=True, seed=3)
    choice = res.method_choice
    assert res.config["method"] == "classes" and choice["used"] == "classes"
    cert = choice["collapse_certificate"]
    of = ufm.of_loss(counts, 0.1)
    assert cert["certified"] and cert["lower_bound"] <= of <= cert["lower_bound"] * (1 + 1e-12)
    assert res.status == "optimal" and abs(res.loss - of) <= 1e-9 * of
    assert res.metrics["delta_gm_of"] <= 1e-3
    assert res.to_dict()["method_choice"]["used"] == "classes"


def test_auto_falls_back_to_the_samples_when_collapse_is_not_certified():
    """With accept_tol = 0 no rounded bound can certify the collapsed answer: auto solves the
    samples too, says so, and the samples answer still reaches L*_OF."""
    counts = [6, 4, 3]
    res = ufm.solve(counts, nonneg=True, seed=0, config=SolverConfig(accept_tol=0.0, restarts=0))
    choice = res.method_choice
    assert choice["tried"] == ["classes", "samples"] and choice["used"] == "samples"
    assert res.config["method"] == "samples"
    assert not choice["collapse_certificate"]["certified"]
    assert abs(res.loss - ufm.of_loss(counts, 0.1)) <= 1e-8 * ufm.of_loss(counts, 0.1)


@pytest.mark.parametrize("counts, kwargs, used", [
    ([4, 3, 3, 3], {"d": 2}, "samples"),  # d < k - 1: no relaxation bound is tight here
    ([4, 3, 3], {"batches": [[0, 1, 4, 5], [2, 3, 6, 7], [0, 8, 9, 2]]}, "samples"),
])
def test_auto_keeps_the_samples_where_no_certificate_applies(counts, kwargs, used):
    res = ufm.solve(counts, nonneg=False, seed=0, **kwargs)
    assert res.method_choice["used"] == used == res.config["method"]
    assert "collapse_certificate" not in res.method_choice
