"""Kini et al., "Symmetric Neural-Collapse Representations with Supervised Contrastive Loss: The
Impact of ReLU and Batching" (ICLR 2024); DESIGN.md sections 4-6.

Results validated:

1. Under ReLU (UFM+, d >= k) the global optimum is collapse + orthogonal frame for every
   imbalance tried (STEP with several R and rho, EXP, random counts), with value
   L*_OF = sum_c n_c log(n_c - 1 + (N - n_c) e^{-1/tau}); certified by the relaxation.
2. Without ReLU under imbalance the optimum is neither the OF nor the ETF (certified: the
   bound is strictly below both closed forms, and the solver reaches the bound).
3. Batching: the OF stays an optimum of the batched UFM+ problem (value = sum of per-batch OF
   values), and the batch conditions decide uniqueness: where they fail, solver runs reach the
   optimal value at geometries far from the OF; with batch-binding they all land on the OF.
   (The exhaustive numerical check of the conditions is tests/test_batch_uniqueness.py.)
"""

import math

import numpy as np
import pytest

import ufm
from reference import brute_scl_loss
from theory_checks.schedules import schedule_batches
from theory_checks.interaction import check_batches

IMBALANCES = {
    "step R=10 rho=0.5": ufm.step_counts(4, 10, rho=0.5, n_min=3),
    "step R=50 rho=0.25": ufm.step_counts(4, 50, rho=0.25, n_min=2),
    "step R=5 rho=0.75": ufm.step_counts(4, 5, rho=0.75, n_min=4),
    "exp R=20": ufm.exp_counts(5, 20, 60),
    "random": np.random.default_rng(7).integers(2, 30, size=6),
}


def _loop_of_loss(counts, tau):
    n_total = sum(counts)
    return sum(n * math.log(n - 1 + (n_total - n) * math.exp(-1.0 / tau)) for n in counts)


@pytest.mark.parametrize("name", list(IMBALANCES))
def test_relu_optimum_is_collapsed_orthogonal_frame(name):
    counts = [int(c) for c in IMBALANCES[name]]
    k, tau = len(counts), 0.1
    labels = ufm.labels_from_counts(counts)
    of = _loop_of_loss(counts, tau)
    assert math.isclose(brute_scl_loss(np.eye(k)[labels], labels, tau), of, rel_tol=1e-10)
    bound = ufm.certify(counts, tau, nonneg=True)  # reduced relaxation: global lower bound
    assert bound.ok and abs(bound.lower_bound - of) <= 1e-6 * of
    res = ufm.solve(counts, tau=tau, nonneg=True, seed=0, method="samples")  # no collapse assumed
    assert res.z.min() >= 0 and abs(res.loss - of) <= 1e-7 * of
    assert ufm.certificate(res.loss, bound)["certified"]
    assert res.metrics["delta_gm_of"] < 1e-3 and res.metrics["nc1"] < 1e-4


@pytest.mark.parametrize("counts", [ufm.step_counts(4, 10, n_min=3), ufm.exp_counts(5, 20, 60)])
def test_no_relu_imbalanced_optimum_is_neither_of_nor_etf(counts):
    """At tau = 0.5 (at tau = 0.1 the bound sits only ~3e-7 relative below the ETF value: the
    cross-class terms weigh ~e^{-1/tau})."""
    counts = [int(c) for c in counts]
    tau = 0.5
    bound = ufm.certify(counts, tau, nonneg=False)
    of, etf = ufm.of_loss(counts, tau), ufm.etf_loss(counts, tau)
    assert bound.ok and bound.lower_bound < min(of, etf) * (1 - 1e-3)
    res = ufm.solve(counts, tau=tau, nonneg=False, seed=0, method="samples")
    assert ufm.certificate(res.loss, bound)["certified"]  # the solver's point is optimal
    assert res.metrics["delta_gm_of"] > 0.05 and res.metrics["delta_gm_etf"] > 0.01


def test_batching_conditions_decide_uniqueness():
    counts = [6, 6, 4]
    labels = ufm.labels_from_counts(counts)
    tau = 0.1
    cases = {}
    for schedule in ("sorted", "binding"):
        batches = schedule_batches(labels, schedule=schedule, batch_size=4, epochs=2, seed=0)
        ref = ufm.batched_of_loss(labels, batches, tau)
        assert math.isclose(brute_scl_loss(np.eye(3)[labels], labels, tau, batches=batches), ref,
                            rel_tol=1e-10)  # the OF attains the per-batch OF sum
        runs = [ufm.solve(counts, tau=tau, nonneg=True, batches=batches, seed=s) for s in range(4)]
        for r in runs:  # every run is optimal: its loss is the proven optimum
            assert abs(r.loss - ref) <= 1e-7 * max(1.0, ref)
        cases[schedule] = (check_batches(labels, batches).holds, [r.metrics["delta_gm_of"] for r in runs])
    holds, deltas = cases["sorted"]
    assert not holds and max(deltas) > 0.1  # optimal but not the OF: not unique
    holds, deltas = cases["binding"]
    assert holds and max(deltas) < 1e-3  # unique: every optimal run is the OF
