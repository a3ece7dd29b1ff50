"""Figure 2: Delta_GM to the OF and to the ETF against the imbalance ratio R, with and without ReLU.

Data: for each R, ``ufm.solve`` (STEP, k classes, n_min) with and without ReLU, each certified
against the reduced relaxation; samples are optimized one by one up to ``samples_max_n`` samples
and as class vectors above (``method="classes"``: exact among collapsed points; the certificate
decides that the collapsed point is optimal). Lines: Delta_GM of the class-mean cosines the
relaxation's class-level matrix gives on a finer R grid (no solver involved).
"""

from __future__ import annotations

from pathlib import Path


import ufm
from figures.common import (COLORS, WIDTH, certified_solve, class_cosines, plt, reduced_bound, save,
                            solve_method)

NAME = "delta_gm"


def compute(cfg: dict) -> dict:
    k, n_min, tau = cfg["k"], cfg["n_min"], cfg["tau"]
    points = []
    for R in cfg["R"]:
        counts = ufm.step_counts(k, R, n_min=n_min).tolist()
        for nonneg in (True, False):
            c = certified_solve(counts, d=k, tau=tau, nonneg=nonneg,
                                method=solve_method(sum(counts), cfg.get("samples_max_n")))
            points.append({"R": R, **c.record()})
    lines = {"R": [], "relu_of": [], "relu_etf": [], "norelu_of": [], "norelu_etf": []}
    for R in cfg["R_certificate"]:
        counts = ufm.step_counts(k, R, n_min=n_min).tolist()
        lines["R"].append(R)
        for nonneg, tag in ((True, "relu"), (False, "norelu")):
            cos = class_cosines(reduced_bound(counts, tau, nonneg).class_gram, counts)
            lines[f"{tag}_of"].append(ufm.delta_gm(cos, "of"))
            lines[f"{tag}_etf"].append(ufm.delta_gm(cos, "etf"))
    summary = {
        "points": points,
        "certificate_lines": lines,
        "certified": all(p["certified"] for p in points),
        "max_relu_delta_gm_of": max(p["delta_gm_of"] for p in points if p["nonneg"]),
    }
    return {"summary": summary, "plot": {"points": points, "lines": lines, "k": k, "n_min": n_min, "tau": tau}}


def draw(data: dict, path: Path) -> None:
    p = data["plot"]
    fig, axes = plt.subplots(1, 2, figsize=(WIDTH, 3.4), sharey=True, constrained_layout=True)
    lines = p["lines"]
    for ax, target, label in zip(axes, ("of", "etf"), ("orthogonal frame (OF)", "simplex ETF")):
        for nonneg, tag, name in ((True, "relu", "with ReLU"), (False, "norelu", "without ReLU")):
            pts = [q for q in p["points"] if q["nonneg"] == nonneg]
            ax.plot(lines["R"], lines[f"{tag}_{target}"], "-", color=COLORS[tag], lw=1.2, alpha=0.6,
                    label=f"{name}: relaxation")
            cert = [q for q in pts if q["certified"]]
            unc = [q for q in pts if not q["certified"]]
            ax.plot([q["R"] for q in cert], [q[f"delta_gm_{target}"] for q in cert], "o",
                    color=COLORS[tag], ms=5, label=f"{name}: solver (certified)")
            if unc:
                ax.plot([q["R"] for q in unc], [q[f"delta_gm_{target}"] for q in unc], "x",
                        color=COLORS[tag], ms=7, label=f"{name}: solver (NOT certified)")
        ax.set_xscale("log")
        ax.set_xlabel("imbalance ratio R (majority / minority size)")
        ax.set_title(f"distance to the {label}")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel(r"$\Delta_{GM}$ (Frobenius, normalized Grams)")
    axes[1].legend(loc="upper left", fontsize=8)
    fig.suptitle(f"Class-mean geometry vs imbalance (STEP, k = {p['k']}, n_min = {p['n_min']}, tau = {p['tau']:g})")
    save(fig, path)
