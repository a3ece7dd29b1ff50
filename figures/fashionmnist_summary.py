"""The README's FashionMNIST tables (issues 35 and 38), recomputed from the run folders of
``figures/fashionmnist_runs.sh`` (``python -m figures.fashionmnist``).

A run is a folder ``<setting>_s<seed>`` (``r10_relu_s0``, ``r100_norelu_s2``, ``r10_ce_s1``,
``r10_densenet40_s0``, ...) written by ``python -m deep.train``: ``config.json`` (the
``TrainConfig`` under ``"config"``, the STEP class ``"counts"``, majority classes first) and
``metrics.jsonl`` (one record per epoch). A run is FINISHED when its last logged epoch equals
the configured ``epochs``; the others are listed as in progress and enter no number.

What is computed (``summarize``), every number from the FINAL epoch of the finished runs:

- per setting, over its seeds: mean and sample standard deviation (ddof = 1; the mean alone
  for one seed) and the per-seed values (``stats``);
- ``Delta_GM(T) = || G_M/||G_M||_F - G_T/||G_T||_F ||_F`` (DESIGN.md section 4) of the final
  class-mean Gram ``G_M`` to the OF (``I_k``) and to ``G_T`` = the class-mean Gram of the
  certified no-ReLU UFM optimum at the run's counts and temperature (``ufm_optimum``: the
  collapsed solve, ``ufm.solve(..., method="classes")``, and the proven lower bound of the
  symmetry-reduced relaxation, ``ufm.certify(..., method="reduced")``; the relative gap
  ``(loss - bound) / |loss|`` says how close to optimal the solve is proven to be);
- epochs to ``Delta_GM_OF <= t`` for t = 0.5, 0.2: the first epoch whose value is ``<= t``,
  or ``None`` ("never");
- accuracies on the full test set: nearest class mean and linear probe, overall and averaged
  per class over the majority / minority classes (as logged by ``deep.metrics``);
- SCL vs CE (``generalization``), per seed trained with both and pooled over seeds: the exact
  McNemar test on the final epoch's per-image hits. With ``b`` = images SCL gets right and CE
  wrong and ``c`` the opposite, under H0 ``b ~ Binomial(b + c, 1/2)``; the two-sided p-value is
  ``scipy.stats.binomtest(b, b + c, 0.5).pvalue`` (1 when ``b + c = 0``). The same on the test
  images of the minority classes (labels ``>= n_majority``, the classes after the majority ones
  in STEP order, 5..9 here); pooled = the seeds' ``b`` and ``c`` summed;
- issue 38 (``beyond``): temperature (tau 0.05, 0.1, 0.5 with ReLU) and the final-feature
  activation (ReLU, none, Leaky ReLU 0.01 and 0.1, GELU) at R = 10, each against the UFM's
  prediction (docs/beyond.md): the OF (``Delta_GM_OF = 0``) under ReLU at every tau, the no-ReLU
  optimum for the activations that reach the whole sphere; its Delta_GM_OF, the Delta_GM to the
  predicted Gram, the epochs to the thresholds, the cosines and the NCM accuracy, and the
  Delta_GM_OF-per-epoch curves for the figures (``beyond_curves``);
- training length (``length``, ``pace``): the paper's 350 epochs at R = 10 (``LENGTH_SETTINGS``:
  ReLU, no ReLU, ``binding``; one seed each) beside the 100-epoch settings they lengthen, with
  the central table's columns, and Delta_GM_OF at equal epochs (``LENGTH_PACE_EPOCHS``: the
  100-epoch runs' end and the 350-epoch schedule's lr milestones, 116 and 232).

Reading files is ``load_runs``; the rest are pure functions of ``Run`` objects (records and
configuration) so the tests feed them synthetic data.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

__all__ = ["Run", "load_runs", "run_from_files", "stats", "epochs_to", "ufm_optimum",
           "mcnemar", "central", "complexity", "complexity_pace", "generalization", "summarize",
           "markdown", "figure_groups", "fashionmnist_test_labels", "CENTRAL_SETTINGS",
           "THRESHOLDS", "BEYOND_THRESHOLDS", "beyond", "welch", "beyond_curves",
           "activation_of", "prediction", "BEYOND_SETTINGS", "BEYOND_FIGURES",
           "COMPLEXITY_FIGURES", "LENGTH_SETTINGS", "LENGTH_PACE_EPOCHS", "length", "pace",
           "length_figures", "readme_tables", "README_KINDS"]

THRESHOLDS = (0.5, 0.2)
RATIOS = (10, 100)
CENTRAL_KINDS = ("relu", "norelu", "binding")  # the plots' settings
#: the central tables' settings: the plots' and CE (whose predicted geometry is the ETF)
CENTRAL_SETTINGS = tuple(f"r{R}_{kind}" for R in RATIOS for kind in CENTRAL_KINDS + ("ce",))
COMPLEXITY_SETTINGS = ("r10_densenet40", "r10_relu")
#: Issue 35's model-complexity figure (file stem: settings), curves as ``beyond_curves``.
COMPLEXITY_FIGURES = {"delta_gm": COMPLEXITY_SETTINGS}
#: Epochs at which ``complexity_pace`` compares Delta_GM_OF, and its thresholds (first epoch at
#: or under each): equal-epoch comparisons that a run still in progress already informs.
PACE_EPOCHS = (10, 25, 50, 100)
PACE_THRESHOLDS = (0.8, 0.5, 0.2)
#: The paper's own training length at R = 10 (``figures/fashionmnist_runs.sh``, ``--epochs
#: 350``: the lr milestones scale with it), each long setting beside the 100-epoch setting it
#: lengthens, in table order.
LENGTH_SETTINGS = {"r10_relu_e350": "r10_relu", "r10_norelu_e350": "r10_norelu",
                   "r10_binding_e350": "r10_binding"}
#: Epochs at which ``pace`` compares the lengths: where the 100-epoch runs end, and the lr
#: milestones of the 350-epoch schedule (116 and 232), and its end.
LENGTH_PACE_EPOCHS = (100, 116, 232, 350)
#: The issue-38 table's thresholds: no R = 10 network run gets to 0.5 in 100 epochs (the ReLU
#: runs end at 0.72-0.75), so the speed is compared where the runs do arrive.
BEYOND_THRESHOLDS = (0.8, 0.75)
ACCURACY_KEYS = ("ncm_test_acc", "ncm_test_acc_maj", "ncm_test_acc_min",
                 "probe_test_acc", "probe_test_acc_maj", "probe_test_acc_min")
CLASSIFIERS = (("ncm", "ncm_test_hits"), ("probe", "probe_test_hits"))
COSINE_KEYS = ("cos_min_min", "cos_maj_min")
ALPHA = 0.05
#: Issue 38's network settings at R = 10, in table order, with ``(activation, slope, tau)`` as
#: ``figures/fashionmnist_runs.sh`` trains them: shown for a setting without any run (a run's own
#: ``config.json`` decides otherwise).
BEYOND_SETTINGS: dict[str, tuple[str, float | None, float]] = {
    "r10_relu": ("relu", None, 0.1),
    "r10_tau0.05": ("relu", None, 0.05),
    "r10_tau0.5": ("relu", None, 0.5),
    "r10_norelu": ("none", None, 0.1),
    "r10_leaky0.01": ("leaky_relu", 0.01, 0.1),
    "r10_leaky0.1": ("leaky_relu", 0.1, 0.1),
    "r10_gelu": ("gelu", None, 0.1),
}
#: The figure groups of issue 38 (file stem: settings, one colour each, in this order).
BEYOND_FIGURES = {"temperature": ("r10_tau0.05", "r10_relu", "r10_tau0.5"),
                  "activations": ("r10_relu", "r10_norelu", "r10_leaky0.01", "r10_leaky0.1",
                                  "r10_gelu")}
PREDICT_OF, PREDICT_NORELU = "OF", "no-ReLU optimum"
#: The README's row names of the central settings (``r{R}_<kind>``), in its row order.
README_KINDS = {"relu": "ReLU", "norelu": "no ReLU", "binding": "ReLU, `binding` batches",
                "ce": "CE (ETF geometry predicted)"}
_NAME = re.compile(r"^(?P<setting>.+)_s(?P<seed>\d+)$")


# ---------------------------------------------------------------------------------------------
# runs


@dataclass
class Run:
    """One run folder: ``setting`` and ``seed`` from its name, the ``TrainConfig`` dict
    (``config``), the class ``counts`` and the clean per-epoch ``records`` (sorted by epoch)."""

    name: str
    setting: str
    seed: int
    config: dict[str, Any]
    counts: list[int]
    records: list[dict[str, Any]] = field(default_factory=list)

    @property
    def epochs(self) -> int:
        """The configured number of epochs."""
        return int(self.config["epochs"])

    @property
    def last_epoch(self) -> int:
        """The last logged epoch (0 before the first)."""
        return self.records[-1]["epoch"] if self.records else 0

    @property
    def finished(self) -> bool:
        return self.last_epoch == self.epochs

    @property
    def final(self) -> dict[str, Any]:
        """The last record (the final epoch of a finished run)."""
        return self.records[-1] if self.records else {}

    @property
    def n_majority(self) -> int:
        """How many classes have the largest count (STEP: the first ones)."""
        return sum(c == max(self.counts) for c in self.counts)


def split_name(name: str) -> tuple[str, int] | None:
    """``"r10_relu_s2"`` -> ``("r10_relu", 2)``; None for a name without ``_s<seed>``."""
    m = _NAME.match(name)
    return (m["setting"], int(m["seed"])) if m else None


def _check_config(raw: Any) -> tuple[dict[str, Any], list[int]]:
    from deep.reporting import run_config

    cfg = run_config(raw)  # ValueError naming what is wrong
    epochs = cfg.get("epochs")
    if type(epochs) is not int or epochs < 1:
        raise ValueError('"config" has no integer "epochs" >= 1')
    counts = raw.get("counts")
    if (type(counts) is not list or len(counts) < 2
            or not all(type(c) is int and c >= 1 for c in counts)):
        raise ValueError('has no "counts" list of positive integers')
    tau = cfg.get("tau")
    if type(tau) not in (int, float) or not (math.isfinite(tau) and tau > 0):
        raise ValueError('"config" has no positive "tau"')
    return cfg, counts


def run_from_files(folder: str | Path) -> tuple[Run, str | None]:
    """Read one run folder: the ``Run`` and a warning (skipped metrics lines) or None.

    A missing ``metrics.jsonl`` is a run at epoch 0. Raises ``OSError`` (unreadable file) or
    ``ValueError`` (a ``config.json`` that is not UTF-8 JSON or lacks the fields used here, or a
    folder name without ``_s<seed>``), each naming the file."""
    from deep.reporting import clean_records
    from deep.rundir import CONFIG, METRICS, read_config, read_metrics_lines

    folder = Path(folder)
    parts = split_name(folder.name)
    if parts is None:
        raise ValueError(f"{folder}: the name is not <setting>_s<seed>")
    try:
        raw = read_config(folder)
    except OSError as err:
        raise OSError(f"{folder / CONFIG}: cannot read ({err.strerror or err})") from None
    except (ValueError, RecursionError):
        raise ValueError(f"{folder / CONFIG}: is not valid UTF-8 JSON") from None
    try:
        cfg, counts = _check_config(raw)
    except ValueError as err:
        raise ValueError(f"{folder / CONFIG}: {err}") from None
    path = folder / METRICS
    note = None
    if path.exists():
        try:
            values, unreadable = read_metrics_lines(path)
        except OSError as err:
            raise OSError(f"{path}: cannot read ({err.strerror or err})") from None
        records, invalid, _ = clean_records(values)
        if unreadable + invalid:
            note = (f"{path}: skipped {unreadable + invalid} of {len(values) + unreadable} lines "
                    f"(not a JSON object with an integer epoch >= 1 and numeric metrics)")
    else:
        records = []
    return Run(folder.name, parts[0], parts[1], cfg, counts, records), note


def load_runs(runs_dir: str | Path) -> tuple[list[Run], list[str]]:
    """Every run folder (``<setting>_s<seed>/config.json``) in ``runs_dir``, sorted by name,
    and one warning per folder skipped (unreadable) or with skipped metrics lines.

    Raises:
      FileNotFoundError: ``runs_dir`` is not a folder.
      ValueError: it holds no run folder, or none is readable.
    """
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        raise FileNotFoundError(f"{runs_dir}: no such folder")
    try:
        folders = sorted(d for d in runs_dir.iterdir()
                         if d.is_dir() and split_name(d.name) and (d / "config.json").exists())
    except OSError as err:
        raise FileNotFoundError(f"{runs_dir}: cannot read ({err.strerror or err})") from None
    if not folders:
        raise ValueError(f"{runs_dir} holds no run folder (<setting>_s<seed>/config.json)")
    runs, warnings = [], []
    for d in folders:
        try:
            run, note = run_from_files(d)
        except (OSError, ValueError) as err:
            warnings.append(f"skipped {d.name}: {err}")
            continue
        runs.append(run)
        if note:
            warnings.append(note)
    if not runs:
        raise ValueError(f"{runs_dir}: no readable run folder ({len(folders)} skipped)")
    return runs, warnings


def fashionmnist_test_labels(data_dir: str | Path | None = None) -> np.ndarray:
    """The FashionMNIST test labels in file order (``t10k-labels-idx1-ubyte``, optionally
    ``.gz``, from ``deep.data.DEFAULT_DATA_DIRS`` by default): the order of the logged hits.
    Raises ``deep.data.DataError`` (a ``ValueError``) when the file is missing or bad."""
    from deep.data import DEFAULT_DATA_DIRS, DataError, read_idx

    folder = Path(data_dir or DEFAULT_DATA_DIRS["fashionmnist"])
    for name in ("t10k-labels-idx1-ubyte", "t10k-labels-idx1-ubyte.gz"):
        if (folder / name).is_file():
            return read_idx(folder / name).astype(np.int64)
    raise DataError(f"fashionmnist: no t10k-labels-idx1-ubyte in {folder} "
                    "(apt-get install -y dataset-fashion-mnist)")


# ---------------------------------------------------------------------------------------------
# pure statistics


def stats(seeds: Sequence[int], values: Sequence[float | None]) -> dict[str, Any]:
    """Mean and sample sd (``sqrt(sum (x - mean)^2 / (n - 1))``; None for n < 2) of the values
    that are not None, with the per-seed values (None kept): ``{n, mean, sd, seeds, values}``."""
    x = np.array([v for v in values if v is not None], dtype=float)
    return {"n": int(x.size),
            "mean": float(x.mean()) if x.size else None,
            "sd": float(x.std(ddof=1)) if x.size > 1 else None,
            "seeds": list(seeds), "values": list(values)}


def epochs_to(records: Sequence[dict[str, Any]], threshold: float,
              key: str = "delta_gm_of") -> int | None:
    """The first epoch whose ``key`` is ``<= threshold`` (records sorted by epoch), or None."""
    for r in records:
        if r.get(key) is not None and r[key] <= threshold:
            return int(r["epoch"])
    return None


def mcnemar(a_hits: np.ndarray, b_hits: np.ndarray) -> dict[str, Any]:
    """Exact McNemar test of two classifiers on the same images: ``b`` = A right and B wrong,
    ``c`` = A wrong and B right, ``p`` = two-sided ``binomtest(b, b + c, 1/2)`` (1 if b + c = 0)."""
    a, bb = np.asarray(a_hits, dtype=bool), np.asarray(b_hits, dtype=bool)
    return _mcnemar_bc(int(np.sum(a & ~bb)), int(np.sum(~a & bb)))


def welch(a: Sequence[float], b: Sequence[float]) -> dict[str, Any] | None:
    """Welch's two-sample t-test of the means of ``a`` and ``b`` (per-seed finals): ``diff =
    mean(a) - mean(b)``, ``t = diff / sqrt(s_a^2/n_a + s_b^2/n_b)``, Welch-Satterthwaite ``df``,
    two-sided ``p``; None when either has fewer than 2 values or both sds are 0.

    >>> round(welch([1.0, 2.0, 3.0], [2.0, 3.0, 4.0])["p"], 3)
    0.288
    """
    from scipy.stats import ttest_ind

    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.size < 2 or y.size < 2 or (x.std() == 0 and y.std() == 0):
        return None
    res = ttest_ind(x, y, equal_var=False)
    return {"diff": float(x.mean() - y.mean()), "t": float(res.statistic),
            "df": float(res.df), "p": float(res.pvalue), "significant": bool(res.pvalue < ALPHA)}


def _mcnemar_bc(b: int, c: int) -> dict[str, Any]:
    """The exact McNemar test from the discordant counts (``mcnemar``)."""
    from scipy.stats import binomtest

    p = 1.0 if b + c == 0 else float(binomtest(b, b + c, 0.5).pvalue)
    return {"b": b, "c": c, "p": min(p, 1.0), "significant": p < ALPHA}


def _delta(gram: Any, target: str | np.ndarray) -> float | None:
    from ufm.core.geometry import delta_gm

    if gram is None:
        return None
    try:
        return float(delta_gm(np.asarray(gram, dtype=float), target))
    except ValueError:  # a zero Gram (no geometry) or a mismatched k
        return None


def ufm_optimum(counts: Sequence[int], tau: float) -> dict[str, Any]:
    """The certified no-ReLU UFM optimum at ``counts`` and ``tau``
    (``ufm.analysis.optimum.ufm_optimum``: the collapsed solve, certified by the reduced
    relaxation; cached) as a table row: its class-mean Gram (``gram``), loss, proven lower
    bound, relative gap ``(loss - bound) / |loss|``, and Delta_GM to the OF and ETF."""
    from ufm.analysis.optimum import ufm_optimum as certified_optimum

    opt = certified_optimum(counts, tau, relu=False)
    return {"counts": list(counts), "tau": float(tau), "status": opt.status,
            "loss": opt.loss, "lower_bound": opt.lower_bound, "rel_gap": opt.rel_gap,
            "certified": opt.certified, "delta_gm_of": _delta(opt.cosines, "of"),
            "delta_gm_etf": _delta(opt.cosines, "etf"), "gram": opt.cosines.tolist()}


# ---------------------------------------------------------------------------------------------
# the tables


def _by_setting(runs: Iterable[Run], setting: str) -> tuple[list[Run], list[Run]]:
    """(finished runs by seed, unfinished runs) of one setting."""
    mine = [r for r in runs if r.setting == setting]
    return (sorted((r for r in mine if r.finished), key=lambda r: r.seed),
            sorted((r for r in mine if not r.finished), key=lambda r: r.seed))


def _progress(runs: Sequence[Run]) -> list[dict[str, Any]]:
    return [{"run": r.name, "epoch": r.last_epoch, "epochs": r.epochs} for r in runs]


def _optimum_key(run: Run) -> tuple[tuple[int, ...], float]:
    return tuple(run.counts), float(run.config["tau"])


def _full_test(run: Run, key: str) -> Any:
    """The final record's ``key`` if that record was evaluated on the full test set, else None."""
    return run.final.get(key) if run.final.get("test_set", "full") == "full" else None


def central(runs: Sequence[Run], optima: dict[tuple, dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per central setting (relu / norelu / binding / ce at R = 10, 100), from its finished
    runs: final Delta_GM_OF, Delta_GM to the UFM optimum of the run's (counts, tau) (``optima``,
    keyed by ``(tuple(counts), tau)``), minority cosines, full-test accuracies (``stats`` each),
    and the epochs to ``Delta_GM_OF <= t`` per seed."""
    return [_setting_row(setting, *_by_setting(runs, setting), optima)
            for setting in CENTRAL_SETTINGS]


def _setting_row(setting: str, done: Sequence[Run], running: Sequence[Run],
                 optima: dict[tuple, dict[str, Any]]) -> dict[str, Any]:
    """A row of ``central`` (or ``length``) for one setting, from its finished runs ``done``
    (by seed); ``running``, its unfinished runs, are listed."""
    seeds = [r.seed for r in done]
    row: dict[str, Any] = {"setting": setting, "R": int(setting[1:].split("_")[0]),
                           "seeds": seeds, "in_progress": _progress(running),
                           "counts": done[0].counts if done else None}
    row.update(_final_stats(done))
    row["delta_gm_ufm"] = stats(seeds, [
        _delta(r.final.get("class_mean_gram"), np.asarray(optima[_optimum_key(r)]["gram"]))
        for r in done])
    for t in THRESHOLDS:
        row[f"epochs_to_{t}"] = [epochs_to(r.records, t) for r in done]
    return row


def _final_stats(done: Sequence[Run]) -> dict[str, dict[str, Any]]:
    """``stats`` over the finished runs ``done`` (by seed) of the final Delta_GM_OF, the minority
    cosines (``COSINE_KEYS``) and the accuracies (``ACCURACY_KEYS``, on the full test set only:
    a finished run's last epoch)."""
    seeds = [r.seed for r in done]
    out = {key: stats(seeds, [r.final.get(key) for r in done])
           for key in ("delta_gm_of", *COSINE_KEYS)}
    out.update({key: stats(seeds, [_full_test(r, key) for r in done]) for key in ACCURACY_KEYS})
    return out


def length(runs: Sequence[Run], optima: dict[tuple, dict[str, Any]]) -> list[dict[str, Any]]:
    """The paper's 350 epochs against 100 at R = 10: for each pair of ``LENGTH_SETTINGS`` (the
    long setting, then the 100-epoch one), the ``central`` row of its finished runs plus, from
    the first of its runs (finished first; None without a run), ``epochs`` (configured),
    ``prediction`` (``prediction`` of its activation) and ``predicted_delta_gm_of``
    (``_predicted_delta_of``: 0 for the OF, the no-ReLU optimum's Delta_GM_OF from ``optima``;
    None when not there). Settings pair only on their names; ``optima`` must hold every
    finished run's (counts, tau)."""
    rows = []
    for long_setting, short_setting in LENGTH_SETTINGS.items():
        for setting in (long_setting, short_setting):
            done, running = _by_setting(runs, setting)
            first = (done + running)[:1]
            rows.append({**_setting_row(setting, done, running, optima),
                         "epochs": first[0].epochs if first else None,
                         "prediction": _run_prediction(first[0]) if first else None,
                         "predicted_delta_gm_of": (_predicted_delta_of(first[0], optima)
                                                   if first else None)})
    return rows


def complexity(runs: Sequence[Run]) -> list[dict[str, Any]]:
    """DenseNet-40 vs the small ResNet at R = 10: final Delta_GM_OF, minority cosines and
    full-test accuracies (``stats`` each, ``_final_stats``) and the epochs to
    ``Delta_GM_OF <= t`` per seed."""
    rows = []
    for setting in COMPLEXITY_SETTINGS:
        done, running = _by_setting(runs, setting)
        seeds = [r.seed for r in done]
        arch = done[0].config.get("arch") if done else None
        rows.append({"setting": setting, "arch": arch, "seeds": seeds,
                     "in_progress": _progress(running), **_final_stats(done),
                     **{f"epochs_to_{t}": [epochs_to(r.records, t) for r in done]
                        for t in THRESHOLDS}})
    return rows


def complexity_pace(runs: Sequence[Run], epochs: Sequence[int] = PACE_EPOCHS,
                    thresholds: Sequence[float] = PACE_THRESHOLDS) -> list[dict[str, Any]]:
    """How fast each model of ``COMPLEXITY_SETTINGS`` approaches the OF, at equal epochs
    (``pace`` of those settings; a DenseNet-40 run spans several sessions)."""
    return pace(runs, COMPLEXITY_SETTINGS, epochs, thresholds)


def pace(runs: Sequence[Run], settings: Sequence[str], epochs: Sequence[int],
         thresholds: Sequence[float] = PACE_THRESHOLDS) -> list[dict[str, Any]]:
    """Delta_GM_OF at equal epochs: one row per run of ``settings`` with records, finished or
    not, in setting order then by seed: ``{run, setting, seed, arch, finished, epoch, epochs,
    last, at, first}`` with ``last`` the Delta_GM_OF of the last logged epoch, ``at[E]`` that of
    epoch ``E`` (None if not reached or not logged) and ``first[t]`` the first epoch with
    Delta_GM_OF ``<= t`` (None: not reached; in a finished run, never)."""
    rows = []
    for setting in settings:
        mine = sorted((r for r in runs if r.setting == setting and r.records),
                      key=lambda r: r.seed)
        for r in mine:
            by_epoch = {int(x["epoch"]): x.get("delta_gm_of") for x in r.records}
            rows.append({"run": r.name, "setting": setting, "seed": r.seed,
                         "arch": r.config.get("arch"), "finished": r.finished,
                         "epoch": r.last_epoch, "epochs": r.epochs,
                         "last": r.records[-1].get("delta_gm_of"),
                         "at": {e: by_epoch.get(e) for e in epochs},
                         "first": {t: epochs_to(r.records, t) for t in thresholds}})
    return rows


def activation_of(config: dict[str, Any]) -> tuple[str, float | None]:
    """``(name, slope)`` of a run's final-feature activation: the config's ``"activation"`` and
    ``"slope"`` when recorded (``deep.train --activation``), else ``"relu"`` / ``"none"`` by its
    ``"relu"`` flag (default True), as ``deep.configs.feature_activation``."""
    name = config.get("activation")
    if name is None:
        return ("relu" if config.get("relu", True) else "none"), None
    slope = config.get("slope")
    return str(name), (float(slope) if type(slope) in (int, float) else None)


def prediction(activation: str) -> str | None:
    """The UFM's optimum for a final-feature activation (docs/beyond.md, section 1): ``"OF"``
    when it reaches exactly the closed orthant (ReLU), ``"no-ReLU optimum"`` when it reaches the
    whole sphere (none, Leaky ReLU of any slope, ELU, GELU); None otherwise (softplus: no
    attained optimum)."""
    from ufm.core.activations import REACHES_ORTHANT, REACHES_SPHERE

    if activation in REACHES_ORTHANT:
        return PREDICT_OF
    return PREDICT_NORELU if activation in REACHES_SPHERE else None


def _run_prediction(run: Run) -> str | None:
    """``prediction`` of the run's final-feature activation (``activation_of`` its config)."""
    return prediction(activation_of(run.config)[0])


def _predicts_norelu(run: Run) -> bool:
    return _run_prediction(run) == PREDICT_NORELU


def _target(run: Run, optima: dict[tuple, dict[str, Any]]) -> str | np.ndarray | None:
    """The run's predicted class-mean Gram ``G_T``: ``"of"`` (``I_k``) under ReLU, the Gram of
    the no-ReLU optimum at the run's (counts, tau) (``optima``) for an activation reaching the
    sphere; None for another activation or an optimum not in ``optima``."""
    pred = _run_prediction(run)
    if pred == PREDICT_OF:
        return "of"
    opt = optima.get(_optimum_key(run)) if pred == PREDICT_NORELU else None
    return None if opt is None else np.asarray(opt["gram"], dtype=float)


def _predicted_delta_of(run: Run, optima: dict[tuple, dict[str, Any]]) -> float | None:
    """Delta_GM_OF of the run's predicted geometry: 0 for the OF, the no-ReLU optimum's
    ``delta_gm_of`` for an activation reaching the sphere, None when unknown."""
    target = _target(run, optima)
    if isinstance(target, str):
        return 0.0
    return None if target is None else optima[_optimum_key(run)]["delta_gm_of"]


def _delta_predicted(run: Run, optima: dict[tuple, dict[str, Any]]) -> float | None:
    """Delta_GM of the final class-mean Gram to the run's predicted Gram (``_target``)."""
    target = _target(run, optima)
    return None if target is None else _delta(run.final.get("class_mean_gram"), target)


def _beyond_spec(setting: str, runs: Sequence[Run],
                 optima: dict[tuple, dict[str, Any]]) -> dict[str, Any]:
    """Activation, slope, tau, prediction and predicted Delta_GM_OF of a setting: from its first
    run's config (``runs``: finished first), or ``BEYOND_SETTINGS`` when it has no run."""
    if runs:
        (name, slope), tau = activation_of(runs[0].config), float(runs[0].config["tau"])
        predicted = _predicted_delta_of(runs[0], optima)
    else:
        name, slope, tau = BEYOND_SETTINGS[setting]
        predicted = 0.0 if prediction(name) == PREDICT_OF else None
    return {"activation": name, "slope": slope, "tau": tau, "prediction": prediction(name),
            "predicted_delta_gm_of": predicted}


def beyond(runs: Sequence[Run], optima: dict[tuple, dict[str, Any]]) -> list[dict[str, Any]]:
    """Issue 38 on the network: one row per setting of ``BEYOND_SETTINGS`` (temperature and the
    final-feature activation at R = 10), in that order. Per setting: activation, slope, tau,
    the UFM prediction (``prediction``: the OF under ReLU, the no-ReLU optimum otherwise) and
    its Delta_GM_OF (0, or the ``delta_gm_of`` of ``optima[(tuple(counts), tau)]``), from the
    config of its first run (finished first, in-progress runs' configs count here); from its
    finished runs only: final Delta_GM_OF, ``Delta_GM(G_T) = || G_M/||G_M||_F - G_T/||G_T||_F
    ||_F`` of the final class-mean Gram ``G_M`` to the predicted Gram ``G_T`` (``I_k``, or the
    optimum's Gram at the run's counts and tau), the minority cosines, the full-test
    accuracies (``_final_stats``) and NC1 (``stats`` each), and the epochs to
    ``Delta_GM_OF <= t`` per seed for ``t`` in ``BEYOND_THRESHOLDS``; ``vs_relu``: Welch's test (``welch``) of the setting's final
    Delta_GM_OF against ``r10_relu``'s (None for ``r10_relu`` itself or too few seeds); the runs
    in progress listed."""
    rows = []
    for setting in BEYOND_SETTINGS:
        done, running = _by_setting(runs, setting)
        seeds = [r.seed for r in done]
        row: dict[str, Any] = {"setting": setting, "seeds": seeds,
                               "in_progress": _progress(running),
                               **_beyond_spec(setting, done + running, optima)}
        row.update(_final_stats(done))
        row["delta_gm_predicted"] = stats(seeds, [_delta_predicted(r, optima) for r in done])
        row["nc1"] = stats(seeds, [r.final.get("nc1") for r in done])
        for t in BEYOND_THRESHOLDS:
            row[f"epochs_to_{t}"] = [epochs_to(r.records, t) for r in done]
        rows.append(row)
    finals = lambda row: [v for v in row["delta_gm_of"]["values"] if v is not None]  # noqa: E731
    relu = finals(rows[0])  # BEYOND_SETTINGS starts with r10_relu
    for row in rows:
        row["vs_relu"] = None if row["setting"] == "r10_relu" else welch(finals(row), relu)
    return rows


def beyond_curves(runs: Sequence[Run], groups: dict[str, Sequence[str]] | None = None
                  ) -> dict[str, list[dict[str, Any]]]:
    """The Delta_GM_OF-per-epoch curves of the issue-38 figures (``groups``, default
    ``BEYOND_FIGURES``; ``COMPLEXITY_FIGURES`` for issue 35's model-complexity figure): per file
    stem, one entry per run with records (finished or not), in the group's setting order then by
    seed: ``{setting, seed, finished, epochs, values}`` (epochs without a value left out); a
    group without such a run is left out."""
    out: dict[str, list[dict[str, Any]]] = {}
    for stem, settings in (BEYOND_FIGURES if groups is None else groups).items():
        curves = []
        for setting in settings:
            for r in sorted((r for r in runs if r.setting == setting and r.records),
                            key=lambda r: r.seed):
                pts = [(rec["epoch"], rec["delta_gm_of"]) for rec in r.records
                       if rec.get("delta_gm_of") is not None]
                curves.append({"setting": setting, "seed": r.seed, "finished": r.finished,
                               "epochs": [e for e, _ in pts], "values": [v for _, v in pts]})
        if curves:
            out[stem] = curves
    return out


def _hits(run: Run, key: str, n: int) -> np.ndarray | None:
    """The final epoch's per-image hits (``key``) on the full test set of ``n`` images."""
    from deep.metrics import unpack_hits

    rec = run.final
    text = rec.get(key)
    if rec.get("test_set") != "full" or type(text) is not str or rec.get("test_images") != n:
        return None
    try:
        hits = unpack_hits(text, n)
    except ValueError:  # not base64 (binascii.Error)
        return None
    return hits if hits.size == n else None


def generalization(runs: Sequence[Run], y_test: np.ndarray | None) -> tuple[list[dict[str, Any]], list[str]]:
    """SCL (``r{R}_relu``) vs CE (``r{R}_ce``) for R = 10, 100 on the seeds finished in both:
    per seed the accuracies of the NCM and the linear probe, overall and on the minority-class
    test images (labels ``>= n_majority``), from the final epoch's hits, and the exact McNemar
    test (``mcnemar``) of SCL vs CE on all images and on the minority images; pooled over
    the seeds (``b``, ``c`` summed). ``y_test``: the test labels in the hits' order (None: no
    finished pair needs them; without them the pairs are left out with a warning). Returns the rows and warnings (pairs without usable hits)."""
    rows, warnings = [], []
    for R in RATIOS:
        scl, _ = _by_setting(runs, f"r{R}_relu")
        ce, _ = _by_setting(runs, f"r{R}_ce")
        ce_by_seed = {r.seed: r for r in ce}
        pairs = []
        pooled = {name: {"all": [0, 0], "minority": [0, 0]} for name, _ in CLASSIFIERS}
        for s in scl:
            c = ce_by_seed.get(s.seed)
            if c is None:
                continue
            if y_test is None:
                warnings.append(f"r{R} seed {s.seed}: no test labels; SCL vs CE left out")
                continue
            y = np.asarray(y_test)
            minority = y >= s.n_majority
            entry: dict[str, Any] = {"seed": s.seed}
            for name, key in CLASSIFIERS:
                hs, hc = _hits(s, key, y.size), _hits(c, key, y.size)
                if hs is None or hc is None:
                    warnings.append(f"r{R} seed {s.seed}: no usable {key} on the full test set of "
                                    f"{y.size} images in the final epoch of "
                                    f"{s.name if hs is None else c.name}; {name} left out")
                    entry[name] = None
                    continue
                tests = {"all": mcnemar(hs, hc), "minority": mcnemar(hs[minority], hc[minority])}
                for part in ("all", "minority"):
                    pooled[name][part][0] += tests[part]["b"]
                    pooled[name][part][1] += tests[part]["c"]
                entry[name] = {"scl_acc": float(hs.mean()), "ce_acc": float(hc.mean()),
                               "scl_acc_min": float(hs[minority].mean()) if minority.any() else None,
                               "ce_acc_min": float(hc[minority].mean()) if minority.any() else None,
                               "mcnemar": tests}
            pairs.append(entry)
        pooled_tests = {name: ({part: _mcnemar_bc(*bc) for part, bc in parts.items()}
                               if any(p.get(name) for p in pairs) else None)
                        for name, parts in pooled.items()}
        rows.append({"R": R, "seeds": [p["seed"] for p in pairs], "pairs": pairs,
                     "pooled": pooled_tests if pairs else None})
    return rows, warnings


def _needs_labels(runs: Sequence[Run]) -> bool:
    for R in RATIOS:
        scl = {r.seed for r in _by_setting(runs, f"r{R}_relu")[0]}
        if scl & {r.seed for r in _by_setting(runs, f"r{R}_ce")[0]}:
            return True
    return False


def summarize(runs: Sequence[Run], *, y_test: np.ndarray | None = None,
              optimum: Callable[[Sequence[int], float], dict[str, Any]] | None = None,
              warnings: Sequence[str] = ()) -> dict[str, Any]:
    """Every number of the FashionMNIST tables (module docstring) as a JSON-able dict:
    ``finished`` / ``in_progress`` runs, ``ufm_optima`` (one per distinct (counts, tau) of the
    finished central and training-length runs and of the issue-38 runs predicted to reach the
    no-ReLU optimum, finished or not, and of the training-length runs so predicted: the
    prediction needs no finished run; solved once each),
    ``central``, ``complexity``, ``complexity_pace``, ``length``, ``length_pace``, ``beyond``
    (issue 38), ``generalization`` and ``warnings``. ``y_test`` defaults to
    ``fashionmnist_test_labels()``, read only when a seed finished with both SCL and CE;
    ``optimum`` defaults to ``ufm_optimum``."""
    warnings = list(warnings)
    done = [r for r in runs if r.finished]
    keys = sorted({_optimum_key(r) for r in done
                   if r.setting in CENTRAL_SETTINGS or r.setting in LENGTH_SETTINGS}
                  | {_optimum_key(r) for r in runs
                     if (r.setting in BEYOND_SETTINGS or r.setting in LENGTH_SETTINGS)
                     and _predicts_norelu(r)})
    optima = {k: (optimum or ufm_optimum)(list(k[0]), k[1]) for k in keys}
    if y_test is None and _needs_labels(runs):
        try:
            y_test = fashionmnist_test_labels()
        except ValueError as err:  # deep.data.DataError
            warnings.append(f"test labels: {err}")
    gen, notes = generalization(runs, y_test)
    return {
        "finished": [r.name for r in done],
        "in_progress": _progress([r for r in runs if not r.finished]),
        "ufm_optima": list(optima.values()),
        "central": central(runs, optima),
        "complexity": complexity(runs),
        "complexity_pace": complexity_pace(runs),
        "length": length(runs, optima),
        "length_pace": pace(runs, length_figures(runs).get("delta_gm", ()), LENGTH_PACE_EPOCHS),
        "length_pace_epochs": list(LENGTH_PACE_EPOCHS),
        "beyond": beyond(runs, optima),
        "generalization": gen,
        "thresholds": list(THRESHOLDS),
        "beyond_thresholds": list(BEYOND_THRESHOLDS),
        "alpha": ALPHA,
        "warnings": warnings + notes,
    }


def _length_order(settings: Iterable[str] | None = None) -> list[str]:
    """The settings of ``LENGTH_SETTINGS`` (only the long ones in ``settings``, default all),
    each long setting followed by its 100-epoch one."""
    return [s for long, short in LENGTH_SETTINGS.items()
            if settings is None or long in settings for s in (long, short)]


def length_figures(runs: Sequence[Run]) -> dict[str, tuple[str, ...]]:
    """The training-length figure's groups for ``beyond_curves``: ``{"delta_gm": settings}``
    with each long setting of ``LENGTH_SETTINGS`` that has a run (finished or not) followed by
    its 100-epoch setting; empty when no long setting has a run."""
    started = {r.setting for r in runs if r.records}
    order = _length_order(started)
    return {"delta_gm": tuple(order)} if order else {}


def figure_groups(runs: Sequence[Run]) -> dict[str, list[Any]]:
    """``{"r10": [RunMetrics, ...], "r100": [...]}``: the finished relu / norelu / binding runs
    of each R, for ``deep.reporting.figures``; a group with no finished run is left out."""
    from deep.reporting import RunMetrics

    groups = {}
    for R in RATIOS:
        mine = [r for kind in CENTRAL_KINDS for r in _by_setting(runs, f"r{R}_{kind}")[0]]
        if mine:
            groups[f"r{R}"] = [RunMetrics(r.name, r.config, r.records) for r in mine]
    return groups


# ---------------------------------------------------------------------------------------------
# Markdown


def _f(x: float | None, fmt: str = "{:.3f}") -> str:
    return "-" if x is None else fmt.format(x)


def _ms(st: dict[str, Any], fmt: str = "{:.3f}") -> str:
    """``mean +- sd`` (the mean alone for one value, ``-`` for none)."""
    if st["mean"] is None:
        return "-"
    return _f(st["mean"], fmt) + ("" if st["sd"] is None else " ± " + _f(st["sd"], fmt))


def _per_seed(seeds: Sequence[int], values: Sequence[Any], fmt: str = "{:.3f}") -> str:
    if not seeds:
        return "-"
    cell = lambda v: "never" if v is None else (str(v) if isinstance(v, int) else _f(v, fmt))  # noqa: E731
    return ", ".join(f"s{s}: {cell(v)}" for s, v in zip(seeds, values))


def _seeds(row: dict[str, Any]) -> str:
    """How many seeds finished, and how many are still running."""
    running = len(row["in_progress"])
    return f"{len(row['seeds'])}" + (f" (+{running} running)" if running else "")


def _table(head: Sequence[str], rows: Sequence[Sequence[str]], sep: str = "|---") -> str:
    """A Markdown table; ``sep``: each column's piece of the rule line, closed by ``|``."""
    lines = ["| " + " | ".join(head) + " |", sep * len(head) + "|"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def _p(test: dict[str, Any]) -> str:
    sig = "significant" if test["significant"] else f"not significant (p >= {ALPHA:g})"
    return f"b={test['b']}, c={test['c']}, p={test['p']:.3g}, {sig}"


def _activation_cell(row: dict[str, Any]) -> str:
    return row["activation"] + ("" if row["slope"] is None else f" (slope {row['slope']:g})")


def _welch_cell(test: dict[str, Any] | None) -> str:
    return "-" if test is None else f"{test['diff']:+.3f} (p={test['p']:.2g})"


def _with_minority(row: dict[str, Any], key: str) -> str:
    """``mean ± sd`` of ``row[key]``, then that of its minority-class mean in parentheses."""
    return f"{_ms(row[key])} ({_ms(row[key + '_min'])})"


def readme_tables(rows: Sequence[dict[str, Any]]) -> str:
    """The README's central tables, one per R, from ``central``'s ``rows``, line for line as the
    README prints them (``python -m figures.fashionmnist --readme``; a test checks the README
    against the committed runs): per setting, the finished seeds, then ``mean ± sd`` of the
    final Delta_GM_OF, the Delta_GM to the no-ReLU UFM optimum, the minority-minority cosine,
    and the NCM and linear-probe accuracy on the full test set (their minority-class means in
    parentheses). The header names the smallest class count of the R's finished runs."""
    out = []
    for R in RATIOS:
        mine = [r for r in rows if r["R"] == R]
        counts = next((r["counts"] for r in mine if r["counts"]), None)
        minority = "" if counts is None else f" ({min(counts)} per minority class)"
        out += [_table([f"R = {R}{minority}", "seeds", "Delta_GM_OF",
                        "Delta_GM to no-ReLU UFM optimum", "cos min-min",
                        "NCM test acc. (minority)", "linear probe (minority)"],
                       [[README_KINDS[r["setting"].split("_", 1)[1]], str(len(r["seeds"])),
                         _ms(r["delta_gm_of"]), _ms(r["delta_gm_ufm"]), _ms(r["cos_min_min"]),
                         _with_minority(r, "ncm_test_acc"),
                         _with_minority(r, "probe_test_acc")]
                        for r in mine], sep="| --- "), ""]
    return "\n".join(out)


def _pace_markdown(rows: Sequence[dict[str, Any]], epochs: Sequence[int]) -> list[str]:
    """The table of ``pace``'s rows at ``epochs`` (and ``PACE_THRESHOLDS``)."""
    out = ["Pace at equal epochs (every run with records, finished or not; `not yet`: not "
           "reached so far by a run in progress):", ""]
    head = (["run", "arch", "epochs done", "ΔGM_OF now"] + [f"ΔGM_OF at {e}" for e in epochs]
            + [f"first ≤ {t:g}" for t in PACE_THRESHOLDS])
    table = [[r["run"], r["arch"] or "-", f"{r['epoch']}/{r['epochs']}", _f(r["last"])]
             + [_f(r["at"].get(e)) for e in epochs]
             + [str(r["first"][t]) if r["first"][t] is not None
                else ("never" if r["finished"] else "not yet") for t in PACE_THRESHOLDS]
             for r in rows]
    return out + [_table(head, table) if table else "(no run yet)", ""]


def _length_markdown(summary: dict[str, Any]) -> list[str]:
    """The training-length section of ``markdown``: the final table and the pace table."""
    out = ["## Training length (R = 10): the paper's 350 epochs against 100", "",
           "The lr milestones scale with the length (x0.1 at 116/350 and 232/350 of the "
           "epochs), so a 350-epoch run is not a 100-epoch run continued.", ""]
    head = ["setting", "epochs", "seeds", "ΔGM_OF", "ΔGM_OF per seed", "ΔGM to no-ReLU UFM opt.",
            "cos min-min", "NCM (minority)", "probe (minority)", "epochs to ΔGM_OF ≤ 0.5",
            "epochs to ΔGM_OF ≤ 0.2"]
    rows = [[r["setting"], _f(r["epochs"], "{}"), _seeds(r), _ms(r["delta_gm_of"]),
             _per_seed(r["seeds"], r["delta_gm_of"]["values"]), _ms(r["delta_gm_ufm"]),
             _ms(r["cos_min_min"]),
             _with_minority(r, "ncm_test_acc"),
             _with_minority(r, "probe_test_acc"),
             _per_seed(r["seeds"], r["epochs_to_0.5"]), _per_seed(r["seeds"], r["epochs_to_0.2"])]
            for r in summary["length"]]
    out += [_table(head, rows), ""]
    if summary["length_pace"]:
        out += _pace_markdown(summary["length_pace"], summary["length_pace_epochs"])
    else:
        out += ["(no 350-epoch run yet)", ""]
    return out


def _beyond_markdown(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The issue-38 section of ``markdown``: its table, a note when no run has finished, and the
    runs in progress."""
    out = ["## Beyond the paper (issue 38): temperature and activations at R = 10", "",
           "UFM prediction (docs/beyond.md): the OF under ReLU at every tau (reached more slowly "
           "at small tau); the no-ReLU optimum for every activation reaching the whole sphere "
           "(none, Leaky ReLU, GELU). ΔGM to prediction: to I_k, or to the no-ReLU optimum's "
           "Gram at the run's counts and tau.", ""]
    head = ["setting", "activation", "tau", "seeds", "UFM prediction", "predicted ΔGM_OF",
            "ΔGM_OF", "ΔGM_OF per seed", "ΔGM to prediction", "per seed", "cos min-min",
            "cos maj-min"] + [f"epochs to ΔGM_OF ≤ {t:g}" for t in BEYOND_THRESHOLDS] + [
            "NC1", "NCM", "ΔGM_OF − ReLU's (Welch p)"]
    table = [[r["setting"], _activation_cell(r), f"{r['tau']:g}", _seeds(r),
              r["prediction"] or "-", _f(r["predicted_delta_gm_of"], "{:.4f}"),
              _ms(r["delta_gm_of"]), _per_seed(r["seeds"], r["delta_gm_of"]["values"]),
              _ms(r["delta_gm_predicted"]),
              _per_seed(r["seeds"], r["delta_gm_predicted"]["values"]),
              _ms(r["cos_min_min"]), _ms(r["cos_maj_min"])]
             + [_per_seed(r["seeds"], r[f"epochs_to_{t}"]) for t in BEYOND_THRESHOLDS]
             + [_ms(r["nc1"]), _ms(r["ncm_test_acc"]), _welch_cell(r["vs_relu"])] for r in rows]
    out += [_table(head, table), ""]
    if not any(r["seeds"] for r in rows):
        out += ["(no issue-38 run has finished yet)", ""]
    running = [p for r in rows for p in r["in_progress"]]
    if running:
        out += ["In progress: " + ", ".join(f"{p['run']} (epoch {p['epoch']}/{p['epochs']})"
                                            for p in running), ""]
    return out


def markdown(summary: dict[str, Any]) -> str:
    """The tables of ``summarize``'s dict as Markdown."""
    out = ["# FashionMNIST (issues 35 and 38)", ""]
    out.append(f"Finished runs: {len(summary['finished'])}"
               + (f" ({', '.join(summary['finished'])})" if summary["finished"] else ""))
    if summary["in_progress"]:
        out.append("In progress (excluded from every number): " + ", ".join(
            f"{p['run']} (epoch {p['epoch']}/{p['epochs']})" for p in summary["in_progress"]))
    out.append("")
    out.append("Final epoch of the finished runs; mean ± sample sd over seeds (the mean alone for "
               "one seed); `-`: no finished run.")
    out += ["", "## Central comparison: geometry", ""]
    head = ["setting", "seeds", "ΔGM_OF", "ΔGM_OF per seed", "ΔGM to no-ReLU UFM opt.",
            "per seed", "cos min-min", "cos maj-min",
            "epochs to ΔGM_OF ≤ 0.5", "epochs to ΔGM_OF ≤ 0.2"]
    rows = []
    for r in summary["central"]:
        rows.append([r["setting"], _seeds(r), _ms(r["delta_gm_of"]),
                     _per_seed(r["seeds"], r["delta_gm_of"]["values"]), _ms(r["delta_gm_ufm"]),
                     _per_seed(r["seeds"], r["delta_gm_ufm"]["values"]),
                     _ms(r["cos_min_min"]), _ms(r["cos_maj_min"]),
                     _per_seed(r["seeds"], r["epochs_to_0.5"]),
                     _per_seed(r["seeds"], r["epochs_to_0.2"])])
    out += [_table(head, rows), ""]
    out += ["## Central comparison: accuracy on the full test set", ""]
    head = ["setting", "seeds", "NCM", "NCM maj", "NCM min", "probe", "probe maj", "probe min"]
    rows = [[r["setting"], _seeds(r)] + [_ms(r[k]) for k in ACCURACY_KEYS]
            for r in summary["central"]]
    out += [_table(head, rows), ""]
    out += ["## The no-ReLU UFM optimum at the runs' counts", ""]
    if summary["ufm_optima"]:
        head = ["counts", "tau", "ΔGM_OF", "ΔGM_ETF", "loss", "proven bound", "rel. gap"]
        rows = [[",".join(map(str, o["counts"])), f"{o['tau']:g}", _f(o["delta_gm_of"], "{:.4f}"),
                 _f(o["delta_gm_etf"], "{:.4f}"), f"{o['loss']:.6f}", f"{o['lower_bound']:.6f}",
                 _f(o["rel_gap"], "{:.1e}")] for o in summary["ufm_optima"]]
        out += [_table(head, rows), ""]
    else:
        out += ["(no finished central run yet)", ""]
    out += ["## Model complexity (R = 10)", ""]
    head = ["setting", "arch", "seeds", "ΔGM_OF", "ΔGM_OF per seed", "cos min-min",
            "NCM (minority)", "probe (minority)", "epochs to ≤ 0.5", "epochs to ≤ 0.2"]
    rows = [[r["setting"], r["arch"] or "-", _seeds(r), _ms(r["delta_gm_of"]),
             _per_seed(r["seeds"], r["delta_gm_of"]["values"]), _ms(r["cos_min_min"]),
             _with_minority(r, "ncm_test_acc"), _with_minority(r, "probe_test_acc"),
             _per_seed(r["seeds"], r["epochs_to_0.5"]), _per_seed(r["seeds"], r["epochs_to_0.2"])]
            for r in summary["complexity"]]
    out += [_table(head, rows), ""]
    out += _pace_markdown(summary["complexity_pace"], PACE_EPOCHS)
    out += _length_markdown(summary)
    out += ["## Generalization: SCL vs CE (exact McNemar test, SCL right & CE wrong = b)", ""]
    head = ["R", "seed", "classifier", "SCL acc", "CE acc", "SCL acc min", "CE acc min",
            "McNemar all", "McNemar minority"]
    rows, lines = [], []
    for g in summary["generalization"]:
        if not g["pairs"]:
            lines.append(f"R = {g['R']}: no seed finished with both SCL and CE yet.")
            continue
        before = len(rows)
        for p in g["pairs"]:
            for name, _ in CLASSIFIERS:
                e = p[name]
                if e is None:
                    continue
                rows.append([str(g["R"]), str(p["seed"]), name, _f(e["scl_acc"]), _f(e["ce_acc"]),
                             _f(e["scl_acc_min"]), _f(e["ce_acc_min"]),
                             _p(e["mcnemar"]["all"]), _p(e["mcnemar"]["minority"])])
        for name, _ in CLASSIFIERS:
            t = g["pooled"][name]
            if t is not None:
                rows.append([str(g["R"]), "pooled", name, "", "", "", "", _p(t["all"]),
                             _p(t["minority"])])
        if len(rows) == before:
            lines.append(f"R = {g['R']}: seeds {', '.join(map(str, g['seeds']))} finished with "
                         "both SCL and CE, but no usable final-epoch hits (see the warnings).")
    if rows:
        out += [_table(head, rows), ""]
    out += lines
    out += [""] + _beyond_markdown(summary["beyond"])
    if summary["warnings"]:
        out += ["", "Warnings:"] + [f"- {w}" for w in summary["warnings"]]
    return "\n".join(out).rstrip() + "\n"
