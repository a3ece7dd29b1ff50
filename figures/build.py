"""Compute and draw the figures and write ``summary.json`` (run by ``python -m figures.make``).

Each figure module has a pure ``compute(cfg) -> {"summary": ..., "plot": ...}`` (the numbers,
from certified solutions where the math allows) and ``draw(data, path)`` (matplotlib, Agg).
``make(names, out, quick)`` runs them: the key numbers of every figure, the configuration and
the library versions go to ``summary.json`` in the output folder (written atomically; the
entries of the other figures already there are kept when the mode matches). ``config(quick)``
gives the sizes: ``quick`` tiny ones (the tests run them), else the README's. The command line
is ``figures.make_cmd``.

>>> sorted(config(quick=True)) == sorted(FIGURES)
True
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from ufm.cli.io import write_json_atomic
from ufm.core.versions import library_versions

from figures import batching, cosines, delta_gm, graf_toy, heatmaps, landscape

FIGURES = {  # name -> (file, module), in the order of issue 6
    "heatmaps": ("fig1_heatmaps.png", heatmaps),
    "delta_gm": ("fig2_delta_gm.png", delta_gm),
    "cosines": ("fig3_cosines.png", cosines),
    "batching": ("fig4_batching.png", batching),
    "landscape": ("fig5_landscape.png", landscape),
    "graf_toy": ("fig6_graf_toy.png", graf_toy),
}


def _r_grid(lo: float, hi: float, n: int, n_min: int) -> list[float]:
    """``n`` log-spaced R values rounded so that ``R * n_min`` is an integer (duplicates dropped)."""
    return sorted({round(float(x) * n_min) / n_min for x in np.logspace(np.log10(lo), np.log10(hi), n)})


def config(quick: bool) -> dict:
    """Per-figure configuration (``quick``: tiny sizes for the tests)."""
    if quick:
        k, n_min, tau = 4, 3, 0.1
        return {
            "heatmaps": {"k": k, "R": 10, "n_min": n_min, "tau": tau},
            "delta_gm": {"k": k, "n_min": n_min, "tau": tau, "R": [1, 10],
                         "R_certificate": [1, 2, 5, 10], "samples_max_n": None},
            "cosines": {"k": k, "n_min": n_min, "tau": tau, "R": _r_grid(1, 20, 8, n_min),
                        "R_solver": [1, 10], "report_R": [1, 10], "samples_max_n": None},
            "batching": {"k": 4, "R": 2, "n_min": 3, "tau": tau, "batch_size": 6, "epochs": 3,
                         "seeds": [0], "schedules": list(batching.SCHEDULES), "dual_certificate": False},
            "landscape": {"k": 4, "R": 3, "n_min": 3, "d": 4, "tau": tau, "starts": 50, "steps": 5000},
            "graf_toy": {"k": 4, "n_per_class": 10, "tau": tau, "rho_z": 1.0, "lam": 5e-3},
        }
    k, n_min, tau = 10, 5, 0.1
    r_solver = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000]
    return {
        "heatmaps": {"k": k, "R": 100, "n_min": n_min, "tau": tau},
        # sample-level solves up to N = 3000 (R <= 100); class vectors above, certified
        "delta_gm": {"k": k, "n_min": n_min, "tau": tau, "R": r_solver,
                     "R_certificate": _r_grid(1, 1000, 40, n_min), "samples_max_n": 3000},
        "cosines": {"k": k, "n_min": n_min, "tau": tau, "R": _r_grid(1, 1000, 80, n_min),
                    "R_solver": r_solver, "report_R": [1, 10, 100, 1000], "samples_max_n": 3000},
        "batching": {"k": 4, "R": 3, "n_min": 4, "tau": tau, "batch_size": 10, "epochs": 5,
                     "seeds": list(range(8)), "schedules": list(batching.SCHEDULES), "dual_certificate": True},
        "landscape": {"k": 10, "R": 10, "n_min": 2, "d": 10, "tau": tau, "starts": 200, "steps": 20000},
        "graf_toy": {"k": 4, "n_per_class": 100, "tau": tau, "rho_z": 1.0, "lam": 5e-3},
    }


def make(names: list[str], out: Path, quick: bool, log=print) -> dict:
    """Compute and draw the named figures into ``out``; return (and write) the summary."""
    out.mkdir(parents=True, exist_ok=True)
    cfg = config(quick)
    mode = "quick" if quick else "full"
    path = out / "summary.json"
    figures: dict = {}
    if path.exists():
        try:
            old = json.loads(path.read_text())
            if old.get("mode") == mode:
                figures = {n: v for n, v in old.get("figures", {}).items() if n in FIGURES}
        except (OSError, json.JSONDecodeError):
            figures = {}
    t_all = time.perf_counter()
    for name in names:
        file, module = FIGURES[name]
        t0 = time.perf_counter()
        data = module.compute(cfg[name])
        t1 = time.perf_counter()
        module.draw(data, out / file)
        t2 = time.perf_counter()
        figures[name] = {"file": file, "seconds": t2 - t0, "compute_seconds": t1 - t0,
                         "draw_seconds": t2 - t1, "config": cfg[name], **data["summary"]}
        log(f"{file}: {t2 - t0:.1f} s (compute {t1 - t0:.1f} s, draw {t2 - t1:.1f} s)")
    total = time.perf_counter() - t_all
    summary = {
        "mode": mode,
        "figures": {n: figures[n] for n in FIGURES if n in figures},
        "total_seconds_this_run": total,
        "seconds_all_figures": sum(v["seconds"] for v in figures.values()),
        "made_this_run": names,
        "versions": library_versions(),
    }
    write_json_atomic(path, summary)
    log(f"total: {total:.1f} s -> {out}")
    return summary
