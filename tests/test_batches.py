"""Batch schedules (theory_checks.schedules): determinism, coverage, binding, validation; the
property that batch-binding always satisfies the conditions; ``python -m theory_checks.batches``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from theory_checks.interaction import check_batches
from theory_checks.schedules import SCHEDULES, binding_samples, epoch_batches, schedule_batches
from theory_checks.io import read_batches_json

ROOT = Path(__file__).resolve().parents[1]
LABELS = np.repeat([0, 1, 2, 3], [9, 7, 3, 2])  # N = 21


def _as_lists(batches):
    return [b.tolist() for b in batches]


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_deterministic_per_seed_and_epoch(schedule):
    kw = dict(schedule=schedule, batch_size=4, seed=3)
    a = epoch_batches(LABELS, epoch=2, **kw)
    assert _as_lists(a) == _as_lists(epoch_batches(LABELS, epoch=2, **kw))
    # an epoch does not depend on the epochs before it
    every = schedule_batches(LABELS, epochs=3, **kw)
    assert _as_lists(every[-len(a):]) == _as_lists(a)
    assert all(b.dtype == np.int64 for b in a)
    if schedule in ("shuffle", "binding"):
        assert _as_lists(epoch_batches(LABELS, epoch=1, **kw)) != _as_lists(a)
        assert _as_lists(epoch_batches(LABELS, epoch=2, schedule=schedule, batch_size=4,
                                       seed=4)) != _as_lists(a)


@pytest.mark.parametrize("schedule", ["shuffle", "fixed", "sorted"])
@pytest.mark.parametrize("batch_size", [2, 4, 21, 50])
def test_every_sample_exactly_once_per_epoch(schedule, batch_size):
    for epoch in range(3):
        batches = epoch_batches(LABELS, schedule=schedule, batch_size=batch_size, epoch=epoch, seed=0)
        assert sorted(np.concatenate(batches).tolist()) == list(range(LABELS.size))
        sizes = sorted(b.size for b in batches)  # fixed: the partial batch may move
        assert all(s == batch_size for s in sizes[1:]) and 1 <= sizes[0] <= batch_size


def test_drop_last_drops_the_partial_batch():
    batches = epoch_batches(LABELS, schedule="shuffle", batch_size=4, epoch=0, seed=0, drop_last=True)
    assert [b.size for b in batches] == [4] * 5
    assert len(set(np.concatenate(batches).tolist())) == 20
    with pytest.raises(ValueError, match="batch_size"):
        epoch_batches(LABELS, schedule="shuffle", batch_size=30, epoch=0, seed=0, drop_last=True)


def test_fixed_reuses_one_partition():
    parts = [sorted(map(tuple, (sorted(b) for b in _as_lists(
        epoch_batches(LABELS, schedule="fixed", batch_size=4, epoch=e, seed=1))))) for e in range(4)]
    assert all(p == parts[0] for p in parts)
    other = epoch_batches(LABELS, schedule="fixed", batch_size=4, epoch=0, seed=2)
    assert sorted(map(tuple, (sorted(b) for b in _as_lists(other)))) != parts[0]


def test_sorted_is_class_sorted_with_fresh_order_inside_classes():
    e0 = np.concatenate(epoch_batches(LABELS, schedule="sorted", batch_size=4, epoch=0, seed=0))
    e1 = np.concatenate(epoch_batches(LABELS, schedule="sorted", batch_size=4, epoch=1, seed=0))
    assert np.all(np.diff(LABELS[e0]) >= 0) and np.all(np.diff(LABELS[e1]) >= 0)
    assert e0.tolist() != e1.tolist()


def test_binding_batches_hold_every_binding_sample():
    bind = binding_samples(LABELS, seed=5)
    assert LABELS[bind].tolist() == [0, 1, 2, 3]
    assert bind.tolist() == binding_samples(LABELS, seed=5).tolist()
    assert any(binding_samples(LABELS, seed=s).tolist() != bind.tolist() for s in range(6, 12))
    for epoch in range(3):
        batches = epoch_batches(LABELS, schedule="binding", batch_size=5, epoch=epoch, seed=5)
        rest = []
        for b in batches:
            assert set(bind.tolist()) <= set(b.tolist())
            assert len(set(b.tolist())) == b.size  # no duplicates within a batch
            rest += [i for i in b.tolist() if i not in set(bind.tolist())]
        assert sorted(rest) == sorted(set(range(LABELS.size)) - set(bind.tolist()))
        assert [b.size for b in batches] == [5 + 4] * 3 + [2 + 4]


def test_binding_when_every_class_is_a_single_sample():
    batches = epoch_batches([0, 1, 2], schedule="binding", batch_size=2, epoch=0, seed=0)
    assert _as_lists(batches) == [[0, 1, 2]]


def test_binding_samples_skip_missing_labels():
    bind = binding_samples([5, 2, 5, 2, 9], seed=0)
    assert np.asarray([5, 2, 5, 2, 9])[bind].tolist() == [2, 5, 9]


@pytest.mark.parametrize("kwargs, words", [
    (dict(schedule="random"), "schedule must be one of shuffle, fixed, sorted, binding"),
    (dict(batch_size=1), "batch_size must be an integer >= 2"),
    (dict(batch_size=2.5), "batch_size must be an integer >= 2"),
    (dict(batch_size=True), "batch_size must be an integer >= 2"),
    (dict(epoch=-1), "epoch must be an integer >= 0"),
    (dict(seed=-3), "seed must be an integer >= 0"),
    (dict(labels=[0, -1, 1]), "labels must be non-negative integers"),
    (dict(labels=[0.0, 1.0]), "labels must be non-negative integers"),
    (dict(labels=[]), "labels must be a non-empty"),
    (dict(labels=[[0, 1]]), "labels must be a non-empty 1-D"),
])
def test_validation_names_the_argument(kwargs, words):
    kw = dict(labels=LABELS, schedule="shuffle", batch_size=4, epoch=0, seed=0) | kwargs
    with pytest.raises(ValueError, match=words):
        epoch_batches(kw.pop("labels"), **kw)


def test_schedule_batches_validates_epochs():
    with pytest.raises(ValueError, match="epochs must be an integer >= 1"):
        schedule_batches(LABELS, schedule="shuffle", batch_size=4, epochs=0, seed=0)


@st.composite
def label_vectors(draw):
    """Random label vectors, k >= 2 classes each with >= 2 samples, shuffled."""
    counts = draw(st.lists(st.integers(2, 9), min_size=2, max_size=6))
    labels = np.repeat(np.arange(len(counts)), counts)
    perm = draw(st.permutations(range(labels.size)))
    return labels[list(perm)]


@settings(max_examples=150, deadline=None)
@given(label_vectors(), st.integers(2, 12), st.integers(1, 3), st.integers(0, 2**31 - 1))
def test_binding_always_satisfies_the_conditions(labels, batch_size, epochs, seed):
    batches = schedule_batches(labels, schedule="binding", batch_size=batch_size, epochs=epochs,
                               seed=seed)
    res = check_batches(labels, batches)
    assert res.holds, res.to_dict()


@settings(max_examples=60, deadline=None)
@given(label_vectors(), st.integers(2, 6), st.integers(0, 1000))
def test_class_sorted_fails_without_binding(labels, batch_size, seed):
    """Class-sorted batches with k >= 3 classes and batches smaller than the classes never
    pin the first and the last class together."""
    k = int(labels.max()) + 1
    counts = np.bincount(labels)
    if k < 3 or counts.min() < batch_size:
        return
    batches = schedule_batches(labels, schedule="sorted", batch_size=batch_size, epochs=2, seed=seed)
    res = check_batches(labels, batches)
    assert [0, k - 1] in res.conditions["b"]["details"]


# ----------------------------------------------------------------------------- CLI


def _run(args, timeout=300):
    return subprocess.run([sys.executable, "-m", "theory_checks.batches", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def cli(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("batches_cli")
    labels_file = tmp / "labels.json"
    labels_file.write_text(json.dumps([0, 0, 1, 1, 1, 2, 2]))
    bad_labels = tmp / "bad_labels.json"
    bad_labels.write_text(json.dumps([0, 1.5]))
    jobs = {
        "binding": ["--schedule", "binding", "--batch-size", "3", "--epochs", "2", "--counts",
                    "6,4,2", "--out", str(tmp / "sub" / "binding.json")],
        "sorted": ["--schedule", "sorted", "--batch-size", "3", "--epochs", "2", "--k", "3",
                   "--R", "2", "--n-min", "3", "--out", str(tmp / "sorted.json"), "--quiet"],
        "labels": ["--labels", str(labels_file), "--batch-size", "2", "--epochs", "3",
                   "--out", str(tmp / "from_labels.json")],
        "bad_batch_size": ["--batch-size", "1", "--out", str(tmp / "x.json")],
        "bad_schedule": ["--schedule", "random", "--out", str(tmp / "x.json")],
        "bad_labels": ["--labels", str(bad_labels), "--out", str(tmp / "x.json")],
        "missing_labels": ["--labels", str(tmp / "nope.json"), "--out", str(tmp / "x.json")],
        "no_out": ["--schedule", "shuffle"],
    }
    with ThreadPoolExecutor(4) as pool:
        results = dict(zip(jobs, pool.map(_run, jobs.values())))
    return tmp, results


def test_cli_writes_the_design_format(cli):
    tmp, runs = cli
    r = runs["binding"]
    assert r.returncode == 0, r.stderr
    assert "wrote" in r.stdout
    obj = json.loads((tmp / "sub" / "binding.json").read_text())
    assert set(obj) == {"config", "labels", "batches"}
    cfg = obj["config"]
    assert cfg["schedule"] == "binding" and cfg["batch_size"] == 3 and cfg["epochs"] == 2
    assert cfg["counts"] == [6, 4, 2] and "numpy" in cfg["versions"]
    assert obj["labels"] == [0] * 6 + [1] * 4 + [2] * 2
    expect = schedule_batches(obj["labels"], schedule="binding", batch_size=3, epochs=2, seed=0)
    assert obj["batches"] == _as_lists(expect)
    assert cfg["binding_samples"] == binding_samples(obj["labels"], 0).tolist()
    labels, batches, config = read_batches_json(tmp / "sub" / "binding.json")
    assert check_batches(labels, batches).holds and config == cfg


def test_cli_sorted_and_labels_file(cli):
    tmp, runs = cli
    assert runs["sorted"].returncode == 0 and runs["sorted"].stdout == ""
    labels, batches, cfg = read_batches_json(tmp / "sorted.json")
    assert cfg["k"] == 3 and not check_batches(labels, batches).holds
    assert runs["labels"].returncode == 0, runs["labels"].stderr
    labels, batches, cfg = read_batches_json(tmp / "from_labels.json")
    assert labels.tolist() == [0, 0, 1, 1, 1, 2, 2] and len(batches) == 12
    assert cfg["labels_file"].endswith("labels.json")


@pytest.mark.parametrize("name, words", [
    ("bad_batch_size", "--batch-size"),
    ("bad_schedule", "--schedule"),
    ("bad_labels", "labels[1] = 1.5"),
    ("missing_labels", "cannot read"),
    ("no_out", "--out"),
])
def test_cli_usage_errors(cli, name, words):
    r = cli[1][name]
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert words in r.stderr
