"""``python -m deep.report RUN_DIR [RUN_DIR ...] [--out DIR]``: plots and a final-epoch table.

A RUN_DIR with ``seed_*`` folders (a ``--seeds S`` run) counts as one run per seed; runs that
differ only in the seed share a colour, and the table is followed by their mean, sd and range.
Writes ``delta_gm.png``, ``nc1.png``, ``cosines.png`` and ``accuracy.png`` to ``--out``
(default: the first RUN_DIR) and prints the table (``--json``: the final records as JSON
instead).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Sequence

from ufm.cli.args import Parser, unwritable_reason, write_failed

__all__ = ["main", "build_parser", "load_runs"]


def build_parser() -> Parser:
    p = Parser(prog="python -m deep.report",
               description="Plot Delta_GM (OF and ETF), NC1, class-mean cosines and nearest-class-"
               "mean accuracy against the epoch for training runs of python -m deep.train, and "
               "print the final epoch of each.")
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run folders (metrics.jsonl, config.json)")
    p.add_argument("--out", metavar="DIR", help="folder for the PNGs (default: the first RUN_DIR)")
    p.add_argument("--json", action="store_true", help="print the final records as JSON")
    return p


def load_runs(parser: Parser, paths: Sequence[str]):
    """``RunMetrics`` for every metrics folder under the given paths (usage error if none)."""
    from deep.reporting import RunMetrics
    from deep.rundir import read_config, read_metrics, run_dirs

    runs = []
    for raw in paths:
        path = Path(raw)
        if not path.is_dir():
            parser.error(f"argument RUN_DIR: {path} is not a folder")
        dirs = run_dirs(path)
        if not dirs:
            parser.error(f"argument RUN_DIR: {path} holds no metrics.jsonl (nor seed_*/metrics.jsonl)")
        for d in dirs:
            try:
                cfg = read_config(d).get("config", {})
            except (OSError, ValueError):
                cfg = {}
            name = str(path) if d == path else f"{path}/{d.name}"
            runs.append(RunMetrics(name, cfg, read_metrics(d)))
    return runs


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    runs = load_runs(parser, args.runs)
    from deep.reporting import figures, final_table, seed_groups, seed_summary
    from ufm.cli.io import save_figure_atomic

    out = Path(args.out or args.runs[0])
    reason = unwritable_reason(out, folder=True)
    if reason is not None:
        parser.error(f"argument --out: cannot write {str(out)!r}: {reason}")
    written = []
    for stem, fig in figures(runs).items():
        path = out / f"{stem}.png"
        try:
            save_figure_atomic(fig, path, dpi=120)
        except OSError as err:
            write_failed(parser, "--out", path, err)
        written.append(str(path))
    groups = seed_groups(runs)
    if args.json:
        final = [{"run": r.name, **{k: v for k, v in (r.records[-1] if r.records else {}).items()
                                    if k != "class_mean_gram"}} for r in runs]
        named = [{"label": g.label, "runs": [runs[i].name for i in g.members]} for g in groups]
        print(json.dumps({"final": final, "seed_groups": named, "figures": written}, indent=2))
    else:
        print(final_table(runs))
        if any(len(g.members) > 1 for g in groups):
            print("\nfinal epoch over seeds: mean +- sd [min, max]")
            print(seed_summary(runs))
        print("figures: " + ", ".join(written), file=sys.stderr)
    return 0
