"""Timing of the batch-condition check at scale (``python -m theory_checks.bench``; also run by
``python -m ufm.bench``).

``bench_graph_check`` writes a batches.json (random labels, a schedule over ``epochs``) to a
temporary folder, then times reading it (``read_batches_json``) and checking it
(``check_batches``) apart. The target (issue 5): 1,000,000 samples x 10 epochs of batches of 50
read and checked in <= 10 s.

>>> r = bench_graph_check(n_samples=2_000, epochs=2, batch_size=20, k=4)
>>> r["holds"], r["n_batches"], r["seconds"] == r["read_seconds"] + r["check_seconds"]
(True, 200, True)
"""

from __future__ import annotations

import os
import tempfile
import time
from typing import Any

import numpy as np

__all__ = ["bench_graph_check"]

TARGET_SECONDS = 10.0


def bench_graph_check(n_samples: int = 1_000_000, epochs: int = 10, batch_size: int = 50,
                      k: int = 10, seed: int = 0, schedule: str = "shuffle") -> dict[str, Any]:
    """Write, read and check a batches.json; seconds of read and check apart (and together).

    Labels are uniform random over ``k`` classes (seeded); batches from ``schedule_batches``.
    """
    from theory_checks.interaction import check_batches
    from theory_checks.io import read_batches_json, write_batches_json
    from theory_checks.schedules import schedule_batches

    labels = np.random.default_rng(seed).integers(0, k, n_samples)
    batches = schedule_batches(labels, schedule=schedule, batch_size=batch_size, epochs=epochs,
                               seed=seed)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "batches.json")
        t0 = time.perf_counter()
        write_batches_json(path, labels, batches)
        t1 = time.perf_counter()
        size = os.path.getsize(path)
        read_labels, read_batches, _ = read_batches_json(path)
        t2 = time.perf_counter()
        res = check_batches(read_labels, read_batches)
        t3 = time.perf_counter()
    seconds = (t2 - t1) + (t3 - t2)
    return {
        "n_samples": n_samples,
        "k": k,
        "epochs": epochs,
        "batch_size": batch_size,
        "schedule": schedule,
        "n_batches": res.n_batches,
        "n_entries": res.n_entries,
        "file_mb": round(size / 1e6, 1),
        "write_seconds": t1 - t0,
        "read_seconds": t2 - t1,
        "check_seconds": t3 - t2,
        "seconds": seconds,
        "target_seconds": TARGET_SECONDS,
        "within_target": seconds <= TARGET_SECONDS,
        "holds": res.holds,
    }
