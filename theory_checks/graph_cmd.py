"""``python -m theory_checks.graph --batches FILE [--json] [--d D]``: the batch-condition verdict.

Exit status: 0 when conditions (a*) and (b) hold (the OF is the unique minimizer), 1 when they
do not, 2 for unusable input (one line on stderr naming the problem).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Sequence

from ufm.cli.args import Parser, ranged

__all__ = ["main", "format_report"]

_EPILOG = """\
batches.json: {"labels": [y_0, ..., y_{N-1}], "batches": [[i, j, ...], ...]} (0-based indices;
repeated batches, e.g. epochs, allowed: the check uses their union). Write one with
python -m theory_checks.batches.

conditions (DESIGN.md section 6): (a*) every class is one component after joining same-class
samples that share a MIXED batch, then, to a fixpoint, all samples of a PURE batch of size >= 3
that holds two joined samples (a pure batch of size 2 pins nothing); every sample is in a batch.
(b) every pair of classes shares a batch where one of the two appears at least twice.

exit status: 0 conditions hold, 1 they do not, 2 unusable input (a FILE that is not a
regular file, or too big for the memory available: SCL_GEOMETRY_MEMORY=4G sets the budget).
"""


def _parser() -> Parser:
    p = Parser(
        prog="python -m theory_checks.graph",
        description="Check whether mini-batches make the OF the UNIQUE minimizer of the batched "
                    "SC loss (UFM+, DESIGN.md section 6): prints the verdict and exactly why.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--batches", required=True, metavar="FILE",
                   help="batches.json to check (a regular file; its size is checked against the "
                        "memory available before it is read)")
    p.add_argument("--d", type=ranged(int, 1, None), default=None,
                   help="embedding dimension the verdict is read at (exact for d >= k+1; "
                        "default: not given, the note covers every d)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.add_argument("--max-list", type=ranged(int, 1, None), default=10, metavar="N",
                   help="text output: show at most N items per list (default 10)")
    return p


def _shown(items: Sequence[Any], limit: int, fmt=str) -> str:
    text = ", ".join(fmt(v) for v in items[:limit])
    return text + (f", ... and {len(items) - limit} more" if len(items) > limit else "")


def format_report(res: dict[str, Any], source: str, limit: int = 10) -> str:
    """Human verdict from ``BatchCheck.to_dict()`` (lists truncated to ``limit`` items)."""
    k, a, b = res["k"], res["conditions"]["a_star"], res["conditions"]["b"]
    n_pairs = k * (k - 1) // 2
    lines = [f"{source}: {res['n_samples']} samples, {k} classes, {res['n_batches']} batches "
             f"({res['n_entries']} entries)"]
    if res["holds"]:
        lines.append("HOLDS: conditions (a*) and (b) hold, the OF is the UNIQUE minimizer")
    else:
        lines.append("DOES NOT HOLD: the OF is a minimizer, but the conditions for it to be the "
                     "only one fail")
    if a["passed"]:
        lines.append(f"  (a*) pass: each of the {k} classes is one pinned component")
    else:
        lines.append(f"  (a*) FAIL for {a['n_failed']} of {k} classes (same-class subgraph not "
                     f"connected; samples in no batch count as their own components):")
        for row in a["details"][:limit]:
            extra = f", {row['n_uncovered']} in no batch" if row["n_uncovered"] else ""
            lines.append(f"       class {row['class']}: {row['components']} components "
                         f"({row['n_samples']} samples{extra})")
        if a["n_failed"] > limit:
            lines.append(f"       ... and {a['n_failed'] - limit} more classes")
    if b["passed"]:
        lines.append(f"  (b)  pass: all {n_pairs} class pairs are pinned")
    else:
        lines.append(f"  (b)  FAIL for {b['n_failed']} of {n_pairs} class pairs (never in a batch "
                     f"where one of the two appears twice):")
        lines.append("       " + _shown(b["details"], limit, lambda p: f"({p[0]}, {p[1]})"))
        if "never_together" in b:
            lines.append(f"       of these, {len(b['never_together'])} pairs never share any batch")
    unc = res["uncovered_samples"]
    if unc:
        lines.append(f"  {len(unc)} samples are in no batch: {_shown(unc, limit)}")
    else:
        lines.append("  every sample is in some batch")
    d = "not given" if res["d"] is None else str(res["d"])
    lines.append(f"  d: {d}; {res['exactness']}")
    for w in res["warnings"]:
        lines.append(f"  warning: {w}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 holds, 1 does not, 2 unusable input)."""
    parser = _parser()
    args = parser.parse_args(argv)
    from theory_checks.interaction import check_batches
    from theory_checks.io import BatchesFileError, read_batches_json

    path = args.batches
    try:
        big = os.path.getsize(path) > 50_000_000
    except (OSError, ValueError):
        big = False
    talk = big and not args.json and sys.stderr.isatty()
    if talk:
        print(f"reading {path} ...", file=sys.stderr, flush=True)
    try:
        labels, batches, file_config = read_batches_json(path)
        if talk:
            print(f"checking {len(batches)} batches ...", file=sys.stderr, flush=True)
        res = check_batches(labels, batches, d=args.d).to_dict()
    except (BatchesFileError, ValueError) as err:
        parser.error(f"argument --batches: {path}: {err}")
    except MemoryError:
        parser.error(f"argument --batches: {path}: out of memory while checking")
    if args.json:
        from ufm.core.versions import library_versions

        config = {"batches": path, "d": args.d, "file_config": file_config}
        from ufm.core.jsonable import to_json

        print(to_json({"file": path, **res, "config": config, "versions": library_versions()}))
    else:
        print(format_report(res, path, args.max_list))
    return 0 if res["holds"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
