"""``python -m theory_checks.batches``: write a batches.json from a batch schedule.

Labels come from ``--labels FILE`` (a JSON list of integers, or an object with a "labels" key
such as another batches.json) or from the problem flags (STEP/EXP imbalance or ``--counts``,
laid out class by class as in ``ufm.core.labels.labels_from_counts``).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["main"]

_EPILOG = """\
schedules:
  shuffle  a fresh random permutation every epoch, cut into batches
  fixed    one random partition (seed only), reused every epoch (batch order redrawn)
  sorted   class-sorted (random order inside a class, redrawn per epoch): mostly pure
           batches, the conditions fail
  binding  one fixed sample per class added to EVERY batch (batch-binding); the others are
           shuffled per epoch into batches of --batch-size

examples:
  python -m theory_checks.batches --schedule binding --batch-size 50 --epochs 10 --out b.json
  python -m theory_checks.batches --schedule sorted --counts 20,20,5,5 --batch-size 8 --out s.json
  python -m theory_checks.graph --batches b.json

limits: the schedule is built in memory (about 8 B per index + 8 B per sample + 160 B per batch,
each epoch), so --epochs is bounded by the memory available (SCL_GEOMETRY_MEMORY=4G sets the
budget) and the file it writes by the free disk space; --labels must be a regular file that the
memory available can parse.
"""

# Memory of the schedule, measured (issue 34) by peak RSS: per epoch 8 B per index, 8 B per sample
# (the permutation the batches view) and 110-170 B per batch (the array objects and the list).
_PER_INDEX, _PER_SAMPLE, _PER_BATCH = 8, 8, 160
_LABELS_WRITE = 64  # per label, once: the list and the text of "labels" while it is written


def _parser():
    from ufm.cli.args import Parser, add_counts_args, output_file, ranged

    from theory_checks.schedules import SCHEDULES

    p = Parser(
        prog="python -m theory_checks.batches",
        description="Write batches.json ({\"labels\", \"batches\", \"config\"}) for a batch schedule "
                    "over given labels or a STEP/EXP class imbalance.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s = p.add_argument_group("schedule")
    s.add_argument("--schedule", choices=SCHEDULES, default="shuffle",
                   help="batch schedule (default shuffle)")
    s.add_argument("--batch-size", type=ranged(int, 2, None), default=50,
                   help="samples per batch, >= 2 (binding adds the k binding samples) (default 50)")
    s.add_argument("--epochs", type=ranged(int, 1, None), default=10, help="epochs, >= 1 (default 10)")
    s.add_argument("--seed", type=ranged(int, 0, 2**31 - 1), default=0, help="random seed (default 0)")
    s.add_argument("--drop-last", action="store_true", help="drop each epoch's last partial batch")
    g = p.add_argument_group("labels (--labels FILE, or the problem flags)")
    g.add_argument("--labels", metavar="FILE", default=None,
                   help="JSON list of non-negative integer labels, or an object with a \"labels\" "
                        "key (overrides the problem flags)")
    add_counts_args(g)
    o = p.add_argument_group("output")
    o.add_argument("--out", required=True, metavar="FILE", type=output_file,
                   help="batches.json to write (atomically)")
    o.add_argument("--quiet", action="store_true", help="print nothing on success")
    return p


def _labels_file(parser, path: str) -> np.ndarray:
    from theory_checks.io import BatchesFileError, _labels, read_json_file

    try:
        obj = read_json_file(path)  # a regular file, size-checked, bounded read and parse
    except BatchesFileError as err:
        parser.error(f"argument --labels: {path}: {err}")
    if isinstance(obj, dict):
        if "labels" not in obj:
            parser.error(f'argument --labels: {path}: the object has no "labels" key')
        obj = obj["labels"]
    try:
        return _labels(obj)
    except BatchesFileError as err:
        parser.error(f"argument --labels: {path}: {err}")


def _free_disk(path: str) -> int | None:
    base = Path(path).absolute().parent
    while not base.exists() and base != base.parent:
        base = base.parent
    try:
        return shutil.disk_usage(base).free
    except OSError:
        return None


def _check_size(parser, args, labels: np.ndarray) -> None:
    """Usage error naming --epochs when the schedule would not fit the memory budget or the
    file it writes the free disk space: epoch 0 is built first and measured (every epoch of a
    schedule has the same number of batches and indices)."""
    from ufm.cli.limits import ENV, format_bytes, memory_budget, too_big

    from theory_checks.schedules import epoch_batches

    try:
        first = epoch_batches(labels, schedule=args.schedule, batch_size=args.batch_size, epoch=0,
                              seed=args.seed, drop_last=args.drop_last)
    except ValueError as err:
        parser.error(f"argument --batch-size: {err}")
    n, nb = int(labels.size), len(first)
    entries = int(sum(b.size for b in first))
    del first
    try:
        budget = memory_budget()
    except ValueError as err:
        parser.error(str(err))
    per_epoch = _PER_INDEX * entries + _PER_SAMPLE * n + _PER_BATCH * nb
    once = _LABELS_WRITE * n
    reason = too_big(once + args.epochs * per_epoch,
                     f"{args.epochs} epochs of {nb} batches, {entries} indices each epoch", budget)
    if reason is not None:
        most = max(0, (budget - once) // per_epoch)
        parser.error(f"argument --epochs: {reason}: at most {most} epochs with these labels and "
                     f"--batch-size {args.batch_size} (set {ENV} to change)")
    digits = len(str(max(n - 1, 0)))
    per_epoch_text = (digits + 2) * entries + 3 * nb  # "i, " per index, "[", "],\n" per batch
    text = (digits + 2) * n + args.epochs * per_epoch_text
    free = _free_disk(args.out)
    if free is not None and text > free:
        parser.error(f"argument --epochs: the file would be about {format_bytes(text)}; "
                     f"{format_bytes(free)} is free on the disk of --out: at most "
                     f"{max(0, (free - (digits + 2) * n) // per_epoch_text)} epochs")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 written, 2 usage error)."""
    from ufm.cli.args import counts_from_args, write_failed
    from ufm.core.labels import labels_from_counts
    from ufm.core.versions import library_versions

    from theory_checks.schedules import binding_samples, schedule_batches
    from theory_checks.io import write_batches_json

    parser = _parser()
    args = parser.parse_args(argv)
    if args.labels is not None:
        labels = _labels_file(parser, args.labels)
        source = {"labels_file": args.labels}
    else:
        counts = counts_from_args(parser, args)
        labels = labels_from_counts(counts).astype(np.int64)
        source = {"counts": counts.tolist()}
        if args.counts is None:
            source.update(imbalance=args.imbalance, k=args.k, R=args.R, n_min=args.n_min)
            if args.imbalance == "step":
                source["rho"] = args.rho
    _check_size(parser, args, labels)
    try:
        batches = schedule_batches(labels, schedule=args.schedule, batch_size=args.batch_size,
                                   epochs=args.epochs, seed=args.seed, drop_last=args.drop_last)
    except ValueError as err:
        parser.error(str(err))
    k = int(np.unique(labels).size)
    config = {
        "schedule": args.schedule,
        "batch_size": args.batch_size,
        "epochs": args.epochs,
        "seed": args.seed,
        "drop_last": args.drop_last,
        **source,
        "n_samples": int(labels.size),
        "k": k,
        "n_batches": len(batches),
        "binding_samples": (binding_samples(labels, args.seed).tolist()
                            if args.schedule == "binding" else None),
        "command": ["python", "-m", "theory_checks.batches", *(sys.argv[1:] if argv is None else argv)],
        "versions": library_versions(),
    }
    try:
        write_batches_json(args.out, labels, batches, config=config,
                           progress=not args.quiet and len(batches) > 100_000)
    except OSError as err:
        write_failed(parser, "--out", args.out, err)
    if not args.quiet:
        extra = f" + {k} binding" if args.schedule == "binding" else ""
        print(f"wrote {args.out}: {labels.size} samples, {k} classes, {len(batches)} batches "
              f"({args.schedule}, batch size {args.batch_size}{extra}, {args.epochs} epochs, "
              f"seed {args.seed}); check it with: python -m theory_checks.graph --batches {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
