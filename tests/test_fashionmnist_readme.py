"""The README's FashionMNIST tables hold what the committed runs give.

Recomputes the central tables from ``results/fashionmnist/runs`` (the committed
``config.json`` + ``metrics.jsonl`` files: finished runs only, the certified no-ReLU UFM optimum
solved afresh) and checks that every line of them is in README.md, so a run committed without
updating the README, or a README number edited by hand, fails here.
"""

from __future__ import annotations

from pathlib import Path

from figures import fashionmnist_summary as fs

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "results" / "fashionmnist" / "runs"


def test_readme_central_tables_match_the_committed_runs():
    runs, warnings = fs.load_runs(RUNS)
    assert not warnings
    assert any(r.finished and r.setting in fs.CENTRAL_SETTINGS for r in runs), \
        "no finished central run"
    summary = fs.summarize(runs)
    assert summary["ufm_optima"]
    for opt in summary["ufm_optima"]:  # certified: the Delta_GM to it means something
        assert opt["rel_gap"] < 1e-4
    readme = (ROOT / "README.md").read_text()
    missing = [line for line in fs.readme_tables(summary["central"]).splitlines()
               if line and line not in readme]
    assert not missing, "README lines not matching the committed runs:\n" + "\n".join(missing)
