"""``Problem`` and ``Batching``: validated once, one representation, and every entry point
(``solve``, ``certify``, the relaxations, the dual bound) gives the same answer from a
``Problem`` as from its plain arguments. References: the brute-force loss of
``tests/reference.py`` and the batched OF optimum in 50-digit decimals (``test_rigour``)."""

from __future__ import annotations

import numpy as np
import pytest

import ufm
from ufm.certificates.dual import dual_bound
from ufm.certificates.relaxation import full_relaxation, reduced_relaxation
from ufm.core.batching import Batching
from ufm.core.problem import Problem
from reference import brute_scl_loss, reshuffled_batches
from test_rigour import batched_of_exact, below


def test_batching_forms_agree():
    lists = [[0, 3, 1], [2], [4, 0]]
    a = Batching.coerce(lists, 5)
    b = Batching.coerce(a.padded(), 5)
    c = Batching.coerce([np.array(x) for x in lists], 5)
    for x in (b, c):
        assert x.to_lists() == lists and np.array_equal(x.offsets, a.offsets)
    assert Batching.coerce(a, 5) is a  # trusted, not re-checked
    assert a.sizes.tolist() == [3, 1, 2] and len(a) == 3
    assert Batching.full(4).is_full and not a.is_full
    assert Batching.from_lists(lists).n_samples == 5


@pytest.mark.parametrize("bad, words", [
    ([], "empty"), ([[0, 7]], r"outside \[0, 5\)"), ([[0, -1]], "out of range"),
    ([[0.0, 1.0]], "floats"), ([[True, 0]], "booleans"), ([[[0, 1]]], "flat list"),
    (np.array([0, 1]), "2-D"), ("01", "index lists"),
])
def test_batching_rejects_bad_input_naming_batches(bad, words):
    with pytest.raises(ValueError, match=words):
        Batching.coerce(bad, 5)


def test_batching_empty_batch_rule():
    assert Batching.coerce([[0, 1], []], 3).sizes.tolist() == [2, 0]
    with pytest.raises(ValueError, match="batch 1 is empty"):
        Batching.coerce([[0, 1], []], 3, allow_empty=False)


@pytest.mark.parametrize("kwargs, words", [
    (dict(counts=[3, 1]), "counts"), (dict(counts=[3, 3], tau=0), "tau"),
    (dict(counts=[3, 3], d=0), "d must be"), (dict(counts=[3, 3], nonneg="yes"), "nonneg"),
    (dict(counts=[3, 3], batches=[[0, 6]]), "batches"),
])
def test_problem_validates_each_field(kwargs, words):
    counts = kwargs.pop("counts")
    with pytest.raises(ValueError, match=words):
        Problem.create(counts, **kwargs)


def test_problem_from_labels_puts_samples_in_class_order():
    rng = np.random.default_rng(0)
    labels = np.array([2, 0, 1, 0, 2, 1, 1, 0])
    batches = [[0, 1, 2, 5], [3, 4, 6, 7], [0, 3, 7]]
    p, order = Problem.from_labels(labels, tau=0.3, batches=batches)
    assert p.counts.tolist() == [3, 3, 2] and np.array_equal(labels[order], p.labels)
    z = rng.standard_normal((labels.size, 3))
    # the same loss: original samples and batches vs class order and renumbered batches
    want = brute_scl_loss(z, labels, 0.3, batches=batches)
    got = brute_scl_loss(z[order], p.labels, 0.3, batches=p.batching.to_lists())
    assert got == pytest.approx(want, rel=1e-12)


def test_problem_and_arguments_give_the_same_answers():
    counts = [4, 3, 3]
    labels = ufm.labels_from_counts(counts)
    batches = reshuffled_batches(labels.size, 4, epochs=2, seed=3)
    p = Problem.create(counts, tau=0.2, nonneg=True, batches=batches)
    exact = batched_of_exact(labels, batches, 0.2)
    via_problem = ufm.certify(p, method="full")
    via_args = ufm.certify(counts, 0.2, nonneg=True, method="full", batches=batches)
    assert below(via_problem.lower_bound, exact) and below(via_args.lower_bound, exact)
    assert via_problem.lower_bound == via_args.lower_bound
    full = full_relaxation(p)
    assert full.lower_bound == via_problem.lower_bound
    z = np.eye(3)[labels]
    assert dual_bound(z, p).lower_bound == dual_bound(z, labels, 0.2, nonneg=True,
                                                      batches=batches).lower_bound
    s1 = ufm.solve(p, seed=1)
    s2 = ufm.solve(counts, tau=0.2, nonneg=True, batches=batches, seed=1)
    assert s1.loss == s2.loss and s1.status == s2.status == "optimal"
    q = Problem.create(counts, tau=0.2, nonneg=False)
    assert reduced_relaxation(q).lower_bound == reduced_relaxation(counts, 0.2, nonneg=False).lower_bound


def test_problem_and_loose_arguments_do_not_mix():
    p = Problem.create([3, 3], tau=0.5)
    for call in (lambda: ufm.certify(p, 0.1), lambda: reduced_relaxation(p, nonneg=True),
                 lambda: full_relaxation(p, batches=[[0, 1]]), lambda: ufm.solve(p, tau=0.2),
                 lambda: dual_bound(np.eye(2)[[0, 0, 0, 1, 1, 1]], p, 0.5)):
        with pytest.raises(ValueError, match="not both"):
            call()
    batched = Problem.create([3, 3], tau=0.5, batches=[[0, 1, 3]])
    with pytest.raises(ValueError, match="full batch"):
        reduced_relaxation(batched)
    with pytest.raises(ValueError, match="full batch"):
        ufm.certify(batched, method="reduced")


def test_local_runs_and_batch_check_take_the_problem():
    from theory_checks.interaction import check_batches
    from ufm.solvers.landscape import local_run, local_runs

    counts = [3, 3, 2]
    labels = ufm.labels_from_counts(counts)
    batches = reshuffled_batches(labels.size, 3, epochs=2, seed=1)
    p = Problem.create(counts, tau=0.5, nonneg=False, d=3, batches=batches)
    many = local_runs(p, seeds=[0, 2], steps=50)
    one = local_run(counts, d=3, tau=0.5, nonneg=False, seed=2, steps=50, batches=batches)
    assert many[1].loss == one.loss
    assert check_batches(p).to_dict() == check_batches(labels, batches, d=3).to_dict()
    with pytest.raises(ValueError, match="not both"):
        check_batches(p, batches)
    with pytest.raises(ValueError, match="no batches"):
        check_batches(Problem.create(counts, tau=0.5))
