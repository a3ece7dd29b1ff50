"""Binding variants (issue 38, section 3) against the batched convex relaxation.

Batch-binding adds one binding sample per class to every batch (DESIGN.md section 6). Its
variants, built with ``theory_checks.schedules.binding_variant_batches``: all k binding samples
fixed, all k redrawn every epoch, fewer than k binding classes (all but one, the minority
classes only, a single class; fixed or redrawn), and the plain shuffle for contrast. On small
cases (N <= 20, k = 3 or 4, 2-3 epochs, batch sizes 3-5) each batching is decided numerically by
the batched relaxation of ``tests/test_batch_uniqueness.py`` (cvxpy, independent of the code
under test; its helpers ``relaxation_value`` and ``probe_uniqueness`` are reused as they are:
the OF Gram matrix is unique when no entry can move by more than ``MOVE`` at loss <= L* + eps).
For every batching:

1. the relaxation's optimal value is the OF value (``ufm.batched_of_loss``) and the cvxpy model
   is the literal loss;
2. the relaxation's verdict (OF unique or not) equals ``check_batches(labels, batches).holds``;
3. a variant that ``binding_guarantee`` declares guaranteed is unique by the relaxation;
4. when the OF is not unique, the entry the relaxation moves involves a class that
   ``binding_guarantee`` puts at risk, and a class or class pair that ``check_batches`` reports
   as failing (a minimizer keeps every (a*)-class collapsed and every (b)-pair orthogonal).

The fast cases are chosen (seeds fixed) so that fewer-than-k variants both hold and fail, as
does the shuffle; ``test_fast_cases_cover_both_verdicts`` keeps it so. A wider seeded grid,
including N = 16 and N = 20, is marked slow.
"""

from __future__ import annotations

import functools
import time

import numpy as np
import pytest

from test_batch_uniqueness import MOVE, TAU, literal_loss, probe_uniqueness, relaxation_value
from theory_checks.coverage import binding_guarantee
from theory_checks.interaction import check_batches
from theory_checks.schedules import binding_variant_batches, schedule_batches
from ufm import batched_of_loss

# variant name -> (binding classes from the counts (None: all k), per_epoch); "shuffle" is the
# plain shuffle (no binding samples)
VARIANTS = {
    "all k, fixed": (lambda c: None, False),
    "all k, per epoch": (lambda c: None, True),
    "all but one, fixed": (lambda c: list(range(len(c) - 1)), False),
    "all but one, per epoch": (lambda c: list(range(len(c) - 1)), True),
    "minority only": (lambda c: [i for i, n in enumerate(c) if n == min(c)], False),
    "single class": (lambda c: [0], False),
    "shuffle": None,
}
FEWER = {"all but one, fixed", "all but one, per epoch", "minority only", "single class"}

# (counts, batch size, epochs, variant, seed)
FAST_CASES = [
    ((4, 4, 2), 3, 2, "all k, fixed", 0),
    ((4, 4, 2), 3, 2, "all k, per epoch", 1),
    ((4, 4, 2), 3, 2, "all but one, fixed", 0),
    ((4, 4, 2), 3, 2, "all but one, fixed", 1),
    ((4, 4, 2), 3, 2, "minority only", 0),
    ((4, 4, 2), 3, 3, "minority only", 0),
    ((4, 4, 2), 4, 2, "single class", 0),
    ((4, 4, 2), 3, 2, "shuffle", 0),
    ((4, 4, 2), 4, 2, "shuffle", 0),
    ((3, 3, 2, 2), 3, 2, "all k, per epoch", 0),
    ((3, 3, 2, 2), 3, 2, "all but one, per epoch", 0),
    ((3, 3, 2, 2), 3, 2, "all but one, per epoch", 1),
    ((3, 3, 2, 2), 3, 2, "minority only", 2),
    ((3, 3, 2, 2), 3, 2, "minority only", 0),
]

SLOW_GRID = [((4, 4, 2), 3, 2), ((4, 4, 2), 4, 3), ((3, 3, 2, 2), 3, 2), ((5, 5, 3), 4, 2),
             ((3, 3, 2, 2), 5, 2), ((6, 6, 2, 2), 4, 2), ((8, 6, 3, 3), 5, 2)]
SLOW_SEEDS = (0, 1, 2)


def _labels(counts):
    return [c for c, n in enumerate(counts) for _ in range(n)]


def _batches(counts, batch_size, epochs, variant, seed):
    y = _labels(counts)
    if VARIANTS[variant] is None:
        out = schedule_batches(y, schedule="shuffle", batch_size=batch_size, epochs=epochs,
                               seed=seed)
    else:
        classes, per_epoch = VARIANTS[variant]
        out = binding_variant_batches(y, batch_size=batch_size, epochs=epochs, seed=seed,
                                      binding_classes=classes(counts), per_epoch=per_epoch)
    return [sorted(int(i) for i in b) for b in out]


@functools.lru_cache(maxsize=None)
def _decide(case):
    """Relaxation verdict, check_batches and binding_guarantee for one case (cached: the fast
    cases are shared by two tests)."""
    counts, batch_size, epochs, variant, seed = case
    y = _labels(counts)
    b = _batches(counts, batch_size, epochs, variant, seed)
    of_value = batched_of_loss(y, b, TAU)
    value, g = relaxation_value(y, b, TAU)
    probe = probe_uniqueness(y, b, TAU, of_value)
    check = check_batches(y, b)
    if VARIANTS[variant] is None:
        guaranteed, at_risk = False, set(range(len(counts)))
    else:
        classes, per_epoch = VARIANTS[variant]
        v = binding_guarantee(counts, batch_size, classes(counts), per_epoch)
        guaranteed, at_risk = v.guaranteed, set(v.at_risk_classes)
    return dict(y=y, b=b, of_value=of_value, value=value, literal=literal_loss(g, y, b, TAU),
                probe=probe, unique=probe.max_dev <= MOVE, holds=bool(check.holds),
                failed_classes={d["class"] for d in check.conditions["a_star"]["details"]},
                failed_pairs={tuple(p) for p in check.conditions["b"]["details"]},
                guaranteed=guaranteed, at_risk=at_risk)


def _assert_case(case):
    r = _decide(case)
    p = r["probe"]
    where = f"{case}: labels={r['y']} batches={r['b']}"
    assert r["literal"] == pytest.approx(r["value"], rel=1e-6, abs=1e-6), where
    assert r["value"] == pytest.approx(r["of_value"], rel=1e-6, abs=1e-6), where
    assert not (r["unique"] and p.unresolved), f"{where}: unresolved entries {p.unresolved}"
    assert r["unique"] == r["holds"], (
        f"{where}: relaxation unique={r['unique']} (max deviation {p.max_dev:.3f} at {p.arg}) "
        f"but check_batches holds={r['holds']}")
    if r["guaranteed"]:
        assert r["unique"], f"{where}: binding_guarantee says guaranteed, relaxation moves {p.arg}"
    if not r["unique"]:
        i, j = p.arg
        ci, cj = r["y"][i], r["y"][j]
        assert {ci, cj} & r["at_risk"], (
            f"{where}: entry {p.arg} (classes {ci}, {cj}) moves but neither class is at risk "
            f"({sorted(r['at_risk'])})")
        failing = {ci, cj} & r["failed_classes"] or (ci != cj and tuple(sorted((ci, cj)))
                                                     in r["failed_pairs"])
        assert failing, (f"{where}: entry {p.arg} (classes {ci}, {cj}) moves; check_batches "
                         f"failed classes {r['failed_classes']}, pairs {r['failed_pairs']}")
    return r


@pytest.mark.parametrize("case", FAST_CASES, ids=lambda c: f"{c[0]}-B{c[1]}-E{c[2]}-{c[3]}-s{c[4]}")
def test_binding_variant_relaxation_matches_check(case):
    _assert_case(case)


def test_fast_cases_cover_both_verdicts():
    """Fewer-than-k variants that are unique and ones that are not (by the relaxation, and by
    check_batches), a redrawn (per-epoch) variant of each kind, and the shuffle both ways."""
    rows = [(c, _decide(c)) for c in FAST_CASES]
    fewer = [r["unique"] for c, r in rows if c[3] in FEWER]
    assert any(fewer) and not all(fewer)
    fewer_check = [r["holds"] for c, r in rows if c[3] in FEWER]
    assert any(fewer_check) and not all(fewer_check)
    per_epoch_fewer = [r["unique"] for c, r in rows if c[3] == "all but one, per epoch"]
    assert any(per_epoch_fewer) and not all(per_epoch_fewer)
    shuffle = [r["unique"] for c, r in rows if c[3] == "shuffle"]
    assert any(shuffle) and not all(shuffle)
    assert any(r["guaranteed"] for _, r in rows)
    assert {len(c[0]) for c, _ in rows} == {3, 4}


@pytest.mark.slow
def test_binding_variant_grid_slow():
    t0 = time.perf_counter()
    rows = []
    for counts, batch_size, epochs in SLOW_GRID:
        for variant in VARIANTS:
            for seed in SLOW_SEEDS:
                case = (counts, batch_size, epochs, variant, seed)
                rows.append((case, _assert_case(case)))
    dt = time.perf_counter() - t0
    n_unique = sum(r["unique"] for _, r in rows)
    fewer = [r["unique"] for c, r in rows if c[3] in FEWER]
    print(f"\nbinding variants vs relaxation: {len(rows)} batchings, {n_unique} unique, "
          f"{len(rows) - n_unique} not; fewer-than-k: {sum(fewer)} of {len(fewer)} unique; "
          f"{sum(r['guaranteed'] for _, r in rows)} guaranteed; all agree with check_batches; "
          f"{dt:.1f} s")
    assert any(fewer) and not all(fewer)
    assert max(len(r["y"]) for _, r in rows) == 20 and np.all([r["unique"] for _, r in rows
                                                              if r["guaranteed"]])
