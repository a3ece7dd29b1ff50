"""How much shuffling is enough (issue 38.3): ``theory_checks.coverage`` against independent
references: exhaustive enumeration of every shuffle of tiny problems (checked by
``check_batches`` or by the definitions written out here), Monte Carlo with the fast checker
(99% Clopper-Pearson intervals), ``check_batches`` on the binding variants, and the command
line ``python -m theory_checks.batches --advise``.
"""

from __future__ import annotations

import itertools
import json
import math
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from theory_checks import check_batches
from theory_checks import coverage as cov
from theory_checks.schedules import (
    binding_variant_batches,
    binding_variant_epoch,
    epoch_batches,
    schedule_batches,
)
from ufm.core.labels import labels_from_counts, step_counts

ROOT = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- enumeration


def _labels(counts):
    return [c for c, n in enumerate(counts) for _ in range(n)]


def _epochs(n: int, b: int) -> list[tuple[tuple[frozenset, ...], float]]:
    """Every epoch of the shuffle schedule on n samples (all n! permutations cut into batches of
    b, the last partial batch kept), as distinct batchings with their probabilities."""
    sizes = [b] * (n // b) + ([n % b] if n % b else [])
    weights: dict[tuple[frozenset, ...], int] = {}
    for perm in itertools.permutations(range(n)):
        out, i = [], 0
        for s in sizes:
            out.append(frozenset(perm[i:i + s]))
            i += s
        key = tuple(out)
        weights[key] = weights.get(key, 0) + 1
    total = math.factorial(n)
    return [(k, v / total) for k, v in weights.items()]


def _enumerate(counts, b, e, event):
    """Exact P(event(BatchCheck of the union of e epochs)) over every shuffle."""
    y = _labels(counts)
    epochs = _epochs(len(y), b)
    total = 0.0
    for combo in itertools.product(epochs, repeat=e):
        batches = [sorted(batch) for ep, _ in combo for batch in ep]
        if event(check_batches(y, batches)):
            total += math.prod(w for _, w in combo)
    return total


def test_batch_sizes_are_those_of_the_shuffle_schedule():
    for n, b in [(7, 3), (6, 3), (5, 8), (2525, 50), (11, 2)]:
        y = np.zeros(n, dtype=np.int64)
        got = [x.size for x in epoch_batches(y, schedule="shuffle", batch_size=b, epoch=0, seed=0)]
        assert cov.shuffle_batch_sizes(n, b).tolist() == got


TINY = [([2, 2], 2), ([2, 2], 3), ([2, 3], 3), ([3, 3], 4), ([2, 2, 3], 3), ([2, 2, 2], 4),
        ([3, 4], 5), ([2, 2, 2, 2], 5), ([4, 3], 5)]


@pytest.mark.parametrize("counts, b", TINY)
def test_per_epoch_events_match_enumeration(counts, b):
    """The exact per-epoch probabilities: (b) failure of each pair read from ``check_batches``,
    the cut and isolation events from their definitions, over every shuffle."""
    y = _labels(counts)
    n, k = len(y), len(counts)
    epochs = _epochs(n, b)
    checks = [(check_batches(y, [sorted(x) for x in ep]), ep, w) for ep, w in epochs]
    for a, c in itertools.combinations(range(k), 2):
        ref = sum(w for res, _, w in checks if [a, c] in res.conditions["b"]["details"])
        assert cov.pair_unpinned_probability(counts[a], counts[c], n, b) == pytest.approx(ref, abs=1e-12)
    for c in range(k):
        members = [i for i in range(n) if y[i] == c]
        for j in range(1, len(members)):
            s_set, t_set = set(members[:j]), set(members[j:])

            def apart(ep):
                return all(not (len({y[i] for i in x}) >= 2 and x & s_set and x & t_set) for x in ep)

            ref = sum(w for _, ep, w in checks if apart(ep))
            assert cov.cut_unjoined_probability(j, len(members), n, b) == pytest.approx(ref, abs=1e-12)
        x0 = members[0]

        def isolated(ep):
            batch = next(x for x in ep if x0 in x)
            mates = [i for i in batch if i != x0 and y[i] == c]
            return not mates or (len(batch) == 2 and all(y[i] == c for i in batch))

        ref = sum(w for _, ep, w in checks if isolated(ep))
        assert cov.isolation_probability(len(members), n, b) == pytest.approx(ref, abs=1e-12)
    # one epoch is exact: 1 if B >= N else 0
    ref = sum(w for res, _, w in checks if res.holds)
    assert cov.one_epoch_probability(counts, b) == pytest.approx(ref, abs=1e-12)


@pytest.mark.parametrize("counts, b, e", [([2, 3], 3, 3), ([3, 3], 4, 2), ([2, 2, 2], 4, 2),
                                          ([2, 2], 3, 4), ([3, 4], 5, 2), ([2, 3], 2, 2),
                                          ([2, 2, 2, 2], 5, 2)])
def test_epoch_bounds_contain_the_enumerated_probability(counts, b, e):
    exact = _enumerate(counts, b, e, lambda r: r.holds)
    r = cov.coverage_bounds(counts, b, e)
    assert r.lower - 1e-12 <= exact <= r.upper + 1e-12, (r, exact)
    assert r.lower <= r.approx <= r.upper
    if r.exact is not None:
        assert r.exact == pytest.approx(exact, abs=1e-12)


def test_pair_failure_over_epochs_is_the_power():
    """Epochs are independent: a pair is never pinned in E epochs with probability q**E."""
    counts, b = [2, 2, 2], 3
    q = cov.pair_unpinned_probability(2, 2, 6, 3)
    ref = _enumerate(counts, b, 2, lambda r: [0, 2] in r.conditions["b"]["details"])
    assert q ** 2 == pytest.approx(ref, abs=1e-12)
    assert 0.05 < ref < 0.95  # not a trivial case


def test_true_epoch_count_lies_in_the_range():
    """[2, 2] in batches of 3: P_E = 1 - 2^-(E-1) by enumeration; p = 0.8 needs E = 4."""
    probs = {e: _enumerate([2, 2], 3, e, lambda r: r.holds) for e in (1, 2, 3, 4)}
    assert [round(probs[e], 12) for e in (1, 2, 3, 4)] == [0.0, 0.5, 0.75, 0.875]
    low, high = cov.epochs_range([2, 2], 3, p=0.8)
    assert low <= 4 <= high
    assert cov.epochs_needed_for_counts([2, 2], 3, p=0.8) == high


# ----------------------------------------------------------------------------- Monte Carlo


def test_clopper_pearson_closed_forms():
    # x = 0: upper = 1 - (alpha/2)^(1/n); x = n: lower = (alpha/2)^(1/n)
    assert cov.clopper_pearson(0, 20, 0.99) == (0.0, pytest.approx(1 - 0.005 ** (1 / 20)))
    assert cov.clopper_pearson(20, 20, 0.99) == (pytest.approx(0.005 ** (1 / 20)), 1.0)
    lo, hi = cov.clopper_pearson(30, 100, 0.99)
    assert lo < 0.3 < hi


def test_monte_carlo_agrees_with_the_bounds():
    counts, b, e = step_counts(10, 10, 0.5, 5), 20, 20
    r = cov.coverage_bounds(counts, b, e)
    assert r.upper - r.lower < 0.05  # a sharp analytic answer...
    mc = cov.monte_carlo_probability(counts, b, e, trials=600, seed=3)
    assert mc.ci_low <= mc.estimate <= mc.ci_high and mc.trials == 600
    assert mc.ci_high >= r.lower and mc.ci_low <= r.upper  # ...inside the 99% interval


def test_exact_pair_probability_against_monte_carlo():
    counts, b = step_counts(10, 10, 0.5, 5), 20  # minority classes 5..9, N = 275
    q = cov.pair_unpinned_probability(5, 5, int(counts.sum()), b)
    mc = cov.monte_carlo_probability(counts, b, 1, trials=1500, seed=1,
                                     event=lambda r: [8, 9] in r.conditions["b"]["details"])
    assert 0.2 < q < 0.98
    assert mc.ci_low <= q <= mc.ci_high


def test_large_class_bound_against_monte_carlo():
    """Classes above 33 samples use bounds (subsets, pure-batch union bound): still >= the
    measured failure rate."""
    counts, b, e = [34] * 6, 3, 20
    a_c, exact = cov._class_cut_bound(34, 204, 3, pure=True)
    assert not exact
    bound = a_c(e)
    assert bound < 0.5  # not vacuous
    mc = cov.monte_carlo_probability(counts, b, e, trials=300, seed=5,
                                     event=lambda r: any(d["class"] == 0 for d in r.conditions["a_star"]["details"]))
    assert bound >= mc.ci_low and mc.successes > 0
    for allowed in (cov._allowed_pair, cov._allowed_bound_unbound):  # the first-batches bound
        exact_q = cov._all_allowed_probability((40, 40), 160, 4, allowed)  # (1), checked above
        assert cov._first_batches_probability((40, 40), 160, 4, allowed, box=16) >= exact_q * (1 - 1e-9)


# ----------------------------------------------------------------------------- epochs needed


def test_epochs_needed_monotone_in_p_and_consistent():
    k, R, n_min, b = 10, 100, 5, 50
    es = [cov.epochs_needed(k, R, n_min, b, p) for p in (0.5, 0.9, 0.99, 0.999)]
    assert es == sorted(es) and es[0] < es[-1]
    e = es[2]
    counts = step_counts(k, R, 0.5, n_min)
    assert cov.coverage_bounds(counts, b, e).lower >= 0.99 > cov.coverage_bounds(counts, b, e - 1).lower
    low, high = cov.epochs_range(counts, b, 0.99)
    assert low <= high == e
    assert cov.coverage_bounds(counts, b, low - 1).upper < 0.99  # fewer epochs cannot reach p
    assert cov.coverage_probability(k, R, n_min, b, e).lower == cov.coverage_bounds(counts, b, e).lower


def test_exact_limits():
    assert cov.epochs_needed(10, 1, 5, 50) == 1  # B >= N = 50: one batch
    assert cov.epochs_needed(10, 100, 5, 2) is None  # batches of 2 never join a class
    assert cov.coverage_probability(10, 100, 5, 2, 1000).exact == 0.0
    assert cov.coverage_probability(10, 100, 5, 50, 1).exact == 0.0
    with pytest.raises(ValueError, match="p must be"):
        cov.epochs_needed(10, 100, 5, 50, p=1.0)


# ----------------------------------------------------------------------------- binding


def test_binding_variant_equals_the_binding_schedule():
    y = labels_from_counts([6, 4, 3]).astype(np.int64)
    a = binding_variant_batches(y, batch_size=3, epochs=3, seed=4)
    b = schedule_batches(y, schedule="binding", batch_size=3, epochs=3, seed=4)
    assert len(a) == len(b) and all(np.array_equal(u, v) for u, v in zip(a, b))
    _, bind0 = binding_variant_epoch(y, batch_size=3, epoch=0, seed=4, per_epoch=True)
    picks = {tuple(binding_variant_epoch(y, batch_size=3, epoch=e, seed=4, per_epoch=True)[1])
             for e in range(6)}
    assert len(picks) > 1 and sorted(y[bind0].tolist()) == [0, 1, 2]  # one per class, redrawn
    with pytest.raises(ValueError, match="binding_classes"):
        binding_variant_epoch(y, batch_size=3, epoch=0, seed=0, binding_classes=[7])


@pytest.mark.parametrize("bind, per_epoch", [(None, False), (None, True), ([0, 1, 2], False),
                                             ([2, 3], False), ([0, 1], True), ([0, 2, 3], True)])
def test_binding_verdicts_against_check_batches(bind, per_epoch):
    counts, b = [6, 6, 3, 3], 4
    y = labels_from_counts(counts).astype(np.int64)
    verdict = cov.binding_guarantee(counts, b, bind, per_epoch)
    failures = []
    for seed in range(25):
        res = check_batches(y, binding_variant_batches(y, batch_size=b, epochs=1, seed=seed,
                                                       binding_classes=bind, per_epoch=per_epoch))
        failures.append(res)
    if verdict.guaranteed:
        assert all(r.holds for r in failures)
    else:  # fewer than k binding classes: some shuffle fails, and only where predicted
        assert not all(r.holds for r in failures)
        failed_c = {d["class"] for r in failures for d in r.conditions["a_star"]["details"]}
        failed_p = {tuple(p) for r in failures for p in r.conditions["b"]["details"]}
        assert failed_c <= set(verdict.at_risk_classes)
        assert failed_p <= {tuple(p) for p in verdict.at_risk_pairs}


def test_binding_report_and_partial_binding_against_monte_carlo():
    rep = cov.binding_variants_report([6, 6, 3, 3], 4, 1, seeds=range(8))
    assert all(r["consistent"] for r in rep)
    assert [r["guaranteed"] for r in rep] == [True, True, False, False, False]
    counts, b, bind, e = [30, 30, 30, 4, 4, 4], 8, [0, 1, 2], 20
    r = cov.partial_binding_bounds(counts, b, e, bind)
    assert 0.3 < r.lower <= r.upper < 1
    y = labels_from_counts(counts).astype(np.int64)
    trials = 200
    hits = sum(check_batches(y, binding_variant_batches(y, batch_size=b, epochs=e, seed=s,
                                                        binding_classes=bind)).holds
               for s in range(trials))
    lo, hi = cov.clopper_pearson(hits, trials, 0.99)
    assert hi >= r.lower and lo <= r.upper
    assert cov.partial_binding_epochs_needed(counts, b, list(range(6))) == 1


# ----------------------------------------------------------------------------- the figure


def test_figure_data_and_drawing(tmp_path):
    from figures.batching_epochs import compute, draw

    data = compute(k_values=(10,), r_values=(10,), b_values=(20, 300))
    rows = data["rows"]
    assert [r["epochs"] for r in rows] == [cov.epochs_needed(10, 10, 5, 20), 1]
    draw(data, tmp_path / "fig.png")
    assert (tmp_path / "fig.png").read_bytes()[:4] == b"\x89PNG"
    assert not [p for p in tmp_path.iterdir() if p.name != "fig.png"]  # no temp file left


# ----------------------------------------------------------------------------- the command line


def _run(args):
    return subprocess.run([sys.executable, "-m", "theory_checks.batches", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def advise_runs():
    jobs = {
        "text": ["--advise", "--k", "10", "--R", "100", "--batch-size", "50"],
        "json": ["--advise", "--k", "10", "--R", "10", "--batch-size", "20", "--p", "0.9", "--json"],
        "out": ["--advise", "--out", "x.json"],
        "p": ["--advise", "--p", "1.5"],
        "bs": ["--advise", "--batch-size", "1"],
        "exp": ["--advise", "--imbalance", "exp"],
        "p_alone": ["--p", "0.9", "--out", "/tmp/never_written.json"],
        "big": ["--advise", "--R", "1000", "--n-min", "200"],
    }
    with ThreadPoolExecutor(4) as pool:
        return dict(zip(jobs, pool.map(_run, jobs.values())))


def test_advise_text(advise_runs):
    r = advise_runs["text"]
    assert r.returncode == 0, r.stderr
    e = cov.epochs_needed(10, 100, 5, 50)
    assert f">= 0.99: {e} (guaranteed" in r.stdout
    assert "ONE epoch with probability 1" in r.stdout and "binding" in r.stdout


def test_advise_json(advise_runs):
    r = advise_runs["json"]
    assert r.returncode == 0, r.stderr
    a = json.loads(r.stdout)
    assert a["counts"] == step_counts(10, 10, 0.5, 5).tolist() and a["p"] == 0.9
    assert a["shuffle"]["epochs_needed"] == cov.epochs_needed(10, 10, 5, 20, p=0.9)
    assert a["shuffle"]["at_least"] <= a["shuffle"]["epochs_needed"]
    assert a["shuffle"]["one_epoch_probability"] == 0.0
    assert a["binding"]["all_k"]["epochs"] == 1 and a["binding"]["all_k"]["probability"] == 1.0
    rows = {row["epochs"]: row for row in a["shuffle"]["by_epochs"]}
    e = a["shuffle"]["epochs_needed"]
    assert rows[e]["lower"] >= 0.9 and rows[1]["exact"] == 0.0


@pytest.mark.parametrize("name, flag", [("out", "--out"), ("p", "--p"), ("bs", "--batch-size"),
                                        ("exp", "--imbalance"), ("p_alone", "--p"), ("big", "--R")])
def test_advise_usage_errors(advise_runs, name, flag):
    r = advise_runs[name]
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert f"argument {flag}" in r.stderr
    assert not Path("/tmp/never_written.json").exists()
