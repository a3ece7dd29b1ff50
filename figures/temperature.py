"""Figure 9: how the temperature sets the speed of plain gradient descent to the OF (issue 38, 2).

``python -m figures.temperature [--seeds 3] [--max-epochs 20000] [--quick]`` runs
``ufm.solvers.gd.gd_epochs`` (projected gradient descent on the UFM+ problem, one fixed step
0.05 on the sum-convention loss for every tau, d = 2k, random starts) at k = 10, STEP R = 10
(n_min = 5, N = 275) and R = 100 (n_min = 2, N = 1010) over tau in 0.03 .. 1, and plots the
median epochs to Delta_GM_OF <= 0.1 and <= 0.01 (runs that do not get there within the cap are
counted and drawn at the cap), beside the closed-form scale ``1 / (step g_min)`` of the KKT
slopes at the OF (``ufm.solvers.gd.of_kkt_slopes``). Writes ``figures/fig9_temperature.png``
and ``figures/temperature.json`` (atomically).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from figures.common import WIDTH, plt, save
from ufm.cli.io import write_json_atomic
from ufm.core.labels import step_counts
from ufm.core.versions import library_versions
from ufm.solvers.gd import DEFAULT_STEP, gd_epochs, of_kkt_slopes

HERE = Path(__file__).resolve().parent
TAUS = (0.03, 0.05, 0.07, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0)
PROBLEMS = {"R = 10 (N = 275)": (10, 5), "R = 100 (N = 1010)": (100, 2)}


def sweep(seeds: int, max_epochs: int, taus=TAUS, problems=PROBLEMS, progress=None) -> dict:
    """Every (problem, tau, seed) run and the closed-form scale, as a JSON-able dict."""
    out = {"config": {"k": 10, "d": 20, "step": DEFAULT_STEP, "seeds": seeds, "max_epochs": max_epochs,
                      "taus": list(taus), "problems": {k: {"R": r, "n_min": m} for k, (r, m) in problems.items()}},
           "versions": library_versions(), "problems": {}}
    for name, (r, n_min) in problems.items():
        counts = step_counts(10, r, n_min=n_min)
        rows = []
        for tau in taus:
            runs = [gd_epochs(counts, tau, d=20, seed=s, max_epochs=max_epochs) for s in range(seeds)]
            slopes = of_kkt_slopes(counts, tau)
            g_min = float(slopes[~np.eye(10, dtype=bool)].min())
            rows.append({"tau": tau, "g_min": g_min, "scale_epochs": 1.0 / (DEFAULT_STEP * g_min),
                         "epochs_0.1": [x["epochs"][0.1] for x in runs],
                         "epochs_0.01": [x["epochs"][0.01] for x in runs],
                         "final_delta_gm_of": [x["delta_gm_of"] for x in runs]})
            if progress:
                progress(f"{name} tau={tau:g}: epochs to 0.01 {rows[-1]['epochs_0.01']}")
        out["problems"][name] = rows
    return out


def _median(values, cap):
    v = [cap if e is None else e for e in values]
    return float(np.median(v))


def plot(data: dict, path: Path) -> None:
    cap = data["config"]["max_epochs"]
    fig, axes = plt.subplots(1, len(data["problems"]), figsize=(WIDTH, 3.4), sharey=True)
    for ax, (name, rows) in zip(np.atleast_1d(axes), data["problems"].items()):
        taus = [r["tau"] for r in rows]
        for key, style in (("epochs_0.1", "o-"), ("epochs_0.01", "s-")):
            med = [_median(r[key], cap) for r in rows]
            ax.plot(taus, med, style, label=f"median epochs to Delta_GM_OF <= {key.split('_')[1]}")
            if key == "epochs_0.01":  # how many runs did not get there (the 0.1 count is similar)
                for t, m, r in zip(taus, med, rows):
                    missed = sum(e is None for e in r[key])
                    if missed:
                        ax.annotate(f"{missed}/{len(r[key])} not reached", (t, cap), fontsize=6,
                                    rotation=90, ha="center", va="bottom",
                                    textcoords="offset points", xytext=(0, 4))
        ax.plot(taus, [min(r["scale_epochs"], 1e12) for r in rows], "k--", lw=1,
                label="1 / (step g_min), KKT slopes at the OF")
        ax.axhline(cap, color="grey", lw=0.8, ls=":")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_ylim(1, cap * 1000)
        ax.set_xlabel("tau")
        ax.set_title(f"k = 10, {name}")
    np.atleast_1d(axes)[0].set_ylabel("epochs (projected GD, step 0.05, d = 2k)")
    np.atleast_1d(axes)[0].legend(loc="lower left", fontsize=7)
    fig.tight_layout()
    save(fig, path)


def replot(folder: Path = HERE) -> None:
    """Redraw ``fig9_temperature.png`` from ``temperature.json`` (no runs)."""
    import json

    plot(json.loads((folder / "temperature.json").read_text()), folder / "fig9_temperature.png")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m figures.temperature", description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=3, help="random starts per tau (default 3)")
    p.add_argument("--max-epochs", type=int, default=20_000, help="cap per run (default 20000)")
    p.add_argument("--quick", action="store_true", help="tiny sweep (for tests)")
    p.add_argument("--replot", action="store_true", help="only redraw the PNG from --out's temperature.json")
    p.add_argument("--out", default=str(HERE), help="folder of the PNG and JSON (default figures/)")
    args = p.parse_args(argv)
    if not 1 <= args.seeds <= 100:
        p.error(f"argument --seeds: must be in [1, 100], got {args.seeds}")
    if not 1 <= args.max_epochs <= 10**7:
        p.error(f"argument --max-epochs: must be in [1, 1e7], got {args.max_epochs}")
    out = Path(args.out)
    if not out.is_dir():
        p.error(f"argument --out: {out} is not a folder")
    if args.replot:
        if not (out / "temperature.json").is_file():
            p.error(f"argument --replot: {out / 'temperature.json'} does not exist")
        replot(out)
        print(f"wrote {out / 'fig9_temperature.png'}")
        return 0
    kwargs = {"taus": (0.1, 0.5), "problems": {"R = 10 (N = 110)": (10, 2)}} if args.quick else {}
    data = sweep(args.seeds, args.max_epochs, progress=lambda s: print(s, file=sys.stderr, flush=True),
                 **kwargs)
    write_json_atomic(out / "temperature.json", data)
    plot(data, out / "fig9_temperature.png")
    print(f"wrote {out / 'fig9_temperature.png'} and {out / 'temperature.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
