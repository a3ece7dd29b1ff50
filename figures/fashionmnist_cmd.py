"""Recompute the README's FashionMNIST tables from the run folders:
``python -m figures.fashionmnist [--runs DIR] [--json | --readme] [--out DIR]``.

Reads every ``<setting>_s<seed>`` folder of ``--runs`` (default ``results/fashionmnist/runs``,
written by ``figures/fashionmnist_runs.sh``), prints the tables as Markdown (``--json``: the
numbers as strict JSON, NaN and inf as null; ``--readme``: only the README's central tables,
line for line as the README prints them), and writes, each atomically, ``summary.md`` and
``summary.json`` into ``--out`` (default ``results/fashionmnist``) and the ``deep.report`` plots
of the finished relu / norelu / binding runs of each R into ``--out/r10/`` and ``--out/r100/``
(``delta_gm.png``, ``nc1.png``, ``cosines.png``, ``accuracy.png``; a group without a finished
run is skipped), and issue 38's Delta_GM_OF-per-epoch plots into ``--out/r10_beyond/``
(``temperature.png``: tau 0.05 / 0.1 / 0.5 with ReLU; ``activations.png``: ReLU, none, Leaky
ReLU 0.01 and 0.1, GELU; each only when one of its runs has records, running ones included,
dashed), and the model-complexity plot (DenseNet-40 against resnet-small at R = 10 with ReLU,
Delta_GM_OF per epoch, running seeds dashed) into ``--out/r10_complexity/delta_gm.png``, and
the training-length plot (each 350-epoch setting with a run beside its 100-epoch setting) into
``--out/r10_length/delta_gm.png``.
Unfinished runs are listed as in progress and enter no number
(``figures.fashionmnist_summary``).

A ``--runs`` that is no folder or holds no readable run: one line on stderr, exit status 2. A
run whose files cannot be read: skipped, with a one-line warning.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Sequence

from ufm.cli.args import Parser, output_dir, unwritable_reason, write_failed

__all__ = ["main", "build_parser", "beyond_figures", "complexity_figures", "length_figure"]

ROOT = Path(__file__).resolve().parents[1]
FIGURES = ("delta_gm", "nc1", "cosines", "accuracy")
BEYOND_GROUP = "r10_beyond"
COMPLEXITY_GROUP = "r10_complexity"
COMPLEXITY_LABELS = {"r10_densenet40": "DenseNet-40 (growth 12)", "r10_relu": "resnet-small"}
LENGTH_GROUP = "r10_length"
LENGTH_LABELS = {f"r10_{kind}{tail}": f"{text}, {n} epochs"
                 for kind, text in (("relu", "ReLU"), ("norelu", "no ReLU"),
                                    ("binding", "ReLU, binding"))
                 for tail, n in (("_e350", 350), ("", 100))}
LENGTH_PREDICTIONS = {"OF": "predicted with ReLU (OF)",  # fashionmnist_summary.prediction's
                      "no-ReLU optimum": "predicted without ReLU (no-ReLU UFM optimum)"}
BEYOND_TITLES = {"temperature": r"Temperature (ReLU, R = 10): $\Delta_{GM}$ to the OF",
                 "activations": r"Final-feature activation (R = 10): $\Delta_{GM}$ to the OF"}


def build_parser() -> Parser:
    p = Parser(prog="python -m figures.fashionmnist",
               description="Recompute the README's FashionMNIST tables from the run folders.")
    p.add_argument("--runs", metavar="DIR", default=str(ROOT / "results/fashionmnist/runs"),
                   help="folder of the <setting>_s<seed> runs (default: results/fashionmnist/runs)")
    p.add_argument("--out", metavar="DIR", type=output_dir,
                   default=str(ROOT / "results/fashionmnist"),
                   help="folder for summary.md, summary.json and the r10/, r100/, r10_beyond/, "
                   "r10_complexity/, r10_length/ plots "
                   "(default: results/fashionmnist)")
    show = p.add_mutually_exclusive_group()
    show.add_argument("--json", action="store_true", help="print the numbers as JSON")
    show.add_argument("--readme", action="store_true",
                      help="print only the README's central tables, line for line as the README "
                      "has them (to check it against the runs)")
    return p


def warn(parser: Parser, message: str) -> None:
    print(f"{parser.prog}: warning: {message}", file=sys.stderr)


def _write_text(path: Path, text: str) -> None:
    from ufm.cli.io import atomic_write

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda fh: fh.write(text.encode()))


def beyond_figures(curves: dict[str, list[dict[str, Any]]],
                   rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """``{file stem: Figure}`` of issue 38 from ``beyond_curves`` and the ``beyond`` rows: the
    rows give each setting's legend text (activation, slope, tau) and the predicted
    Delta_GM_OF lines."""
    from figures.fashionmnist_beyond_plots import delta_gm_figure

    by = {r["setting"]: r for r in rows}
    figs = {}
    for stem, cs in curves.items():
        mine = [by[s] for s in dict.fromkeys(c["setting"] for c in cs)]
        labels = {r["setting"]: f"{r['setting']}: {r['activation']}"
                  + ("" if r["slope"] is None else f" {r['slope']:g}") + f", τ = {r['tau']:g}"
                  for r in mine}
        levels = list(dict.fromkeys((f"predicted ({r['prediction']})", r["predicted_delta_gm_of"])
                                    for r in mine if r["predicted_delta_gm_of"] is not None))
        figs[stem] = delta_gm_figure(cs, title=BEYOND_TITLES.get(stem, stem), labels=labels,
                                     levels=levels)
    return figs


def complexity_figures(curves: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """``{"delta_gm": Figure}``: issue 35's model-complexity curves (``beyond_curves`` of
    ``COMPLEXITY_FIGURES``), DenseNet-40 against resnet-small, with the OF (0) as the
    prediction under ReLU."""
    from figures.fashionmnist_beyond_plots import delta_gm_figure

    title = r"Model complexity (ReLU, R = 10): $\Delta_{GM}$ to the OF"
    return {stem: delta_gm_figure(cs, title=title, labels=COMPLEXITY_LABELS,
                                  levels=[("predicted (OF)", 0.0)])
            for stem, cs in curves.items()}


def length_figure(curves: Sequence[dict[str, Any]], rows: Sequence[dict[str, Any]]) -> Any:
    """Issue 35's training-length figure: the curves of ``beyond_curves`` of
    ``length_figures(runs)`` (350 against 100 epochs at R = 10), with each distinct prediction
    of the drawn settings (the ``length`` rows' ``prediction`` and ``predicted_delta_gm_of``) as
    a dotted line: the OF (0) under ReLU, the no-ReLU UFM optimum's Delta_GM_OF without."""
    from figures.fashionmnist_beyond_plots import delta_gm_figure

    by = {r["setting"]: r for r in rows}
    drawn = [by[s] for s in dict.fromkeys(c["setting"] for c in curves)]
    levels = list(dict.fromkeys((LENGTH_PREDICTIONS[r["prediction"]], r["predicted_delta_gm_of"])
                                for r in drawn if r["predicted_delta_gm_of"] is not None))
    title = r"Training length (R = 10): $\Delta_{GM}$ to the OF, 350 against 100 epochs"
    return delta_gm_figure(curves, title=title, labels=LENGTH_LABELS, levels=levels)


def _save_figures(parser: Parser, figs: dict[str, Any], paths: Sequence[Path], folder: Path) -> None:
    """Save each ``figs[stem]`` to the path of ``paths`` named ``<stem>.png``, atomically, then
    close every figure; a failed write is the one-line ``--out`` error."""
    from ufm.cli.io import save_figure_atomic
    import matplotlib.pyplot as plt

    try:
        for path in paths:
            path.parent.mkdir(parents=True, exist_ok=True)
            save_figure_atomic(figs[path.stem], path, dpi=120)
    except OSError as err:
        write_failed(parser, "--out", folder, err)
    finally:
        for fig in figs.values():
            plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from figures.fashionmnist_summary import (COMPLEXITY_FIGURES, beyond_curves, figure_groups,
                                              length_figures, load_runs, markdown, readme_tables,
                                              summarize)
    from ufm.core.jsonable import to_json

    try:
        runs, warnings = load_runs(args.runs)
    except (OSError, ValueError) as err:
        parser.error(f"argument --runs: {err}")
    for w in warnings:
        warn(parser, w)
    out = Path(args.out)
    groups = figure_groups(runs)
    targets = {g: [out / g / f"{stem}.png" for stem in FIGURES] for g in groups}
    curves = beyond_curves(runs)
    if curves:
        targets[BEYOND_GROUP] = [out / BEYOND_GROUP / f"{stem}.png" for stem in curves]
    pace = beyond_curves(runs, COMPLEXITY_FIGURES)
    if pace:
        targets[COMPLEXITY_GROUP] = [out / COMPLEXITY_GROUP / f"{stem}.png" for stem in pace]
    lengths = beyond_curves(runs, length_figures(runs))
    if lengths:
        targets[LENGTH_GROUP] = [out / LENGTH_GROUP / f"{stem}.png" for stem in lengths]
    files = [out / "summary.md", out / "summary.json", *(p for ps in targets.values() for p in ps)]
    for where in files:
        reason = unwritable_reason(where)
        if reason is not None:
            parser.error(f"argument --out: cannot write {str(where)!r}: {reason}")
    summary = summarize(runs, warnings=warnings)
    for w in summary["warnings"][len(warnings):]:
        warn(parser, w)
    summary["runs_dir"] = str(args.runs)
    summary["figures"] = [str(p) for ps in targets.values() for p in ps]
    text, data = markdown(summary), to_json(summary, indent=2) + "\n"
    try:
        _write_text(out / "summary.md", text)
        _write_text(out / "summary.json", data)
    except OSError as err:
        write_failed(parser, "--out", out, err)
    if groups:
        from deep.reporting import figures

        for g in groups:
            figs = figures(groups[g])
            _save_figures(parser, figs, targets[g], out / g)
    if curves:
        _save_figures(parser, beyond_figures(curves, summary["beyond"]), targets[BEYOND_GROUP],
                      out / BEYOND_GROUP)
    if pace:
        _save_figures(parser, complexity_figures(pace), targets[COMPLEXITY_GROUP],
                      out / COMPLEXITY_GROUP)
    if lengths:
        _save_figures(parser, {stem: length_figure(cs, summary["length"])
                               for stem, cs in lengths.items()},
                      targets[LENGTH_GROUP], out / LENGTH_GROUP)
    print(data if args.json else readme_tables(summary["central"]) if args.readme else text,
          end="")
    print(f"wrote {out / 'summary.md'}, {out / 'summary.json'}"
          + "".join(f", {out / g}/*.png" for g in targets), file=sys.stderr)
    return 0
