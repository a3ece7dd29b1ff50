"""``ufm.solvers.landscape.local_run``: the plain local solver of the landscape study (issue 6).

References: the ETF closed form (Graf et al.: balanced, no ReLU, d >= k - 1), the OF closed form
L*_OF (the global minimum under ReLU, so a weak lower bound for every feasible point), the
brute-force float64 loss of ``tests/reference.py`` at the returned point, and feasibility
checked directly.
"""

import math

import numpy as np
import pytest

import ufm
from reference import brute_scl_loss
from ufm.solvers.landscape import local_run, local_runs

TAU = 0.2


@pytest.mark.parametrize("seed", range(5))
def test_no_relu_balanced_reaches_the_etf_value(seed):
    counts, d = [4, 4, 4], 3
    run = local_run(counts, d=d, tau=TAU, nonneg=False, seed=seed)
    etf = ufm.etf_loss(counts, TAU)
    assert abs(run.loss - etf) <= 1e-9 * etf
    assert run.grad_norm <= 1e-6
    z = run.z
    assert np.allclose(np.linalg.norm(z, axis=1), 1.0, atol=1e-12)
    gram = ufm.class_mean_gram(z, ufm.labels_from_counts(counts))
    assert np.allclose(gram, ufm.etf_gram(3), atol=1e-4)


@pytest.mark.parametrize("seed", range(4))
def test_relu_end_point_is_feasible_and_above_of_value(seed):
    counts, d = [6, 3, 2], 3
    run = local_run(counts, d=d, tau=TAU, nonneg=True, seed=seed)
    z = run.z
    assert z.shape == (11, 3)
    assert z.min() >= 0.0
    assert np.allclose(np.linalg.norm(z, axis=1), 1.0, atol=1e-12)
    of = ufm.of_loss(counts, TAU)
    assert run.loss >= of - 1e-9 * of
    assert run.steps >= 1


@pytest.mark.parametrize("nonneg", [False, True])
def test_returned_loss_is_the_reference_loss_of_z(nonneg):
    counts = [5, 3, 2]
    run = local_run(counts, d=4, tau=TAU, nonneg=nonneg, seed=3)
    ref = brute_scl_loss(run.z, ufm.labels_from_counts(counts), TAU)
    assert math.isclose(run.loss, ref, rel_tol=1e-9)


def test_local_runs_is_local_run_per_seed_and_deterministic():
    counts = [4, 4, 2]
    many = local_runs(counts, d=3, tau=TAU, nonneg=True, seeds=[0, 7])
    one = local_run(counts, d=3, tau=TAU, nonneg=True, seed=7)
    assert many[1].loss == one.loss and np.array_equal(many[1].z, one.z)
    assert local_run(counts, d=3, tau=TAU, nonneg=True, seed=0).loss == many[0].loss


def test_step_cap_and_batches():
    counts = [4, 4]
    capped = local_run(counts, d=2, tau=TAU, nonneg=False, seed=1, steps=2)
    assert capped.steps == 2
    batches = [[0, 1, 4, 5], [2, 3, 6, 7], [0, 2, 4, 6]]
    run = local_run(counts, d=2, tau=TAU, nonneg=True, seed=0, batches=batches)
    labels = ufm.labels_from_counts(counts)
    ref = brute_scl_loss(run.z, labels, TAU, batches=batches)
    assert math.isclose(run.loss, ref, rel_tol=1e-9)
    # under ReLU with d >= k the batched optimum is the batched OF value (a lower bound)
    assert run.loss >= ufm.batched_of_loss(labels, batches, TAU) * (1 - 1e-9)
