"""``python -m figures.fashionmnist`` (issues 35, 38): the FashionMNIST tables from run folders.

Synthetic run folders (``config.json`` + ``metrics.jsonl`` with known values) written here;
every expected number is computed by hand (means, sample sd, first epochs under a threshold,
McNemar's discordant counts and the exact binomial p-value via ``math.comb``); the Delta_GM to
the UFM optimum is checked on balanced counts, where the no-ReLU optimum is the simplex ETF.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from deep.metrics import pack_hits
from figures import fashionmnist_cmd
from figures import fashionmnist_summary as fs
from ufm.core.geometry import delta_gm

TAU = 0.5
IMBALANCED, BALANCED = [6, 6, 2], [3, 3, 3]
# 12 test images, 4 per class; with IMBALANCED counts class 2 is the minority
Y_TEST = np.array([0] * 4 + [1] * 4 + [2] * 4)
HITS = {  # (SCL, CE) per seed, per image
    0: ("111111110110", "101011011000"),
    1: ("111111111111", "000000001111"),
    2: ("111111111111", "000000000000"),  # its CE run is unfinished: never paired
}


def _bits(text: str) -> np.ndarray:
    return np.array([c == "1" for c in text])


def _gram(seed: int, k: int = 3) -> list[list[float]]:
    v = np.random.default_rng(seed).normal(size=(k, 4))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return (v @ v.T).tolist()


def _write(root, name, *, counts, epochs, values, final=None, arch="resnet-small", config=None):
    """A run folder: one record per entry of ``values`` (Delta_GM_OF; none: no metrics.jsonl),
    ``final`` merged into the last record, ``config`` into the TrainConfig."""
    d = root / name
    d.mkdir()
    cfg = {"arch": arch, "epochs": epochs, "tau": TAU, "seed": int(name.rsplit("_s", 1)[1]),
           "relu": "norelu" not in name, "loss": "ce" if "_ce_" in name else "scl",
           "schedule": "binding" if "binding" in name else "shuffle", **(config or {})}
    (d / "config.json").write_text(json.dumps({"config": cfg, "counts": counts, "n_test": 12}))
    if not values:
        return
    recs = [{"epoch": e + 1, "delta_gm_of": v, "test_set": "subset", "test_images": 5}
            for e, v in enumerate(values)]
    recs[-1].update(final or {})
    (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))


def _final(seed, gram_seed, cos_mm, acc, hits=None):
    rec = {"test_set": "full", "test_images": 12, "cos_min_min": cos_mm, "cos_maj_min": -cos_mm,
           "ncm_test_acc": acc, "probe_test_acc": acc + 0.05, "nc1": 1 + cos_mm,
           "class_mean_gram": _gram(gram_seed)}
    if hits is not None:
        rec["ncm_test_hits"] = rec["probe_test_hits"] = pack_hits(_bits(hits))
    return rec


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    # r10_relu: 3 finished seeds (Delta_GM_OF per epoch) + 1 unfinished one with extreme values
    series = {0: [1.0, 0.45, 0.2], 1: [0.6, 0.55, 0.4], 2: [0.3, 0.7, 0.9]}
    for s, vals in series.items():
        _write(root, f"r10_relu_s{s}", counts=IMBALANCED, epochs=3, values=vals,
               final=_final(s, s, [0.1, 0.2, 0.6][s], [0.7, 0.8, 0.9][s], HITS[s][0]))
    _write(root, "r10_relu_s3", counts=IMBALANCED, epochs=3, values=[0.0, 0.0],
           final=_final(3, 3, 5.0, 0.0, HITS[0][0]))
    for s in (0, 1):
        _write(root, f"r10_ce_s{s}", counts=IMBALANCED, epochs=3, values=[1.0, 1.0, 1.0],
               final=_final(s, 10 + s, 0.0, 0.5, HITS[s][1]))
    _write(root, "r10_ce_s2", counts=IMBALANCED, epochs=3, values=[1.0],
           final=_final(2, 12, 0.0, 0.5, HITS[2][1]))
    _write(root, "r10_densenet40_s0", counts=IMBALANCED, epochs=3, values=[0.4, 0.1, 0.05],
           final=_final(0, 20, 0.0, 0.5), arch="densenet40")
    _write(root, "r100_norelu_s0", counts=BALANCED, epochs=2, values=[0.9, 0.8],
           final=_final(0, 30, 0.3, 0.6))
    bad = root / "r100_relu_s0"  # unreadable: skipped with a warning
    bad.mkdir()
    (bad / "config.json").write_text("{not json")
    return root


@pytest.fixture(scope="module")
def summary(runs_dir):
    calls = []

    def optimum(counts, tau):
        calls.append((tuple(counts), tau))
        return fs.ufm_optimum(counts, tau)

    runs, warnings = fs.load_runs(runs_dir)
    out = fs.summarize(runs, y_test=Y_TEST, optimum=optimum, warnings=warnings)
    out["_calls"] = calls
    return out


def _row(summary, table, setting):
    return next(r for r in summary[table] if r["setting"] == setting)


def test_finished_and_in_progress(summary):
    assert sorted(summary["finished"]) == ["r100_norelu_s0", "r10_ce_s0", "r10_ce_s1",
                                           "r10_densenet40_s0", "r10_relu_s0", "r10_relu_s1",
                                           "r10_relu_s2"]
    assert {(p["run"], p["epoch"], p["epochs"]) for p in summary["in_progress"]} == {
        ("r10_relu_s3", 2, 3), ("r10_ce_s2", 1, 3)}
    assert any("r100_relu_s0" in w for w in summary["warnings"])


def test_mean_sd_and_per_seed_by_hand(summary):
    row = _row(summary, "central", "r10_relu")
    assert row["seeds"] == [0, 1, 2] and [p["run"] for p in row["in_progress"]] == ["r10_relu_s3"]
    st = row["delta_gm_of"]  # 0.2, 0.4, 0.9 (the unfinished seed's 0.0 excluded)
    assert st["values"] == [0.2, 0.4, 0.9] and st["n"] == 3
    assert st["mean"] == pytest.approx(0.5)
    assert st["sd"] == pytest.approx(math.sqrt((0.3**2 + 0.1**2 + 0.4**2) / 2))
    assert row["cos_min_min"]["mean"] == pytest.approx(0.3)
    assert row["cos_min_min"]["sd"] == pytest.approx(math.sqrt((0.04 + 0.01 + 0.09) / 2))
    assert row["ncm_test_acc"]["mean"] == pytest.approx(0.8)
    assert row["ncm_test_acc"]["sd"] == pytest.approx(0.1)
    assert row["ncm_test_acc_min"]["n"] == 0 and row["ncm_test_acc_min"]["mean"] is None
    one = _row(summary, "central", "r100_norelu")  # one seed: the mean alone
    assert one["delta_gm_of"]["mean"] == 0.8 and one["delta_gm_of"]["sd"] is None
    empty = _row(summary, "central", "r10_binding")  # no run at all
    assert empty["seeds"] == [] and empty["delta_gm_of"]["mean"] is None
    ce = _row(summary, "central", "r10_ce")  # CE has rows too: 2 finished seeds of 1.0
    assert ce["seeds"] == [0, 1] and ce["delta_gm_of"]["mean"] == 1.0
    assert ce["ncm_test_acc"]["mean"] == pytest.approx(0.5)


def test_epochs_to_threshold_by_hand(summary):
    row = _row(summary, "central", "r10_relu")
    # s0: 1.0, 0.45, 0.2 -> <= 0.5 at 2, <= 0.2 at 3 (equality counts); s1: 0.6, 0.55, 0.4 ->
    # 3, never; s2: 0.3, 0.7, 0.9 -> 1, never
    assert row["epochs_to_0.5"] == [2, 3, 1]
    assert row["epochs_to_0.2"] == [3, None, None]
    dense = _row(summary, "complexity", "r10_densenet40")
    assert dense["arch"] == "densenet40" and dense["delta_gm_of"]["mean"] == 0.05
    assert dense["epochs_to_0.5"] == [1] and dense["epochs_to_0.2"] == [2]
    assert _row(summary, "complexity", "r10_relu")["delta_gm_of"]["mean"] == pytest.approx(0.5)


def test_complexity_accuracies_and_cosines_by_hand(summary):
    # DenseNet: one finished seed, cos 0.0, NCM 0.5, probe 0.5 + 0.05 on the full test set
    dense = _row(summary, "complexity", "r10_densenet40")
    assert dense["cos_min_min"]["values"] == [0.0]
    assert dense["ncm_test_acc"]["mean"] == pytest.approx(0.5)
    assert dense["probe_test_acc"]["mean"] == pytest.approx(0.55)
    relu = _row(summary, "complexity", "r10_relu")  # seeds 0-2: NCM 0.7, 0.8, 0.9
    assert relu["ncm_test_acc"]["mean"] == pytest.approx(0.8)
    assert relu["probe_test_acc"]["sd"] == pytest.approx(0.1)
    assert relu["cos_min_min"]["mean"] == pytest.approx(0.3)
    lines = fs.markdown(summary).split("## Model complexity (R = 10)")[1].splitlines()
    head = next(line for line in lines if line.startswith("| setting"))
    assert "| cos min-min | NCM (minority) | probe (minority) |" in head
    row = next(line for line in lines if line.startswith("| r10_densenet40 |"))
    assert "| 0.000 | 0.500 (-) | 0.550 (-) |" in row


def test_complexity_pace_by_hand(runs_dir, summary):
    """Equal-epoch pace, in-progress runs included: r10_densenet40 s0 0.4, 0.1, 0.05 (done);
    r10_relu s0..s2 as above, s3 0.0, 0.0 (2 of 3 epochs)."""
    runs, _ = fs.load_runs(runs_dir)
    rows = fs.complexity_pace(runs, epochs=(1, 3), thresholds=(0.5, 0.2))
    assert [r["run"] for r in rows] == ["r10_densenet40_s0", "r10_relu_s0", "r10_relu_s1",
                                        "r10_relu_s2", "r10_relu_s3"]
    dense, s0, s1, s2, s3 = rows
    assert dense["arch"] == "densenet40" and dense["at"] == {1: 0.4, 3: 0.05}
    assert dense["first"] == {0.5: 1, 0.2: 2} and dense["finished"]
    assert s0["at"] == {1: 1.0, 3: 0.2} and s0["first"] == {0.5: 2, 0.2: 3}
    assert s1["first"] == {0.5: 3, 0.2: None} and s2["first"] == {0.5: 1, 0.2: None}
    assert not s3["finished"] and (s3["epoch"], s3["epochs"]) == (2, 3)
    assert s3["at"] == {1: 0.0, 3: None} and s3["first"] == {0.5: 1, 0.2: 1}
    assert (dense["last"], s1["last"], s3["last"]) == (0.05, 0.4, 0.0)
    # the table: default thresholds 0.8, 0.5, 0.2; a run in progress has not yet crossed one
    s3_late = {**s3, "first": {0.8: 1, 0.5: None, 0.2: None}}
    text = fs.markdown({**summary, "complexity_pace": [
        {**s1, "first": {0.8: 1, 0.5: 3, 0.2: None}}, s3_late]})
    lines = text.splitlines()
    assert next(x for x in lines if x.startswith("| r10_relu_s1 |")).endswith(
        "| 3/3 | 0.400 | - | - | - | - | 1 | 3 | never |")
    assert next(x for x in lines if x.startswith("| r10_relu_s3 |")).endswith(
        "| 2/3 | 0.000 | - | - | - | - | 1 | not yet | not yet |")


def test_ufm_optimum_once_per_counts_and_etf_when_balanced(summary):
    assert sorted(summary["_calls"]) == sorted({(tuple(IMBALANCED), TAU), (tuple(BALANCED), TAU)})
    assert len(summary["_calls"]) == 2
    for o in summary["ufm_optima"]:
        assert o["certified"] and 0 <= o["rel_gap"] < 1e-6
    balanced = next(o for o in summary["ufm_optima"] if o["counts"] == BALANCED)
    assert balanced["delta_gm_etf"] < 1e-6
    assert balanced["delta_gm_of"] == pytest.approx(delta_gm(np.eye(3) - 0.5 * (1 - np.eye(3)),
                                                             "of"), abs=1e-6)
    got = _row(summary, "central", "r100_norelu")["delta_gm_ufm"]["values"][0]
    assert got == pytest.approx(delta_gm(np.array(_gram(30)), "etf"), abs=1e-6)


def _p_exact(b: int, c: int) -> float:
    """Two-sided exact binomial p at 1/2: 2 P(X <= min(b, c)), at most 1."""
    n = b + c
    if n == 0:
        return 1.0
    return min(1.0, 2 * sum(math.comb(n, i) for i in range(min(b, c) + 1)) / 2**n)


def _bc(a: np.ndarray, b: np.ndarray) -> tuple[int, int]:
    return sum(x and not y for x, y in zip(a, b)), sum(y and not x for x, y in zip(a, b))


def test_mcnemar_by_hand(summary):
    g = next(r for r in summary["generalization"] if r["R"] == 10)
    assert g["seeds"] == [0, 1]  # seed 2's CE run is unfinished
    minority = Y_TEST >= 2
    pooled = {"all": [0, 0], "minority": [0, 0]}
    for pair in g["pairs"]:
        scl, ce = (_bits(t) for t in HITS[pair["seed"]])
        for name in ("ncm", "probe"):
            e = pair[name]
            assert e["scl_acc"] == pytest.approx(scl.mean())
            assert e["ce_acc_min"] == pytest.approx(ce[8:].mean())
            for part, mask in (("all", slice(None)), ("minority", minority)):
                b, c = _bc(scl[mask], ce[mask])
                t = e["mcnemar"][part]
                assert (t["b"], t["c"]) == (b, c)
                assert t["p"] == pytest.approx(_p_exact(b, c), rel=1e-12)
        for part, mask in (("all", slice(None)), ("minority", minority)):
            b, c = _bc(scl[mask], ce[mask])
            pooled[part][0] += b
            pooled[part][1] += c
    # seed 0 by hand: b = 5 (images 1, 3, 6, 9, 10), c = 1 (image 8); p = 14/64
    t0 = g["pairs"][0]["ncm"]["mcnemar"]
    assert (t0["all"]["b"], t0["all"]["c"], t0["all"]["p"]) == (5, 1, pytest.approx(14 / 64))
    assert (t0["minority"]["b"], t0["minority"]["c"], t0["minority"]["p"]) == (2, 1, 1.0)
    assert g["pairs"][1]["ncm"]["mcnemar"]["minority"] == {"b": 0, "c": 0, "p": 1.0,
                                                          "significant": False}
    for part, (b, c) in pooled.items():
        t = g["pooled"]["ncm"][part]
        assert (t["b"], t["c"]) == (b, c) == ((13, 1) if part == "all" else (2, 1))
        assert t["p"] == pytest.approx(_p_exact(b, c), rel=1e-12)
    assert g["pooled"]["ncm"]["all"]["significant"]
    r100 = next(r for r in summary["generalization"] if r["R"] == 100)
    assert r100["pairs"] == [] and r100["pooled"] is None


def test_markdown_says_not_significant(summary):
    text = fs.markdown(summary)
    assert "not significant (p >= 0.05)" in text
    assert "r10_relu_s3 (epoch 2/3)" in text
    assert "| r10_relu | 3 (+1 running) | 0.500 ± 0.361 | s0: 0.200, s1: 0.400, s2: 0.900 |" in text
    assert "s0: 3, s1: never, s2: never" in text


@pytest.fixture
def fast_optimum(monkeypatch, summary):
    """The CLI with the optima the ``summary`` fixture already solved (no second solve)."""
    known = {tuple(o["counts"]): o for o in summary["ufm_optima"]}
    monkeypatch.setattr(fs, "ufm_optimum", lambda counts, tau: known[tuple(counts)])
    monkeypatch.setattr(fs, "fashionmnist_test_labels", lambda data_dir=None: Y_TEST)


def test_cli_json_strict_and_files(runs_dir, tmp_path, capsys, fast_optimum):
    out = tmp_path / "out"
    assert fashionmnist_cmd.main(["--runs", str(runs_dir), "--out", str(out), "--json"]) == 0
    printed = capsys.readouterr()

    def no_constants(name):
        raise ValueError(f"not strict JSON: {name}")

    data = json.loads(printed.out, parse_constant=no_constants)
    assert json.loads((out / "summary.json").read_text(), parse_constant=no_constants) == data
    assert data["central"][0]["delta_gm_of"]["mean"] == pytest.approx(0.5)
    assert "not significant (p >= 0.05)" in (out / "summary.md").read_text()
    assert "warning: skipped r100_relu_s0" in printed.err
    for group in ("r10", "r100"):
        for stem in ("delta_gm", "nc1", "cosines", "accuracy"):
            assert (out / group / f"{stem}.png").stat().st_size > 0
    for stem in ("temperature", "activations"):  # r10_relu has records: in both groups
        assert (out / "r10_beyond" / f"{stem}.png").stat().st_size > 0
    assert str(out / "r10_beyond" / "activations.png") in data["figures"]
    assert (out / "r10_complexity" / "delta_gm.png").stat().st_size > 0  # DenseNet + ResNet
    assert str(out / "r10_complexity" / "delta_gm.png") in data["figures"]
    assert [r["setting"] for r in data["beyond"]] == list(fs.BEYOND_SETTINGS)


@pytest.mark.parametrize("make", ["missing", "empty"])
def test_cli_bad_runs_is_one_line_exit_2(tmp_path, capsys, make):
    runs = tmp_path / "runs"
    if make == "empty":
        runs.mkdir()
        (runs / "notes.txt").write_text("x")
    with pytest.raises(SystemExit) as exc:
        fashionmnist_cmd.main(["--runs", str(runs), "--out", str(tmp_path / "out")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "error: argument --runs" in err
    assert not (tmp_path / "out" / "summary.md").exists()


def test_cli_unwritable_out_is_one_line_exit_2(runs_dir, tmp_path, capsys):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    with pytest.raises(SystemExit) as exc:
        fashionmnist_cmd.main(["--runs", str(runs_dir), "--out", str(a_file / "out")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "argument --out" in err and "is a file, not a folder" in err


# ---------------------------------------------------------------------------------------------
# issue 38: temperature and activations ("beyond")

LEAKY = {"activation": "leaky_relu", "slope": 0.1, "relu": False}
GELU = {"activation": "gelu", "slope": None, "relu": False}
ETF3 = np.eye(3) - 0.5 * (1 - np.eye(3))
# a stand-in for the certified optimum: a known Gram and a sentinel Delta_GM_OF per tau
FAKE_DELTA_OF = {TAU: 0.34, 0.2: 0.31}


def _fake_optimum(calls):
    def optimum(counts, tau):
        calls.append((tuple(counts), tau))
        return {"counts": list(counts), "tau": tau, "status": "optimal", "loss": 1.0,
                "lower_bound": 1.0, "rel_gap": 0.0, "certified": True,
                "delta_gm_of": FAKE_DELTA_OF[tau], "delta_gm_etf": 0.0, "gram": ETF3.tolist()}
    return optimum


def _delta_by_hand(gram, target) -> float:
    """``|| G/||G||_F - T/||T||_F ||_F`` with numpy only."""
    g, t = np.asarray(gram, dtype=float), np.asarray(target, dtype=float)
    return float(np.sqrt(np.sum((g / np.sqrt(np.sum(g * g)) - t / np.sqrt(np.sum(t * t)))**2)))


@pytest.fixture(scope="module")
def beyond_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("beyond")
    for s, vals in {0: [0.9, 0.78, 0.55], 1: [0.5, 0.3, 0.15]}.items():
        _write(root, f"r10_relu_s{s}", counts=IMBALANCED, epochs=3, values=vals,
               final=_final(s, 40 + s, 0.1 * s, 0.6 + 0.1 * s))
    _write(root, "r10_tau0.05_s0", counts=IMBALANCED, epochs=3, values=[1.0, 0.9, 0.7],
           final=_final(0, 50, 0.25, 0.55), config={"tau": 0.05})
    _write(root, "r10_tau0.05_s1", counts=IMBALANCED, epochs=3, values=[0.0],  # in progress
           final=_final(1, 51, 9.0, 0.0), config={"tau": 0.05})
    leaky = {0: [0.9, 0.5, 0.3], 1: [0.45, 0.2, 0.1], 2: [0.8, 0.6, 0.35]}
    for s, vals in leaky.items():
        _write(root, f"r10_leaky0.1_s{s}", counts=IMBALANCED, epochs=3, values=vals,
               final=_final(s, 60 + s, [0.2, 0.4, 0.3][s], [0.7, 0.8, 0.75][s]), config=LEAKY)
    _write(root, "r10_gelu_s0", counts=IMBALANCED, epochs=3, values=[0.8, 0.7],  # in progress
           final=_final(0, 70, 0.5, 0.5), config={**GELU, "tau": 0.2})
    return root


@pytest.fixture(scope="module")
def beyond_summary(beyond_dir):
    calls = []
    runs, warnings = fs.load_runs(beyond_dir)
    out = fs.summarize(runs, y_test=Y_TEST, optimum=_fake_optimum(calls), warnings=warnings)
    out["_calls"], out["_runs"] = calls, runs
    return out


def test_activation_of_and_prediction():
    assert fs.activation_of({"relu": True}) == ("relu", None)  # issue 35's configs
    assert fs.activation_of({"relu": False}) == ("none", None)
    assert fs.activation_of(LEAKY) == ("leaky_relu", 0.1)
    assert fs.activation_of({"activation": "relu", "slope": None, "relu": True}) == ("relu", None)
    assert fs.prediction("relu") == "OF"
    for name in ("none", "leaky_relu", "gelu", "elu"):
        assert fs.prediction(name) == "no-ReLU optimum"
    assert fs.prediction("softplus") is None


def test_beyond_rows_in_order_with_predictions(beyond_summary):
    rows = beyond_summary["beyond"]
    assert [r["setting"] for r in rows] == ["r10_relu", "r10_tau0.05", "r10_tau0.5", "r10_norelu",
                                            "r10_leaky0.01", "r10_leaky0.1", "r10_gelu"]
    got = {r["setting"]: (r["activation"], r["slope"], r["tau"], r["prediction"],
                          r["predicted_delta_gm_of"]) for r in rows}
    assert got == {
        "r10_relu": ("relu", None, TAU, "OF", 0.0),  # from the runs' config (tau 0.5)
        "r10_tau0.05": ("relu", None, 0.05, "OF", 0.0),
        "r10_tau0.5": ("relu", None, 0.5, "OF", 0.0),  # no run: the queue's settings
        "r10_norelu": ("none", None, 0.1, "no-ReLU optimum", None),  # no run: no counts to solve
        "r10_leaky0.01": ("leaky_relu", 0.01, 0.1, "no-ReLU optimum", None),
        "r10_leaky0.1": ("leaky_relu", 0.1, TAU, "no-ReLU optimum", 0.34),
        "r10_gelu": ("gelu", None, 0.2, "no-ReLU optimum", 0.31),  # from its running run
    }
    # solved once per (counts, tau) of a non-ReLU run, never for the ReLU ones
    assert sorted(beyond_summary["_calls"]) == [(tuple(IMBALANCED), 0.2), (tuple(IMBALANCED), TAU)]


def test_beyond_stats_by_hand(beyond_summary):
    row = _row(beyond_summary, "beyond", "r10_leaky0.1")
    assert row["seeds"] == [0, 1, 2] and row["in_progress"] == []
    st = row["delta_gm_of"]  # finals 0.3, 0.1, 0.35
    assert st["values"] == [0.3, 0.1, 0.35] and st["mean"] == pytest.approx(0.25)
    assert st["sd"] == pytest.approx(math.sqrt((0.05**2 + 0.15**2 + 0.1**2) / 2))
    # to the optimum's Gram (the fake's ETF), not to I_k
    want = [_delta_by_hand(_gram(60 + s), ETF3) for s in range(3)]
    assert row["delta_gm_predicted"]["values"] == pytest.approx(want)
    assert row["delta_gm_predicted"]["mean"] == pytest.approx(np.mean(want))
    # epochs to <= 0.8 and <= 0.75 (BEYOND_THRESHOLDS): 0.9, 0.5, 0.3 -> 2, 2;
    # 0.45, 0.2, 0.1 -> 1, 1; 0.8, 0.6, 0.35 -> 1 (0.8 <= 0.8), 2
    assert fs.BEYOND_THRESHOLDS == (0.8, 0.75)
    assert row["epochs_to_0.8"] == [2, 1, 1] and row["epochs_to_0.75"] == [2, 1, 2]
    assert "epochs_to_0.5" not in row
    assert row["nc1"]["values"] == pytest.approx([1.2, 1.4, 1.3])
    assert row["nc1"]["mean"] == pytest.approx(1.3) and row["nc1"]["sd"] == pytest.approx(0.1)
    assert row["cos_min_min"]["mean"] == pytest.approx(0.3)
    assert row["cos_maj_min"]["values"] == [-0.2, -0.4, -0.3]
    assert row["ncm_test_acc"]["mean"] == pytest.approx(0.75)
    assert row["ncm_test_acc"]["sd"] == pytest.approx(0.05)
    relu = _row(beyond_summary, "beyond", "r10_relu")  # the OF: Delta_GM to I_k
    want = [_delta_by_hand(_gram(40 + s), np.eye(3)) for s in range(2)]
    assert relu["delta_gm_predicted"]["values"] == pytest.approx(want)
    assert relu["delta_gm_of"]["values"] == [0.55, 0.15]
    # 0.9, 0.78, 0.55 -> 2, 3; 0.5, 0.3, 0.15 -> 1, 1
    assert relu["epochs_to_0.8"] == [2, 1] and relu["epochs_to_0.75"] == [3, 1]


def _welch_by_hand(a, b):
    """Welch's t, Welch-Satterthwaite df and the two-sided p from the t distribution's CDF
    written as a regularized incomplete beta: P(|T| >= t) = I_{df/(df+t^2)}(df/2, 1/2)."""
    from scipy.special import betainc

    va, vb = np.var(a, ddof=1) / len(a), np.var(b, ddof=1) / len(b)
    t = (np.mean(a) - np.mean(b)) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    return t, df, float(betainc(df / 2, 0.5, df / (df + t * t)))


def test_welch_by_hand():
    a, b = [0.3, 0.1, 0.35], [0.55, 0.15, 0.5, 0.6]
    t, df, p = _welch_by_hand(a, b)
    got = fs.welch(a, b)
    assert got["diff"] == pytest.approx(0.25 - 0.45)
    assert got["t"] == pytest.approx(t) and got["df"] == pytest.approx(df)
    assert got["p"] == pytest.approx(p) and got["significant"] == (p < fs.ALPHA)
    assert fs.welch([0.3], b) is None and fs.welch(a, [0.5]) is None  # fewer than 2 seeds
    assert fs.welch([0.2, 0.2], [0.3, 0.3]) is None  # no spread at all: no test
    far = fs.welch([0.10, 0.11, 0.12], [0.90, 0.91, 0.92])
    assert far["significant"] and far["p"] < 1e-4


def test_beyond_vs_relu_by_hand(beyond_summary):
    leaky = _row(beyond_summary, "beyond", "r10_leaky0.1")  # finals 0.3, 0.1, 0.35
    t, df, p = _welch_by_hand([0.3, 0.1, 0.35], [0.55, 0.15])  # against r10_relu's finals
    assert leaky["vs_relu"]["t"] == pytest.approx(t) and leaky["vs_relu"]["p"] == pytest.approx(p)
    assert leaky["vs_relu"]["diff"] == pytest.approx(0.25 - 0.35)
    assert _row(beyond_summary, "beyond", "r10_relu")["vs_relu"] is None  # the reference
    assert _row(beyond_summary, "beyond", "r10_tau0.05")["vs_relu"] is None  # one seed
    text = fs.markdown(beyond_summary)
    assert f"| {-0.1:+.3f} (p={p:.2g}) |" in text


def test_beyond_in_progress_enter_no_number(beyond_summary):
    tau = _row(beyond_summary, "beyond", "r10_tau0.05")
    assert tau["seeds"] == [0] and tau["delta_gm_of"]["values"] == [0.7]
    assert tau["delta_gm_of"]["sd"] is None and tau["cos_min_min"]["values"] == [0.25]
    assert tau["epochs_to_0.8"] == [3] and tau["epochs_to_0.75"] == [3]  # 1.0, 0.9, 0.7
    assert tau["in_progress"] == [{"run": "r10_tau0.05_s1", "epoch": 1, "epochs": 3}]
    gelu = _row(beyond_summary, "beyond", "r10_gelu")
    assert gelu["seeds"] == [] and gelu["delta_gm_of"]["mean"] is None
    assert gelu["ncm_test_acc"]["n"] == 0 and gelu["epochs_to_0.8"] == []
    assert [p["run"] for p in gelu["in_progress"]] == ["r10_gelu_s0"]


def test_beyond_markdown(beyond_summary, summary):
    text = fs.markdown(beyond_summary)
    assert "## Beyond the paper (issue 38)" in text
    assert ("| r10_leaky0.1 | leaky_relu (slope 0.1) | 0.5 | 3 | no-ReLU optimum | 0.3400 | "
            "0.250 ± 0.132 | s0: 0.300, s1: 0.100, s2: 0.350 |") in text
    assert ("| epochs to ΔGM_OF ≤ 0.8 | epochs to ΔGM_OF ≤ 0.75 | NC1 | NCM |") in text
    assert ("| s0: 2, s1: 1, s2: 1 | s0: 2, s1: 1, s2: 2 | 1.300 ± 0.100 | 0.750 ± 0.050 |"
            in text)
    assert "| r10_tau0.05 | relu | 0.05 | 1 (+1 running) | OF | 0.0000 | 0.700 | s0: 0.700 |" in text
    assert "| r10_gelu | gelu | 0.2 | 0 (+1 running) | no-ReLU optimum | 0.3100 | - | - |" in text
    assert "In progress: r10_tau0.05_s1 (epoch 1/3), r10_gelu_s0 (epoch 2/3)" in text
    assert "no issue-38 run has finished yet" not in text
    assert "## Beyond the paper (issue 38)" in fs.markdown(summary)  # issue 35's runs alone


def test_beyond_nothing_finished(tmp_path):
    _write(tmp_path, "r10_leaky0.01_s0", counts=IMBALANCED, epochs=3, values=[],
           config={**LEAKY, "slope": 0.01})  # no metrics.jsonl yet: epoch 0
    _write(tmp_path, "r100_relu_s0", counts=BALANCED, epochs=2, values=[0.5, 0.4])
    runs, _ = fs.load_runs(tmp_path)
    calls = []
    out = fs.summarize(runs, optimum=_fake_optimum(calls))
    assert all(r["seeds"] == [] for r in out["beyond"])
    text = fs.markdown(out)
    assert "(no issue-38 run has finished yet)" in text
    assert "In progress: r10_leaky0.01_s0 (epoch 0/3)" in text
    assert fs.beyond_curves(runs) == {}  # no issue-38 run has records: no figure


def test_complexity_curves(runs_dir):
    runs, _ = fs.load_runs(runs_dir)
    curves = fs.beyond_curves(runs, fs.COMPLEXITY_FIGURES)
    assert list(curves) == ["delta_gm"]
    got = [(c["setting"], c["seed"], c["finished"], c["values"]) for c in curves["delta_gm"]]
    assert got == [("r10_densenet40", 0, True, [0.4, 0.1, 0.05]),
                   ("r10_relu", 0, True, [1.0, 0.45, 0.2]), ("r10_relu", 1, True, [0.6, 0.55, 0.4]),
                   ("r10_relu", 2, True, [0.3, 0.7, 0.9]), ("r10_relu", 3, False, [0.0, 0.0])]
    assert fs.beyond_curves([r for r in runs if r.setting == "r100_norelu"],
                            fs.COMPLEXITY_FIGURES) == {}


def test_beyond_curves_and_mean(beyond_summary):
    from figures.fashionmnist_beyond_plots import mean_curve

    curves = fs.beyond_curves(beyond_summary["_runs"])
    assert [(c["setting"], c["seed"], c["finished"]) for c in curves["temperature"]] == [
        ("r10_tau0.05", 0, True), ("r10_tau0.05", 1, False), ("r10_relu", 0, True),
        ("r10_relu", 1, True)]
    assert [(c["setting"], c["seed"]) for c in curves["activations"]] == [
        ("r10_relu", 0), ("r10_relu", 1), ("r10_leaky0.1", 0), ("r10_leaky0.1", 1),
        ("r10_leaky0.1", 2), ("r10_gelu", 0)]
    gelu = curves["activations"][-1]
    assert gelu["epochs"] == [1, 2] and gelu["values"] == [0.8, 0.7] and not gelu["finished"]
    leaky = [c for c in curves["activations"] if c["setting"] == "r10_leaky0.1"]
    x, y = mean_curve(leaky)
    assert x == [1, 2, 3] and y == pytest.approx([(0.9 + 0.45 + 0.8) / 3, 1.3 / 3, 0.25])
    # the running seed (0.0 at epoch 1) is left out of the mean
    assert mean_curve(curves["temperature"][:2]) == ([1, 2, 3], pytest.approx([1.0, 0.9, 0.7]))
    assert mean_curve([gelu]) == ([], [])


def test_beyond_figures_have_a_curve_per_run(beyond_summary):
    import matplotlib.pyplot as plt

    curves = fs.beyond_curves(beyond_summary["_runs"])
    figs = fashionmnist_cmd.beyond_figures(curves, beyond_summary["beyond"])
    try:
        assert set(figs) == {"temperature", "activations"}
        ax = figs["activations"].axes[0]
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        assert "r10_leaky0.1: leaky_relu 0.1, τ = 0.5 (3 finished)" in labels
        assert "r10_gelu: gelu, τ = 0.2 (0 finished, 1 running)" in labels
        # one line per distinct prediction (gelu's tau differs: its own optimum)
        assert sorted(lab for lab in labels if lab.startswith("predicted")) == [
            "predicted (OF): 0.000", "predicted (no-ReLU optimum): 0.310",
            "predicted (no-ReLU optimum): 0.340"]
        temperature = figs["temperature"].axes[0].get_legend().get_texts()
        assert [t.get_text() for t in temperature if "predicted" in t.get_text()] == [
            "predicted (OF): 0.000"]
    finally:
        for fig in figs.values():
            plt.close(fig)


# ---------------------------------------------------------------------------------------------
# issue 35: training length (the paper's 350 epochs against 100)


@pytest.fixture(scope="module")
def length_dir(tmp_path_factory):
    """r10_relu (2 seeds, 3 epochs) lengthened to 6 epochs (seed 0, finished); r10_norelu
    (1 seed, 3 epochs) lengthened (seed 0, 4 of 6 epochs); r10_binding without a long run."""
    root = tmp_path_factory.mktemp("length")
    for s, vals in {0: [0.9, 0.6, 0.55], 1: [0.8, 0.7, 0.45]}.items():
        _write(root, f"r10_relu_s{s}", counts=IMBALANCED, epochs=3, values=vals,
               final=_final(s, 80 + s, 0.1, 0.6))
    _write(root, "r10_relu_e350_s0", counts=IMBALANCED, epochs=6,
           values=[0.95, 0.7, 0.5, 0.3, 0.19, 0.15], final=_final(0, 90, 0.05, 0.8))
    _write(root, "r10_norelu_s0", counts=IMBALANCED, epochs=3, values=[1.0, 0.9, 0.85],
           final=_final(0, 91, 0.3, 0.5), config={"relu": False})
    _write(root, "r10_norelu_e350_s0", counts=IMBALANCED, epochs=6, values=[1.0, 0.8, 0.7, 0.6],
           final=_final(0, 92, 0.3, 0.5), config={"relu": False})
    _write(root, "r10_binding_s0", counts=IMBALANCED, epochs=3, values=[0.7, 0.5, 0.4],
           final=_final(0, 93, 0.0, 0.9))
    return root


@pytest.fixture(scope="module")
def length_runs(length_dir):
    runs, warnings = fs.load_runs(length_dir)
    assert not warnings
    return runs


def test_length_rows_by_hand(length_runs):
    calls = []
    summary = fs.summarize(length_runs, y_test=Y_TEST, optimum=_fake_optimum(calls))
    assert calls == [(tuple(IMBALANCED), TAU)]  # one (counts, tau): solved once
    rows = {r["setting"]: r for r in summary["length"]}
    assert [r["setting"] for r in summary["length"]] == [
        "r10_relu_e350", "r10_relu", "r10_norelu_e350", "r10_norelu", "r10_binding_e350",
        "r10_binding"]
    long_relu, relu = rows["r10_relu_e350"], rows["r10_relu"]
    assert (long_relu["epochs"], long_relu["seeds"]) == (6, [0])
    assert long_relu["delta_gm_of"]["mean"] == pytest.approx(0.15)
    assert long_relu["delta_gm_of"]["sd"] is None  # one seed: the mean alone
    assert long_relu["epochs_to_0.5"] == [3] and long_relu["epochs_to_0.2"] == [5]
    assert long_relu["delta_gm_ufm"]["mean"] == pytest.approx(_delta_by_hand(_gram(90), ETF3))
    assert long_relu["ncm_test_acc"]["mean"] == pytest.approx(0.8)
    assert (relu["epochs"], relu["seeds"]) == (3, [0, 1])
    assert relu["delta_gm_of"]["mean"] == pytest.approx(0.5)
    assert relu["delta_gm_of"]["sd"] == pytest.approx(math.sqrt(2 * 0.05**2))
    assert relu["epochs_to_0.5"] == [None, 3]
    # in progress: listed, no number; a setting without any run has no epochs
    norelu = rows["r10_norelu_e350"]
    assert norelu["seeds"] == [] and norelu["delta_gm_of"]["mean"] is None
    assert norelu["in_progress"] == [{"run": "r10_norelu_e350_s0", "epoch": 4, "epochs": 6}]
    assert norelu["epochs"] == 6
    assert rows["r10_binding_e350"]["epochs"] is None
    # the prediction: the OF under ReLU, the no-ReLU optimum (in progress too), none without runs
    assert (long_relu["prediction"], long_relu["predicted_delta_gm_of"]) == ("OF", 0.0)
    assert norelu["prediction"] == "no-ReLU optimum"
    assert norelu["predicted_delta_gm_of"] == pytest.approx(FAKE_DELTA_OF[TAU])
    assert rows["r10_binding_e350"]["prediction"] is None
    assert rows["r10_binding_e350"]["predicted_delta_gm_of"] is None
    assert rows["r10_binding_e350"]["in_progress"] == []


def test_length_pace_and_figure_groups(length_runs):
    groups = fs.length_figures(length_runs)
    # binding has no long run: left out of the figure and the pace table
    assert groups == {"delta_gm": ("r10_relu_e350", "r10_relu", "r10_norelu_e350", "r10_norelu")}
    assert fs.length_figures([r for r in length_runs if "_e350" not in r.name]) == {}
    rows = fs.pace(length_runs, groups["delta_gm"], epochs=(3, 6), thresholds=(0.5, 0.2))
    assert [r["run"] for r in rows] == ["r10_relu_e350_s0", "r10_relu_s0", "r10_relu_s1",
                                        "r10_norelu_e350_s0", "r10_norelu_s0"]
    long_relu, s0, s1, long_norelu, norelu = rows
    assert long_relu["at"] == {3: 0.5, 6: 0.15} and long_relu["first"] == {0.5: 3, 0.2: 5}
    assert s0["at"] == {3: 0.55, 6: None} and s0["first"] == {0.5: None, 0.2: None}
    assert s1["first"] == {0.5: 3, 0.2: None}
    assert not long_norelu["finished"] and long_norelu["at"] == {3: 0.7, 6: None}
    assert (long_norelu["epoch"], long_norelu["last"]) == (4, 0.6)
    assert norelu["first"] == {0.5: None, 0.2: None} and norelu["finished"]


def test_length_markdown_and_figure(length_runs):
    import matplotlib.pyplot as plt

    summary = fs.summarize(length_runs, y_test=Y_TEST, optimum=_fake_optimum([]))
    lines = fs.markdown(summary).splitlines()
    start = lines.index("## Training length (R = 10): the paper's 350 epochs against 100")
    section = lines[start:]
    row = next(x for x in section if x.startswith("| r10_relu_e350 |"))
    assert row.startswith("| r10_relu_e350 | 6 | 1 | 0.150 | s0: 0.150 |")
    assert row.endswith("| s0: 3 | s0: 5 |")
    assert next(x for x in section if x.startswith("| r10_norelu_e350 |")).startswith(
        "| r10_norelu_e350 | 6 | 0 (+1 running) | - |")
    assert next(x for x in section if x.startswith("| r10_binding_e350 |")).startswith(
        "| r10_binding_e350 | - | 0 | - |")
    # the pace table at LENGTH_PACE_EPOCHS: none reached by 6-epoch runs; first <= 0.8 / 0.5 / 0.2
    assert next(x for x in section if x.startswith("| r10_relu_e350_s0 |")) == (
        "| r10_relu_e350_s0 | resnet-small | 6/6 | 0.150 | - | - | - | - | 2 | 3 | 5 |")
    assert next(x for x in section if x.startswith("| r10_norelu_e350_s0 |")).endswith(
        "| 4/6 | 0.600 | - | - | - | - | 2 | not yet | not yet |")
    no_long = fs.summarize([r for r in length_runs if "_e350" not in r.name], y_test=Y_TEST,
                           optimum=_fake_optimum([]))
    assert "(no 350-epoch run yet)" in fs.markdown(no_long)

    curves = fs.beyond_curves(length_runs, fs.length_figures(length_runs))
    fig = fashionmnist_cmd.length_figure(curves["delta_gm"], summary["length"])
    try:
        texts = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
        assert texts == ["ReLU, 350 epochs (1 finished)", "ReLU, 100 epochs (2 finished)",
                         "no ReLU, 350 epochs (0 finished, 1 running)",
                         "no ReLU, 100 epochs (1 finished)", "predicted with ReLU (OF): 0.000",
                         "predicted without ReLU (no-ReLU UFM optimum): 0.340"]
    finally:
        plt.close(fig)
    only_relu = [c for c in curves["delta_gm"] if "norelu" not in c["setting"]]
    fig = fashionmnist_cmd.length_figure(only_relu, summary["length"])
    try:
        texts = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
        assert [t for t in texts if t.startswith("predicted")] == [
            "predicted with ReLU (OF): 0.000"]
    finally:
        plt.close(fig)


def test_cli_writes_the_length_figure(length_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(fs, "ufm_optimum", _fake_optimum([]))
    out = tmp_path / "out"
    assert fashionmnist_cmd.main(["--runs", str(length_dir), "--out", str(out), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (out / "r10_length" / "delta_gm.png").stat().st_size > 0
    assert str(out / "r10_length" / "delta_gm.png") in data["figures"]
    assert [r["run"] for r in data["length_pace"]][0] == "r10_relu_e350_s0"
    assert data["length_pace_epochs"] == list(fs.LENGTH_PACE_EPOCHS)


def test_readme_tables_by_hand(summary, runs_dir, capsys, fast_optimum):
    """The README's format: r10_relu's 3 finished seeds (0.2, 0.4, 0.9; NCM 0.7, 0.8, 0.9,
    probe + 0.05); the header names the smallest class count; a setting without a finished
    seed shows dashes."""
    lines = fs.readme_tables(summary["central"]).splitlines()
    assert lines[0] == ("| R = 10 (2 per minority class) | seeds | Delta_GM_OF | Delta_GM to "
                        "no-ReLU UFM optimum | cos min-min | NCM test acc. (minority) | "
                        "linear probe (minority) |")
    assert lines[1] == "| --- | --- | --- | --- | --- | --- | --- |"
    sd = math.sqrt(((0.2 - 0.5) ** 2 + (0.4 - 0.5) ** 2 + (0.9 - 0.5) ** 2) / 2)
    relu = lines[2].split(" | ")
    assert relu[:3] == ["| ReLU", "3", f"0.500 ± {sd:.3f}"]
    assert relu[4] == "0.300 ± 0.265"  # cos min-min 0.1, 0.2, 0.6
    assert relu[5].startswith("0.800 ± 0.100 (") and relu[6].startswith("0.850 ± 0.100 (")
    assert [x.split(" | ")[0] for x in lines[2:6]] == [
        "| ReLU", "| no ReLU", "| ReLU, `binding` batches", "| CE (ETF geometry predicted)"]
    assert lines[3] == "| no ReLU | 0 | - | - | - | - (-) | - (-) |"
    r100 = lines[lines.index("") + 1]
    assert r100.startswith("| R = 100 (3 per minority class) |")  # r100_norelu: BALANCED
    # the command prints exactly these tables
    assert fashionmnist_cmd.main(["--runs", str(runs_dir), "--out", str(runs_dir.parent / "o"),
                                  "--readme"]) == 0
    assert capsys.readouterr().out == fs.readme_tables(summary["central"])
