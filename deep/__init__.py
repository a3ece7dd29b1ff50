"""deep: train real networks with the SC loss and measure their geometry (issue 7).

- ``deep.models``: CIFAR ResNet-18, DenseNet-40 (k=12) and tiny variants (Flax linen)
- ``deep.data``: digits (bundled), MNIST / Fashion-MNIST (IDX), CIFAR-10 (pickle); STEP subsets
- ``deep.augment``: random crop + flip on the device, two views
- ``deep.train``: the jitted, seed-vmapped training step (loss: ``ufm.scl_loss``) and loop pieces
- ``deep.metrics``: Delta_GM (OF, ETF), NC1, class-mean cosines, nearest-class-mean accuracy
- ``deep.checkpoint`` / ``deep.rundir``: atomic checkpoints, config.json and metrics.jsonl
- CLIs: ``python -m deep.train``, ``python -m deep.report``, ``python -m deep.bench``
  (code in ``deep.train_cmd``, ``deep.report_cmd``, ``deep.bench_cmd``)

Submodules are imported on use (``import deep`` itself loads neither JAX nor Flax).
"""
