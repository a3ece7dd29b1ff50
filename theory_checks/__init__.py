"""Theory checks on batches (DESIGN.md section 6): the batch interaction-graph conditions
(a*) and (b) for the OF to be the unique minimizer, and the batch schedules (samplers).

Library modules (explicit re-exports below; importing the package loads numpy, not JAX):

- ``theory_checks.interaction``: ``check_batches(labels, batches, d=None) -> BatchCheck``,
  ``interaction_graph`` (networkx), ``flatten_batches``
- ``theory_checks.schedules``: ``epoch_batches``, ``schedule_batches``, ``binding_samples``,
  ``SCHEDULES``, and the batch-binding variants ``binding_variant_epoch``,
  ``binding_variant_batches`` (binding samples for some classes only, or new ones each epoch)
- ``theory_checks.coverage``: how much shuffling is enough (issue 38): the exact one-epoch
  probability ``one_epoch_probability``, the exact per-epoch events ``pair_unpinned_probability``,
  ``cut_unjoined_probability``, ``isolation_probability``, ``shuffle_batch_sizes``; bounds on the
  probability that E shuffled epochs satisfy (a*) and (b): ``coverage_bounds`` /
  ``coverage_probability`` -> ``CoverageBounds``; ``epochs_needed``, ``epochs_needed_for_counts``,
  ``epochs_range``, ``epochs_summary``; Monte Carlo with the fast checker
  ``monte_carlo_probability`` -> ``MonteCarlo``, ``clopper_pearson``; batch-binding
  ``binding_guarantee`` -> ``BindingVerdict``, ``binding_variants_report``,
  ``partial_binding_bounds``, ``partial_binding_epochs_needed``; ``advise`` (what
  ``python -m theory_checks.batches --advise`` prints, as a dict)
- ``theory_checks.io``: ``read_batches_json``, ``write_batches_json``
- ``theory_checks.benchmark``: ``bench_graph_check`` (timing at scale)

Command lines (entry module -> code): ``python -m theory_checks.graph --batches FILE``
(``theory_checks.graph_cmd``), ``python -m theory_checks.batches`` (``theory_checks.batches_cmd``;
``--advise``: the epochs needed), ``python -m theory_checks.bench`` (``theory_checks.bench_cmd``).

>>> import theory_checks
>>> theory_checks.check_batches([0, 0, 1, 1], [[0, 1, 2], [1, 2, 3]]).holds
True
"""

from __future__ import annotations

from theory_checks.interaction import (
    BatchCheck,
    FlatBatches,
    check_batches,
    flatten_batches,
    interaction_graph,
)
from theory_checks.coverage import (
    BindingVerdict,
    advise,
    CoverageBounds,
    MonteCarlo,
    binding_guarantee,
    binding_variants_report,
    clopper_pearson,
    coverage_bounds,
    coverage_probability,
    cut_unjoined_probability,
    epochs_needed,
    epochs_needed_for_counts,
    epochs_range,
    epochs_summary,
    isolation_probability,
    monte_carlo_probability,
    one_epoch_probability,
    pair_unpinned_probability,
    partial_binding_bounds,
    partial_binding_epochs_needed,
    shuffle_batch_sizes,
)
from theory_checks.io import read_batches_json, write_batches_json
from theory_checks.schedules import (
    SCHEDULES,
    binding_samples,
    binding_variant_batches,
    binding_variant_epoch,
    epoch_batches,
    schedule_batches,
)

__all__ = [
    "check_batches",
    "BatchCheck",
    "FlatBatches",
    "flatten_batches",
    "interaction_graph",
    "epoch_batches",
    "schedule_batches",
    "binding_samples",
    "binding_variant_epoch",
    "binding_variant_batches",
    "SCHEDULES",
    "shuffle_batch_sizes",
    "pair_unpinned_probability",
    "cut_unjoined_probability",
    "isolation_probability",
    "one_epoch_probability",
    "CoverageBounds",
    "coverage_bounds",
    "coverage_probability",
    "epochs_needed",
    "epochs_needed_for_counts",
    "epochs_range",
    "epochs_summary",
    "MonteCarlo",
    "monte_carlo_probability",
    "clopper_pearson",
    "BindingVerdict",
    "binding_guarantee",
    "binding_variants_report",
    "partial_binding_bounds",
    "partial_binding_epochs_needed",
    "advise",
    "read_batches_json",
    "write_batches_json",
]
