"""Theory checks on batches (DESIGN.md section 6): the batch interaction-graph conditions
(a*) and (b) for the OF to be the unique minimizer, and the batch schedules (samplers).

- ``check_batches(labels, batches, d=None) -> BatchCheck``; ``interaction_graph`` (networkx)
- ``epoch_batches``, ``schedule_batches``, ``binding_samples``, ``SCHEDULES``
- CLIs: ``python -m theory_checks.graph --batches FILE``, ``python -m theory_checks.batches``

The names are loaded on first use (so ``python -m theory_checks.graph`` runs its module fresh).

>>> import theory_checks
>>> theory_checks.check_batches([0, 0, 1, 1], [[0, 1, 2], [1, 2, 3]]).holds
True
"""

from __future__ import annotations

from ufm.lazy import lazy_exports

_EXPORTS = {
    "check_batches": "theory_checks.graph",
    "BatchCheck": "theory_checks.graph",
    "FlatBatches": "theory_checks.graph",
    "flatten_batches": "theory_checks.graph",
    "interaction_graph": "theory_checks.graph",
    "epoch_batches": "theory_checks.batches",
    "schedule_batches": "theory_checks.batches",
    "binding_samples": "theory_checks.batches",
    "SCHEDULES": "theory_checks.batches",
    "read_batches_json": "theory_checks.io",
    "write_batches_json": "theory_checks.io",
}

__all__ = list(_EXPORTS)


__getattr__, __dir__ = lazy_exports(globals(), "theory_checks", _EXPORTS)
