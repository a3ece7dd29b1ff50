"""Analysis of features trained elsewhere (issue 36): the toolkit's verdicts for ANY network's
penultimate features and labels, in one call (``ufm.analyze``) or one command
(``python -m ufm.analyze FEATURES``; docs/analyze.md).

Modules, one job each (all pure: no file I/O, no argparse; NumPy only except ``optimum``):

- ``features``: the fast one-pass class geometry of N x d features (class means, their Gram
  and cosine matrices, NC1, per-class spread) in both metric conventions (``project``,
  DESIGN.md section 4; ``kini``, the Kini et al. official code, section 8), and the feature
  health (negative entries, dead coordinates, zero and non-finite rows);
- ``groups``: majority / minority classes for arbitrary counts and the cosine summaries;
- ``optimum``: the certified UFM optimum at given counts (with and without ReLU), cached per
  ``(counts, tau, relu)``;
- ``report``: ``analyze`` -> ``AnalysisReport`` (``to_dict()``).

``deep.metrics.epoch_metrics`` computes its geometry through ``features`` and ``groups`` (one
implementation). The names are loaded on first use, so ``ufm.analysis.features`` imports no JAX.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ufm.lazy import lazy_exports

if TYPE_CHECKING:
    from ufm.analysis.features import CONVENTIONS, ClassGeometry, class_geometry, feature_health
    from ufm.analysis.groups import cosine_summaries, majority_classes
    from ufm.analysis.optimum import UFMOptimum, ufm_optimum
    from ufm.analysis.report import AnalysisReport, analyze

_EXPORTS = {
    "CONVENTIONS": "ufm.analysis.features",
    "ClassGeometry": "ufm.analysis.features",
    "class_geometry": "ufm.analysis.features",
    "feature_health": "ufm.analysis.features",
    "cosine_summaries": "ufm.analysis.groups",
    "majority_classes": "ufm.analysis.groups",
    "UFMOptimum": "ufm.analysis.optimum",
    "ufm_optimum": "ufm.analysis.optimum",
    "AnalysisReport": "ufm.analysis.report",
    "analyze": "ufm.analysis.report",
}

__all__ = list(_EXPORTS)

__getattr__, __dir__ = lazy_exports(globals(), "ufm.analysis", _EXPORTS)
