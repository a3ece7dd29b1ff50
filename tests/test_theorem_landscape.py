"""The SC-loss landscape under the UFM (DESIGN.md section 5, and "beyond the papers").

Results validated:

1. WITHOUT ReLU the landscape is benign: from 50 random starts per problem (balanced and
   imbalanced, d >= k) a plain local solver (``ufm.solvers.landscape``: L-BFGS on the sphere, no
   restarts, no rotations) always ends at the convex relaxation's bound, and all end points have
   the same Gram matrix (the minimizer is unique up to rotation).
2. The relaxation is tight: its optimal G factorizes into a feasible Z (unit rows) of the same
   loss; its rank is reported.
3. WITH ReLU the landscape is NOT benign for plain local runs (k=10, R=10, n_min=2). The stuck
   points are pinned down here: they are KKT points with strict complementarity (every zero
   entry has a strictly positive gradient) whose Hessian of the Lagrangian on the face is
   positive semi-definite with exactly ONE null direction, positive (>= 1e-3) elsewhere: no
   feasible descent direction of first or second order, so non-strict LOCAL MINIMA, not
   saddles with tiny escape directions. The null direction is exact: a majority class spread over
   two coordinate axes that no other class uses can rotate inside that quadrant at constant loss.
   At the end of that flat path (the class on one axis) an axis is free, and a 1e-3 perturbation
   followed by the same plain solver descends to L*_OF: the spurious minima form flat valleys
   whose ends are saddles.
"""


import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

import ufm
from reference import brute_scl_loss, numpy_full_batch_loss
from ufm.solvers.landscape import local_runs

PROBLEMS = {"balanced [4,4,4] d=3": ([4, 4, 4], 3), "imbalanced [8,4,2] d=3": ([8, 4, 2], 3),
            "imbalanced [10,5,3,3] d=5": ([10, 5, 3, 3], 5)}


@pytest.mark.parametrize("name", list(PROBLEMS))
def test_no_relu_every_local_run_is_global_and_unique_up_to_rotation(name):
    counts, d = PROBLEMS[name]
    tau = 0.2
    bound = ufm.certify(counts, tau, nonneg=False)
    assert bound.ok
    runs = local_runs(counts, d=d, tau=tau, nonneg=False, seeds=range(50))
    gaps = [(r.loss - bound.lower_bound) / abs(bound.lower_bound) for r in runs]
    print(f"{name}: 50 starts, worst rel. gap to the bound {max(gaps):.1e}")
    assert max(gaps) <= 1e-7 and min(gaps) >= -1e-7
    grams = [r.z @ r.z.T for r in runs]
    assert max(np.abs(g - grams[0]).max() for g in grams) <= 1e-4


@pytest.mark.parametrize("counts,nonneg", [([4, 3, 2], False), ([3, 3, 2], True)])
def test_relaxation_optimum_factorizes_into_feasible_z(counts, nonneg):
    labels = ufm.labels_from_counts(counts)
    tau = 0.3
    full = ufm.certify(counts, tau, nonneg=nonneg, method="full")
    assert full.ok
    w, v = np.linalg.eigh(full.gram)
    rank = int(np.sum(w > 1e-6 * w.max()))
    z = v[:, -rank:] * np.sqrt(w[-rank:])
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    print(f"counts {counts} nonneg={nonneg}: rank of the relaxation's G = {rank}")
    assert rank <= len(counts)
    loss = brute_scl_loss(z, labels, tau)
    assert abs(loss - full.lower_bound) <= 1e-6 * abs(full.lower_bound)
    if nonneg:  # rank-k OF Gram: its factor can be taken non-negative (the OF itself)
        assert np.allclose(full.gram, (labels[:, None] == labels[None, :]).astype(float), atol=1e-3)


def _face_analysis(z, labels, tau):
    """KKT residual, smallest gradient on zero entries, and the Lagrangian Hessian's spectrum
    on the face {v: v_ij = 0 where z_ij = 0, <v_i, z_i> = 0}, with its eigenvectors."""
    n, d = z.shape
    y = jnp.asarray(labels)
    with jax.enable_x64(True):
        f = lambda v: ufm.scl_loss(v.reshape(n, d), y, tau, normalize=False)
        flat = jnp.asarray(z.ravel())
        g = np.asarray(jax.grad(f)(flat)).reshape(n, d)
        hess = np.asarray(jax.hessian(f)(flat))
    lam = np.sum(g * z, axis=1)
    pos = z > 1e-9
    resid = np.where(pos, g - lam[:, None] * z, np.minimum(g, 0.0))
    free = np.flatnonzero(pos.ravel())
    cons = np.zeros((n, free.size))  # sphere constraints restricted to the free entries
    cons[free // d, np.arange(free.size)] = z.ravel()[free]
    basis = np.eye(n * d)[:, free] @ scipy.linalg.null_space(cons)
    h_lag = hess - np.diag(np.repeat(lam, d))
    evals, evecs = np.linalg.eigh(basis.T @ h_lag @ basis)
    return np.linalg.norm(resid), g[~pos].min(), evals, basis @ evecs


def test_relu_stuck_points_are_flat_valleys_of_local_minima():
    counts = ufm.step_counts(10, 10, n_min=2)  # 5 x 20, 5 x 2
    labels = ufm.labels_from_counts(counts)
    tau, k = 0.1, 10
    of = ufm.of_loss(counts, tau)
    runs = local_runs(counts, d=k, tau=tau, nonneg=True, seeds=range(30), steps=20000)
    stuck = [r for r in runs if (r.loss - of) / of > 1e-4]
    print(f"ReLU k=10 R=10 n_min=2: {len(stuck)}/30 plain runs stuck, rel. gaps "
          f"{sorted(round((r.loss - of) / of, 5) for r in stuck)}")
    assert 1 <= len(stuck) <= 15  # the landscape is not benign, but most runs succeed
    loss = lambda z: numpy_full_batch_loss(z, labels, tau)  # float64 NumPy reference
    for r in stuck:
        z = r.z
        resid, min_g_zero, evals, vecs = _face_analysis(z, labels, tau)
        assert resid < 1e-5  # first order: a KKT point
        assert min_g_zero > 1e-5  # strict complementarity: leaving any zero entry costs
        assert evals[0] > -1e-9 and evals[1] > 1e-3  # PSD on the face, one null direction
        # the null direction moves ONE majority class, spread over two private axes
        moved = np.flatnonzero(np.abs(vecs[:, 0].reshape(z.shape)).sum(axis=1) > 1e-8)
        (c,) = np.unique(labels[moved])
        assert c < 5 and moved.size == counts[c]
        axes = np.flatnonzero(z[labels == c].max(axis=0) > 1e-6)
        assert axes.size == 2
        others = z[labels != c][:, axes]
        assert others.max() < 1e-9  # no other class uses these axes
        # the whole flat path: the class rotated onto either axis has the same loss ...
        for a in axes:
            end = z.copy()
            end[labels == c] = np.eye(k)[a]
            assert abs(loss(end) - r.loss) <= 1e-9 * r.loss
        # ... and from its end a tiny perturbation and the same plain solver reach L*_OF
        from ufm.core.problem import Problem
        from ufm.solvers.landscape import _prepare, _runner

        prep = _prepare(Problem.create(counts, tau=tau, nonneg=True, d=k))
        run = _runner(labels.size, k, k, tau, True, prep[4], prep[5], 1e-8, None)
        start = np.abs(end + 1e-3 * np.random.default_rng(0).random(end.shape))
        start /= np.linalg.norm(start, axis=1, keepdims=True)
        with jax.enable_x64(True):
            _, value, _, _ = run(jnp.asarray(start), jnp.asarray(labels), jnp.asarray(20000))
        assert (float(value) - of) / of <= 1e-9
