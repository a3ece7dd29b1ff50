"""Figure 1: class-mean cosine heatmaps, with ReLU (OF) vs without (broken symmetry) vs ETF.

Data: ``ufm.solve`` at STEP imbalance (k classes, ratio R) with and without ReLU, and the
balanced problem (R = 1) without ReLU; every solve is certified against the reduced relaxation.
The no-ReLU panel is the solver's class-mean Gram; the relaxation's class-level matrix gives the
same cosines (recorded: their largest difference).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import ufm
from figures.common import WIDTH, certified_solve, class_cosines, plt, save, step_groups, three_cosines

NAME = "heatmaps"


def compute(cfg: dict) -> dict:
    k, R, n_min, tau = cfg["k"], cfg["R"], cfg["n_min"], cfg["tau"]
    counts = ufm.step_counts(k, R, n_min=n_min).tolist()
    balanced = ufm.step_counts(k, 1, n_min=n_min).tolist()
    panels = {
        "relu": certified_solve(counts, d=k, tau=tau, nonneg=True),
        "norelu": certified_solve(counts, d=k, tau=tau, nonneg=False),
        "etf": certified_solve(balanced, d=k, tau=tau, nonneg=False),
    }
    grams = {name: np.asarray(c.result.metrics["class_mean_gram"]) for name, c in panels.items()}
    cert_cos = class_cosines(panels["norelu"].bound.class_gram, counts)
    summary = {
        "counts": counts,
        "balanced_counts": balanced,
        "panels": {name: c.record() for name, c in panels.items()},
        "gram": {name: g.round(6).tolist() for name, g in grams.items()},
        "cosines": {name: three_cosines(g, counts if name != "etf" else balanced)
                    for name, g in grams.items()},
        "relu_max_abs_from_identity": float(np.abs(grams["relu"] - np.eye(k)).max()),
        "etf_max_abs_from_etf": float(np.abs(grams["etf"] - ufm.etf_gram(k)).max()),
        "norelu_max_abs_solver_vs_certificate": float(np.abs(grams["norelu"] - cert_cos).max()),
        "certified": all(c.certified for c in panels.values()),
    }
    return {"summary": summary, "plot": {"grams": grams, "counts": counts, "k": k, "R": R, "tau": tau}}


def _annotate_blocks(ax, g, counts):
    """Write the value of each majority/minority block (off-diagonal entries) in the block."""
    maj, mino = step_groups(counts)
    if len(maj) == len(counts):  # balanced: one value
        groups = [("", maj)]
    else:
        groups = [("maj", maj), ("min", mino)]
    for a, (na, ia) in enumerate(groups):
        for b, (nb, ib) in enumerate(groups):
            if b > a:
                continue
            vals = [g[i, j] for i in ia for j in ib if i != j]
            if not vals:
                continue
            # lower-left part of the block, away from the diagonal
            x = ib.min() + (len(ib) - 1) * (0.15 if a == b else 0.5)
            y = ia.min() + (len(ia) - 1) * (0.85 if a == b else 0.5)
            ax.text(x, y, f"{np.mean(vals):+.2f}", ha="center", va="center", fontsize=10,
                    fontweight="bold", bbox=dict(boxstyle="round,pad=0.2", fc="white", ec="0.5", alpha=0.85))
    if len(groups) == 2:
        edge = len(maj) - 0.5
        ax.axhline(edge, color="k", lw=0.8)
        ax.axvline(edge, color="k", lw=0.8)


def draw(data: dict, path: Path) -> None:
    p = data["plot"]
    k, R = p["k"], p["R"]
    fig, axes = plt.subplots(1, 3, figsize=(WIDTH, 3.3), constrained_layout=True)
    titles = {
        "relu": f"with ReLU, R = {R:g}\n(orthogonal frame)",
        "norelu": f"without ReLU, R = {R:g}\n(broken symmetry)",
        "etf": "without ReLU, balanced R = 1\n(simplex ETF)",
    }
    im = None
    for ax, name in zip(axes, ("relu", "norelu", "etf")):
        g = p["grams"][name]
        im = ax.imshow(g, cmap="RdBu_r", vmin=-1, vmax=1)
        ax.set_title(titles[name], fontsize=10)
        ax.set_xlabel("class")
        ax.set_xticks(range(0, k, max(1, k // 5)))
        ax.set_yticks(range(0, k, max(1, k // 5)))
        _annotate_blocks(ax, g, p["counts"] if name != "etf" else [1] * k)
    axes[0].set_ylabel("class (majority first)")
    cb = fig.colorbar(im, ax=axes, shrink=0.85)
    cb.set_label("cosine between class means")
    fig.suptitle(f"Class-mean cosines at the certified optimum (k = {k}, STEP, tau = {p['tau']:g})")
    save(fig, path)
