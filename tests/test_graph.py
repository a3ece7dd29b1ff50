"""The batch interaction-graph check (theory_checks.interaction, DESIGN.md section 6) and its CLI.

Hand-made cases with known verdicts, the fast array path against a slow networkx reference of
conditions (a*) and (b) on random small inputs, and ``python -m theory_checks.graph`` end to
end (exit status 0/1/2, one stderr line for every kind of unusable input).
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from theory_checks.interaction import (
    FlatBatches,
    check_batches,
    exactness,
    interaction_graph,
)
from theory_checks.schedules import binding_samples, schedule_batches

ROOT = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- reference


def reference(labels, batches):
    """Slow, literal (a*) and (b) with networkx: (class components, never-pinned pairs,
    uncovered samples). Batches are multisets (a repeated index counts twice)."""
    labels = [int(v) for v in labels]
    batches = [[int(i) for i in b] for b in batches]
    n = len(labels)
    g = nx.Graph()
    g.add_nodes_from(range(n))
    pure = []
    for b in batches:
        classes = {labels[i] for i in b}
        if len(classes) >= 2:  # mixed: join each class's samples in it
            for c in classes:
                members = [i for i in b if labels[i] == c]
                g.add_edges_from(itertools.combinations(members, 2))
        elif len(b) >= 3:
            pure.append(b)
    changed = True
    while changed:  # fixpoint of the pure-batch rule
        changed = False
        comp = {i: j for j, cc in enumerate(nx.connected_components(g)) for i in cc}
        for b in pure:
            ids = [comp[i] for i in b]
            if len(set(ids)) < len(ids) and len(set(ids)) > 1:
                g.add_edges_from((b[0], i) for i in b[1:])
                changed = True
                break
    comps = {}
    for cc in nx.connected_components(g):
        c = {labels[i] for i in cc}
        assert len(c) == 1, "components never cross classes"
        c = c.pop()
        comps[c] = comps.get(c, 0) + 1
    never = []
    classes = sorted(set(labels))
    for c, c2 in itertools.combinations(classes, 2):
        ok = False
        for b in batches:
            nc, nc2 = sum(labels[i] == c for i in b), sum(labels[i] == c2 for i in b)
            if nc and nc2 and max(nc, nc2) >= 2:
                ok = True
                break
        if not ok:
            never.append([c, c2])
    covered = set(itertools.chain.from_iterable(batches))
    uncovered = [i for i in range(n) if i not in covered]
    return [comps[c] for c in classes], never, uncovered


def assert_matches_reference(labels, batches, **kw):
    res = check_batches(labels, batches, **kw)
    comps, never, uncovered = reference(labels, batches)
    assert res.class_components.tolist() == comps
    assert res.conditions["b"]["details"] == never
    assert res.uncovered_samples.tolist() == uncovered
    a_ok = all(c == 1 for c in comps) and not uncovered
    assert res.conditions["a_star"]["passed"] == a_ok
    assert res.holds == (a_ok and not never)
    return res


def a_details(res):
    return {row["class"]: row["components"] for row in res.conditions["a_star"]["details"]}


# ----------------------------------------------------------------------------- hand-made cases


def test_class_sorted_batches_fail():
    labels = np.repeat([0, 1, 2], 6)
    batches = schedule_batches(labels, schedule="sorted", batch_size=3, epochs=4, seed=0)
    res = assert_matches_reference(labels, batches)
    assert not res.holds
    assert not res.conditions["a_star"]["passed"]
    assert res.conditions["b"]["details"] == [[0, 1], [0, 2], [1, 2]]


def test_random_reshuffling_over_enough_epochs_holds():
    labels = np.repeat([0, 1, 2], 6)
    res = assert_matches_reference(
        labels, schedule_batches(labels, schedule="shuffle", batch_size=6, epochs=10, seed=0))
    assert res.holds and res.conditions["a_star"]["passed"] and res.conditions["b"]["passed"]
    # one fixed partition reused every epoch never connects the classes
    fixed = check_batches(labels, schedule_batches(labels, schedule="fixed", batch_size=6,
                                                   epochs=10, seed=0))
    assert not fixed.conditions["a_star"]["passed"]


def test_class_split_in_two_halves_fails_with_two_components():
    labels = [0, 0, 0, 0, 1, 1, 1, 1]
    batches = [[0, 1, 4, 5], [2, 3, 6, 7]] * 3  # halves {0,1} and {2,3} never meet
    res = assert_matches_reference(labels, batches)
    assert not res.holds
    assert a_details(res) == {0: 2, 1: 2}
    assert res.conditions["b"]["passed"]


def test_pair_of_classes_that_never_meets_fails():
    labels = [0, 0, 1, 1, 2, 2]
    res = assert_matches_reference(labels, [[0, 1, 2, 3], [2, 3, 4, 5]])
    assert res.conditions["a_star"]["passed"]
    assert res.conditions["b"]["details"] == [[0, 2]]
    assert res.conditions["b"]["never_together"] == [[0, 2]]
    assert not res.holds


def test_pair_meeting_only_as_singletons_is_not_pinned():
    labels = [0, 0, 1, 1, 2, 2]
    res = assert_matches_reference(labels, [[0, 1, 2, 3], [2, 3, 4, 5], [0, 4], [1, 5]])
    assert res.conditions["b"]["details"] == [[0, 2]]
    assert res.conditions["b"]["never_together"] == []
    # one of the two present twice pins the pair
    assert check_batches(labels, [[0, 1, 2, 3], [2, 3, 4, 5], [0, 1, 4]]).holds


def test_sample_in_no_batch_is_reported():
    labels = [0, 0, 0, 1, 1, 1]
    res = assert_matches_reference(labels, [[0, 1, 3, 4]])
    assert res.uncovered_samples.tolist() == [2, 5]
    assert not res.holds
    rows = res.conditions["a_star"]["details"]
    assert [(r["class"], r["n_uncovered"], r["components"]) for r in rows] == [(0, 1, 2), (1, 1, 2)]
    # a singleton class whose only sample is in no batch still breaks (a*)
    res = check_batches([0, 0, 1], [[0, 1]])
    assert res.uncovered_samples.tolist() == [2] and not res.conditions["a_star"]["passed"]


def test_pure_batch_of_size_two_pins_nothing():
    labels = [0, 0, 1, 1]
    res = assert_matches_reference(labels, [[0, 1], [0, 2, 3], [1, 2, 3]])
    assert a_details(res) == {0: 2}  # 0 and 1 only share the pure pair
    assert res.conditions["b"]["passed"]
    # the same two samples in a MIXED batch are joined
    assert check_batches(labels, [[0, 1, 2], [0, 2, 3], [1, 2, 3]]).holds


def test_pure_batch_of_size_three_joins_only_when_two_members_are_joined():
    labels = [0, 0, 0, 0, 0, 1, 1]
    # {0,1} joined by a mixed batch; pure [2,3,4] has no joined pair, stays apart
    res = assert_matches_reference(labels, [[0, 1, 5, 6], [2, 3, 4], [2, 5], [3, 5], [4, 6]])
    assert a_details(res) == {0: 4}
    # pure [0,1,2] holds the joined pair {0,1}: joins 2; listed first, pure [2,3,0] then joins 3
    batches = [[0, 2, 3], [0, 1, 2], [0, 1, 5, 6], [3, 4]]
    res = assert_matches_reference(labels, batches)
    assert a_details(res) == {0: 2}  # {0,1,2,3} and {4}: the pure pair [3, 4] pins nothing
    batches.append([0, 4, 5])  # a mixed batch joining 4 with 0
    assert assert_matches_reference(labels, batches).conditions["a_star"]["passed"]


def test_pure_batch_chain_reaches_the_fixpoint():
    # pure batches each needing the previous one: a chain of length 30 (rounds and events)
    labels = [0] * 62 + [1, 1]
    batches = [[0, 1, 62, 63]] + [[2 * i, 2 * i + 1, 2 * i + 2, 2 * i + 3] for i in range(30)]
    batches = batches[:1] + batches[1:][::-1]
    for rounds in (0, 1, 3, 40):
        res = check_batches(labels, batches, _max_rounds=rounds)
        assert res.holds, rounds
    broken = [b for b in batches if b != [20, 21, 22, 23]]
    assert a_details(check_batches(labels, broken)) == {0: 41}  # {0..21} + 40 singletons


def test_repeated_index_counts_twice():
    # [0, 0, 1] is a pure batch of size 3 whose two copies of 0 are joined: it joins 1
    labels = [0, 0, 1, 1]
    res = assert_matches_reference(labels, [[0, 0, 1], [0, 2, 3], [1, 2, 3]])
    assert res.holds
    assert not check_batches(labels, [[0, 1], [0, 2, 3], [1, 2, 3]]).holds


def test_binding_repairs_class_sorted_batches():
    labels = np.repeat([0, 1, 2, 3], [8, 8, 3, 3])
    sorted_b = schedule_batches(labels, schedule="sorted", batch_size=4, epochs=3, seed=1)
    assert not check_batches(labels, sorted_b).holds
    bind = binding_samples(labels, seed=1)
    repaired = [np.union1d(b, bind) for b in sorted_b]
    assert assert_matches_reference(labels, repaired).holds
    binding = schedule_batches(labels, schedule="binding", batch_size=4, epochs=1, seed=1)
    assert check_batches(labels, binding).holds


def test_singleton_classes_are_reported_not_crashed():
    res = check_batches([0, 0, 1], [[0, 1, 2]])
    assert res.holds and res.warnings and "single sample" in res.warnings[0]
    res = assert_matches_reference([0, 1], [[0, 1]])
    assert not res.holds and res.conditions["b"]["details"] == [[0, 1]]
    res = check_batches([4, 4, 4], [[0, 1, 2]])  # one class: every batch is pure
    assert res.k == 1 and res.classes.tolist() == [4] and a_details(res) == {4: 3}
    assert any("one class" in w for w in res.warnings)


def test_classes_are_named_by_label_value():
    res = check_batches([3, 3, 7, 7, 9, 9], [[0, 1, 2, 3], [2, 3, 4, 5]])
    assert res.conditions["b"]["details"] == [[3, 9]]
    assert res.classes.tolist() == [3, 7, 9]


def test_exactness_depends_on_d():
    labels, batches = [0, 0, 0, 1, 1, 1], [[0, 1, 2], [3, 4, 5], [0, 1, 3, 4], [1, 2, 4, 5]]
    res = check_batches(labels, batches, d=2)
    assert res.holds and res.exact
    only_a = [[0, 1, 3, 4, 5], [2, 3]]  # sample 2 meets class 0 in no mixed batch
    r = check_batches(labels, only_a, d=2)
    assert r.conditions["b"]["passed"] and not r.conditions["a_star"]["passed"]
    assert r.exact is False and "d = k" in r.exactness
    assert check_batches(labels, only_a, d=3).exact is True
    assert check_batches(labels, only_a).exact is None
    assert exactness(3, 2, True, True)[0] is False  # d < k: OF infeasible
    assert exactness(3, 3, False, False)[0] is True  # (b) fails: necessary for every d


def test_input_formats_agree():
    labels = [0, 0, 1, 1, 2]
    lists = [[0, 2, 4], [1, 3, 4]]
    a = check_batches(labels, lists).to_dict()
    assert check_batches(np.array(labels), np.array(lists)).to_dict() == a
    assert check_batches(labels, [np.array(b, dtype=np.uint16) for b in lists]).to_dict() == a
    assert check_batches(labels, FlatBatches.from_lists(lists)).to_dict() == a
    json.dumps(a)  # plain JSON


@pytest.mark.parametrize("labels, batches, words", [
    ([0, 1], [[0, 2]], "out of range"),
    ([0, 1], [[0, -1]], "out of range"),
    ([0, 1], [], "empty"),
    ([0, 1], [[0, 1], []], "batch 1 is empty"),
    ([0, 1], [[0, 1.5]], "floats"),
    ([0, 1], [[0, True]], "booleans"),
    ([0, 1], [["0", 1]], "integers"),
    ([0, 1], [[[0, 1]]], "flat list"),
    ([0, -1], [[0, 1]], "non-negative"),
    ([0, 1.0], [[0, 1]], "floats"),
    ([], [[0]], "non-empty"),
])
def test_bad_input_raises_value_error(labels, batches, words):
    with pytest.raises(ValueError, match=words):
        check_batches(labels, batches)


# ----------------------------------------------------------------------------- fast vs reference


@st.composite
def small_batchings(draw):
    k = draw(st.integers(1, 4))
    n = draw(st.integers(2, 14))
    labels = draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n))
    n_batches = draw(st.integers(1, 9))
    batches = []
    for _ in range(n_batches):
        size = draw(st.integers(1, min(6, n)))
        if draw(st.booleans()):  # a pure batch when the class has enough samples
            c = draw(st.sampled_from(labels))
            pool = [i for i, y in enumerate(labels) if y == c]
            batch = draw(st.permutations(pool))[:size]
        else:
            batch = draw(st.lists(st.integers(0, n - 1), min_size=size, max_size=size, unique=True))
        batches.append(list(batch))
    return labels, batches


@settings(max_examples=300, deadline=None)
@given(small_batchings())
def test_fast_path_matches_reference(case):
    labels, batches = case
    res = assert_matches_reference(labels, batches)
    assert check_batches(labels, batches, _max_rounds=0).to_dict() == res.to_dict()


@settings(max_examples=150, deadline=None)
@given(small_batchings(), st.data())
def test_fast_path_matches_reference_with_repeated_indices(case, data):
    labels, batches = case
    b = data.draw(st.integers(0, len(batches) - 1))
    batches[b] = batches[b] + [data.draw(st.sampled_from(batches[b]))]
    res = assert_matches_reference(labels, batches)
    assert check_batches(labels, batches, _max_rounds=1).to_dict() == res.to_dict()


@settings(max_examples=100, deadline=None)
@given(small_batchings())
def test_components_agree_with_networkx_interaction_graph(case):
    """Same-class components from the networkx interaction graph (edges labelled by batch)."""
    labels, batches = case
    g = interaction_graph(labels, batches)
    assert set(g.nodes) == set(range(len(labels)))
    mixed = {b for b, batch in enumerate(batches) if len({labels[i] for i in batch}) > 1}
    pinned = nx.Graph()
    pinned.add_nodes_from(g.nodes)
    pinned.add_edges_from((i, j) for i, j, data in g.edges(data=True)
                          if labels[i] == labels[j] and mixed.intersection(data["batches"]))
    pure = [sorted(set(b)) for b in batches if len({labels[i] for i in b}) == 1 and len(b) >= 3]
    while True:
        comp = {i: j for j, cc in enumerate(nx.connected_components(pinned)) for i in cc}
        grow = [b for b in pure if len({comp[i] for i in b}) not in (1, len(b))]
        if not grow:
            break
        pinned.add_edges_from((grow[0][0], i) for i in grow[0][1:])
    counts = {}
    for cc in nx.connected_components(pinned):
        c = labels[next(iter(cc))]
        counts[c] = counts.get(c, 0) + 1
    res = check_batches(labels, batches)
    assert res.class_components.tolist() == [counts[c] for c in sorted(counts)]


def test_large_random_input_matches_reference_counts():
    """A mid-size input where the chunked contraction and vectorized rounds really work."""
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 3, 400)
    batches = schedule_batches(labels, schedule="sorted", batch_size=7, epochs=3, seed=2)
    batches += [rng.choice(400, 5, replace=False) for _ in range(40)]
    res = assert_matches_reference(labels, batches)
    assert check_batches(labels, batches, _max_rounds=0).to_dict() == res.to_dict()


# ----------------------------------------------------------------------------- CLI


def _write(tmp_path, name, content):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, str):
        path.write_text(content)
    else:
        path.write_text(json.dumps(content))
    return str(path)


BAD_FILES = {
    "not_json.json": ("{labels: [0, 1]", "not valid JSON"),
    "binary.json": (b"\xff\xfe\x00\x81garbage", "not valid JSON"),
    "empty_file.json": ("", "not valid JSON"),
    "top_list.json": ([[0, 1]], "top level"),
    "no_labels.json": ({"batches": [[0, 1]]}, 'missing key "labels"'),
    "no_batches.json": ({"labels": [0, 1]}, 'missing key "batches"'),
    "empty_batches.json": ({"labels": [0, 1], "batches": []}, '"batches" is empty'),
    "empty_batch.json": ({"labels": [0, 1], "batches": [[0, 1], []]}, "batches[1] is empty"),
    "out_of_range.json": ({"labels": [0, 1], "batches": [[0, 2]]}, "batches[0][1] = 2 is out of range"),
    "negative.json": ({"labels": [0, 1], "batches": [[0, -1]]}, "batches[0][1] = -1 is negative"),
    "float_index.json": ({"labels": [0, 1], "batches": [[1.5, 0]]}, "batches[0][0] = 1.5 is not an integer"),
    "float_2.json": ({"labels": [0, 1], "batches": [[2.0, 0]]}, "batches[0][0] = 2.0"),
    "string_index.json": ({"labels": [0, 1], "batches": [[0, "3"]]}, 'batches[0][1] = "3"'),
    "bool_index.json": ({"labels": [0, 1], "batches": [[0, True]]}, "batches[0][1] = true"),
    "null_index.json": ({"labels": [0, 1], "batches": [[None, 1]]}, "batches[0][0] = null"),
    "huge_index.json": ('{"labels": [0, 1], "batches": [[0, 100000000000000000000000000000]]}',
                        "out of range"),
    "nested.json": ({"labels": [0, 1], "batches": [[[0, 1]]]}, "batches[0][0] = [0, 1]"),
    "batch_not_list.json": ({"labels": [0, 1], "batches": [[0, 1], 3]}, "batches[1] = 3"),
    "batches_not_list.json": ({"labels": [0, 1], "batches": 5}, '"batches" must be a list'),
    "labels_float.json": ({"labels": [0, 1.5], "batches": [[0, 1]]}, "labels[1] = 1.5"),
    "labels_string.json": ({"labels": ["a", 1], "batches": [[0, 1]]}, 'labels[0] = "a"'),
    "labels_bool.json": ({"labels": [0, False], "batches": [[0, 1]]}, "labels[1] = false"),
    "labels_negative.json": ({"labels": [0, -2], "batches": [[0, 1]]}, "labels[1] = -2 is negative"),
    "labels_empty.json": ({"labels": [], "batches": [[0]]}, '"labels" is empty'),
    "labels_not_list.json": ({"labels": 3, "batches": [[0]]}, '"labels" must be a list'),
}


def _run(args, timeout=120):
    return subprocess.run([sys.executable, "-m", "theory_checks.graph", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def cli(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("graph_cli")
    good = _write(tmp, "good.json", {"labels": [0, 0, 1, 1], "batches": [[0, 1, 2], [0, 2, 3]]})
    bad = _write(tmp, "bad.json", {"labels": [0, 0, 0, 1, 1, 1],
                                   "batches": [[0, 1, 2], [3, 4, 5], [0, 3]]})
    jobs = {
        "good": ["--batches", good],
        "good_json": ["--batches", good, "--json", "--d", "3"],
        "bad": ["--batches", bad, "--max-list", "1"],
        "bad_json": ["--batches", bad, "--json"],
        "missing": ["--batches", str(tmp / "nope.json")],
        "directory": ["--batches", str(tmp)],
        "d_zero": ["--batches", good, "--d", "0"],
        "d_text": ["--batches", good, "--d", "abc"],
        "no_args": [],
    }
    for name, (content, _) in BAD_FILES.items():
        jobs[name] = ["--batches", _write(tmp, name, content)]
    with ThreadPoolExecutor(4) as pool:
        results = dict(zip(jobs, pool.map(_run, jobs.values())))
    return results


def test_cli_exit_0_when_conditions_hold(cli):
    r = cli["good"]
    assert r.returncode == 0, r.stderr
    assert "HOLDS" in r.stdout and r.stderr == ""


def test_cli_exit_1_and_reasons_when_they_fail(cli):
    r = cli["bad"]
    assert r.returncode == 1, r.stderr
    assert "DOES NOT HOLD" in r.stdout
    assert "class 0: 3 components" in r.stdout and "... and 1 more classes" in r.stdout
    assert "(0, 1)" in r.stdout
    assert "Traceback" not in r.stderr


def test_cli_json_keys(cli):
    out = json.loads(cli["good_json"].stdout)
    for key in ("holds", "conditions", "uncovered_samples", "n_samples", "n_batches", "d",
                "exact", "exactness"):
        assert key in out
    assert out["holds"] is True and out["d"] == 3 and out["exact"] is True
    assert set(out["conditions"]) == {"a_star", "b"}
    assert out["config"]["d"] == 3 and out["config"]["batches"] == out["file"]
    assert {"python", "numpy", "networkx"} <= set(out["versions"])
    bad = json.loads(cli["bad_json"].stdout)
    assert cli["bad_json"].returncode == 1
    assert bad["conditions"]["a_star"]["passed"] is False
    assert bad["conditions"]["b"]["details"] == [[0, 1]]
    assert [r["components"] for r in bad["conditions"]["a_star"]["details"]] == [3, 3]


@pytest.mark.parametrize("name", ["missing", "directory", "d_zero", "d_text", "no_args", *BAD_FILES])
def test_cli_bad_input_one_line_exit_2(cli, name):
    r = cli[name]
    assert r.returncode == 2, (name, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert r.stdout == ""
    if name in BAD_FILES:
        assert BAD_FILES[name][1] in r.stderr, r.stderr


def test_batch_files_are_written_with_the_usual_mode_and_read_back(tmp_path):
    """The atomic writer (``ufm.cli.io.atomic_write``) gives 0666 less the umask, not mkstemp's
    0600, and the file reads back to what was written."""
    import os

    from theory_checks.io import read_batches_json, write_batches_json

    path = tmp_path / "b.json"
    write_batches_json(path, [0, 1, 1], [[0, 1], [1, 2]], config={"seed": 3})
    mask = os.umask(0)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask
    labels, fb, config = read_batches_json(path)
    assert labels.tolist() == [0, 1, 1] and [b.tolist() for b in fb] == [[0, 1], [1, 2]]
    assert config == {"seed": 3}
    assert [p.name for p in tmp_path.iterdir()] == ["b.json"]  # no temp file left behind


def test_cli_and_file_modules_load_without_jax_or_cvxpy():
    """Usage errors and batch files need neither JAX nor cvxpy (they load after the checks)."""
    code = ("import sys, theory_checks.io, theory_checks.graph_cmd, ufm.cli.solve_cmd, "
            "ufm.cli.certify_cmd, ufm.cli.io; print([m for m in ('jax', 'cvxpy') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
