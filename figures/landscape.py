"""Figure 5: where plain local runs end, without and with ReLU (the landscape).

Data: ``ufm.solvers.landscape.local_runs`` (one random Gaussian start per seed, L-BFGS on the sphere
without ReLU, projected gradient on the non-negative sphere with ReLU; no restarts, no rotation,
no knowledge of the optimum) on a small STEP problem, and the reduced relaxation's lower bound
for each case. Plotted: the relative gap ``(loss - bound)/|bound|`` of every run (clipped at
1e-12), and, for the worst run with ReLU, how each class's samples spread over the axes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import ufm
from figures.common import COLORS, WIDTH, plt, reduced_bound, save
from ufm.solvers.landscape import local_runs

NAME = "landscape"
CLIP = 1e-12
TOL = 1e-6


def axis_mass(z: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """``m[c, j]`` = mean over class c of ``z_ij^2`` (rows of unit norm: each row of m sums to 1)."""
    out = np.zeros((k, z.shape[1]))
    for c in range(k):
        out[c] = np.mean(z[labels == c] ** 2, axis=0)
    return out


def compute(cfg: dict) -> dict:
    k, tau, d = cfg["k"], cfg["tau"], cfg["d"]
    counts = ufm.step_counts(k, cfg["R"], n_min=cfg["n_min"]).tolist()
    labels = ufm.labels_from_counts(counts)
    seeds = list(range(cfg["starts"]))
    summary = {"counts": counts, "d": d, "tau": tau, "starts": len(seeds), "tolerance": TOL,
               "of_loss": ufm.of_loss(counts, tau)}
    plot = {"counts": counts, "k": k, "d": d, "tau": tau}
    for nonneg, tag in ((False, "norelu"), (True, "relu")):
        bound = reduced_bound(counts, tau, nonneg)
        runs = local_runs(counts, d=d, tau=tau, nonneg=nonneg, seeds=seeds, steps=cfg["steps"])
        loss = np.array([r.loss for r in runs])
        gap = (loss - bound.lower_bound) / abs(bound.lower_bound)
        grams = np.array([ufm.class_mean_gram(r.z, labels, k) for r in runs])
        good = gap <= TOL
        entry = {
            "lower_bound": bound.lower_bound,
            "bound_ok": bool(bound.ok),
            "fraction_within_tol": float(good.mean()),
            "n_within_tol": int(good.sum()),
            "rel_gap": gap.tolist(),
            "rel_gap_max": float(gap.max()),
            "rel_gap_min": float(gap.min()),
            "grad_norm_max": float(max(r.grad_norm for r in runs)),
            "steps_median": float(np.median([r.steps for r in runs])),
            "steps_max": int(max(r.steps for r in runs)),
            # all runs that reach the bound share one class-mean Gram (uniqueness up to rotation)
            "gram_spread_at_bound": float(np.ptp(grams[good], axis=0).max()) if good.any() else None,
            "delta_gm_of": [ufm.delta_gm(g, "of") for g in grams],
        }
        if nonneg:
            worst = int(np.argmax(gap))
            stuck = ~good
            entry["stuck_gaps"] = sorted(gap[stuck].tolist())
            entry["stuck_grad_norms"] = [runs[i].grad_norm for i in np.flatnonzero(stuck)]
            entry["worst"] = {"seed": seeds[worst], "rel_gap": float(gap[worst]),
                              "grad_norm": runs[worst].grad_norm, "steps": runs[worst].steps,
                              "axis_mass": axis_mass(runs[worst].z, labels, k).round(4).tolist()}
            plot["worst_mass"] = axis_mass(runs[worst].z, labels, k)
            plot["worst_gap"] = float(gap[worst])
        summary[tag] = entry
        plot[tag] = {"gap": gap, "fraction": float(good.mean())}
    return {"summary": summary, "plot": plot}


def draw(data: dict, path: Path) -> None:
    p = data["plot"]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(WIDTH, 3.6), gridspec_kw={"width_ratios": [1.6, 1]},
                                  constrained_layout=True)
    bins = np.logspace(np.log10(CLIP), 0, 25)
    data_ = [np.clip(p[tag]["gap"], CLIP, 1.0) for tag in ("norelu", "relu")]
    labels = [f"without ReLU: {p['norelu']['fraction']:.0%} at the bound",
              f"with ReLU: {p['relu']['fraction']:.0%} at the bound"]
    ax.hist(data_, bins=bins, color=[COLORS["norelu"], COLORS["relu"]], label=labels, edgecolor="k", lw=0.4)
    ax.set_yscale("log")
    ax.set_ylim(0.7, len(p["relu"]["gap"]) * 6)
    ax.axvline(TOL, color="0.3", ls="--", lw=1)
    ax.text(TOL * 1.5, 1.0, "tolerance 1e-6", fontsize=8, color="0.3", rotation=90, va="bottom")
    stuck = np.asarray(p["relu"]["gap"])[np.asarray(p["relu"]["gap"]) > TOL]
    if stuck.size:
        at = bins[np.searchsorted(bins, np.median(stuck)) - 1:][:2]  # the bin of the median
        ax.annotate(f"{stuck.size} stuck runs (ReLU)", xy=(np.sqrt(at[0] * at[-1]), 1.5),
                    xytext=(1e-5, len(p["relu"]["gap"]) / 4), fontsize=8, color=COLORS["relu"],
                    arrowprops=dict(arrowstyle="->", color=COLORS["relu"]))
    ax.set_xscale("log")
    ax.set_xlabel(f"relative gap (final loss - bound) / |bound|, clipped at {CLIP:g}")
    ax.set_ylabel("number of random starts")
    n = len(p["relu"]["gap"])
    ax.set_title(f"{n} plain local runs per case\ncounts {p['counts']}, d = {p['d']}, tau = {p['tau']:g}",
                 fontsize=10)
    ax.legend(fontsize=8, loc="upper center")
    m = p.get("worst_mass")
    im = ax2.imshow(m, cmap="Greys", vmin=0, vmax=1, aspect="auto")
    ax2.set_xlabel("axis j")
    ax2.set_ylabel("class (majority first)")
    k, dd = m.shape
    ax2.set_xticks(range(0, dd, max(1, dd // 5)))
    ax2.set_yticks(range(0, k, max(1, k // 5)))
    gap = f"gap {p['worst_gap']:.1e}" if p["worst_gap"] > TOL else "at the bound"
    ax2.set_title(f"worst run with ReLU ({gap}):\nclass mass on each axis", fontsize=10)
    cb = fig.colorbar(im, ax=ax2, shrink=0.9)
    cb.set_label(r"mean of $z_{ij}^2$ over the class", fontsize=8)
    fig.suptitle("SC-loss landscape: plain local runs vs the certified lower bound")
    save(fig, path)
