"""Temperature continuation (``ufm.solvers.continuation.solve_path``) and the solver's warm start.

At tau = 0.02 the loss no longer pins the class-mean cosines (e^{-50}): a cold start ends
anywhere on a numerically flat set, while following tau down from 0.1 stays on the OF, the
proven UFM+ optimum. Checked against the closed forms and the reduced certificate.
"""

from __future__ import annotations

import numpy as np
import pytest

import ufm
from ufm.certificates.certification import certify
from ufm.solvers.continuation import path_summary, solve_path
from ufm.core.geometry import delta_gm

COUNTS = [20, 20, 3, 3]


def test_path_reaches_the_of_where_a_cold_start_stops_anywhere():
    cold = ufm.solve(COUNTS, tau=0.02, nonneg=True, seed=1)
    assert cold.status == "optimal" and cold.warnings  # the value is right, the geometry not
    assert cold.metrics["delta_gm_of"] > 0.05
    path = solve_path(COUNTS, [0.1, 0.05, 0.02], nonneg=True, seed=1)
    assert [r.config["tau"] for r in path] == [0.1, 0.05, 0.02]
    assert [r.config["warm_start"] for r in path] == [False, True, True]
    assert all(r.timing["compile_seconds"] < 0.05 for r in path[1:])  # tau is data: one compile
    for r in path:
        of = ufm.of_loss(COUNTS, r.config["tau"])
        assert abs(r.loss - of) / of <= 1e-12
    last = path[-1]
    assert last.attempts == 1 and last.z.min() >= 0.0
    np.testing.assert_allclose(np.linalg.norm(last.z, axis=1), 1.0, atol=1e-12)
    means = np.array([last.z[last.labels == c].mean(axis=0) for c in range(4)])
    means /= np.linalg.norm(means, axis=1, keepdims=True)
    assert delta_gm(means @ means.T, "of") <= 1e-6  # the OF: class means orthonormal
    assert last.metrics["delta_gm_of"] <= 1e-6
    assert last.warnings  # still honest: the loss itself does not pin it at this tau


def test_path_without_relu_is_certified_at_every_temperature():
    path = solve_path(COUNTS, [0.5, 0.2, 0.1], seed=0)
    for r in path:
        bound = certify(COUNTS, r.config["tau"], nonneg=False, method="reduced").lower_bound
        assert -1e-8 <= (r.loss - bound) / abs(r.loss) <= 1e-6
    rows = path_summary(path)
    assert [row["tau"] for row in rows] == [0.5, 0.2, 0.1]
    assert [row["loss"] for row in rows] == [r.loss for r in path]


def test_balanced_path_reaches_the_etf():
    counts = [6, 6, 6]
    path = solve_path(counts, [0.3, 0.1], seed=2)
    for r in path:
        etf = ufm.etf_loss(counts, r.config["tau"])
        assert abs(r.loss - etf) / etf <= 1e-9
    assert path[-1].metrics["delta_gm_etf"] <= 1e-3


def test_warm_start_over_class_vectors():
    counts = [30, 30, 4, 4]
    first = ufm.solve(counts, tau=0.1, nonneg=True, method="classes", seed=0)
    assert first.z.shape == (sum(counts), 4)
    warm = ufm.solve(counts, tau=0.03, nonneg=True, method="classes", init=first.z)
    assert warm.config["method"] == "classes" and warm.config["warm_start"]
    assert abs(warm.loss - ufm.of_loss(counts, 0.03)) / warm.loss <= 1e-12
    assert warm.metrics["delta_gm_of"] <= 1e-6


def test_a_given_start_is_used():
    # a start at the OF itself: the solver has nothing to do and ends there
    labels = ufm.labels_from_counts(COUNTS)
    of_point = np.eye(4)[labels]
    res = ufm.solve(COUNTS, tau=0.1, nonneg=True, init=3.0 * of_point)
    assert res.metrics["delta_gm_of"] == 0.0
    assert abs(res.loss - ufm.of_loss(COUNTS, 0.1)) / res.loss <= 1e-14


@pytest.mark.parametrize("init, match", [
    (np.ones((46, 3)), r"init must have shape \(N, d\) = \(46, 4\)"),
    (np.ones((45, 4)), "init needs one row per label"),
    (np.full((46, 4), np.nan), "init holds NaN"),
    (np.vstack([np.zeros((1, 4)), np.ones((45, 4))]), "init row 0 is zero"),
])
def test_a_bad_start_is_a_clear_error(init, match):
    with pytest.raises(ValueError, match=match):
        ufm.solve(COUNTS, nonneg=True, init=init)


def test_an_empty_path_is_an_error():
    with pytest.raises(ValueError, match="at least one temperature"):
        solve_path(COUNTS, [])
    with pytest.raises(ValueError, match="tau must be"):
        solve_path(COUNTS, [0.1, 0.0])
