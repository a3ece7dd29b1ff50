"""``deep.reporting``'s pure functions: seed groups and the over-seeds summary (hand-computed)."""

from __future__ import annotations

from deep.reporting import RunMetrics, figures, seed_groups, seed_summary


def _run(name: str, relu: bool, seed: int, of: float, acc: float) -> RunMetrics:
    cfg = {"relu": relu, "seed": seed, "arch": "resnet-tiny", "data_dir": f"/x/{name}"}
    recs = [{"epoch": 1, "delta_gm_of": 1.0, "ncm_test_acc": 0.1},
            {"epoch": 2, "delta_gm_of": of, "ncm_test_acc": acc}]
    return RunMetrics(name, cfg, recs)


RUNS = [_run("r0", True, 0, 0.2, 0.9), _run("n0", False, 0, 0.6, 0.8),
        _run("r1", True, 1, 0.4, 0.7), _run("r2", True, 2, 0.9, 0.8)]


def test_seed_groups_ignore_seed_and_bookkeeping():
    groups = seed_groups(RUNS)
    assert [(g.label, g.members) for g in groups] == [("relu=True", [0, 2, 3]), ("relu=False", [1])]


def test_seed_summary_by_hand():
    rows = seed_summary(RUNS).splitlines()
    assert rows[0].split()[:3] == ["group", "n", "dGM_OF"]
    # relu=True: 0.2, 0.4, 0.9 -> mean 0.5, sample sd sqrt(((-.3)^2 + (-.1)^2 + .4^2) / 2) = 0.3606
    assert "0.500 +- 0.361 [0.200, 0.900]" in rows[1]
    # accuracy 0.9, 0.7, 0.8 -> mean 0.8, sd 0.1
    assert "0.800 +- 0.100 [0.700, 0.900]" in rows[1]
    # a single seed has no sd; a missing column is "-"
    assert rows[2].split()[:4] == ["relu=False", "1", "0.600", "[0.600,"]
    assert rows[2].split()[-5] == "-"


def test_figures_colour_seeds_alike_and_label_groups_once():
    fig = figures(RUNS)["delta_gm"]
    lines = fig.axes[0].get_lines()
    assert len(lines) == 4
    assert lines[0].get_color() == lines[2].get_color() == lines[3].get_color() != lines[1].get_color()
    labels = [ln.get_label() for ln in lines if not ln.get_label().startswith("_")]
    assert labels == ["relu=True (3 seeds)", "relu=False"]
