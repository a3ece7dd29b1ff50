"""``python -m deep.report RUN_DIR [RUN_DIR ...] [--out DIR]``: plots and a final-epoch table.

A RUN_DIR with ``seed_*`` folders (a ``--seeds S`` run) counts as one run per seed; runs that
differ only in the seed share a colour, and the table is followed by their mean, sd and range.
Writes ``delta_gm.png``, ``nc1.png``, ``cosines.png`` and ``accuracy.png`` to ``--out``
(default: the first RUN_DIR) and prints the table (``--json``: the final records as strict
JSON instead, NaN and inf as null).

Hostile input (one line each on stderr, never a traceback):

- a RUN_DIR that is no folder, holds no run, or whose ``config.json`` is missing, unreadable or
  not an object with a ``"config"`` object: an error naming the path, exit status 2;
- ``metrics.jsonl`` lines that are not valid UTF-8 JSON, or fail ``deep.reporting.clean_records``
  (not a JSON object, no integer ``epoch >= 1``, a wrong-typed metric): skipped, with ONE warning
  per file giving how many; an epoch given twice: the last line counts, and the same warning
  says how many were replaced; a ``metrics.jsonl`` with no usable line at all: an error naming
  it, exit status 2 (a run is never reported empty);
- the same run folder given twice (``runs/a runs/a/``, a symbolic link to it, a seed folder
  given itself and through its parent): counted once, with a warning naming the repeat;
- seeds of one group that end at different epochs: a warning (the summary mixes them).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Sequence

from ufm.cli.args import Parser, output_dir, unwritable_reason, write_failed

__all__ = ["main", "build_parser", "load_runs"]

FIGURES = ("delta_gm", "nc1", "cosines", "accuracy")


def build_parser() -> Parser:
    p = Parser(prog="python -m deep.report",
               description="Plot Delta_GM (OF and ETF), NC1, class-mean cosines and nearest-class-"
               "mean accuracy against the epoch for training runs of python -m deep.train, and "
               "print the final epoch of each.")
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run folders (metrics.jsonl, config.json)")
    p.add_argument("--out", metavar="DIR", type=output_dir,
                   help="folder for the PNGs (default: the first RUN_DIR)")
    p.add_argument("--json", action="store_true", help="print the final records as JSON")
    return p


def warn(parser: Parser, message: str) -> None:
    """One warning line on stderr."""
    print(f"{parser.prog}: warning: {message}", file=sys.stderr)


def _read_config(parser: Parser, d: Path) -> dict[str, Any]:
    from deep.reporting import run_config
    from deep.rundir import CONFIG, read_config

    path = d / CONFIG
    if not path.is_file():
        parser.error(f"argument RUN_DIR: {path}: missing or not a file (every run of "
                     f"python -m deep.train writes one)")
    try:
        raw = read_config(d)
    except OSError as err:
        parser.error(f"argument RUN_DIR: {path}: cannot read ({err.strerror or err})")
    except (ValueError, RecursionError):  # not UTF-8 (UnicodeDecodeError), not JSON
        parser.error(f"argument RUN_DIR: {path}: is not valid UTF-8 JSON")
    try:
        return run_config(raw)
    except ValueError as err:
        parser.error(f"argument RUN_DIR: {path}: {err}")


def _read_records(parser: Parser, d: Path) -> list[dict[str, Any]]:
    from deep.reporting import clean_records
    from deep.rundir import METRICS, read_metrics_lines

    path = d / METRICS
    try:
        values, unreadable = read_metrics_lines(path)
    except OSError as err:
        parser.error(f"argument RUN_DIR: {path}: cannot read ({err.strerror or err})")
    records, invalid, repeated = clean_records(values)
    skipped = unreadable + invalid
    total = len(values) + unreadable
    if not records:
        parser.error(f"argument RUN_DIR: {path}: no usable epoch record "
                     f"({total} line{'s' * (total != 1)}, none a JSON object with an integer "
                     f"epoch >= 1 and numeric metrics)")
    notes = []
    if skipped:
        notes.append(f"skipped {skipped} of {total} lines (not a JSON object with an integer "
                     f"epoch >= 1 and finite numeric metrics or null)")
    if repeated:
        notes.append(f"{repeated} repeated epoch{'s' * (repeated != 1)} (the last line of each counts)")
    if notes:
        warn(parser, f"{path}: " + "; ".join(notes))
    return records


def load_runs(parser: Parser, paths: Sequence[str]):
    """``RunMetrics`` for every metrics folder under the given paths, each real folder once
    (usage error if a path holds none, or a run's files are unusable; see the module doc)."""
    from deep.reporting import RunMetrics
    from deep.rundir import run_dirs

    runs = []
    seen: dict[Path, str] = {}  # real path -> the name it was first given as
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            parser.error(f"argument RUN_DIR: {raw}: no such folder")
        if not path.is_dir():
            parser.error(f"argument RUN_DIR: {raw} is not a folder")
        try:
            dirs = run_dirs(path)
        except OSError as err:  # a folder we may not list
            parser.error(f"argument RUN_DIR: {raw}: cannot read ({err.strerror or err})")
        if not dirs:
            parser.error(f"argument RUN_DIR: {raw} holds no metrics.jsonl (nor seed_*/metrics.jsonl)")
        for d in dirs:
            name = str(path) if d == path else f"{path}/{d.name}"
            real = d.resolve()
            if real in seen:
                given = repr(raw) if d == path else f"{raw!r} (its {d.name})"
                warn(parser, f"argument RUN_DIR: {given} is the run {seen[real]} again (the same "
                     f"folder); counted once")
                continue
            seen[real] = name
            runs.append(RunMetrics(name, _read_config(parser, d), _read_records(parser, d)))
    return runs


def _warn_mixed_epochs(parser: Parser, runs, groups) -> None:
    for g in groups:
        ends = sorted({runs[i].records[-1]["epoch"] for i in g.members})
        if len(ends) > 1:
            warn(parser, f"the seeds of {g.label} end at different epochs ("
                 + ", ".join(map(str, ends)) + "); their summary mixes them")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    runs = load_runs(parser, args.runs)
    from deep.reporting import figures, final_table, seed_groups, seed_summary
    from ufm.cli.io import save_figure_atomic
    from ufm.core.jsonable import to_json

    out = Path(args.out or args.runs[0])
    targets = [out / f"{stem}.png" for stem in FIGURES]
    for where, folder in [(out, True)] + [(t, False) for t in targets]:
        reason = unwritable_reason(where, folder=folder)
        if reason is not None:
            parser.error(f"argument --out: cannot write {str(where)!r}: {reason}")
    groups = seed_groups(runs)
    _warn_mixed_epochs(parser, runs, [g for g in groups if len(g.members) > 1])
    figs = figures(runs)
    written = []
    try:
        for stem, path in zip(FIGURES, targets):
            try:
                save_figure_atomic(figs[stem], path, dpi=120)
            except OSError as err:
                write_failed(parser, "--out", path, err)
            written.append(str(path))
    finally:  # pyplot keeps every figure until closed (main runs in-process in tests, notebooks)
        import matplotlib.pyplot as plt

        for fig in figs.values():
            plt.close(fig)
    if args.json:
        final = [{"run": r.name, **{k: v for k, v in r.records[-1].items()
                                    if k not in ("run", "class_mean_gram") and not k.endswith("_hits")}}
                 for r in runs]
        named = [{"label": g.label, "runs": [runs[i].name for i in g.members]} for g in groups]
        print(to_json({"final": final, "seed_groups": named, "figures": written}, indent=2))
    else:
        print(final_table(runs))
        if any(len(g.members) > 1 for g in groups):
            print("\nfinal epoch over seeds: mean +- sd [min, max]")
            print(seed_summary(runs))
        print("figures: " + ", ".join(written), file=sys.stderr)
    return 0
