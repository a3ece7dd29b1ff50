"""Graf et al., "Dissecting Supervised Contrastive Learning" (ICML 2021); DESIGN.md section 4.

Results validated (each against an independent reference: a closed form, the convex
relaxation's bound, or explicitly constructed configurations):

1. SC loss, balanced classes, unit sphere: the minimum equals the closed form of collapse onto
   the simplex ETF; solver runs reach it and are collapsed + ETF; the relaxation's bound equals
   it (global); collapsed non-ETF configurations and perturbations of the optimum cost more.
2. CE with ||z_i|| <= rho_Z: CE(Z, W) >= log(1 + (K-1) exp(-rho_Z sqrt(K)/(K-1) ||W||_F)) for
   random Z, W; equality at collapse + ETF + aligned ETF weights.
3. CE + lam ||W||_F^2: features on an ETF, weights on the aligned ETF of radius r_W, the root of
   2 lam r_W (exp(K/(K-1) rho_Z r_W) + K - 1) - rho_Z = 0 (found here by bisection).
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ufm
from reference import brute_scl_loss
from ufm.solvers.ce import ce_loss, ce_lower_bound, ce_weight_radius, solve_ce


def simplex(k: int, d: int | None = None, seed: int = 0) -> np.ndarray:
    """k unit vectors with pairwise cosine -1/(k-1), randomly rotated into R^d."""
    e = np.eye(k) - 1.0 / k
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    d = d or k
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(max(d, k), max(d, k))))
    return (e @ q[:k, :d]) if d >= k else e @ np.linalg.svd(e)[2][: k - 1].T


# ----------------------------------------------------------------------------- 1. SC, balanced


@pytest.mark.parametrize("k,n", [(3, 4), (4, 6), (6, 5)])
def test_sc_balanced_minimum_is_collapsed_etf(k, n):
    counts = [n] * k
    labels = ufm.labels_from_counts(counts)
    etf = ufm.etf_loss(counts, 0.1)
    # the closed form is the loss of the explicit construction (brute force)
    assert math.isclose(brute_scl_loss(simplex(k)[labels], labels, 0.1), etf, rel_tol=1e-10)
    # the relaxation's bound equals it: the ETF is a global minimum
    bound = ufm.certify(counts, 0.1, nonneg=False)
    assert bound.ok and abs(bound.lower_bound - etf) <= 1e-6 * max(1.0, etf)
    # and the solver, from several starts, ends there collapsed onto the ETF
    for seed in range(3):
        res = ufm.solve(counts, d=k, tau=0.1, seed=seed, method="samples")  # no collapse assumed
        assert abs(res.loss - etf) <= 1e-7 * max(1.0, etf)
        assert res.metrics["delta_gm_etf"] < 1e-3 and res.metrics["nc1"] < 1e-4


@pytest.mark.parametrize("k", [3, 5])
def test_sc_balanced_non_etf_or_non_collapsed_costs_more(k):
    """'Only if': collapsed non-ETF class geometries and small perturbations raise the loss."""
    counts = [4] * k
    labels = ufm.labels_from_counts(counts)
    etf = ufm.etf_loss(counts, 0.5)
    rng = np.random.default_rng(k)
    for _ in range(20):  # collapsed onto random unit class vectors
        v = rng.normal(size=(k, k))
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        assert ufm.collapsed_loss(counts, 0.5, v @ v.T) > etf
    z0 = simplex(k)[labels]
    for scale in (1e-1, 1e-2):  # not collapsed: perturbed off the optimum, on the sphere
        for _ in range(10):
            z = z0 + scale * rng.normal(size=z0.shape)
            z /= np.linalg.norm(z, axis=1, keepdims=True)
            assert brute_scl_loss(z, labels, 0.5) > etf


# ----------------------------------------------------------------------------- 2. CE bound


def _ce(z, w, labels) -> float:
    with jax.enable_x64(True):
        return float(ce_loss(jnp.asarray(z), jnp.asarray(w), jnp.asarray(labels)))


def _ce_loop(z, w, labels) -> float:
    total = 0.0
    for i, y in enumerate(labels):
        logits = w @ z[i]
        total += -logits[y] + math.log(sum(math.exp(v) for v in logits))
    return total / len(labels)


@pytest.mark.parametrize("k", [2, 4, 7])
def test_ce_lower_bound_random_points(k):
    rng = np.random.default_rng(k)
    labels = np.repeat(np.arange(k), 5)
    for _ in range(200):
        d = int(rng.integers(k - 1 if k > 2 else 1, k + 3))
        rho = float(rng.uniform(0.1, 5.0))
        z = rng.normal(size=(labels.size, d))
        z *= rho * rng.uniform(0.2, 1.0, size=(labels.size, 1)) / np.linalg.norm(z, axis=1, keepdims=True)
        w = rng.normal(size=(k, d)) * rng.uniform(0.01, 3.0)
        value = _ce(z, w, labels)
        assert math.isclose(value, _ce_loop(z, w, labels), rel_tol=1e-10)
        assert value >= ce_lower_bound(k, rho, float(np.linalg.norm(w))) - 1e-12


@pytest.mark.parametrize("k,rho,r", [(3, 1.0, 0.7), (4, 2.0, 1.5), (10, 0.5, 3.0)])
def test_ce_lower_bound_equality_at_aligned_etf(k, rho, r):
    labels = np.repeat(np.arange(k), 3)
    m = simplex(k, d=k + 2, seed=1)
    z, w = rho * m[labels], r * m
    assert math.isclose(_ce(z, w, labels), ce_lower_bound(k, rho, float(np.linalg.norm(w))), rel_tol=1e-12)


# ----------------------------------------------------------------------------- 3. CE + L2


def _bisect_radius(k, rho, lam) -> float:
    f = lambda r: 2 * lam * r * (math.exp(k / (k - 1) * rho * r) + k - 1) - rho
    lo, hi = 0.0, 1.0
    while f(hi) < 0:
        hi *= 2
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if f(mid) < 0 else (lo, mid)
    return 0.5 * (lo + hi)


@pytest.mark.parametrize("k,rho,lam", [(3, 0.5, 0.05), (4, 1.0, 5e-3), (5, 3.0, 1e-2), (4, 2.0, 1e-3)])
def test_regularized_ce_gives_etf_and_aligned_weights_of_radius_r_w(k, rho, lam):
    r_ref = _bisect_radius(k, rho, lam)
    assert math.isclose(ce_weight_radius(k, rho, lam), r_ref, rel_tol=1e-12)
    res = solve_ce([8] * k, d=k, rho_z=rho, lam=lam, seed=0)
    gram = ufm.class_mean_gram(res.z, res.labels, k)
    assert ufm.delta_gm(gram, "etf") < 1e-5  # features: collapse + ETF
    np.testing.assert_allclose(np.linalg.norm(res.z, axis=1), rho, rtol=1e-12)
    norms = np.linalg.norm(res.w, axis=1)
    np.testing.assert_allclose(norms, r_ref, rtol=1e-6)  # every weight row at radius r_W
    means = np.stack([res.z[res.labels == c].mean(0) for c in range(k)])
    cos = np.sum(means * res.w, 1) / (np.linalg.norm(means, axis=1) * norms)
    np.testing.assert_allclose(cos, 1.0, atol=1e-6)  # aligned with the class means
    # its value is the closed form at that radius: lower bound + lam K r_W^2
    closed = ce_lower_bound(k, rho, math.sqrt(k) * r_ref) + lam * k * r_ref**2
    assert abs(res.loss - closed) <= 1e-9
