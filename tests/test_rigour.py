"""Every reported lower bound is a bound: checked against optima computed independently in
50-digit decimal arithmetic, for every method and solver, including a conic solver made
inaccurate on purpose (issue 33; DESIGN.md section 5).

References (independent of the code under test): the closed forms of DESIGN.md section 4
evaluated with Python's ``decimal`` at 50 digits (``of_exact``, ``batched_of_exact``,
``etf_exact``), and matrices whose smallest eigenvalue is known exactly.
"""

from __future__ import annotations

import math
from decimal import Decimal, getcontext

import numpy as np
import pytest

import ufm
from ufm.certificates import relaxation
from ufm.certificates.certification import certificate, certify
from ufm.certificates.dual import class_dual_bound, dual_bound, gram_dual_bound
from ufm.certificates.relaxation import full_relaxation, reduced_relaxation
from ufm.certificates.rigorous import psd_lower_bound, sum_bounds
from reference import reshuffled_batches

getcontext().prec = 50


# ----------------------------------------------------------------------------- exact references


def _exp(x: Decimal) -> Decimal:
    return x.exp()


def of_exact(counts, tau: float) -> Decimal:
    """``sum_c n_c ln(n_c - 1 + (N - n_c) e^{-1/tau})`` in 50-digit decimals (tau as the float)."""
    t = Decimal(tau)
    w = _exp(-1 / t)
    n_all = sum(int(c) for c in counts)
    return sum(int(c) * (Decimal(int(c) - 1) + Decimal(n_all - int(c)) * w).ln() for c in counts)


def batched_of_exact(labels, batches, tau: float) -> Decimal:
    """The batched OF optimum (DESIGN.md section 4) in 50-digit decimals."""
    t = Decimal(tau)
    w = _exp(-1 / t)
    labels = np.asarray(labels)
    total = Decimal(0)
    for b in batches:
        yb = labels[np.asarray(b)]
        size = len(b)
        for c in np.unique(yb):
            n_bc = int(np.sum(yb == c))
            if n_bc >= 2:
                total += n_bc * (Decimal(n_bc - 1) + Decimal(size - n_bc) * w).ln()
    return total


def etf_exact(k: int, n: int, tau: float) -> Decimal:
    """Balanced ETF optimum: ``k n ln(n - 1 + (k - 1) n e^{-(1 + 1/(k-1))/tau})``."""
    t = Decimal(tau)
    w = _exp(-(1 + Decimal(1) / (k - 1)) / t)
    return k * n * (Decimal(n - 1) + Decimal((k - 1) * n) * w).ln()


def below(bound: float, exact: Decimal) -> bool:
    """The float bound is at or below the exact value (compared exactly)."""
    return Decimal(bound) <= exact


def of_point(labels, k):
    return np.eye(k)[np.asarray(labels)]


def etf_point(labels, k):
    m = np.eye(k) - 1.0 / k
    m /= np.linalg.norm(m, axis=1, keepdims=True)
    return m[np.asarray(labels)]


# ----------------------------------------------------------------------------- the building blocks


def test_sum_bounds_encloses_exact_sums():
    rng = np.random.default_rng(0)
    for _ in range(50):
        x = rng.standard_normal(int(rng.integers(1, 2000))) * 10.0 ** rng.integers(-8, 8)
        exact = sum(Decimal(float(v)) for v in x)
        lo, hi = sum_bounds(x)
        assert Decimal(lo) <= exact <= Decimal(hi)
        assert hi - lo <= 1e-11 * max(1.0, float(np.sum(np.abs(x))))


def test_sum_bounds_catches_cancellation():
    x = np.array([1e16, 1.0, -1e16, 1.0])  # float sum order loses the ones
    lo, hi = sum_bounds(x)
    assert lo <= 2.0 <= hi


@pytest.mark.parametrize("n", [2, 5, 40, 150])
def test_psd_lower_bound_tridiagonal_exact_spectrum(n):
    """T = tridiag(-1, 2, -1) - s I has lambda_min = 2 - 2 cos(pi/(n+1)) - s exactly."""
    t = 2.0 * np.eye(n) - np.eye(n, k=1) - np.eye(n, k=-1)
    lam = 2.0 - 2.0 * math.cos(math.pi / (n + 1))
    for s in (0.0, 0.5, 3.0):
        c = t - s * np.eye(n)  # exact in float: entries are small integers and halves
        bound = psd_lower_bound(c)
        exact = lam - s
        assert bound <= exact + 1e-14  # (exact itself is a float evaluation of the formula)
        assert bound >= min(0.0, exact) - 1e-9


@pytest.mark.parametrize("n", [3, 30, 200])
def test_psd_lower_bound_singular_and_indefinite(n):
    ones = np.ones((n, n))  # eigenvalues n and 0: PSD, singular
    b = psd_lower_bound(ones)
    assert -1e-9 * n <= b <= 0.0
    # a 11^T - I: eigenvalues n a - 1 and -1 (exact in float for a = 0.25)
    b = psd_lower_bound(0.25 * ones - np.eye(n))
    assert -1.0 - 1e-9 <= b <= -1.0


def test_psd_lower_bound_rejects_asymmetric():
    with pytest.raises(ValueError):
        psd_lower_bound(np.array([[1.0, 2.0], [0.0, 1.0]]))


# ----------------------------------------------------------------------------- at exact optima


CLASS_CASES = [
    ([2, 2], 1.0),
    ([3, 3, 3], 0.1),
    (ufm.step_counts(10, 100, n_min=5), 0.1),
    (ufm.step_counts(10, 10, n_min=5), 0.05),
    (ufm.step_counts(4, 1000, n_min=2), 0.02),
    (ufm.exp_counts(10, 100, 500), 0.1),
    ([7, 2, 33, 5, 2], 0.3),
]


@pytest.mark.parametrize("counts,tau", CLASS_CASES)
def test_class_dual_bound_at_the_of_never_overshoots(counts, tau):
    """At the exact OF point (ReLU) the certificate equals L*_OF up to rounding: it must land
    at or below the 50-digit value, and within 1e-12 of it."""
    exact = of_exact(counts, tau)
    b = class_dual_bound(np.eye(len(counts)), counts, tau, nonneg=True)
    assert below(b.lower_bound, exact)
    assert float(exact) - b.lower_bound <= 1e-12 * float(exact)


@pytest.mark.parametrize("k,n,tau", [(2, 3, 0.5), (3, 4, 0.1), (5, 5, 0.1), (10, 20, 0.05)])
def test_class_dual_bound_at_the_etf_never_overshoots(k, n, tau):
    a = np.full((k, k), -1.0 / (k - 1))
    np.fill_diagonal(a, 1.0)
    exact = etf_exact(k, n, tau)
    b = class_dual_bound(a, [n] * k, tau, nonneg=False)
    assert below(b.lower_bound, exact)
    assert float(exact) - b.lower_bound <= 1e-11 * float(exact)


def test_naive_float_values_do_overshoot():
    """The references are sensitive: plain float evaluations of the same optimum land above
    the exact value in some cases (so 'never above' is a real test)."""
    over = 0
    for counts, tau in CLASS_CASES:
        over += Decimal(ufm.of_loss(counts, tau)) > of_exact(counts, tau)
    rng = np.random.default_rng(3)
    for _ in range(40):
        counts = rng.integers(2, 60, size=int(rng.integers(2, 8)))
        tau = float(rng.choice([0.05, 0.1, 0.3]))
        over += Decimal(ufm.of_loss(counts, tau)) > of_exact(counts, tau)
    assert over > 0


def test_random_counts_class_bound_below_of():
    rng = np.random.default_rng(7)
    for _ in range(60):
        counts = rng.integers(2, 500, size=int(rng.integers(2, 12)))
        tau = float(rng.choice([0.02, 0.05, 0.1, 0.5, 1.0]))
        b = class_dual_bound(np.eye(counts.size), counts, tau, nonneg=True)
        exact = of_exact(counts, tau)
        assert below(b.lower_bound, exact)
        assert float(exact) - b.lower_bound <= 1e-11 * float(exact)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dense_dual_bound_at_batched_of(seed):
    counts = [4, 3, 5]
    labels = ufm.labels_from_counts(counts)
    batches = reshuffled_batches(labels.size, 5, epochs=3, seed=seed)
    tau = [0.1, 0.3, 0.05][seed]
    exact = batched_of_exact(labels, batches, tau)
    z = of_point(labels, 3)
    b = dual_bound(z, labels, tau, nonneg=True, batches=batches)
    assert below(b.lower_bound, exact)
    assert float(exact) - b.lower_bound <= 1e-10 * float(exact)
    g = gram_dual_bound(z @ z.T, labels, tau, nonneg=True)  # the full batch, dense path
    assert below(g.lower_bound, of_exact(counts, tau))


# ----------------------------------------------------------------------------- every method


def _methods_of_case(counts, tau, nonneg, z):
    labels = ufm.labels_from_counts(counts)
    out = {
        "reduced": reduced_relaxation(counts, tau, nonneg=nonneg),
        "reduced-scs": reduced_relaxation(counts, tau, nonneg=nonneg, solver="SCS"),
        "full-clarabel": full_relaxation(labels, tau, nonneg=nonneg, solver="CLARABEL"),
        "full-scs": full_relaxation(labels, tau, nonneg=nonneg, solver="SCS"),
        "dual": dual_bound(z, labels, tau, nonneg=nonneg),
    }
    return out


@pytest.mark.parametrize("counts,tau", [([5, 5, 2, 2], 0.1), ([6, 3, 3], 0.2)])
def test_every_method_full_batch_of(counts, tau):
    labels = ufm.labels_from_counts(counts)
    exact = of_exact(counts, tau)
    for name, b in _methods_of_case(counts, tau, True, of_point(labels, len(counts))).items():
        assert below(b.lower_bound, exact), name
        assert b.lower_bound <= float(exact) * (1 + 1e-12), name
        cert = certificate(float(exact), b)
        assert cert["certified"], (name, cert)


def test_every_method_balanced_etf():
    k, n, tau = 3, 4, 0.2
    counts = [n] * k
    labels = ufm.labels_from_counts(counts)
    exact = etf_exact(k, n, tau)
    for name, b in _methods_of_case(counts, tau, False, etf_point(labels, k)).items():
        assert below(b.lower_bound, exact), name
        assert certificate(float(exact), b)["certified"], name


@pytest.mark.parametrize("solver", ["CLARABEL", "SCS"])
def test_every_method_batched_of(solver):
    counts = [4, 4, 3]
    labels = ufm.labels_from_counts(counts)
    batches = reshuffled_batches(labels.size, 4, epochs=2, seed=5)
    tau = 0.3  # (at tau = 0.1 the optimum of batches of 4 is ~1e-3: no relative gap to speak of)
    exact = batched_of_exact(labels, batches, tau)
    full = full_relaxation(labels, tau, nonneg=True, batches=batches, solver=solver)
    dual = dual_bound(of_point(labels, 3), labels, tau, nonneg=True, batches=batches)
    for name, b in (("full", full), ("dual", dual)):
        assert below(b.lower_bound, exact), name
        assert certificate(float(exact), b)["certified"], name


def test_loose_scs_bound_stays_valid(monkeypatch):
    """SCS stopped early (loose tolerance, few iterations): the solver objective may land
    anywhere, the reported bound stays below the exact optimum."""
    counts = [5, 5, 3]
    labels = ufm.labels_from_counts(counts)
    exact = of_exact(counts, 0.1)
    for opts in ({"eps_abs": 1e-2, "eps_rel": 1e-2}, {"max_iters": 30}):
        monkeypatch.setattr(relaxation, "SCS_OPTIONS", dict(relaxation.SCS_OPTIONS, **opts))
        monkeypatch.setattr(relaxation, "SCS_TIGHT_OPTIONS", dict(opts))
        monkeypatch.setattr(relaxation, "CLARABEL_MAX_N", 0)
        full = full_relaxation(labels, 0.1, nonneg=True, solver="SCS")
        red = reduced_relaxation(counts, 0.1, nonneg=True, solver="SCS")
        for b in (full, red):
            assert np.isnan(b.lower_bound) or below(b.lower_bound, exact)


def test_inaccurate_clarabel_bound_stays_valid(monkeypatch):
    """Clarabel with 3 iterations: status not optimal, any bound it reports is still valid."""
    monkeypatch.setattr(relaxation, "CLARABEL_OPTIONS", {"max_iter": 3})
    counts = [4, 4, 2]
    exact = of_exact(counts, 0.1)
    red = reduced_relaxation(counts, 0.1, nonneg=True, solver="CLARABEL")
    assert np.isnan(red.lower_bound) or below(red.lower_bound, exact)


def test_issue_example_reduced_relu_no_overshoot():
    """Issue 33: the reduced bound at k = 10, R = 100 (ReLU) was 2.5e-11 relative ABOVE L*_OF."""
    counts = ufm.step_counts(10, 100, n_min=5)
    b = certify(counts, 0.1, nonneg=True, method="reduced")
    exact = of_exact(counts, 0.1)
    assert below(b.lower_bound, exact)
    assert certificate(float(exact), b)["certified"]
    assert b.solver_objective == b.solver_objective  # the conic objective is reported beside


def test_random_points_weak_duality():
    """Bounds from random (non-optimal) points are loose but still below the optimum."""
    rng = np.random.default_rng(11)
    counts = [4, 3, 3]
    labels = ufm.labels_from_counts(counts)
    exact = of_exact(counts, 0.2)
    for _ in range(10):
        z = np.abs(rng.standard_normal((labels.size, 4)))
        b = dual_bound(z, labels, 0.2, nonneg=True)
        assert below(b.lower_bound, exact)
        b = gram_dual_bound(z @ z.T, labels, 0.2, nonneg=True)
        assert below(b.lower_bound, exact)
