"""Theory checks on batches (DESIGN.md section 6): the batch interaction-graph conditions
(a*) and (b) for the OF to be the unique minimizer, and the batch schedules (samplers).

Library modules (explicit re-exports below; importing the package loads numpy, not JAX):

- ``theory_checks.interaction``: ``check_batches(labels, batches, d=None) -> BatchCheck``,
  ``interaction_graph`` (networkx), ``flatten_batches``
- ``theory_checks.schedules``: ``epoch_batches``, ``schedule_batches``, ``binding_samples``,
  ``SCHEDULES``
- ``theory_checks.io``: ``read_batches_json``, ``write_batches_json``
- ``theory_checks.benchmark``: ``bench_graph_check`` (timing at scale)

Command lines (entry module -> code): ``python -m theory_checks.graph --batches FILE``
(``theory_checks.graph_cmd``), ``python -m theory_checks.batches`` (``theory_checks.batches_cmd``),
``python -m theory_checks.bench`` (``theory_checks.bench_cmd``).

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
from theory_checks.io import read_batches_json, write_batches_json
from theory_checks.schedules import SCHEDULES, binding_samples, epoch_batches, schedule_batches

__all__ = [
    "check_batches",
    "BatchCheck",
    "FlatBatches",
    "flatten_batches",
    "interaction_graph",
    "epoch_batches",
    "schedule_batches",
    "binding_samples",
    "SCHEDULES",
    "read_batches_json",
    "write_batches_json",
]
