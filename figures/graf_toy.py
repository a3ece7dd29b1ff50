"""Figure 6: Graf et al.'s toy example, K = 4 balanced classes on the sphere S^2 (d = 3).

Data: the SC loss without ReLU (``ufm.solve``; the optimum is the simplex ETF, a regular
tetrahedron, with the closed-form value and the reduced certificate) and the L2-regularized
cross-entropy (``ufm.solvers.ce.solve_ce``: features on the sphere of radius rho_Z, weights W; the
optimum is collapse onto the ETF with W on the aligned ETF of radius r_W, both in closed form).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import ufm
from figures.common import WIDTH, certified_solve, plt, save

NAME = "graf_toy"
CLASS_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b")


def compute(cfg: dict) -> dict:
    from ufm.solvers import ce

    k, n, tau, d = cfg["k"], cfg["n_per_class"], cfg["tau"], 3
    counts = [n] * k
    labels = ufm.labels_from_counts(counts)
    sc = certified_solve(counts, d=d, tau=tau, nonneg=False)
    ce_res = ce.solve_ce(counts, d=d, rho_z=cfg["rho_z"], lam=cfg["lam"], seed=cfg.get("seed", 0))
    r_theory = ce.ce_weight_radius(k, cfg["rho_z"], cfg["lam"])
    ce_opt = ce.ce_optimum(k, cfg["rho_z"], cfg["lam"])
    ce_gram = ufm.class_mean_gram(ce_res.z, labels, k)
    w = ce_res.w
    wn = w / np.linalg.norm(w, axis=1, keepdims=True)
    mean_dirs = ufm.core.geometry.normalize_rows(ufm.class_means(ce_res.z, labels, k))
    summary = {
        "counts": counts,
        "sc": {**sc.record(), "etf_loss": ufm.etf_loss(counts, tau),
               "max_abs_gram_minus_etf": float(np.abs(np.asarray(sc.result.metrics["class_mean_gram"])
                                                      - ufm.etf_gram(k)).max())},
        "ce": {
            "rho_z": cfg["rho_z"], "lam": cfg["lam"], "loss": ce_res.loss, "ce": ce_res.ce,
            "closed_form_optimum": ce_opt, "rel_gap": (ce_res.loss - ce_opt) / abs(ce_opt),
            "certified": bool((ce_res.loss - ce_opt) / abs(ce_opt) <= 1e-6),
            "r_w": ce_res.r_w, "r_w_theory": r_theory,
            "delta_gm_etf": ufm.delta_gm(ce_gram, "etf"), "nc1": ufm.nc1(ce_res.z, labels, k),
            "max_angle_w_vs_mean_deg": float(np.degrees(np.arccos(np.clip(np.sum(wn * mean_dirs, axis=1), -1, 1))).max()),
            "steps": ce_res.steps,
        },
    }
    summary["certified"] = bool(summary["sc"]["certified"] and summary["ce"]["certified"])
    plot = {"k": k, "n": n, "tau": tau, "labels": labels, "sc_z": np.asarray(sc.result.z),
            "ce_z": ce_res.z / cfg["rho_z"], "ce_w": w, "rho_z": cfg["rho_z"], "lam": cfg["lam"],
            "r_w": ce_res.r_w}
    return {"summary": summary, "plot": plot}


def _sphere(ax):
    u, v = np.meshgrid(np.linspace(0, 2 * np.pi, 30), np.linspace(0, np.pi, 16))
    ax.plot_wireframe(np.cos(u) * np.sin(v), np.sin(u) * np.sin(v), np.cos(v), color="0.8", lw=0.4)
    ax.set_box_aspect((1, 1, 1))
    lim = 1.25
    ax.set(xlim=(-lim, lim), ylim=(-lim, lim), zlim=(-lim, lim))
    ax.set_xlabel("$x_1$", labelpad=-8)
    ax.set_ylabel("$x_2$", labelpad=-8)
    ax.zaxis.set_rotate_label(False)
    ax.set_zlabel("$x_3$", labelpad=-8)
    ax.tick_params(labelsize=6, pad=-3)
    ax.view_init(elev=20, azim=35)


def _points(ax, z, labels, k, rng):
    for c in range(k):
        pts = z[labels == c]
        # collapsed classes: a small jitter makes the stacked points visible as a blob
        jit = pts + 0.02 * rng.standard_normal(pts.shape)
        ax.scatter(jit[:, 0], jit[:, 1], jit[:, 2], s=6, color=CLASS_COLORS[c % len(CLASS_COLORS)],
                   depthshade=False, label=f"class {c}")
        m = pts.mean(axis=0)
        m /= np.linalg.norm(m)
        ax.plot([0, m[0]], [0, m[1]], [0, m[2]], color=CLASS_COLORS[c % len(CLASS_COLORS)], lw=1.2)


def draw(data: dict, path: Path) -> None:
    p = data["plot"]
    k, labels = p["k"], p["labels"]
    rng = np.random.default_rng(0)
    fig = plt.figure(figsize=(WIDTH, 4.4))
    ax1 = fig.add_subplot(1, 2, 1, projection="3d")
    _sphere(ax1)
    _points(ax1, p["sc_z"], labels, k, rng)
    ax1.set_title(f"SC loss (tau = {p['tau']:g}): ETF\n(regular tetrahedron)", fontsize=10)
    ax2 = fig.add_subplot(1, 2, 2, projection="3d")
    _sphere(ax2)
    _points(ax2, p["ce_z"], labels, k, rng)
    w = p["ce_w"] / np.linalg.norm(p["ce_w"], axis=1, keepdims=True)
    for c in range(k):
        ax2.quiver(0, 0, 0, *(1.2 * w[c]), color="k", lw=1.0, arrow_length_ratio=0.12)
    ax2.plot([], [], "k-", label="class weights $w_c$ (direction)")
    ax2.set_title(f"CE + {p['lam']:g} ||W||$^2$: ETF, weights aligned\n"
                  f"(rho_Z = {p['rho_z']:g}, |w_c| = {p['r_w']:.2f})", fontsize=10)
    handles, names = ax2.get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=k + 1, fontsize=8, frameon=False, markerscale=2)
    fig.suptitle(f"Graf et al.'s toy example: {k * p['n']} points, K = {k}, on the sphere $S^2$", y=0.985)
    fig.subplots_adjust(left=0.0, right=1.0, bottom=0.08, top=0.84, wspace=0.0)
    save(fig, path)
