"""Figure 3: the three class-mean cosines against R without ReLU, from the reduced certificate.

Data: the symmetry-reduced relaxation (a k x k SDP, milliseconds) on a fine grid of R; its
class-level matrix ``A`` gives the cosines between class means (majority-majority,
majority-minority, minority-minority). Markers: the certified solver points of figure 2.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import ufm
from figures.common import WIDTH, certified_solve, class_cosines, plt, reduced_bound, save, solve_method, three_cosines

NAME = "cosines"

KEYS = (("maj_maj", "majority - majority", "#1f618d"), ("maj_min", "majority - minority", "#b03a2e"),
        ("min_min", "minority - minority", "#239b56"))


def compute(cfg: dict) -> dict:
    k, n_min, tau = cfg["k"], cfg["n_min"], cfg["tau"]
    rows = []
    grid = sorted(set(cfg["R"]) | set(cfg.get("R_solver", [])) | set(cfg.get("report_R", [])))
    for R in grid:
        counts = ufm.step_counts(k, R, n_min=n_min).tolist()
        bound = reduced_bound(counts, tau, False)
        cos = class_cosines(bound.class_gram, counts)
        rows.append({"R": R, "counts": counts, "ok": bool(bound.ok),
                     "within_class_min": float(np.min(np.diag(bound.class_gram))),
                     **three_cosines(cos, counts)})
    solver = []
    for R in cfg.get("R_solver", []):
        counts = ufm.step_counts(k, R, n_min=n_min).tolist()
        c = certified_solve(counts, d=k, tau=tau, nonneg=False,
                            method=solve_method(sum(counts), cfg.get("samples_max_n")))
        solver.append({"R": R, "certified": c.certified,
                       **three_cosines(np.asarray(c.result.metrics["class_mean_gram"]), counts)})
    at = {str(r["R"]): {key: r[key] for key, _, _ in KEYS} for r in rows if r["R"] in cfg.get("report_R", [])}
    summary = {
        "k": k, "n_min": n_min, "tau": tau,
        "etf_cosine": -1.0 / (k - 1),
        "rows": rows,
        "at_R": at,
        "solver_points": solver,
        "all_ok": all(r["ok"] for r in rows),
        "max_solver_vs_certificate": max(
            (abs(s[key] - next(r[key] for r in rows if r["R"] == s["R"])) for s in solver for key, _, _ in KEYS
             if any(r["R"] == s["R"] for r in rows)), default=None),
    }
    return {"summary": summary, "plot": summary}


def draw(data: dict, path: Path) -> None:
    p = data["plot"]
    rows = p["rows"]
    fig, ax = plt.subplots(figsize=(WIDTH * 0.8, 3.6), constrained_layout=True)
    r = [q["R"] for q in rows]
    for key, label, color in KEYS:
        ax.plot(r, [q[key] for q in rows], "-", color=color, lw=1.8, label=label)
        pts = p["solver_points"]
        if pts:
            ax.plot([q["R"] for q in pts], [q[key] for q in pts], "o", color=color, ms=5, mfc="none")
    if p["solver_points"]:
        ax.plot([], [], "o", color="0.3", mfc="none", label="certified solver points")
    ax.axhline(p["etf_cosine"], color="0.4", ls="--", lw=1, label=f"ETF: -1/(k-1) = {p['etf_cosine']:.3f}")
    ax.axhline(0.0, color="0.4", ls=":", lw=1, label="orthogonal (OF)")
    ax.set_xscale("log")
    ax.set_xlabel("imbalance ratio R (majority / minority size)")
    ax.set_ylabel("cosine between class means")
    ax.set_title(f"Without ReLU: class-mean cosines from the reduced certificate\n"
                 f"(STEP, k = {p['k']}, n_min = {p['n_min']}, tau = {p['tau']:g})")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    save(fig, path)
