"""``python -m theory_checks.batches``: write a batches.json from a batch schedule, or, with
``--advise``, say how many shuffled epochs satisfy the batch conditions (a*) and (b).

Labels come from ``--labels FILE`` (a JSON list of integers, or an object with a "labels" key
such as another batches.json) or from the problem flags (STEP/EXP imbalance or ``--counts``,
laid out class by class as in ``ufm.core.labels.labels_from_counts``).

``--advise`` (``theory_checks.coverage``) writes no file: from STEP counts (or ``--counts``
with at most 4 distinct class sizes) and ``--batch-size`` it prints the smallest number of
shuffled epochs that guarantees the conditions with probability >= ``--p``, the bounds on the
probability per epoch count, and the batch-binding alternative; ``--json`` prints the same as
JSON. The generation flags (``--schedule --epochs``, ``--drop-last --labels --out --quiet``)
are refused with it, except ``--epochs`` (adds that epoch count to the table and is where
``--mc-trials`` simulates) and ``--seed`` (the Monte Carlo seed).
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

advise (no file written):
  python -m theory_checks.batches --advise --k 10 --R 100 --batch-size 50 [--n-min 5] [--p 0.99] [--json]
  epochs of the shuffle schedule needed for P(conditions hold) >= p (a guarantee from a union
  lower bound, with the range the exact number lies in), the probability per epoch count, and
  batch-binding (all k binding samples: one epoch, probability 1)

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

# --advise: limits of the analysis (theory_checks.coverage) and of its Monte Carlo check
_ADVISE_MAX_CLASS = 100_000  # samples in the largest class
_ADVISE_MAX_N_MIN = 64  # samples in the smallest class (the exact DP grows as n_min^4)
_ADVISE_MAX_SIZES = 4  # distinct class sizes with --counts
_MC_TRIALS_MAX = 100_000
_MC_MAX_ENTRIES = 20_000_000  # epochs x N per trial
_GENERATION_ONLY = {"schedule": "--schedule", "drop_last": "--drop-last", "labels": "--labels",
                    "out": "--out", "quiet": "--quiet"}
_ADVISE_ONLY = {"p": "--p", "json": "--json", "mc_trials": "--mc-trials"}


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
    o.add_argument("--out", default=None, metavar="FILE", type=output_file,
                   help="batches.json to write (atomically); required unless --advise")
    o.add_argument("--quiet", action="store_true", help="print nothing on success")
    a = p.add_argument_group("advise (how many shuffled epochs are enough; writes no file)")
    a.add_argument("--advise", action="store_true",
                   help="print the epochs of the shuffle schedule needed for the conditions (a*) "
                        "and (b) with probability >= --p, and the binding alternative")
    a.add_argument("--p", type=ranged(float, 0, 1, lo_open=True, hi_open=True), default=None,
                   help="target probability in (0, 1) (default 0.99; with --advise)")
    a.add_argument("--json", action="store_true", help="print the advice as JSON (with --advise)")
    a.add_argument("--mc-trials", type=ranged(int, 1, _MC_TRIALS_MAX), default=None,
                   help=f"also estimate the probability at the guaranteed number of epochs (or "
                        f"--epochs) by Monte Carlo with check_batches, 1 to {_MC_TRIALS_MAX} trials "
                        f"(with --advise)")
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


def _given(argv: Sequence[str] | None) -> set[str]:
    """The destinations of the flags given on the command line (a parse with every default None)."""
    probe = _parser()
    probe.set_defaults(**{a.dest: None for a in probe._actions if a.dest != "help"})
    for a in probe._actions:
        if isinstance(a, argparse._StoreTrueAction):
            a.default = None
    return {k for k, v in vars(probe.parse_args(argv)).items() if v is not None}


def _advise_counts(parser, args) -> np.ndarray:
    from ufm.cli.args import counts_from_args

    if args.counts is None and args.imbalance != "step":
        parser.error("argument --imbalance: --advise supports step (two class sizes) or --counts")
    counts = counts_from_args(parser, args)
    flag = "--counts" if args.counts is not None else "--R"
    if args.counts is not None and np.unique(counts).size > _ADVISE_MAX_SIZES:
        parser.error(f"argument --counts: --advise supports at most {_ADVISE_MAX_SIZES} distinct class "
                     f"sizes, got {np.unique(counts).size}")
    if int(counts.max()) > _ADVISE_MAX_CLASS:
        parser.error(f"argument {flag}: --advise supports classes of at most {_ADVISE_MAX_CLASS} "
                     f"samples, the largest has {int(counts.max())}")
    if int(counts.min()) > _ADVISE_MAX_N_MIN:
        name = "--counts" if args.counts is not None else "--n-min"
        parser.error(f"argument {name}: --advise supports a smallest class of 2 to {_ADVISE_MAX_N_MIN} "
                     f"samples, got {int(counts.min())}")
    return counts


def _fmt_p(x: float | None) -> str:
    if x is None:
        return "-"
    if x == 0 or x == 1:
        return f"{x:.0f}"
    if x > 0.999:
        return f"1 - {1 - x:.2e}"
    return f"{x:.4f}" if x >= 1e-4 else f"{x:.2e}"


def _advice_text(a: dict) -> str:
    sh, n, bsz = a["shuffle"], a["n_samples"], a["batch_size"]
    from ufm.cli.args import format_counts

    lines = [f"shuffle schedule (drop_last off): counts {format_counts(a['counts'])} (k = {a['k']}, "
             f"N = {n}); batch size {bsz}: {a['batches_per_epoch']} batches per epoch"
             + (f", the last of {a['last_batch']}" if a["last_batch"] != bsz else "")]
    e = sh["epochs_needed"]
    if e is None and sh["one_epoch_probability"] == 0 and bsz == 2:
        lines.append("no number of epochs: with batches of 2 condition (a*) never holds (a mixed "
                     "batch of 2 holds one sample per class, a pure one pins nothing)")
    elif e is None:
        lines.append(f"no number of epochs up to 10^15 is certified for p = {a['p']:g}")
    else:
        lines.append(f"epochs needed for P(conditions (a*) and (b) hold) >= {a['p']:g}: {e} "
                     f"(guaranteed by the union lower bound); the exact smallest number lies in "
                     f"[{sh['at_least']}, {e}]; approximation {sh['approx']}")
    one = sh["one_epoch_probability"]
    lines.append(f"one epoch: probability {one:.0f} exactly (one epoch satisfies the conditions "
                 f"only when B >= N = {n})")
    lines.append(f"bottleneck: {sh['bottleneck']}")
    lines.append("probability by number of epochs (lower <= P <= upper, rigorous; approx):")
    lines.append(f"  {'epochs':>14}  {'lower':>12}  {'upper':>12}  {'approx':>12}")
    for r in sh["by_epochs"]:
        tag = "  exact" if r["exact"] is not None else ""
        lines.append(f"  {r['epochs']:>14}  {_fmt_p(r['lower']):>12}  {_fmt_p(r['upper']):>12}  "
                     f"{_fmt_p(r['approx']):>12}{tag}")
    full = a["binding"]["all_k"]
    if full["guaranteed"]:
        lines.append(f"binding alternative: all k = {a['k']} binding samples (one sample per class "
                     f"added to every batch: batches of {bsz} + {a['k']}) satisfy (a*) and (b) in ONE "
                     f"epoch with probability 1, because {full['condition']}")
    else:
        lines.append(f"binding alternative: {full['reason']}")
    mo = a["binding"].get("minority_only")
    if mo:
        head = (f"fewer binding samples: binding only the {mo['binding_samples']} smallest classes "
                f"is not guaranteed for every shuffle ({mo['reason']}); ")
        if mo["epochs_needed"] is None:
            lines.append(head + f"no number of epochs up to 10^15 is certified for p = {a['p']:g}")
        else:
            lines.append(head + f"{mo['epochs_needed']} epochs guarantee p >= {a['p']:g} (the exact "
                         f"number lies in [{mo['at_least']}, {mo['epochs_needed']}], approximation "
                         f"{mo['approx']})")
    mc = a.get("monte_carlo")
    if mc:
        lines.append(f"Monte Carlo at {mc['epochs']} epochs ({mc['trials']} trials, seed {mc['seed']}, "
                     f"check_batches): {mc['estimate']:.4f}, 99% interval [{mc['ci99'][0]:.4f}, "
                     f"{mc['ci99'][1]:.4f}]; bounds [{_fmt_p(mc['lower'])}, {_fmt_p(mc['upper'])}]"
                     f" ({'agree' if mc['agrees'] else 'DISAGREE'})")
    return "\n".join(lines)


def _advise(parser, args, given: set[str]) -> int:
    import json

    for dest, flag in _GENERATION_ONLY.items():
        if dest in given:
            parser.error(f"argument {flag}: not used with --advise (it writes no batches)")
    counts = _advise_counts(parser, args)
    p = 0.99 if args.p is None else args.p
    epochs = args.epochs if "epochs" in given else None
    if args.mc_trials:
        from theory_checks.coverage import epochs_needed_for_counts

        e_mc = epochs if epochs is not None else epochs_needed_for_counts(counts, args.batch_size, p)
        if e_mc is not None and e_mc * int(counts.sum()) > _MC_MAX_ENTRIES:
            parser.error(f"argument --mc-trials: {e_mc} epochs of N = {int(counts.sum())} samples per "
                         f"trial is too large to simulate (at most {_MC_MAX_ENTRIES} entries; give a "
                         f"smaller --epochs)")
    from theory_checks.coverage import advise

    advice = advise(counts, args.batch_size, p, epochs=epochs, mc_trials=args.mc_trials, seed=args.seed)
    if args.json:
        print(json.dumps(advice, indent=1))
    else:
        print(_advice_text(advice))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 written / advised, 2 usage error)."""
    from ufm.cli.args import counts_from_args, write_failed
    from ufm.core.labels import labels_from_counts
    from ufm.core.versions import library_versions

    from theory_checks.schedules import binding_samples, schedule_batches
    from theory_checks.io import write_batches_json

    parser = _parser()
    args = parser.parse_args(argv)
    given = _given(argv)
    if args.advise:
        return _advise(parser, args, given)
    for dest, flag in _ADVISE_ONLY.items():
        if dest in given:
            parser.error(f"argument {flag}: only with --advise")
    if args.out is None:
        parser.error("argument --out: required (the batches.json to write), unless --advise")
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
