"""Shared pieces of the figures: certified solves (cached), class-level cosines, plot style.

``certified_solve`` runs ``ufm.solve`` and certifies the result against the symmetry-reduced
relaxation (``ufm.certify(method="reduced")``, a lower bound valid for every ``d``); results are
cached per problem so figures that need the same problem (the heatmaps and the Delta_GM sweep)
solve it once.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import ufm  # noqa: E402
from ufm.cli.io import save_figure_atomic  # noqa: E402

DPI = 120
WIDTH = 8.0  # inches: 960 px at DPI, shown at ~800 px in the README

STYLE = {
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "legend.fontsize": 9,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "figure.titlesize": 12,
}
plt.rcParams.update(STYLE)

COLORS = {"relu": "#c0392b", "norelu": "#2471a3", "etf": "#7d3c98", "of": "#1e8449"}


@dataclass(frozen=True)
class Certified:
    """A solver result and its certificate (reduced relaxation, relative tolerance 1e-6)."""

    result: Any  # ufm.SolveResult
    bound: Any  # RelaxationResult
    certificate: dict

    @property
    def certified(self) -> bool:
        return bool(self.certificate["certified"])

    def record(self) -> dict:
        """Key numbers for summary.json."""
        r = self.result
        return {
            "counts": r.counts,
            "n_samples": int(sum(r.counts)),
            "nonneg": r.config["nonneg"],
            "d": r.config["d"],
            "tau": r.config["tau"],
            "method": r.config["method"],
            "status": r.status,
            "loss": r.loss,
            "closed_form": r.optimum,
            "closed_form_kind": r.optimum_kind,
            "lower_bound": self.bound.lower_bound,
            "rel_gap_to_bound": self.certificate["rel_gap"],
            "certified": self.certified,
            "delta_gm_of": r.metrics["delta_gm_of"],
            "delta_gm_etf": r.metrics["delta_gm_etf"],
            "nc1": r.metrics["nc1"],
            "solve_seconds": r.timing["solve_seconds"] + r.timing["compile_seconds"],
        }


@lru_cache(maxsize=None)
def _certified_solve(counts: tuple[int, ...], d: int, tau: float, nonneg: bool, seed: int,
                     method: str) -> Certified:
    res = ufm.solve(list(counts), d=d, tau=tau, nonneg=nonneg, seed=seed, method=method)
    bound = reduced_bound(counts, tau, nonneg)
    return Certified(res, bound, ufm.certificate(res.loss, bound))


@lru_cache(maxsize=None)
def _reduced_bound(counts: tuple[int, ...], tau: float, nonneg: bool):
    return ufm.certify(list(counts), tau, nonneg=nonneg, method="reduced")


def reduced_bound(counts: Sequence[int], tau: float, nonneg: bool):
    """The reduced relaxation (cached): ``lower_bound``, ``class_gram``, ``ok``."""
    return _reduced_bound(tuple(int(c) for c in counts), float(tau), bool(nonneg))


def certified_solve(counts: Sequence[int], *, d: int, tau: float, nonneg: bool, seed: int = 0,
                    method: str = "samples") -> Certified:
    """``ufm.solve`` (by default over every sample, so that the figures show collapse emerging,
    not built in) + reduced certificate, cached per problem."""
    return _certified_solve(tuple(int(c) for c in counts), int(d), float(tau), bool(nonneg),
                            int(seed), method)


def solve_method(n_samples: int, samples_max_n: int | None) -> str:
    """``"samples"`` (every embedding free: the figures show that the solver's samples collapse)
    up to ``samples_max_n`` samples (None: ``ufm.solvers.memory.CLASSES_ABOVE``), ``"classes"``
    above."""
    from ufm.solvers.memory import CLASSES_ABOVE

    limit = CLASSES_ABOVE if samples_max_n is None else samples_max_n
    return "classes" if n_samples > limit else "samples"


def class_cosines(class_gram: np.ndarray, counts: Sequence[int]) -> np.ndarray:
    """Cosines between class means from the relaxation's class-level matrix ``A``.

    With ``G_ij = A_{y_i y_j}`` off the diagonal and 1 on it, ``<mu_c, mu_c'> = A_cc'`` and
    ``||mu_c||^2 = (1 + (n_c - 1) A_cc) / n_c``.
    """
    a = np.asarray(class_gram, dtype=np.float64)
    n = np.asarray(counts, dtype=np.float64)
    sq = (1.0 + (n - 1.0) * np.diag(a)) / n
    inner = a.copy()
    np.fill_diagonal(inner, sq)
    s = np.sqrt(np.maximum(sq, 1e-300))
    return inner / np.outer(s, s)


def step_groups(counts: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the majority (largest count) and minority (smallest count) classes."""
    c = np.asarray(counts)
    return np.flatnonzero(c == c.max()), np.flatnonzero(c == c.min())


def three_cosines(gram: np.ndarray, counts: Sequence[int]) -> dict[str, float]:
    """Mean majority-majority, majority-minority and minority-minority class-mean cosines."""
    g = np.asarray(gram, dtype=np.float64)
    maj, mino = step_groups(counts)

    def off(rows, cols):
        vals = [g[i, j] for i in rows for j in cols if i != j]
        return float(np.mean(vals)) if vals else float("nan")

    return {"maj_maj": off(maj, maj), "maj_min": off(maj, mino), "min_min": off(mino, mino)}


def save(fig, path) -> None:
    """Write ``fig`` to ``path`` atomically and close it."""
    save_figure_atomic(fig, path, dpi=DPI)
    plt.close(fig)
