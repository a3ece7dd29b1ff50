"""Figure 8 (issue 38): Delta_GM_OF of the optimum against the pre-activation radius r, per activation.

``python -m figures.activations`` writes ``figures/fig8_activations.png`` and
``figures/activations.json`` (each atomically: a temp file in the same folder, then
``os.replace``); ``--out DIR`` writes them to ``DIR`` instead.

Data: STEP imbalance, k = 10, R in {10, 100}, n_min = 5, tau = 0.1, d = k; for each activation
and radius, ``ufm.solvers.activation.solve_activation`` (one vector per class, ``method="auto"``):

- relu: ``solve(nonneg=True)``, certified by the UFM+ certificate: the OF at every r (theorem).
- none, leaky_relu (slope 0.01), elu, gelu: every direction is reachable (theorem), so the
  optimum is the no-ReLU one at every r: ``solve(nonneg=False)`` mapped back to pre-activations
  with ``||h|| = r`` and certified in sample space by the no-ReLU certificate. GELU's preimage
  leaves float64 at large r (``ufm.core.activations``, Theorem 2): the JSON records where.
- softplus: local search (L-BFGS from random starts and the OF start); no certificate applies;
  the JSON has the proven bracket ``L*_OF < loss`` and the closed-form upper bound.

Dashed lines: the best of the random starts alone (no warm start), i.e. what plain local search
finds, for the activations whose optimum is the no-ReLU one (measured, not proved).

The class-vector (collapsed) form is proved optimal for relu/none/leaky_relu/elu/gelu by the
sample-space certificate at every point (``certified`` in the JSON). For softplus collapse is a
conjecture: ``collapse_check`` solves a small case (k = 10, R = 10, n_min = 2, N = 110) over
every sample from random starts and compares with the class-vector answer.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

import ufm
from figures.common import WIDTH, plt, save
from ufm.cli.io import write_json_atomic
from ufm.core.problem import Problem

NAME = "activations"
ROOT = Path(__file__).resolve().parent
PNG = "fig8_activations.png"
JSON = "activations.json"

CONFIG: dict[str, Any] = {
    "k": 10,
    "R": [10, 100],
    "n_min": 5,
    "tau": 0.1,
    "radii": [0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0],
    "activations": ["relu", "none", "leaky_relu", "elu", "gelu", "softplus"],
    "slope": 0.01,
    "starts": 4,
    "seed": 0,
    "collapse_check": {"k": 10, "R": 10, "n_min": 2, "radii": [1.0, 10.0], "starts": 3},
}

STYLE = {
    "relu": ("#c0392b", "-", "o", "ReLU (orthant): OF, theorem"),
    "none": ("#2471a3", "-", "s", "none: no-ReLU optimum"),
    "leaky_relu": ("#17a589", "none", "^", "Leaky ReLU 0.01: = no-ReLU, theorem"),
    "elu": ("#7d3c98", "none", "v", "ELU: = no-ReLU, theorem"),
    "gelu": ("#d68910", "none", "D", "GELU: = no-ReLU, theorem"),
    "softplus": ("#1e8449", "-", "o", "softplus: solver (no certificate)"),
}


def _row(res, R: int) -> dict[str, Any]:
    a = res.activation
    ls = a.get("local_search") or {}
    cert = res.certificate
    return {
        "R": R, "activation": a["name"], "slope": a["slope"], "radius": a["radius"],
        "loss": res.loss, "optimum": res.optimum, "optimum_kind": res.optimum_kind,
        "rel_gap": res.rel_gap, "status": res.status,
        "delta_gm_of": res.metrics["delta_gm_of"], "delta_gm_etf": res.metrics["delta_gm_etf"],
        "certificate_applies": a["certificate_applies"],
        "certified": None if cert is None else bool(cert["certified"]),
        "certificate_rel_gap": None if cert is None else cert["rel_gap"],
        "sphere_lower_bound": a["sphere_lower_bound"], "of_loss": a["of_loss"],
        "lower_bound": a["lower_bound"], "closed_form_upper_bound": a.get("closed_form_upper_bound"),
        "closed_form_lower_bound": a.get("closed_form_lower_bound"),
        "entry_bound": a.get("entry_bound"), "realization_error": a.get("realization_error"),
        "random_start_loss": ls.get("best_random_loss"),
        "random_start_delta_gm_of": ls.get("best_random_delta_gm_of"),
        "best_start": ls.get("best_start"),
    }


def collapse_check(cfg: dict, tau: float, seed: int) -> list[dict[str, Any]]:
    """Softplus over every sample vs over class vectors, on a small case: the sample-space local
    search (random starts) should find nothing below the class-vector answer, and collapse."""
    from ufm.solvers.activation import local_search, realized_features, solve_activation

    counts = ufm.step_counts(cfg["k"], cfg["R"], n_min=cfg["n_min"]).tolist()
    problem = Problem.create(counts, tau=tau, d=cfg["k"])
    labels, k, d = problem.labels, problem.k, problem.d
    out = []
    for r in cfg["radii"]:
        starts = np.stack([np.random.default_rng(seed + i).standard_normal((labels.size, d))
                           for i in range(cfg["starts"])])
        samples = local_search(problem, "softplus", r, starts, method="samples")
        classes = solve_activation(counts, "softplus", radius=r, tau=tau, seed=seed,
                                   starts=cfg["starts"])
        best = int(np.argmin(samples["loss"]))
        u = samples["u"][best]
        z = realized_features(r * u / np.linalg.norm(u, axis=1, keepdims=True), "softplus")
        spread = max(float(1.0 - np.min(z[labels == c] @ z[labels == c].T)) for c in range(k))
        out.append({"counts": counts, "radius": r, "samples_loss": float(samples["loss"][best]),
                    "classes_loss": classes.loss,
                    "rel_difference": float((samples["loss"][best] - classes.loss) / classes.loss),
                    "max_within_class_one_minus_cosine": spread,
                    "samples_losses": [float(v) for v in samples["loss"]]})
    return out


def compute(cfg: dict = CONFIG, progress=None) -> dict[str, Any]:
    """Every number of the figure (see the module docstring)."""
    from ufm.solvers.activation import solve_activation  # loads JAX

    t0 = time.perf_counter()
    rows = []
    for R in cfg["R"]:
        counts = ufm.step_counts(cfg["k"], R, n_min=cfg["n_min"]).tolist()
        for name in cfg["activations"]:
            for r in cfg["radii"]:
                res = solve_activation(counts, name, radius=r, tau=cfg["tau"], d=cfg["k"],
                                       slope=cfg["slope"] if name == "leaky_relu" else None,
                                       seed=cfg["seed"], starts=cfg["starts"])
                rows.append(_row(res, R))
                if progress:
                    progress(rows[-1])
    check = collapse_check(cfg["collapse_check"], cfg["tau"], cfg["seed"])
    return {"config": cfg, "rows": rows, "collapse_check": check,
            "seconds": time.perf_counter() - t0}


def _series(data: dict, R: int, name: str, key: str) -> tuple[list[float], list[float]]:
    pts = [(p["radius"], p[key]) for p in data["rows"] if p["R"] == R and p["activation"] == name
           and p[key] is not None]
    return [x for x, _ in pts], [y for _, y in pts]


def draw(data: dict, path: Path) -> None:
    cfg = data["config"]
    fig, axes = plt.subplots(1, 2, figsize=(WIDTH, 5.0), sharey=True, layout="constrained")
    for ax, R in zip(axes, cfg["R"]):
        for name in cfg["activations"]:
            color, ls, marker, label = STYLE[name]
            x, y = _series(data, R, name, "delta_gm_of")
            ax.plot(x, y, linestyle=ls, marker=marker, color=color, ms=4 if ls == "none" else 3,
                    lw=1.4, label=label, mfc="none" if ls == "none" else color)
            # points whose float64 realization or certificate failed: crossed out
            bad = [(p["radius"], p["delta_gm_of"]) for p in data["rows"] if p["R"] == R and
                   p["activation"] == name and p["certificate_applies"] and not p["certified"]]
            if bad:
                ax.plot(*zip(*bad), "x", color=color, ms=8, mew=1.5)
            if name in ("leaky_relu", "elu", "gelu"):
                x, y = _series(data, R, name, "random_start_delta_gm_of")
                ax.plot(x, y, "--", color=color, lw=1.0, alpha=0.8,
                        label=f"{name}: best random start" if R == cfg["R"][0] else None)
        ax.set_xscale("log")
        ax.set_xlabel(r"radius $r = \|h\|$ of the pre-activation")
        ax.set_title(f"R = {R}, k = {cfg['k']}, n_min = {cfg['n_min']}, tau = {cfg['tau']:g}")
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel(r"$\Delta_{GM}$ to the OF of the optimum")
    axes[0].set_ylim(-0.03, 1.25)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=7.5, loc="outside lower center", ncol=3)
    fig.suptitle(r"Features $a(h)/\|a(h)\|$, $\|h\| = r$. Leaky ReLU, ELU and GELU reach every direction: their "
                 "optimum is the no-ReLU one (certified)" "\n"
                 "x: GELU's preimage of it leaves float64 (best float64 point shown); softplus tends to the OF",
                 fontsize=9)
    save(fig, path)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m figures.activations", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT), help="folder for the PNG and the JSON (default figures/)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    def progress(row):
        print(f"R={row['R']:<4} {row['activation']:<10} r={row['radius']:<7g} "
              f"Delta_GM_OF={row['delta_gm_of']:.4f} loss={row['loss']:.10f} status={row['status']}"
              f" certified={row['certified']}", file=sys.stderr, flush=True)

    data = compute(CONFIG, progress)
    write_json_atomic(out / JSON, data)
    draw(data, out / PNG)
    print(f"wrote {out / PNG} and {out / JSON} in {data['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
