"""Plots and a final-epoch table of one or several training runs (``python -m deep.report``).

Pure functions of the runs' metrics (lists of ``metrics.jsonl`` records): ``run_labels``
names each run by the configuration fields that differ between the runs (e.g. ``relu=False``
vs ``schedule=binding``), ``figures`` returns matplotlib figures (Agg) of Delta_GM to the OF
and to the ETF, NC1, the class-mean cosine groups and the nearest-class-mean accuracy against
the epoch, ``final_table`` the last epoch of each run as text. Reading and saving files is
``deep.report_cmd``'s job. Runs that differ only in their seed form one group
(``seed_groups``): one colour in the plots, and ``seed_summary`` gives mean, standard deviation
and range of the final values over the seeds.

``clean_records`` is the one check of what a ``metrics.jsonl`` holds (``run_config`` of what a
``config.json`` holds): a line that is not a JSON object, lacks an integer ``epoch >= 1``, or
has a wrong-typed field (a metric that is not a finite number of magnitude <= ``MAX_ABS`` or
null, a ``class_mean_gram`` that is not a k x k list of such numbers or null) is dropped and
counted; of an epoch given twice the last line counts. The records come back sorted by epoch.

>>> recs, skipped, repeated = clean_records([{"epoch": 2, "nc1": 1}, {"epoch": 1, "nc1": "abc"},
...                                          [1, 2], {"epoch": 2, "nc1": 0.5}, {"epoch": True}])
>>> recs, skipped, repeated
([{'epoch': 2, 'nc1': 0.5}], 3, 1)

>>> runs = [RunMetrics("a", {"relu": True, "seed": 0}, [{"epoch": 1, "delta_gm_of": 0.5}]),
...         RunMetrics("b", {"relu": False, "seed": 0}, [{"epoch": 1, "delta_gm_of": 0.7}])]
>>> run_labels(runs)
['relu=True', 'relu=False']
>>> [g.label for g in seed_groups(runs + [RunMetrics("c", {"relu": True, "seed": 1}, [])])]
['relu=True', 'relu=False']
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

__all__ = ["RunMetrics", "SeedGroup", "clean_records", "run_config", "run_labels", "seed_groups",
           "figures", "final_table", "seed_summary", "TABLE_COLUMNS", "SUMMARY_COLUMNS",
           "METRIC_FIELDS", "MAX_ABS", "MAX_EPOCH"]

TABLE_COLUMNS = (
    ("epoch", "epoch", "{:d}"),
    ("loss", "loss", "{:.4f}"),
    ("delta_gm_of", "dGM_OF", "{:.4f}"),
    ("delta_gm_etf", "dGM_ETF", "{:.4f}"),
    ("nc1", "NC1", "{:.3g}"),
    ("cos_maj_maj", "cos_MM", "{:+.3f}"),
    ("cos_min_min", "cos_mm", "{:+.3f}"),
    ("cos_maj_min", "cos_Mm", "{:+.3f}"),
    ("ncm_train_acc", "NCM_tr", "{:.3f}"),
    ("ncm_test_acc", "NCM_te", "{:.3f}"),
)

# columns of the over-seeds summary
SUMMARY_COLUMNS = ("delta_gm_of", "delta_gm_etf", "nc1", "ncm_test_acc")

# the numeric fields of a metrics.jsonl line (``deep.training.epoch_record``): a number or null
METRIC_FIELDS = tuple(k for k, _, _ in TABLE_COLUMNS if k != "epoch") + (
    "zero_features", "nonfinite_features", "cos_min", "cos_max", "lr", "seconds", "train_seconds")
# no training metric comes near it (float32 ends at 3.4e38); beyond, the plots' axis arithmetic
# overflows (matplotlib fails on a range of 1e308)
MAX_ABS = 1e100
MAX_EPOCH = 2**53  # an epoch is exact on the plots' float axis

# configuration fields that never name a run (bookkeeping, or equal by construction)
_IGNORED = {"data_dir", "eval_batch_size", "seeds", "lr_milestones", "test_every", "test_subset"}


@dataclass
class RunMetrics:
    """One run's name (its folder), configuration and per-epoch records."""

    name: str
    config: dict[str, Any]
    records: list[dict[str, Any]] = field(default_factory=list)


_BAD = object()  # a field value clean_records rejects


def _number(value: Any) -> Any:
    """``value`` as a float if it is a JSON number (not a bool), finite and ``|value| <= MAX_ABS``;
    None for null; else ``_BAD``."""
    if value is None:
        return None
    if type(value) not in (int, float):
        return _BAD
    try:
        x = float(value)
    except OverflowError:  # an integer beyond the float range
        return _BAD
    return x if math.isfinite(x) and abs(x) <= MAX_ABS else _BAD


def _gram(value: Any) -> Any:
    """``value`` if it is null or a k x k list (k >= 1) of ``_number``s, else ``_BAD``."""
    if value is None:
        return None
    if type(value) is not list or not value:
        return _BAD
    k = len(value)
    if any(type(row) is not list or len(row) != k for row in value):
        return _BAD
    if not all(set(map(type, row)) <= {int, float} for row in value):  # no bool, str, null
        return _BAD
    try:
        a = np.array(value, dtype=float)
    except OverflowError:  # an integer beyond the float range
        return _BAD
    return value if np.isfinite(a).all() and np.abs(a).max() <= MAX_ABS else _BAD


def _clean_record(raw: Any) -> dict[str, Any] | None:
    """The record with its metric fields as floats, or None if ``raw`` is not a usable line."""
    if not isinstance(raw, dict):
        return None
    epoch = raw.get("epoch")
    if type(epoch) is not int or not 1 <= epoch <= MAX_EPOCH:
        return None
    rec = dict(raw)
    for key in METRIC_FIELDS:
        if key in rec:
            rec[key] = _number(rec[key])
            if rec[key] is _BAD:
                return None
    if "class_mean_gram" in rec and _gram(rec["class_mean_gram"]) is _BAD:
        return None
    return rec


def clean_records(raw: Sequence[Any]) -> tuple[list[dict[str, Any]], int, int]:
    """The usable ``metrics.jsonl`` records, sorted by epoch: ``(records, skipped, repeated)``.

    Args:
      raw: the parsed lines of one run (any JSON values).

    Returns:
      ``records``: the lines that are JSON objects with ``epoch`` an integer in
      ``[1, MAX_EPOCH]``, every ``METRIC_FIELDS`` field present a finite number with
      ``|x| <= MAX_ABS`` (as a float) or null, and ``class_mean_gram`` (if present) null or a
      k x k list of such numbers; fields not named here pass unchecked. Of an epoch given
      more than once the last line is kept. ``skipped``: how many lines were not usable;
      ``repeated``: how many usable lines a later one of the same epoch replaced.
    """
    by_epoch: dict[int, dict[str, Any]] = {}
    skipped = repeated = 0
    for line in raw:
        rec = _clean_record(line)
        if rec is None:
            skipped += 1
            continue
        repeated += rec["epoch"] in by_epoch
        by_epoch[rec["epoch"]] = rec
    return [by_epoch[e] for e in sorted(by_epoch)], skipped, repeated


def run_config(raw: Any) -> dict[str, Any]:
    """The ``"config"`` object of a parsed ``config.json`` (``deep.training.config_record``).

    Raises:
      ValueError: naming what is wrong (not a JSON object, no ``"config"`` object in it).
    """
    if not isinstance(raw, dict):
        raise ValueError(f"is not a JSON object (a JSON {_json_type(raw)})")
    if "config" not in raw:
        raise ValueError('has no "config" field')
    if not isinstance(raw["config"], dict):
        raise ValueError(f'"config" is not a JSON object (a JSON {_json_type(raw["config"])})')
    return raw["config"]


def _json_type(value: Any) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", int: "number",
             float: "number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _differing(runs: Sequence[RunMetrics], drop: frozenset[str] = frozenset()) -> list[str]:
    """Config fields (bar bookkeeping and ``drop``) whose values differ between the runs."""
    keys = sorted({k for r in runs for k in r.config} - _IGNORED - drop)
    return [k for k in keys if len({repr(r.config.get(k)) for r in runs}) > 1]


def run_labels(runs: Sequence[RunMetrics]) -> list[str]:
    """Short labels: the config fields whose values differ between runs, else the names."""
    differ = _differing(runs)
    if not differ or len(runs) == 1:
        return [r.name for r in runs]
    labels = [", ".join(f"{k}={r.config.get(k)}" for k in differ) for r in runs]
    if len(set(labels)) < len(labels):
        labels = [f"{r.name}: {lab}" for r, lab in zip(runs, labels)]
    return labels


@dataclass
class SeedGroup:
    """Runs whose configurations agree except for the seed: a label and indices into the runs."""

    label: str
    members: list[int]


def seed_groups(runs: Sequence[RunMetrics]) -> list[SeedGroup]:
    """Group the runs by configuration without the seed, in order of first appearance.

    The label names the fields (other than the seed) that differ between groups.
    """
    keys = _differing(runs, frozenset({"seed"}))
    order: dict[tuple, list[int]] = {}
    for i, r in enumerate(runs):
        order.setdefault(tuple(repr(r.config.get(k)) for k in keys), []).append(i)
    groups = list(order.values())
    if not keys:  # one group
        g = groups[0]
        return [SeedGroup(runs[0].name if len(g) == 1 else f"{runs[0].name} (+{len(g) - 1})", g)]
    return [SeedGroup(", ".join(f"{k}={runs[g[0]].config.get(k)}" for k in keys), g) for g in groups]


def seed_summary(runs: Sequence[RunMetrics]) -> str:
    """Final values over the seeds of each group: ``mean +- sd [min, max] (n)``; sd with n - 1."""
    head = ["group", "n"] + [dict((k, h) for k, h, _ in TABLE_COLUMNS)[c] for c in SUMMARY_COLUMNS]
    rows = []
    for g in seed_groups(runs):
        row = [g.label, str(len(g.members))]
        for col in SUMMARY_COLUMNS:
            v = np.array([runs[i].records[-1][col] for i in g.members
                          if runs[i].records and runs[i].records[-1].get(col) is not None], float)
            if v.size == 0:
                row.append("-")
                continue
            f = (lambda x: f"{x:.3g}") if col == "nc1" else (lambda x: f"{x:.3f}")
            sd = f" +- {f(v.std(ddof=1))}" if v.size > 1 else ""
            row.append(f"{f(v.mean())}{sd} [{f(v.min())}, {f(v.max())}]")
        rows.append(row)
    return _format(head, rows)


def _format(head: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [head] + rows) for i in range(len(head))]
    fmt_row = lambda r: "  ".join(c.ljust(w) if i == 0 else c.rjust(w)  # noqa: E731
                                  for i, (c, w) in enumerate(zip(r, widths)))
    return "\n".join([fmt_row(head)] + [fmt_row(r) for r in rows])


def _series(run: RunMetrics, key: str) -> tuple[list[int], list[float]]:
    pts = [(r["epoch"], r[key]) for r in run.records if r.get(key) is not None]
    return [p[0] for p in pts], [p[1] for p in pts]


def figures(runs: Sequence[RunMetrics]) -> dict[str, Any]:
    """``{file stem: matplotlib Figure}``: delta_gm, nc1, cosines, accuracy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from matplotlib.ticker import MaxNLocator

    # one colour per seed group, labelled once (with the number of seeds when more than one)
    labels: list[str | None] = [None] * len(runs)
    colors: list[Any] = [None] * len(runs)
    groups = seed_groups(runs)
    if len(groups) == len(runs):
        groups = [SeedGroup(lab, [i]) for i, lab in enumerate(run_labels(runs))]
    for j, g in enumerate(groups):
        for i in g.members:
            colors[i] = plt.get_cmap("tab10")(j % 10)
        labels[g.members[0]] = g.label + (f" ({len(g.members)} seeds)" if len(g.members) > 1 else "")
    out: dict[str, Any] = {}

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, key, title in zip(axes, ("delta_gm_of", "delta_gm_etf"),
                              ("to the orthogonal frame (OF)", "to the simplex ETF")):
        for run, lab, col in zip(runs, labels, colors):
            ax.plot(*_series(run, key), label=lab, color=col)
        ax.set_title(f"$\\Delta_{{GM}}$ {title}")
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(r"$\Delta_{GM}$")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    out["delta_gm"] = fig

    fig, ax = plt.subplots(figsize=(6, 4))
    for run, lab, col in zip(runs, labels, colors):
        x, y = _series(run, "nc1")
        ax.plot(x, y, label=lab, color=col)
    if any(v > 0 for run in runs for v in _series(run, "nc1")[1]):
        ax.set_yscale("log")
    ax.set_title("NC1 (within-class variability)")
    ax.set_xlabel("epoch")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out["nc1"] = fig

    fig, axes = plt.subplots(1, 3, figsize=(14, 4), sharey=True)
    for ax, key, title in zip(axes, ("cos_maj_maj", "cos_min_min", "cos_maj_min"),
                              ("majority-majority", "minority-minority", "majority-minority")):
        for run, lab, col in zip(runs, labels, colors):
            ax.plot(*_series(run, key), label=lab, color=col)
        ax.axhline(0.0, color="k", lw=0.6)
        ax.set_title(f"mean class-mean cosine, {title}")
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    out["cosines"] = fig

    fig, ax = plt.subplots(figsize=(6, 4))
    for run, lab, col in zip(runs, labels, colors):
        ax.plot(*_series(run, "ncm_test_acc"), label=None if lab is None else f"{lab} (test)", color=col)
        ax.plot(*_series(run, "ncm_train_acc"), ls="--", color=col, alpha=0.7)
    ax.set_title("nearest-class-mean accuracy (dashed: train)")
    ax.set_xlabel("epoch")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out["accuracy"] = fig
    for f in out.values():
        for ax in f.axes:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return out


def _cell(fmt: str, value: Any) -> str:
    if value is None:
        return "-"
    try:
        return fmt.format(value)
    except (ValueError, TypeError):
        return str(value)


def final_table(runs: Sequence[RunMetrics]) -> str:
    """The last record of every run, one row each (``-`` where a value is missing)."""
    labels = run_labels(runs)
    head = ["run"] + [h for _, h, _ in TABLE_COLUMNS]
    rows = []
    for run, lab in zip(runs, labels):
        last = run.records[-1] if run.records else {}
        rows.append([lab] + [_cell(fmt, last.get(key)) for key, _, fmt in TABLE_COLUMNS])
    return _format(head, rows)
