"""Convex relaxation (ufm.certificates.relaxation): lower bounds checked against independent references.

References: the closed forms ``ufm.of_loss`` / ``ufm.etf_loss``, a per-batch OF value written out
here, and the SC loss ``ufm.scl_loss`` (float64) of explicitly constructed unit embeddings,
including the embeddings recovered from the relaxation's own optimal Gram matrix (so the value
the solver reports is re-evaluated by the reference loss, not by the relaxation's objective).
"""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest

import ufm
from ufm.certificates import relaxation
from ufm.certificates.relaxation import RelaxationResult, full_relaxation, reduced_relaxation
from reference import batched_of_value, reshuffled_batches

REL = 1e-6  # value accuracy against closed forms


# ----------------------------------------------------------------------------- references


def sc_loss64(z, labels, tau, batches=None) -> float:
    """Reference SC loss (sum convention) in float64."""
    with jax.enable_x64(True):
        return float(
            ufm.scl_loss(np.asarray(z, np.float64), np.asarray(labels), tau, batches=batches)
        )


def rows_from_gram(gram: np.ndarray) -> np.ndarray:
    """Unit rows Z with Z Z^T ~ gram (eigenvalues clipped at 0, rows renormalized)."""
    w, v = np.linalg.eigh((gram + gram.T) / 2)
    z = v * np.sqrt(np.clip(w, 0.0, None))
    return z / np.linalg.norm(z, axis=1, keepdims=True)


def gram_from_class_gram(counts, a: np.ndarray) -> np.ndarray:
    """Symmetric N x N Gram ``G_ij = A_{y_i y_j}`` (i != j), ``G_ii = 1``."""
    y = ufm.labels_from_counts(counts)
    g = np.asarray(a)[np.ix_(y, y)].copy()
    np.fill_diagonal(g, 1.0)
    return g


def section6_holds(labels, batches) -> bool:
    """DESIGN.md section 6 conditions (a*) and (b) for the OF to be the unique minimizer."""
    labels = np.asarray(labels)
    parent = list(range(labels.size))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def join_all(idx):
        changed = False
        for i in idx[1:]:
            ri, r0 = find(i), find(idx[0])
            if ri != r0:
                parent[ri] = r0
                changed = True
        return changed

    for b in batches:  # (a*) same-class samples sharing a mixed batch
        yb = labels[b]
        if np.unique(yb).size >= 2:
            for c in np.unique(yb):
                join_all([i for i in b if labels[i] == c])
    changed = True
    while changed:  # pure batches of size >= 3 holding two joined samples join all
        changed = False
        for b in batches:
            if len(b) >= 3 and np.unique(labels[b]).size == 1:
                roots = [find(i) for i in b]
                if len(set(roots)) < len(roots):
                    changed |= join_all(list(b))
    for c in np.unique(labels):
        if len({find(i) for i in np.flatnonzero(labels == c)}) != 1:
            return False
    k = int(labels.max()) + 1
    for c in range(k):  # (b)
        for d in range(c + 1, k):
            if not any(
                max(np.sum(labels[b] == c), np.sum(labels[b] == d)) >= 2
                and min(np.sum(labels[b] == c), np.sum(labels[b] == d)) >= 1
                for b in batches
            ):
                return False
    return True


def etf_rows(labels, k) -> np.ndarray:
    """Collapsed simplex ETF embedding (class c -> e_c - 1/k, normalized)."""
    m = np.eye(k) - 1.0 / k
    m /= np.linalg.norm(m, axis=1, keepdims=True)
    return m[np.asarray(labels)]


def of_rows(labels, k) -> np.ndarray:
    """Collapsed orthogonal frame embedding (class c -> e_c)."""
    return np.eye(k)[np.asarray(labels)]


def rel_err(value, ref):
    """Relative error with an absolute floor (balanced no-ReLU optima can be ~1e-6)."""
    return abs(value - ref) / max(abs(ref), 1.0)


# ----------------------------------------------------------------------------- reduced: UFM+

NONNEG_CASES = [
    ("step k=4 R=1", ufm.step_counts(4, 1, n_min=5)),
    ("step k=4 R=10", ufm.step_counts(4, 10, n_min=5)),
    ("step k=4 R=100", ufm.step_counts(4, 100, n_min=5)),
    ("step k=10 R=1", ufm.step_counts(10, 1, n_min=5)),
    ("step k=10 R=10", ufm.step_counts(10, 10, n_min=5)),
    ("step k=10 R=100", ufm.step_counts(10, 100, n_min=5)),
    ("exp k=6 R=10", ufm.exp_counts(6, 10, 50)),
    ("exp k=10 R=100", ufm.exp_counts(10, 100, 500)),
    ("random k=7", np.random.default_rng(1).integers(2, 40, size=7)),
    ("random k=5", np.random.default_rng(2).integers(2, 9, size=5)),
]


@pytest.mark.parametrize("name,counts", NONNEG_CASES, ids=[c[0] for c in NONNEG_CASES])
@pytest.mark.parametrize("tau", [0.1, 1.0])
def test_reduced_nonneg_equals_of(name, counts, tau):
    res = reduced_relaxation(counts, tau, nonneg=True)
    assert res.ok and res.status == "optimal" and res.method == "reduced"
    assert rel_err(res.lower_bound, ufm.of_loss(counts, tau)) < REL
    np.testing.assert_allclose(res.class_gram, np.eye(len(counts)), atol=1e-4)


@pytest.mark.parametrize("merge_equal", [True, False])
def test_reduced_design_case_k10_R100(merge_equal):
    """DESIGN.md section 5: UFM+ with k = 10, R = 100, tau = 0.1, n_min = 5 gives L*_OF."""
    counts = ufm.step_counts(10, R=100, rho=0.5, n_min=5)
    res = reduced_relaxation(counts, 0.1, nonneg=True, merge_equal=merge_equal)
    assert res.ok
    assert rel_err(res.lower_bound, ufm.of_loss(counts, 0.1)) < REL
    np.testing.assert_allclose(res.class_gram, np.eye(10), atol=1e-4)


@pytest.mark.parametrize("nonneg", [True, False])
@pytest.mark.parametrize(
    "counts", [[5, 5, 5, 5], [500, 500, 5, 5], [2, 2, 3, 3, 3, 7], [25, 19, 16, 9, 10, 3, 4]]
)
def test_reduced_optimum_is_attained(counts, nonneg):
    """The bound equals the reference SC loss of unit vectors realizing the returned A."""
    tau = 0.1
    res = reduced_relaxation(counts, tau, nonneg=nonneg)
    assert res.ok
    g = gram_from_class_gram(counts, res.class_gram)
    assert np.linalg.eigvalsh(g).min() > -1e-6  # A describes a PSD G with unit diagonal
    if nonneg:
        assert res.class_gram.min() > -1e-7
    z = rows_from_gram(g)
    value = sc_loss64(z, ufm.labels_from_counts(counts), tau)
    assert rel_err(res.lower_bound, value) < REL


# ----------------------------------------------------------------------------- reduced: UFM


@pytest.mark.parametrize("k,n", [(2, 3), (3, 2), (4, 5), (10, 5), (6, 40)])
@pytest.mark.parametrize("tau", [0.1, 0.5])
def test_reduced_balanced_free_equals_etf(k, n, tau):
    counts = [n] * k
    res = reduced_relaxation(counts, tau, nonneg=False)
    assert res.ok
    assert rel_err(res.lower_bound, ufm.etf_loss(counts, tau)) < REL
    etf = np.full((k, k), -1.0 / (k - 1))
    np.fill_diagonal(etf, 1.0)
    np.testing.assert_allclose(res.class_gram, etf, atol=1e-4)


def test_reduced_free_imbalanced_breaks_symmetry():
    counts = ufm.step_counts(10, R=100, rho=0.5, n_min=5)  # 5 x 500, then 5 x 5
    tau = 0.1
    res = reduced_relaxation(counts, tau, nonneg=False, merge_equal=False)
    assert res.ok
    of, etf = ufm.of_loss(counts, tau), ufm.etf_loss(counts, tau)
    assert res.lower_bound < of * (1 - 1e-5)  # strictly below the UFM+ optimum
    assert res.lower_bound <= etf * (1 + 1e-9)  # the ETF is feasible
    a = res.class_gram
    np.testing.assert_allclose(np.diag(a), 1.0, atol=1e-5)  # collapse
    maj, mnr = range(5), range(5, 10)
    mm = [a[i, j] for i in maj for j in maj if i < j]
    mn = [a[i, j] for i in maj for j in mnr]
    nn = [a[i, j] for i in mnr for j in mnr if i < j]
    # symmetric within each kind of pair (not imposed: merge_equal=False) ...
    for vals in (mm, mn, nn):
        assert np.ptp(vals) < 1e-4
    cos = {"maj-maj": np.mean(mm), "maj-min": np.mean(mn), "min-min": np.mean(nn)}
    print("no-ReLU cross-class cosines (k=10, R=100, tau=0.1):", cos)
    # ... but not an ETF: the three kinds of pairs sit at different angles
    vals = list(cos.values())
    for i in range(3):
        for j in range(i + 1, 3):
            assert abs(vals[i] - vals[j]) > 1e-3
    assert all(abs(v + 1.0 / 9) > 1e-2 for v in vals)
    # and the bound is attained by those vectors
    z = rows_from_gram(gram_from_class_gram(counts, a))
    assert rel_err(res.lower_bound, sc_loss64(z, ufm.labels_from_counts(counts), tau)) < REL


def test_reduced_scs_override():
    counts = ufm.step_counts(4, 10, n_min=5)
    res = reduced_relaxation(counts, 0.1, nonneg=True, solver="scs")
    assert res.solver == "SCS" and res.ok
    assert rel_err(res.lower_bound, ufm.of_loss(counts, 0.1)) < REL


# ----------------------------------------------------------------------------- full


SMALL = [[3, 3], [4, 2, 3], [5, 5, 5], [8, 4, 2, 2], [10, 6, 4]]


@pytest.mark.parametrize("counts", SMALL, ids=[str(c) for c in SMALL])
@pytest.mark.parametrize("nonneg", [True, False])
def test_full_matches_reduced_and_closed_forms(counts, nonneg):
    tau = 0.2
    labels = ufm.labels_from_counts(counts)
    full = full_relaxation(labels, tau, nonneg=nonneg)
    red = reduced_relaxation(counts, tau, nonneg=nonneg)
    assert full.ok and red.ok and full.method == "full" and full.solver == "CLARABEL"
    assert rel_err(full.lower_bound, red.lower_bound) < REL
    k = len(counts)
    if nonneg:
        assert rel_err(full.lower_bound, ufm.of_loss(counts, tau)) < REL
        np.testing.assert_allclose(full.class_gram, np.eye(k), atol=1e-4)
        assert full.gram.min() > -1e-7
    elif len(set(counts)) == 1:
        assert rel_err(full.lower_bound, ufm.etf_loss(counts, tau)) < REL
    else:
        assert full.lower_bound < ufm.of_loss(counts, tau)
        assert full.lower_bound <= ufm.etf_loss(counts, tau) * (1 + 1e-9)
    # the returned Gram is feasible and attains the bound under the reference loss
    g = full.gram
    assert g.shape == (labels.size, labels.size)
    np.testing.assert_allclose(np.diag(g), 1.0, atol=1e-6)
    assert np.linalg.eigvalsh(g).min() > -1e-6
    assert rel_err(full.lower_bound, sc_loss64(rows_from_gram(g), labels, tau)) < REL
    # block averages of G, within-class average over i != j only
    y = labels
    same = (y[:, None] == y[None, :]) & ~np.eye(y.size, dtype=bool)
    np.testing.assert_allclose(full.class_gram[0, 0], g[same & (y[:, None] == 0)].mean(), atol=1e-12)
    np.testing.assert_allclose(full.class_gram[0, 1], g[np.ix_(y == 0, y == 1)].mean(), atol=1e-12)


@pytest.mark.parametrize("seed,unique", [(0, True), (1, True), (2, False)])
def test_full_batched_nonneg_equals_per_batch_of(seed, unique):
    """Random reshuffling (3 epochs of batch size 4) of 12 samples. The bound is the sum of
    per-batch OF values for any batching (DESIGN.md section 4); where the batches satisfy the
    section 6 conditions (seeds 0, 1) the optimal G is also the OF's (unique minimizer)."""
    labels = np.repeat([0, 1, 2], 4)
    batches = reshuffled_batches(labels.size, 4, epochs=3, seed=seed)
    assert section6_holds(labels, batches) == unique
    tau = 0.2
    res = full_relaxation(labels, tau, nonneg=True, batches=batches)
    assert res.ok
    ref = batched_of_value(labels, batches, tau)
    assert rel_err(res.lower_bound, ref) < REL
    if unique:
        of_gram = (labels[:, None] == labels[None, :]).astype(float)
        np.testing.assert_allclose(res.gram, of_gram, atol=1e-3)
    # the OF embedding attains the same value under the reference loss
    assert rel_err(sc_loss64(of_rows(labels, 3), labels, tau, batches), ref) < 1e-12
    assert rel_err(res.lower_bound, sc_loss64(rows_from_gram(res.gram), labels, tau, batches)) < REL


def test_section6_checker_rejects_bad_batchings():
    """The helper above is itself checked: a class split across pure pairs fails (a*), two
    classes never meeting with >= 2 samples fail (b)."""
    labels = np.repeat([0, 1, 2], 4)
    assert not section6_holds(labels, [[0, 1], [2, 3], [0, 4, 8], [1, 5, 9], [4, 5, 6, 7, 8, 9, 10, 11]])
    assert not section6_holds(np.array([0, 0, 1, 1]), [[0, 2], [1, 3]])
    assert section6_holds(np.array([0, 0, 1, 1]), [[0, 1, 2, 3]])


def test_full_batched_repeats_and_anchors_without_positive():
    """Repeated batches count repeatedly; batches of size 1 and anchors without a positive add
    nothing; compared with the per-batch OF value."""
    labels = np.array([0, 0, 0, 1, 1, 2, 2, 2])
    batches = [[0, 1, 3, 5], [0, 1, 3, 5], [2, 4, 6, 7], [6], [3, 5, 6], [0, 3, 6, 1, 2]]
    tau = 0.5
    res = full_relaxation(labels, tau, nonneg=True, batches=batches)
    assert res.ok
    assert rel_err(res.lower_bound, batched_of_value(labels, batches, tau)) < REL
    # without the repeat, the first batch's contribution is counted once
    once = full_relaxation(labels, tau, nonneg=True, batches=batches[1:])
    assert rel_err(once.lower_bound, batched_of_value(labels, batches[1:], tau)) < REL
    assert res.lower_bound - once.lower_bound > 0.1


# ----------------------------------------------------------------------------- weak duality


def _dual_ok(bound, value):
    """Every reported bound is proven (ufm.certificates.dual): only the float64 rounding of the reference
    loss ``value`` itself is allowed for."""
    return _rigorous_ok(bound, value)


def _rigorous_ok(bound, value):
    """The dual certificate at the conic G is rigorous: float64 rounding only."""
    return bound <= value + 1e-12 * max(1.0, abs(value))


@pytest.mark.parametrize("nonneg", [True, False])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_weak_duality_random_points(nonneg, seed):
    rng = np.random.default_rng(seed)
    counts = [3, 3, 4]
    labels = ufm.labels_from_counts(counts)
    tau = [0.1, 0.3, 1.0][seed]
    batches = reshuffled_batches(labels.size, 5, epochs=2, seed=seed)
    red = reduced_relaxation(counts, tau, nonneg=nonneg)
    full = full_relaxation(labels, tau, nonneg=nonneg)
    fullb = full_relaxation(labels, tau, nonneg=nonneg, batches=batches)
    assert red.ok and full.ok and fullb.ok
    for _ in range(20):
        h = rng.normal(size=(labels.size, int(rng.integers(2, 6))))
        if nonneg:
            h = np.abs(h)
        z = h / np.linalg.norm(h, axis=1, keepdims=True)
        value = sc_loss64(z, labels, tau)
        assert _dual_ok(red.lower_bound, value)
        assert _dual_ok(full.lower_bound, value)
        assert _dual_ok(fullb.lower_bound, sc_loss64(z, labels, tau, batches))
    # collapsed constructions: OF (feasible under ReLU) and ETF (no ReLU)
    k = len(counts)
    of_value = sc_loss64(of_rows(labels, k), labels, tau)
    assert _dual_ok(red.lower_bound, of_value) and _dual_ok(full.lower_bound, of_value)
    assert _dual_ok(fullb.lower_bound, sc_loss64(of_rows(labels, k), labels, tau, batches))
    assert _rigorous_ok(fullb.rigorous_bound, sc_loss64(of_rows(labels, k), labels, tau, batches))
    if not nonneg:
        etf_value = sc_loss64(etf_rows(labels, k), labels, tau)
        assert _dual_ok(red.lower_bound, etf_value) and _dual_ok(full.lower_bound, etf_value)
        assert _dual_ok(fullb.lower_bound, sc_loss64(etf_rows(labels, k), labels, tau, batches))


def test_weak_duality_imbalanced_free_constructions():
    """No ReLU, imbalanced: bound <= loss of OF, ETF and random points (large counts)."""
    counts = ufm.step_counts(6, R=20, n_min=3)
    labels = ufm.labels_from_counts(counts)
    tau = 0.1
    res = reduced_relaxation(counts, tau, nonneg=False)
    assert res.ok
    k = len(counts)
    assert _dual_ok(res.lower_bound, sc_loss64(of_rows(labels, k), labels, tau))
    assert _dual_ok(res.lower_bound, sc_loss64(etf_rows(labels, k), labels, tau))
    rng = np.random.default_rng(5)
    for _ in range(5):
        z = rng.normal(size=(labels.size, 8))
        assert _dual_ok(res.lower_bound, sc_loss64(z, labels, tau))


# ----------------------------------------------------------------------------- timing


def test_full_relaxation_n120_scs():
    counts = [30, 30, 30, 30]
    labels = ufm.labels_from_counts(counts)
    res = full_relaxation(labels, 0.1, nonneg=True)
    of = ufm.of_loss(counts, 0.1)
    print(
        f"full relaxation N=120 k=4 nonneg: {res.seconds:.2f} s "
        f"(compile {res.compile_seconds:.2f} s), solver {res.solver}, "
        f"rel err vs L*_OF {(res.lower_bound - of) / of:.2e}"
    )
    assert res.solver == "SCS"
    assert res.ok
    assert rel_err(res.lower_bound, of) < REL  # (timing: python -m ufm.bench --only certify)


# ----------------------------------------------------------------------------- result, errors


def test_result_to_dict_is_plain_json():
    res = full_relaxation(ufm.labels_from_counts([3, 2]), 0.5, nonneg=True)
    d = res.to_dict()
    text = json.dumps(d)  # no numpy types anywhere
    back = json.loads(text)
    assert back["method"] == "full" and back["ok"] is True and back["status"] == "optimal"
    assert isinstance(back["lower_bound"], float)
    np.testing.assert_allclose(np.array(back["class_gram"]), res.class_gram)
    np.testing.assert_allclose(np.array(back["gram"]), res.gram)
    red = reduced_relaxation([3, 2], 0.5, nonneg=True).to_dict()
    assert red["gram"] is None and red["method"] == "reduced"
    assert isinstance(json.loads(json.dumps(red))["class_gram"][0][0], float)


def test_inaccurate_status_is_not_ok(monkeypatch):
    """A solve stopped early (SCS with 5 iterations) is not reported as ok."""
    monkeypatch.setattr(relaxation, "SCS_TIGHT_OPTIONS", {"max_iters": 5})
    res = reduced_relaxation([5, 5, 5], 0.1, nonneg=False, solver="SCS")
    assert res.status != "optimal"
    assert res.ok is False


def test_ok_field_semantics():
    base = dict(lower_bound=1.0, solver="SCS", seconds=0.0, method="full")
    assert RelaxationResult(status="optimal_inaccurate", **base).ok is False


@pytest.mark.parametrize("tau", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_tau(tau):
    with pytest.raises(ValueError):
        reduced_relaxation([3, 3], tau, nonneg=True)
    with pytest.raises(ValueError):
        full_relaxation([0, 0, 1, 1], tau, nonneg=True)


def test_bad_counts_labels_batches_solver():
    with pytest.raises(ValueError):
        reduced_relaxation([3, 1], 0.1, nonneg=True)
    with pytest.raises(ValueError):
        reduced_relaxation([3], 0.1, nonneg=True)
    with pytest.raises(ValueError):
        full_relaxation([0, 0, 1], 0.1, nonneg=True)
    with pytest.raises(ValueError):
        full_relaxation([0, 0, 1, 1], 0.1, nonneg=True, batches=[[0, 1, 4]])
    with pytest.raises(ValueError):
        full_relaxation([0, 0, 1, 1], 0.1, nonneg=True, batches=[])
    for solver in ("MOSEK", "nope"):
        with pytest.raises(ValueError):
            reduced_relaxation([3, 3], 0.1, nonneg=True, solver=solver)
        with pytest.raises(ValueError):
            full_relaxation([0, 0, 1, 1], 0.1, nonneg=True, solver=solver)
