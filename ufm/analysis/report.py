"""``analyze(features, labels)``: the toolkit's verdicts on features a network learned anywhere.

For penultimate features (before normalization) and labels it reports the class counts and
imbalance, ``Delta_GM`` to the orthogonal frame (OF), the simplex ETF and the certified UFM
optimum at the same counts (with and without ReLU), NC1, the class-mean cosines against the
predicted ones with their majority / minority summaries, and the feature health (negative
entries, dead coordinates, zero rows). Pure and fast: no file I/O; the optimum is computed once
per ``(counts, tau, relu)`` (``ufm.analysis.optimum``, cached) or skipped with
``optimum=False``, so a training loop may call it every epoch (about 20-40 ms for 10,000 x 512
float32 features once the optimum is cached; ``python -m ufm.bench --only analyze``).

>>> import numpy as np
>>> h = np.eye(3)[[0, 0, 1, 1, 2, 2]] * [[1.0], [2.0], [1.0], [4.0], [1.0], [1.0]]
>>> r = analyze(h, [0, 0, 1, 1, 2, 2], optimum=False)
>>> r.relu, r.relu_source, r.delta_gm_of, r.nc1
(True, 'detected', 0.0, 0.0)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ufm.analysis.features import (CONVENTIONS, check_features, class_geometry, feature_health,
                                   row_squares)
from ufm.analysis.groups import GROUP_RULE, cosine_summaries, majority_classes
from ufm.core.checks import check_tau
from ufm.core.geometry import delta_gm, metric_or_none

__all__ = ["AnalysisReport", "analyze"]


@dataclass
class AnalysisReport:
    """What ``analyze`` returns; ``to_dict()`` is its JSON form (the ``--json`` output).

    Attributes:
      n_samples, dim: ``N`` and ``d`` of the features.
      classes: the label values, in class order (sorted); ``counts``: samples per class.
      imbalance_ratio: ``R = n_max / n_min``.
      majority: per class, whether it is a majority class (``groups_rule``).
      convention: ``"project"`` or ``"kini"`` (docs/analyze.md).
      tau: the temperature of the predicted optimum.
      relu: whether the features are read as ReLU features (UFM+); ``relu_source``:
        ``"given"`` or ``"detected"`` (every entry >= 0).
      delta_gm_of, delta_gm_etf: ``Delta_GM`` to the OF and to the ETF (``None`` where
        undefined: every class mean zero).
      delta_gm_optimum: to the predicted optimum (the one of ``relu``);
        ``delta_gm_optimum_relu`` / ``_norelu``: to each (``None`` with ``optimum=False``).
      nc1: NC1 of the convention (``None`` when every class mean is the same).
      cosines: ``k x k`` measured class-mean cosines; ``predicted_cosines``: the optimum's
        (``None`` with ``optimum=False``).
      summaries: ``{"measured": ..., "predicted": ...}`` cosine summaries
        (``ufm.analysis.groups.cosine_summaries``).
      per_class: one dict per class: ``class``, ``count``, ``group``, ``mean_norm`` (norm of the
        convention's class mean; 1 = collapsed for ``project``), ``spread`` (mean squared
        distance to the mean), ``mean_cos`` and ``max_cos`` (measured, to the other classes)
        and ``mean_cos_predicted`` / ``max_cos_predicted``.
      health: ``ufm.analysis.features.feature_health`` (``negative_fraction``,
        ``dead_coordinates``, ``zero_rows``, ...) and ``dead_fraction``.
      optimum: ``{"relu": ..., "norelu": ...}`` of ``UFMOptimum.to_dict()`` without the
        cosines, or ``None``.
      batches: the batch-condition verdict (``theory_checks``' ``BatchCheck.to_dict()``) when
        the caller adds one (``python -m ufm.analyze --batches``), else ``None``.
      warnings: sentences on what limits the reading (d too small for the optimum, zero rows,
        dead coordinates, an uncertified optimum).
    """

    n_samples: int
    dim: int
    classes: list[int]
    counts: list[int]
    imbalance_ratio: float
    majority: list[bool]
    groups_rule: str
    convention: str
    tau: float
    relu: bool
    relu_source: str
    delta_gm_of: float | None
    delta_gm_etf: float | None
    delta_gm_optimum: float | None
    delta_gm_optimum_relu: float | None
    delta_gm_optimum_norelu: float | None
    nc1: float | None
    cosines: np.ndarray = field(repr=False)
    predicted_cosines: np.ndarray | None = field(repr=False)
    summaries: dict[str, Any] = field(repr=False)
    per_class: list[dict[str, Any]] = field(repr=False)
    health: dict[str, Any] = field(repr=False)
    optimum: dict[str, Any] | None = field(repr=False)
    batches: dict[str, Any] | None = field(default=None, repr=False)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Every field, arrays as nested lists (``ufm.core.jsonable.to_json`` writes it)."""
        out = {name: getattr(self, name) for name in self.__dataclass_fields__}
        out["cosines"] = self.cosines.tolist()
        out["predicted_cosines"] = (None if self.predicted_cosines is None
                                    else self.predicted_cosines.tolist())
        return out


def _class_rows(classes, counts, majority, g, predicted) -> list[dict[str, Any]]:
    k = len(counts)
    off = ~np.eye(k, dtype=bool)
    norms = np.linalg.norm(g.means, axis=1)
    rows = []
    for c in range(k):
        measured = g.cosines[c][off[c]]
        row = {"class": classes[c], "count": int(counts[c]),
               "group": "majority" if majority[c] else "minority",
               "mean_norm": float(norms[c]), "spread": float(g.spread[c]),
               "mean_cos": float(measured.mean()), "max_cos": float(measured.max()),
               "mean_cos_predicted": None, "max_cos_predicted": None}
        if predicted is not None:
            row.update(mean_cos_predicted=float(predicted[c][off[c]].mean()),
                       max_cos_predicted=float(predicted[c][off[c]].max()))
        rows.append(row)
    return rows


def analyze(features: Any, labels: Sequence[int], *, tau: float = 0.1, relu: bool | None = None,
            convention: str = "project", optimum: bool = True) -> AnalysisReport:
    """Geometry report of ``features`` (``N x d``, before normalization) with ``labels``.

    Args:
      features: the penultimate features, a real ``N x d`` array (NumPy, or anything
        ``numpy.asarray`` reads: a CPU torch tensor, a JAX array); float32 is fine.
      labels: ``N`` integer labels (any integer values; the classes are their sorted distinct
        values), every class with >= 2 samples, >= 2 classes.
      tau: temperature of the predicted optimum (default 0.1), in ``[1e-6, 1e6]``.
      relu: whether a ReLU was applied to the features (UFM+); ``None`` (default) detects it:
        ReLU when every entry is >= 0 (``relu_source = "detected"``).
      convention: ``"project"`` (DESIGN.md section 4) or ``"kini"`` (Kini et al.'s code:
        raw class means, NC1 without ``1/k``); docs/analyze.md.
      optimum: compute the certified UFM optimum at these counts (cached per ``(counts, tau,
        relu)``; the first call per counts solves, seconds) and ``Delta_GM`` to it;
        ``False`` skips it (the ``*_optimum*`` fields and ``predicted_cosines`` are ``None``).

    Returns:
      An ``AnalysisReport``.

    Raises:
      ValueError: one line naming the problem, starting with ``features`` / ``labels`` for
        the data (``ufm.analysis.features.check_features``), or naming ``tau``, ``relu`` or
        ``convention``.

    References:
      Kini et al., "Symmetric Neural-Collapse Representations with Supervised Contrastive
      Loss: The Impact of ReLU and Batching", ICLR 2024 (arXiv:2306.07960); Graf et al.,
      "Dissecting Supervised Contrastive Learning", ICML 2021; DESIGN.md sections 4 and 8.
    """
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {', '.join(CONVENTIONS)}, got {convention!r}")
    if relu is not None and not isinstance(relu, (bool, np.bool_)):
        raise ValueError(f"relu must be True, False or None (detect), got {relu!r}")
    tau = check_tau(tau)
    h, y, classes, counts = check_features(features, labels)
    x = np.asarray(h, dtype=np.float64)  # the one float64 copy (none for float64 input)
    sq = row_squares(x)  # and the finiteness check
    health = feature_health(h, sq)
    n, d = h.shape
    k = counts.size
    health["dead_fraction"] = health["dead_coordinates"] / d
    use_relu = bool(health["nonnegative"]) if relu is None else bool(relu)
    g = class_geometry(x, y, k, convention, row_sq=sq)
    majority = majority_classes(counts)
    deltas = {t: metric_or_none(delta_gm, g.gram, t) for t in ("of", "etf")}
    warnings: list[str] = []
    optima = None
    predicted = None
    to_opt: dict[bool, float | None] = {True: None, False: None}
    if optimum:
        from ufm.analysis.optimum import ufm_optimum

        optima = {r: ufm_optimum(counts, tau, r) for r in (True, False)}
        for r, opt in optima.items():
            to_opt[r] = metric_or_none(delta_gm, g.gram, opt.cosines)
            if not opt.certified:
                warnings.append(f"the {'ReLU' if r else 'no-ReLU'} optimum is not certified "
                                f"(relative gap {opt.rel_gap:.1e} to the proven bound)")
        predicted = np.array(optima[use_relu].cosines)
    if use_relu and d < k:
        warnings.append(f"d = {d} < k = {k}: ReLU features cannot reach the orthogonal frame")
    if not use_relu and d < k - 1:
        warnings.append(f"d = {d} < k - 1 = {k - 1}: the no-ReLU optimum at d = k may be out of reach")
    if relu is True and not health["nonnegative"]:
        warnings.append(f"relu=True but {health['negative_fraction']:.1%} of the entries are negative")
    if health["zero_rows"] > 0:
        warnings.append(f"{health['zero_rows']:.2%} of the rows are exactly 0 (no direction; "
                        "they count as 0 in the class means)")
    if health["dead_coordinates"]:
        warnings.append(f"{health['dead_coordinates']} of {d} coordinates are 0 in every row (dead units)")
    if deltas["of"] is None:
        warnings.append("every class mean is 0: Delta_GM and the cosines are undefined")
    summaries = {"measured": cosine_summaries(g.cosines, majority),
                 "predicted": None if predicted is None else cosine_summaries(predicted, majority)}
    return AnalysisReport(
        n_samples=int(n), dim=int(d), classes=classes.tolist(), counts=counts.tolist(),
        imbalance_ratio=float(counts.max() / counts.min()), majority=majority.tolist(),
        groups_rule=GROUP_RULE, convention=convention, tau=tau, relu=use_relu,
        relu_source="detected" if relu is None else "given",
        delta_gm_of=deltas["of"], delta_gm_etf=deltas["etf"],
        delta_gm_optimum=to_opt[use_relu] if optimum else None,
        delta_gm_optimum_relu=to_opt[True], delta_gm_optimum_norelu=to_opt[False],
        nc1=g.nc1, cosines=g.cosines, predicted_cosines=predicted, summaries=summaries,
        per_class=_class_rows(classes.tolist(), counts, majority, g, predicted), health=health,
        optimum=None if optima is None else {("relu" if r else "norelu"): {
            key: v for key, v in opt.to_dict().items() if key != "cosines"} for r, opt in optima.items()},
        warnings=warnings,
    )
