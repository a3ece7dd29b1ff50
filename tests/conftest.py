"""Fixtures shared by several test modules."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture
def stand_in_epochs(monkeypatch):
    """``deep.training``'s epochs without compilation: loss 1 + epoch, one-hot (OF) features."""
    pytest.importorskip("flax")
    import deep.training
    from deep.metrics import epoch_metrics

    def train_epoch(run, state, epoch, on_step):
        for t in range(run.steps_per_epoch):
            on_step(t, np.zeros(len(run.seeds)))
        return state, np.full(len(run.seeds), 1.0 + epoch)

    def evaluate(run, state, test="full"):
        k = run.num_classes
        return [{**epoch_metrics(np.eye(k)[run.labels], run.labels, np.eye(k)[run.y_test],
                                 run.y_test, k=k, n_majority=run.n_majority),
                 "test_set": test, "test_images": int(run.y_test.size)} for _ in run.seeds]

    monkeypatch.setattr(deep.training, "train_epoch", train_epoch)
    monkeypatch.setattr(deep.training, "evaluate", evaluate)
