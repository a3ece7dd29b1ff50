"""``python -m ufm.analyze FEATURES``: the toolkit's verdicts on features trained anywhere.

Examples::

    python -m ufm.analyze feats.pt                          # torch.save({"features", "labels"})
    python -m ufm.analyze feats.npy --labels labels.txt --no-relu --tau 0.07
    python -m ufm.analyze z.npz --json                      # ufm.solve --save-embeddings output
    python -m ufm.analyze feats.safetensors --batches batches.json --out report/
    python -m ufm.analyze feats.npz --convention kini       # Kini et al.'s metric conventions

Reads the features (``ufm.cli.features_io``), calls ``ufm.analyze`` and, with ``--batches``,
``theory_checks``' batch-condition check; prints a text report (``--json``: one strict JSON
object); ``--out DIR`` writes ``report.json``, ``cosines.png`` (measured vs predicted class-mean
cosines) and ``classes.csv`` (the per-class table), each atomically. Exit status 0 with a report,
2 for unusable input (one line naming it), 130 interrupted. docs/analyze.md has the fields.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
from typing import Any, Sequence

import numpy as np

from ufm.cli.args import Parser, format_counts, format_matrix, output_dir, ranged, write_outputs
from ufm.core.checks import TAU_MAX, TAU_MIN
from ufm.core.jsonable import to_json

__all__ = ["main", "build_parser", "format_report", "class_table_csv"]


def build_parser() -> Parser:
    p = Parser(
        prog="python -m ufm.analyze",
        description="Analyze penultimate features a network learned (in PyTorch, JAX, anywhere): "
        "class counts and imbalance, Delta_GM to the orthogonal frame, the simplex ETF and the "
        "certified UFM optimum at the same counts, NC1, class-mean cosines against the "
        "predicted ones, negative entries and dead coordinates (docs/analyze.md).",
    )
    p.add_argument("features", metavar="FEATURES",
                   help="features file: .npy (N x d), .npz (features/labels, h/y or z/labels), .pt "
                   "(a tensor or a dict of tensors; needs torch) or .safetensors")
    p.add_argument("--labels", metavar="LABELS",
                   help="labels file (.npy, or .txt/.csv integers), when FEATURES holds none")
    p.add_argument("--batches", metavar="BATCHES.json",
                   help="batches.json over the same samples: add the batch-condition verdict "
                   "(is the OF the unique minimizer? DESIGN.md section 6)")
    relu = p.add_mutually_exclusive_group()
    relu.add_argument("--relu", dest="relu", action="store_const", const=True, default=None,
                      help="a ReLU was applied to the features (UFM+)")
    relu.add_argument("--no-relu", dest="relu", action="store_const", const=False,
                      help="no ReLU (default: detected, ReLU when every entry is >= 0)")
    p.add_argument("--tau", type=ranged(float, TAU_MIN, TAU_MAX), default=0.1,
                   help="temperature of the predicted optimum (default 0.1)")
    p.add_argument("--convention", choices=("project", "kini"), default="project",
                   help="metric convention: project (means of normalized features, DESIGN.md "
                   "section 4; default) or kini (raw class means, NC1 without 1/k, as Kini et al.'s code)")
    p.add_argument("--no-optimum", dest="optimum", action="store_false",
                   help="skip the certified UFM optimum (saves the seconds of its solve)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--out", metavar="REPORT_DIR", type=output_dir,
                   help="folder for report.json, cosines.png and classes.csv")
    return p


def _fmt(v: Any, spec: str = ".4f") -> str:
    return "n/a" if v is None else format(v, spec)


def format_report(r: dict[str, Any]) -> str:
    """The text report of ``AnalysisReport.to_dict()`` (and its ``batches`` verdict)."""
    h = r["health"]
    lines = [
        f"features: N = {r['n_samples']}, d = {r['dim']}, k = {len(r['counts'])} classes "
        f"{format_counts(r['counts'])} (R = n_max/n_min = {r['imbalance_ratio']:g})",
        f"ReLU: {'yes' if r['relu'] else 'no'} ({r['relu_source']}"
        + (", every entry >= 0" if r["relu_source"] == "detected" and r["relu"] else
           f", {h['negative_fraction']:.1%} of the entries < 0" if r["relu_source"] == "detected" else "")
        + f"); convention: {r['convention']}; tau = {r['tau']:g}",
        f"Delta_GM to OF {_fmt(r['delta_gm_of'])}, to ETF {_fmt(r['delta_gm_etf'])}, to the UFM "
        f"optimum {_fmt(r['delta_gm_optimum'])} (with ReLU {_fmt(r['delta_gm_optimum_relu'])}, "
        f"without {_fmt(r['delta_gm_optimum_norelu'])})",
        f"NC1 {_fmt(r['nc1'], '.4g')}",
        f"negative entries {h['negative_fraction']:.2%}; dead coordinates {h['dead_coordinates']} of "
        f"{r['dim']}; zero rows {h['zero_rows']:.2%}",
    ]
    for name, opt in (r["optimum"] or {}).items():
        lines.append(f"optimum {'ReLU (OF)' if name == 'relu' else 'no ReLU'}: loss {opt['loss']:.6g}, "
                     f"proven bound {opt['lower_bound']:.6g} (rel. gap {opt['rel_gap']:.1e}, "
                     f"{'certified' if opt['certified'] else 'NOT certified'})")
    m, pr = r["summaries"]["measured"], r["summaries"]["predicted"] or {}
    lines.append("class-mean cosines (majority = " + ", ".join(
        str(c) for c, maj in zip(r["classes"], r["majority"]) if maj) + "): measured / predicted")
    for key, label in (("cos_maj_maj", "maj-maj"), ("cos_maj_min", "maj-min"),
                       ("cos_min_min", "min-min"), ("cos_min", "min"), ("cos_max", "max")):
        lines.append(f"  {label:<8} {_fmt(m[key], '+.3f'):>7} / {_fmt(pr.get(key), '+.3f'):>7}")
    lines.append("measured cosines:")
    lines.append(format_matrix(np.asarray(r["cosines"])))
    if r["predicted_cosines"] is not None:
        lines.append("predicted cosines:")
        lines.append(format_matrix(np.asarray(r["predicted_cosines"])))
    if r.get("batches") is not None:
        b = r["batches"]
        lines.append(f"batches: {b['n_batches']} batches; conditions (a*) and (b) "
                     f"{'HOLD: the OF is the unique minimizer' if b['holds'] else 'FAIL: the OF is not the unique minimizer'}")
    lines += [f"warning: {w}" for w in r["warnings"]]
    return "\n".join(lines)


def class_table_csv(r: dict[str, Any]) -> str:
    """The per-class table as CSV text."""
    buf = io.StringIO()
    fields = list(r["per_class"][0])
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for row in r["per_class"]:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return buf.getvalue()


def _heatmap(r: dict[str, Any], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ufm.cli.io import save_figure_atomic

    panels = [("measured", r["cosines"])]
    if r["predicted_cosines"] is not None:
        panels.append(("predicted (UFM optimum, " + ("ReLU" if r["relu"] else "no ReLU") + ")",
                       r["predicted_cosines"]))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels) + 0.8, 4.0), squeeze=False)
    k = len(r["classes"])
    ticks = np.arange(k) if k <= 20 else np.linspace(0, k - 1, 6).round().astype(int)
    for i, (ax, (title, mat)) in enumerate(zip(axes[0], panels)):
        im = ax.imshow(np.asarray(mat), vmin=-1, vmax=1, cmap="RdBu_r")
        ax.set_title(title, fontsize=10)
        ax.set_xticks(ticks, [str(r["classes"][t]) for t in ticks])
        ax.set_yticks(ticks, [str(r["classes"][t]) for t in ticks])
        ax.set_xlabel("class")
        if i == 0:
            ax.set_ylabel("class")
    fig.colorbar(im, ax=list(axes[0]), shrink=0.8, label="cosine of class means")
    fig.suptitle(f"class-mean cosines ({r['convention']} convention), Delta_GM to the optimum "
                 f"{_fmt(r['delta_gm_optimum'], '.3f')}", fontsize=10)
    try:
        save_figure_atomic(fig, path, dpi=110)
    finally:
        plt.close(fig)


def _load(parser: argparse.ArgumentParser, args: argparse.Namespace):
    from ufm.cli.features_io import FeaturesFileError, read_features, read_labels

    try:
        features, labels = read_features(args.features)
    except FeaturesFileError as err:
        parser.error(f"argument FEATURES: {args.features}: {err}")
    if args.labels is not None:
        try:
            labels = read_labels(args.labels)
        except FeaturesFileError as err:
            parser.error(f"argument --labels: {args.labels}: {err}")
    elif labels is None:
        parser.error(f"argument --labels: {args.features} holds no labels; give a labels file")
    return features, labels


def _batch_verdict(parser: argparse.ArgumentParser, args: argparse.Namespace, labels, d: int):
    from theory_checks.interaction import check_batches
    from theory_checks.io import BatchesFileError, read_batches_json

    flag = f"argument --batches: {args.batches}"
    try:
        file_labels, batches, _ = read_batches_json(args.batches)
    except BatchesFileError as err:
        parser.error(f"{flag}: {err}")
    labels = np.asarray(labels).reshape(-1)
    if file_labels.shape != labels.shape or not np.array_equal(file_labels, labels):
        where = ("" if file_labels.shape != labels.shape
                 else f", first at sample {int(np.flatnonzero(file_labels != labels)[0])}")
        parser.error(f"{flag}: its labels ({file_labels.size}) are not the features' labels "
                     f"({labels.size}){where}; the batches must index the same samples")
    try:
        return check_batches(file_labels, batches, d=d).to_dict()
    except ValueError as err:
        parser.error(f"{flag}: {err}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.batches is not None and not os.path.isfile(args.batches):
        parser.error(f"argument --batches: {args.batches}: not a file")
    features, labels = _load(parser, args)
    from ufm.analysis.report import analyze

    try:
        report = analyze(features, labels, tau=args.tau, relu=args.relu,
                         convention=args.convention, optimum=args.optimum)
    except ValueError as err:
        text = str(err)
        if text.startswith("labels") and args.labels is not None:
            parser.error(f"argument --labels: {args.labels}: {text}")
        parser.error(f"argument FEATURES: {args.features}: {text}")
    out = report.to_dict()
    if args.batches is not None:
        out["batches"] = _batch_verdict(parser, args, labels, report.dim)
    if args.out:
        write_outputs(parser, [
            ("--out", os.path.join(args.out, "report.json"),
             lambda path: _atomic_text(path, to_json(out, indent=2) + "\n")),
            ("--out", os.path.join(args.out, "classes.csv"),
             lambda path: _atomic_text(path, class_table_csv(out))),
            ("--out", os.path.join(args.out, "cosines.png"), lambda path: _heatmap(out, path)),
        ])
    print(to_json(out, indent=2) if args.json else format_report(out))
    return 0


def _atomic_text(path: str, text: str) -> None:
    from ufm.cli.io import atomic_write

    atomic_write(path, lambda fh: fh.write(text.encode()))
