"""Figure 7: how many shuffled epochs the batch conditions (a*) and (b) need (issue 38.3).

Data: ``theory_checks.coverage.epochs_summary`` for STEP counts (``n_min = 5``, R up to 1000)
and k = 10, 100: for each batch size B the smallest number of epochs of the ``shuffle``
schedule whose union satisfies (a*) and (b) with probability >= 0.99, guaranteed by the union
lower bound (solid line; the shaded band reaches down to the rigorous lower limit from the
Bonferroni-type upper bound, mostly thinner than the line); the marker says which failure
term dominates (filled: (b) for two minority classes, open: (a*) for a minority class). Dashed:
binding only the k/2 minority classes (k/2 binding samples in every batch; the majority classes
rely on shuffling). Binding all k classes needs one epoch (probability 1) for every B and R.

Regenerate: ``python -m figures.batching_epochs`` (writes ``figures/fig7_batching_epochs.png``
atomically and prints the table of values).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from figures.common import WIDTH, plt, save
from theory_checks.coverage import coverage_bounds, epochs_summary
from ufm.core.labels import step_counts

__all__ = ["compute", "draw", "main", "DEFAULT_OUT"]

NAME = "batching_epochs"
DEFAULT_OUT = Path(__file__).resolve().parent / "fig7_batching_epochs.png"
K_VALUES = (10, 100)
R_VALUES = (1, 10, 100, 1000)
B_VALUES = (3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048)
R_COLORS = {1: "#7d3c98", 10: "#2471a3", 100: "#1e8449", 1000: "#c0392b"}


def compute(k_values: Sequence[int] = K_VALUES, r_values: Sequence[float] = R_VALUES,
            b_values: Sequence[int] = B_VALUES, n_min: int = 5, p: float = 0.99) -> dict:
    """Epochs needed per (k, R, B): shuffle (guaranteed, at_least, bottleneck) and binding the
    minority classes only (guaranteed)."""
    rows = []
    for k in k_values:
        for R in r_values:
            counts = step_counts(k, R, 0.5, n_min)
            n = int(counts.sum())
            small = [i for i in range(k) if counts[i] == counts.min()]
            for b in b_values:
                s = epochs_summary(counts, b, p)
                e = s["guaranteed"]
                bottleneck = coverage_bounds(counts, b, e).bottleneck if e and e > 1 else "none"
                part = None
                if len(small) < k:
                    part = epochs_summary(counts, b, p, binding_classes=small)["guaranteed"]
                rows.append({"k": k, "R": R, "n_min": n_min, "n_samples": n, "batch_size": b,
                             "epochs": e, "at_least": s["at_least"], "approx": s["approx"],
                             "bottleneck": bottleneck, "minority_binding_epochs": part})
    return {"p": p, "n_min": n_min, "rows": rows}


def draw(data: dict, path: str | Path) -> None:
    """Two panels (k = 10, 100): epochs needed against B, one line per R."""
    rows = data["rows"]
    ks = sorted({r["k"] for r in rows})
    fig, axes = plt.subplots(1, len(ks), figsize=(WIDTH, 4.6), constrained_layout=True, sharey=True)
    axes = np.atleast_1d(axes)
    for ax, k in zip(axes, ks):
        for R in sorted({r["R"] for r in rows if r["k"] == k}):
            rs = [r for r in rows if r["k"] == k and r["R"] == R and r["epochs"] is not None]
            if not rs:
                continue
            color = R_COLORS.get(R, "k")
            b = np.array([r["batch_size"] for r in rs])
            e = np.array([r["epochs"] for r in rs], dtype=float)
            lo = np.array([r["at_least"] for r in rs], dtype=float)
            n = rs[0]["n_samples"]
            ax.plot(b, e, "-", color=color, lw=1.5, label=f"R = {R:g} (N = {n})")
            ax.fill_between(b, lo, e, color=color, alpha=0.25, lw=0)
            is_b = np.array([r["bottleneck"].startswith("(b)") for r in rs])
            ax.plot(b[is_b], e[is_b], "o", color=color, ms=3.5)
            ax.plot(b[~is_b], e[~is_b], "o", mfc="white", color=color, ms=3.5)
            rp = [r for r in rs if r["minority_binding_epochs"] is not None]
            if rp:
                ax.plot([r["batch_size"] for r in rp], [r["minority_binding_epochs"] for r in rp], "--",
                        color=color, lw=1.0, alpha=0.8)
        ax.axhline(1, color="0.3", lw=0.8, ls=":")
        ax.text(3.2, 1.25, "binding all k classes: 1 epoch", fontsize=7.5, color="0.3")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("batch size B")
        ax.set_title(f"k = {k} (STEP, n_min = {data['n_min']})")
        ax.grid(True, which="major", alpha=0.3)
    axes[0].set_ylabel(f"epochs for P((a*) and (b)) >= {data['p']:g}")
    handles, labels = axes[0].get_legend_handles_labels()
    handles += [plt.Line2D([], [], color="k", marker="o", ls="", ms=3.5),
                plt.Line2D([], [], color="k", marker="o", mfc="white", ls="", ms=3.5),
                plt.Line2D([], [], color="k", ls="--", lw=1.0)]
    labels += ["bottleneck: (b), two minority classes", "bottleneck: (a*), a minority class",
               "binding the k/2 minority classes only"]
    fig.legend(handles, labels, fontsize=7.5, loc="outside lower center", ncol=4)
    fig.suptitle(f"Shuffled epochs needed for conditions (a*) and (b) with probability {data['p']:g}\n"
                 "(line: guaranteed by the union bound; band: rigorous range of the exact number)",
                 fontsize=10)
    save(fig, path)


def _table(data: dict) -> str:
    lines = [f"{'k':>4} {'R':>6} {'N':>7} {'B':>5} {'epochs':>12} {'at_least':>12} "
             f"{'minority-binding':>16}  bottleneck"]
    for r in data["rows"]:
        lines.append(f"{r['k']:>4} {r['R']:>6g} {r['n_samples']:>7} {r['batch_size']:>5} "
                     f"{str(r['epochs']):>12} {str(r['at_least']):>12} "
                     f"{str(r['minority_binding_epochs']):>16}  {r['bottleneck']}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m figures.batching_epochs [--out PNG] [--quiet]``: compute, print, draw."""
    from ufm.cli.args import Parser, output_file

    p = Parser(prog="python -m figures.batching_epochs",
               description="Figure 7: shuffled epochs needed for the batch conditions (issue 38).")
    p.add_argument("--out", type=output_file, default=str(DEFAULT_OUT),
                   help=f"PNG to write atomically (default {DEFAULT_OUT.name} beside this module)")
    p.add_argument("--quiet", action="store_true", help="do not print the table")
    args = p.parse_args(argv)
    data = compute()
    draw(data, args.out)
    if not args.quiet:
        print(_table(data))
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
