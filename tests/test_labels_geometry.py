"""Class counts (ufm.core.labels) and geometry metrics (ufm.core.geometry) against the definitions of
DESIGN.md sections 1 and 4, computed independently here."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

import ufm
from ufm.core.labels import check_counts
from reference import unit_rows

# ----------------------------------------------------------------------------- STEP counts


def test_step_counts_default_problem():
    # k = 10, R = 100, rho = 0.5, n_min = 5: round(0.5 * 10) = 5 minority classes of 5 samples,
    # the other 5 are majority classes of 100 * 5 = 500, majority first.
    got = ufm.step_counts(10, 100)
    assert got.tolist() == [500] * 5 + [5] * 5
    assert np.issubdtype(got.dtype, np.integer)


@pytest.mark.parametrize(
    "k,R,rho,n_min,n_minority,n_major",
    [
        (10, 10, 0.3, 5, 3, 50),  # round(3.0) = 3
        (10, 10, 0.8, 2, 8, 20),
        (10, 2, 0.1, 4, 1, 8),
        (4, 3, 0.5, 3, 2, 9),
        (7, 4, 0.4, 2, 3, 8),  # round(2.8) = 3
        (6, 2.5, 0.5, 2, 3, 5),  # non-integer R: 2.5 * 2 = 5
        (3, 10, 0.2, 2, 1, 20),  # round(0.6) = 1
        (5, 10, 0.5, 2, 3, 20),  # tie 2.5: half-up (documented in step_counts) -> 3
    ],
)
def test_step_counts_rho_variants(k, R, rho, n_min, n_minority, n_major):
    got = ufm.step_counts(k, R, rho, n_min)
    assert got.tolist() == [n_major] * (k - n_minority) + [n_min] * n_minority
    assert got.size == k


@pytest.mark.parametrize("k,n_min", [(2, 2), (5, 3), (10, 5)])
def test_step_counts_balanced(k, n_min):
    assert ufm.step_counts(k, 1, 0.5, n_min).tolist() == [n_min] * k
    assert ufm.step_counts(k, 1.0, 0.3, n_min).tolist() == [n_min] * k


@pytest.mark.parametrize(
    "args",
    [
        (1, 10),
        (0, 10),
        (-3, 10),
        (4, 0.5),
        (4, 0.999),
        (4, 0),
        (4, 10, 0.0),
        (4, 10, 1.0),
        (4, 10, -0.2),
        (4, 10, 1.5),
        (4, 10, 0.5, 1),
        (4, 10, 0.5, 0),
        (4, 10, 0.5, -5),
    ],
)
def test_step_counts_errors(args):
    with pytest.raises(ValueError):
        ufm.step_counts(*args)


# ----------------------------------------------------------------------------- EXP counts


def _exact_exp_count(n_max, R, c, k):
    """floor(n_max * R^(-c/(k-1))) in exact rational arithmetic: the largest integer m with
    m^(k-1) * R^c <= n_max^(k-1)."""
    R = Fraction(R)
    p = k - 1
    target = Fraction(n_max) ** p
    m = int(n_max * float(R) ** (-c / p))  # a float guess, then fix it exactly
    m = max(m - 2, 0)
    while Fraction(m + 1) ** p * R**c <= target:
        m += 1
    while m > 0 and Fraction(m) ** p * R**c > target:
        m -= 1
    return m


@pytest.mark.parametrize(
    "k,R,n_max",
    [
        (3, 4, 8),
        (10, 100, 500),
        (5, 10, 100),
        (4, 8, 64),  # 8^(1/3) = 2: exact integers 64, 32, 16, 8
        (6, 32, 96),  # 32^(1/5) = 2: 96, 48, 24, 12, 6, 3
        (3, Fraction(5, 2), 10),
        (7, 49, 49 * 3),  # smallest 3 exactly
        (2, 1, 5),  # R = 1: balanced
        (10, 10, 37),
    ],
)
def test_exp_counts_exact(k, R, n_max):
    got = ufm.exp_counts(k, float(R), n_max)
    want = [_exact_exp_count(n_max, R, c, k) for c in range(k)]
    assert got.tolist() == want
    assert got[0] == n_max
    assert got[-1] == math.floor(Fraction(n_max) / Fraction(R))
    assert np.all(np.diff(got) <= 0)


@pytest.mark.parametrize("args", [(1, 10, 100), (3, 0.5, 100), (3, 10, 10)])
def test_exp_counts_errors(args):
    # k < 2; R < 1; smallest class floor(10/10) = 1 < 2
    with pytest.raises(ValueError):
        ufm.exp_counts(*args)


# ----------------------------------------------------------------------------- labels <-> counts


@pytest.mark.parametrize("counts", [[2, 2], [5, 3, 2], [500, 500, 5], [2, 7, 3, 9]])
def test_labels_counts_round_trip(counts):
    labels = ufm.labels_from_counts(counts)
    want = [c for c, n in enumerate(counts) for _ in range(n)]
    assert labels.tolist() == want
    assert ufm.counts_from_labels(labels).tolist() == list(counts)
    assert ufm.counts_from_labels(labels, k=len(counts) + 2).tolist() == list(counts) + [0, 0]


def test_counts_from_shuffled_labels():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 5, size=200)
    got = ufm.counts_from_labels(labels)
    want = [int(np.sum(labels == c)) for c in range(5)]
    assert got.tolist() == want
    assert ufm.labels_from_counts(got).tolist() == sorted(labels.tolist())


@pytest.mark.parametrize("bad", [[5], [], [3, 1], [2, 0, 2], [2.5, 3], [[2, 2], [2, 2]]])
def test_check_counts_rejects(bad):
    with pytest.raises(ValueError):
        check_counts(bad)


# ----------------------------------------------------------------------------- Delta_GM


def _etf_gram_by_hand(k):
    g = np.full((k, k), -1.0 / (k - 1))
    np.fill_diagonal(g, 1.0)
    return g


def _collapsed(labels, u, rng=None):
    z = u[labels]
    if rng is not None:  # rows scaled by positive factors: metrics normalize them
        z = z * rng.uniform(0.2, 5.0, size=(len(labels), 1))
    return z


@pytest.mark.parametrize("k", [2, 3, 4, 10])
def test_delta_gm_zero_at_targets(k):
    labels = np.repeat(np.arange(k), 3)
    rng = np.random.default_rng(k)
    z_of = _collapsed(labels, np.eye(k + 1)[:k], rng)
    g_of = ufm.class_mean_gram(z_of, labels)
    np.testing.assert_allclose(g_of, np.eye(k), atol=1e-14)
    assert ufm.delta_gm(g_of, "of") == pytest.approx(0.0, abs=1e-12)
    u = unit_rows(np.eye(k) - 1.0 / k)  # simplex ETF vectors in R^k
    z_etf = _collapsed(labels, u, rng)
    g_etf = ufm.class_mean_gram(z_etf, labels)
    np.testing.assert_allclose(g_etf, _etf_gram_by_hand(k), atol=1e-12)
    assert ufm.delta_gm(g_etf, "etf") == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_allclose(ufm.etf_gram(k), _etf_gram_by_hand(k), atol=1e-14)
    np.testing.assert_allclose(ufm.of_gram(k), np.eye(k), atol=0)


@pytest.mark.parametrize("k", [2, 3, 5, 10])
def test_delta_gm_of_vs_etf_by_hand(k):
    # ||I||_F = sqrt(k); ||E||_F^2 = k + k(k-1)/(k-1)^2 = k^2/(k-1); <I, E> = tr(E) = k, so
    # Delta^2 = 2 - 2 k / (sqrt(k) * k / sqrt(k-1)) = 2 - 2 sqrt((k-1)/k).
    want = math.sqrt(2.0 - 2.0 * math.sqrt((k - 1) / k))
    i_k, e_k = np.eye(k), _etf_gram_by_hand(k)
    brute = np.sqrt(np.sum((i_k / np.sqrt(np.sum(i_k**2)) - e_k / np.sqrt(np.sum(e_k**2))) ** 2))
    assert brute == pytest.approx(want, rel=1e-12)
    assert ufm.delta_gm(i_k, "etf") == pytest.approx(want, rel=1e-12)
    assert ufm.delta_gm(e_k, "of") == pytest.approx(want, rel=1e-12)
    assert ufm.delta_gm(e_k, i_k) == pytest.approx(want, rel=1e-12)


def test_delta_gm_symmetric_scale_invariant_bounded():
    rng = np.random.default_rng(1)
    for _ in range(20):
        k = int(rng.integers(2, 8))
        a, b = rng.normal(size=(k, k)), rng.normal(size=(k, k))
        a, b = a @ a.T, b + b.T  # a PSD, b any symmetric
        dab, dba = ufm.delta_gm(a, b), ufm.delta_gm(b, a)
        assert dab == pytest.approx(dba, rel=1e-12, abs=1e-15)
        assert 0.0 <= dab <= 2.0
        want = np.linalg.norm(a / np.linalg.norm(a) - b / np.linalg.norm(b))
        assert dab == pytest.approx(want, rel=1e-12)
        assert ufm.delta_gm(3.7 * a, b) == pytest.approx(dab, rel=1e-12)
        for target in ("of", "etf"):
            assert 0.0 <= ufm.delta_gm(a, target) <= 2.0
            assert 0.0 <= ufm.delta_gm(b, target) <= 2.0
        assert ufm.delta_gm(-a, a) == pytest.approx(2.0, rel=1e-12)
        assert ufm.delta_gm(a, a) == pytest.approx(0.0, abs=1e-12)


def test_delta_gm_bad_target():
    with pytest.raises(ValueError):
        ufm.delta_gm(np.eye(3), "simplex")


# ----------------------------------------------------------------------------- class-mean Gram


@pytest.mark.parametrize("seed", range(4))
def test_class_mean_gram_of_collapsed_is_class_gram(seed):
    rng = np.random.default_rng(10 + seed)
    k = int(rng.integers(2, 7))
    d = int(rng.integers(2, 8))
    counts = rng.integers(2, 6, size=k)
    labels = np.repeat(np.arange(k), counts)
    perm = rng.permutation(labels.size)
    u = unit_rows(rng.normal(size=(k, d)))
    z = _collapsed(labels, u, rng)[perm]
    got = ufm.class_mean_gram(z, labels[perm])
    np.testing.assert_allclose(got, u @ u.T, atol=1e-12)


def _class_mean_gram_by_loops(z, labels, k):
    z = [np.asarray(r, float) / math.sqrt(sum(x * x for x in r)) for r in z]
    means = []
    for c in range(k):
        members = [z[i] for i in range(len(z)) if labels[i] == c]
        m = sum(members) / len(members)
        means.append(m / math.sqrt(sum(x * x for x in m)))
    return np.array([[float(np.dot(means[a], means[b])) for b in range(k)] for a in range(k)])


@pytest.mark.parametrize("seed", range(3))
def test_class_mean_gram_general_by_loops(seed):
    rng = np.random.default_rng(20 + seed)
    k, d = 4, 5
    labels = np.concatenate([np.arange(k), rng.integers(0, k, size=12)])
    z = rng.normal(size=(labels.size, d)) * rng.uniform(0.1, 9, size=(labels.size, 1))
    got = ufm.class_mean_gram(z, labels)
    np.testing.assert_allclose(got, _class_mean_gram_by_loops(z, labels, k), atol=1e-12)
    np.testing.assert_allclose(np.diag(got), 1.0, atol=1e-12)


# ----------------------------------------------------------------------------- NC1


def _nc1_by_definition(z, labels, k, rcond=1e-6):
    """tr(Sigma_W Sigma_B^+)/k on row-normalized z (ufm.core.geometry docstring), explicit sums."""
    z = np.asarray(z, float)
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    n, d = z.shape
    mu = np.array([z[labels == c].mean(axis=0) for c in range(k)])
    sw = np.zeros((d, d))
    for i in range(n):
        v = z[i] - mu[labels[i]]
        sw += np.outer(v, v)
    sw /= n
    mu_g = mu.mean(axis=0)
    sb = np.zeros((d, d))
    for c in range(k):
        v = mu[c] - mu_g
        sb += np.outer(v, v)
    sb /= k
    w, vecs = np.linalg.eigh(sb)
    keep = w > rcond * w.max()
    sb_pinv = (vecs[:, keep] / w[keep]) @ vecs[:, keep].T
    return max(float(np.trace(sw @ sb_pinv)) / k, 0.0)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("noise", [0.05, 0.3, 2.0])
def test_nc1_matches_definition(seed, noise):
    rng = np.random.default_rng(30 + seed)
    k = int(rng.integers(2, 6))
    d = max([k - 1, k, k + 3][seed % 3], 2)  # Sigma_B full rank (d = k-1) or rank-deficient
    counts = rng.integers(2, 7, size=k)
    labels = np.repeat(np.arange(k), counts)
    u = unit_rows(rng.normal(size=(k, d)))
    z = u[labels] + noise * rng.normal(size=(labels.size, d))
    got = ufm.nc1(z, labels)
    want = _nc1_by_definition(z, labels, k)
    assert want > 0
    assert got == pytest.approx(want, rel=1e-8)


@pytest.mark.parametrize("k,d", [(2, 2), (3, 3), (4, 6), (5, 4)])
def test_nc1_zero_at_collapse_positive_with_noise(k, d):
    rng = np.random.default_rng(k * 10 + d)
    labels = np.repeat(np.arange(k), 4)
    u = unit_rows(rng.normal(size=(k, d)))
    z = _collapsed(labels, u, rng)
    assert ufm.nc1(z, labels) == pytest.approx(0.0, abs=1e-12)
    # OF collapse
    if d >= k:
        assert ufm.nc1(np.eye(d)[labels], labels) == pytest.approx(0.0, abs=1e-12)
    noisy = u[labels] + 0.1 * rng.normal(size=z.shape)
    val = ufm.nc1(noisy, labels)
    assert val > 1e-4
    # more within-class noise -> larger NC1 (same noise directions, larger amplitude)
    noisier = u[labels] + 0.3 * (noisy - u[labels]) / 0.1
    assert ufm.nc1(noisier, labels) > val


def test_nc1_invariant_to_row_scaling_and_nonnegative():
    rng = np.random.default_rng(40)
    for _ in range(25):
        k = int(rng.integers(2, 6))
        d = int(rng.integers(1, 7))
        labels = np.concatenate([np.arange(k), np.arange(k), rng.integers(0, k, size=6)])
        z = rng.normal(size=(labels.size, d))
        val = ufm.nc1(z, labels)
        assert val >= 0.0
        assert np.isfinite(val)
        scaled = z * rng.uniform(0.01, 100, size=(labels.size, 1))
        assert ufm.nc1(scaled, labels) == pytest.approx(val, rel=1e-8, abs=1e-12)
