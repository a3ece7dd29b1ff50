"""deep: train real networks with the SC loss and measure their geometry (issue 7).

Library modules:

- ``deep.models``: CIFAR ResNet-18, DenseNet-40 (k=12) and tiny variants (Flax linen)
- ``deep.data``: digits (bundled), MNIST / Fashion-MNIST (IDX), CIFAR-10 (pickle); STEP subsets
- ``deep.augment``: random crop + flip on the device, two views
- ``deep.configs``: ``TrainConfig`` and the per-data-set defaults
- ``deep.training``: ``train_and_evaluate(config, workdir)`` (the whole run: epochs, metrics,
  checkpoints, resume) and its pieces: the jitted, seed-vmapped step (loss: ``ufm.scl_loss``)
- ``deep.metrics``: Delta_GM (OF, ETF), NC1, class-mean cosines, nearest-class-mean accuracy
- ``deep.checkpoint`` / ``deep.rundir``: atomic checkpoints, config.json and metrics.jsonl
- ``deep.reporting``: plots and tables of runs; ``deep.benchmark``: training images/s
- ``deep.torch_ref``: the PyTorch reference step of the benchmark

Command lines (entry module -> code): ``python -m deep.train`` (``deep.train_cmd``),
``python -m deep.report`` (``deep.report_cmd``), ``python -m deep.bench`` (``deep.bench_cmd``).

The names below are re-exported LAZILY (``ufm.lazy``, loaded on first use): ``import deep``,
which every ``python -m deep.<tool>`` does first, loads neither JAX nor Flax, so ``--help``
and usage errors stay fast.
"""

from __future__ import annotations

from ufm.lazy import lazy_exports

_EXPORTS = {
    "TrainConfig": "deep.configs",
    "resolve": "deep.configs",
    "train_and_evaluate": "deep.training",
    "TrainResult": "deep.training",
    "TrainCallbacks": "deep.training",
    "StartError": "deep.training",
    "TrainingDiverged": "deep.training",
    "make_model": "deep.models",
    "load_dataset": "deep.data",
    "epoch_metrics": "deep.metrics",
    "RunMetrics": "deep.reporting",
}

__all__ = list(_EXPORTS)

__getattr__, __dir__ = lazy_exports(globals(), "deep", _EXPORTS)
