"""Training: S seeds trained at once, one jitted step vmapped over seeds, and the loop.

``train_and_evaluate(config, workdir)`` is the whole run, as ``python -m deep.train`` does it
(the command line, ``deep.train_cmd``, only parses flags, calls it and prints): epochs,
evaluation, ``config.json`` / ``metrics.jsonl`` / ``checkpoint.npz`` in ``workdir``
(``deep.rundir``, ``deep.checkpoint``), resuming from the checkpoint, progress through
``TrainCallbacks`` and the divergence check (``TrainingDiverged``). The pieces below it
(``setup``, ``train_epoch``, ``evaluate``, ...) do no file I/O.

One step, for each seed independently (``jax.vmap`` over the stacked state)::

    x_B   = pool images of the batch (uint8, gathered on device)
    v     = [aug_1(x_B); aug_2(x_B)]                       two random crop(+flip) views
    h     = f_theta(v)                                     (2B, d) penultimate features
    L     = ufm.core.loss.scl_loss(h, [y_B; y_B], tau, reduction)   (or CE of a linear head, 1 view)
    theta <- SGD(momentum 0.9, weight decay wd, lr(step))  PyTorch's SGD rule:
             g <- grad + wd*theta;  m <- 0.9 m + g;  theta <- theta - lr*m

``lr(step) = lr * decay^(number of milestones passed)``, milestones at ``round(f*epochs)``
epochs for ``f`` in ``cfg.lr_milestones`` (116/350, 232/350).

Determinism (what makes ``--resume`` and vmapped seeds reproduce single runs): seed ``s``
draws its STEP subset from ``s``, its model init from ``fold_in(PRNGKey(s), 0)``, the batch
order of epoch ``e`` from ``theory_checks.schedules.epoch_batches(..., epoch=e, seed=s)`` and
the augmentation of step ``t`` from ``fold_in(fold_in(fold_in(PRNGKey(s), 1), e), t)``.
Nothing else is random, so the state after epoch ``e`` is all a checkpoint needs.

Shapes: an epoch's last, smaller batch (``drop_last`` off) is a second step shape, compiled
once; evaluation runs in fixed chunks of ``eval_batch_size`` (one compiled shape).

>>> from deep.configs import TrainConfig
>>> from deep.data import load_digits
>>> cfg = TrainConfig(arch="resnet-tiny", n_maj=20, R=2, batch_size=16, epochs=1)
>>> run = setup(cfg, load_digits())
>>> run.counts.tolist(), run.steps_per_epoch
([20, 20, 20, 20, 20, 10, 10, 10, 10, 10], 10)
>>> import tempfile
>>> train_and_evaluate(cfg.replace(R=100), tempfile.mkdtemp())  # the data cannot meet R = 100
Traceback (most recent call last):
...
deep.training.StartError: R = 100 with n_maj = 20 leaves round(n_maj/R) = 0 minority samples; every class needs >= 2 (n_maj >= 150)
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax

import ufm.core.loss as ufm_loss
from deep import distributed
from deep.augment import augment, standardize, two_views
from deep.checkpoint import CheckpointError, checkpoint_due, load_checkpoint, save_checkpoint
from deep.configs import TrainConfig, feature_activation, resolve, resolve_conv
from deep.data import (DataError, ImageData, ImbalanceError, load_dataset, step_class_counts,
                       step_subset)
from deep.metrics import epoch_metrics
from deep.models import FeatureNet, feature_dim, make_model, param_count
from deep.rundir import (CHECKPOINT, CONFIG, LOCK, METRICS, RunLocked, append_metrics, checkpoint_path,
                         logged_epochs, run_lock, seed_dirs, truncate_metrics, write_config)
from theory_checks.schedules import epoch_batches
from ufm.core.labels import labels_from_counts

__all__ = [
    "train_and_evaluate",
    "TrainResult",
    "TrainCallbacks",
    "StartError",
    "TrainingDiverged",
    "config_record",
    "epoch_record",
    "TrainState",
    "DeviceData",
    "Run",
    "setup",
    "init_state",
    "init_states",
    "lr_schedule",
    "lr_at_epoch",
    "make_optimizer",
    "batch_loss",
    "make_train_step",
    "train_epoch",
    "features",
    "evaluate",
    "evaluation_test_set",
    "unstack",
]

_INIT_TAG, _AUG_TAG = 0, 1
MAX_STEPS = 2**31 - 1  # optax's step count is an int32
_TEST_SUBSET_SEED = 20261206  # the test subset is the same for every run (comparable curves)
TEST_SETS = ("full", "subset", "none")


@flax.struct.dataclass
class TrainState:
    """Model parameters, BatchNorm running statistics and optimizer state (leading axis: seeds)."""

    params: Any
    batch_stats: Any
    opt_state: Any


@flax.struct.dataclass
class DeviceData:
    """Training pool then test set (one uint8 array on the device) and standardization constants.

    Pool image ``i`` is ``images[i]``; test image ``j`` is ``images[n_pool + j]`` (one array
    keeps the evaluation to one compiled shape).
    """

    images: jax.Array
    labels: jax.Array
    mean: jax.Array
    std: jax.Array

    @classmethod
    def from_numpy(cls, data: ImageData) -> "DeviceData":
        mean, std = data.channel_stats()
        return cls(jnp.asarray(np.concatenate([data.x_train, data.x_test])),
                   jnp.asarray(np.concatenate([data.y_train, data.y_test]), jnp.int32),
                   jnp.asarray(mean), jnp.asarray(std))


@dataclass(frozen=True)
class Run:
    """Everything fixed for a training run of ``len(seeds)`` vmapped seeds."""

    cfg: TrainConfig
    seeds: tuple[int, ...]
    model: FeatureNet
    tx: optax.GradientTransformation
    data: DeviceData
    counts: np.ndarray          # (k,) STEP class counts
    labels: np.ndarray          # (N,) labels of every seed's subset (class by class)
    subsets: np.ndarray         # (S, N) pool indices of each seed's subset
    y_test: np.ndarray
    test_idx: np.ndarray        # (T,) indices of the test images in ``data.images``
    test_subset: np.ndarray     # positions in ``test_idx`` of the seeded test subset (sorted)
    steps_per_epoch: int
    n_majority: int
    step: Callable
    feature_fn: Callable
    mesh: Any = None            # jax.sharding.Mesh ("seeds", "data") or None: one device

    def put(self, x: Any, *spec: str | None) -> Any:
        """Host value ``x`` on the run's devices: ``jnp.asarray`` without a mesh, else the global
        array laid out as ``PartitionSpec(*spec)`` (replicated when no spec)."""
        if self.mesh is None:
            return jax.tree_util.tree_map(jnp.asarray, x)
        return distributed.put(x, self.mesh, *spec)

    @property
    def eval_chunk(self) -> int:
        """Images per evaluation call: ``eval_batch_size``, but no more than the larger of the
        training subset and the test set (a huge ``--eval-batch-size`` pads nothing)."""
        return int(min(self.cfg.eval_batch_size, max(self.labels.size, self.test_idx.size)))

    @property
    def num_classes(self) -> int:
        return int(self.counts.size)

    def aug_keys(self) -> jax.Array:
        """(S, 2) base augmentation keys ``fold_in(PRNGKey(s), 1)``."""
        keys = jnp.stack([jax.random.fold_in(jax.random.PRNGKey(s), _AUG_TAG) for s in self.seeds])
        return keys if self.mesh is None else self.put(jax.device_get(keys), distributed.SEEDS)

    def place(self, state: Any) -> Any:
        """A (host or device) state on the run's devices: as is without a mesh, else sharded
        over the mesh's ``seeds`` axis on its leading (seed) axis."""
        if self.mesh is None:
            return state
        return self.put(distributed.to_host(state), distributed.SEEDS)


def lr_schedule(cfg: TrainConfig, steps_per_epoch: int) -> Callable[[jax.Array], jax.Array]:
    """``count -> lr * decay^(#milestones passed)``; milestone steps ``round(f*epochs)*spe``."""
    bounds = [int(np.floor(f * cfg.epochs + 0.5)) * steps_per_epoch for f in cfg.lr_milestones]

    def schedule(count: jax.Array) -> jax.Array:
        passed = sum((jnp.asarray(count) >= b).astype(jnp.int32) for b in bounds)
        return cfg.lr * jnp.power(cfg.lr_decay, passed).astype(jnp.float32)

    return schedule


def lr_at_epoch(cfg: TrainConfig, epoch: int) -> float:
    """The learning rate of (0-based) ``epoch``, as ``lr_schedule`` gives it."""
    passed = sum(epoch >= int(np.floor(f * cfg.epochs + 0.5)) for f in cfg.lr_milestones)
    return float(cfg.lr * cfg.lr_decay**passed)


def make_optimizer(cfg: TrainConfig, steps_per_epoch: int) -> optax.GradientTransformation:
    """SGD with momentum and coupled weight decay, as ``torch.optim.SGD(weight_decay=...)``."""
    return optax.chain(optax.add_decayed_weights(cfg.weight_decay),
                       optax.sgd(lr_schedule(cfg, steps_per_epoch), momentum=cfg.momentum))


def batch_loss(cfg: TrainConfig, h: jax.Array, logits: jax.Array | None, y: jax.Array) -> jax.Array:
    """SCL: ``ufm.core.loss.scl_loss`` over both views (labels repeated); CE: mean cross entropy."""
    if cfg.loss == "scl":
        views = h.shape[0] // y.shape[0]
        return ufm_loss.scl_loss(h.astype(jnp.float32), jnp.tile(y, views), cfg.tau,
                                 reduction=cfg.reduction)
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), y))


def _batch_sharded(x: jax.Array, mesh) -> jax.Array:
    """``x`` split over the mesh's ``data`` axis on its leading (batch) axis (no-op without a
    mesh; under ``vmap(spmd_axis_name="seeds")`` the seed axis is sharded over ``seeds``)."""
    if mesh is None:
        return x
    return jax.lax.with_sharding_constraint(x, distributed.sharding(mesh, distributed.DATA))


def make_train_step(cfg: TrainConfig, model: FeatureNet, tx: optax.GradientTransformation, *,
                    donate: bool = False, mesh=None) -> Callable:
    """``step(state, data, idx (S,B), aug_keys (S,2), epoch, t) -> (state, loss (S,))``, jitted.

    With a ``mesh`` (``deep.distributed.make_mesh``) the jitted step takes and returns the
    state sharded over ``seeds``, the data, indices and step replicated, and splits the
    GLOBAL batch over ``data`` inside: the loss and BatchNorm's statistics are those of the
    global batch (XLA all-gathers the features), as on one device.
    """
    dtype = jnp.dtype(cfg.dtype)

    def one(state: TrainState, data: DeviceData, idx: jax.Array, key: jax.Array,
            epoch: jax.Array, t: jax.Array):
        key = jax.random.fold_in(jax.random.fold_in(key, epoch), t)
        x, y = _batch_sharded(data.images[idx], mesh), data.labels[idx]
        if cfg.loss == "scl":
            v = two_views(key, x, data.mean, data.std, pad=cfg.crop_pad, flip=cfg.flip, dtype=dtype)
        else:
            v = augment(key, x, data.mean, data.std, pad=cfg.crop_pad, flip=cfg.flip, dtype=dtype)
        v = _batch_sharded(v, mesh)

        def loss_fn(params):
            (h, logits), new = model.apply({"params": params, "batch_stats": state.batch_stats},
                                           v, train=True, mutable=["batch_stats"])
            return batch_loss(cfg, h, logits, y), new["batch_stats"]

        (loss, stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        return TrainState(params, stats, opt_state), loss

    if mesh is None and cfg.seeds == 1:  # one seed: no vmap (a vmapped custom gradient, e.g.
        # conv="dotgrad"'s products, becomes batched products that XLA's CPU runs 1.2x slower)
        def single(state, data, idx, key, epoch, t):
            squeeze = lambda a: a[0]  # noqa: E731
            new, loss = one(jax.tree_util.tree_map(squeeze, state), data, idx[0], key[0], epoch, t)
            return jax.tree_util.tree_map(lambda a: a[None], new), loss[None]

        return jax.jit(single, donate_argnums=(0,) if donate else ())
    if mesh is None:
        step = jax.vmap(one, in_axes=(0, None, 0, 0, None, None))
        return jax.jit(step, donate_argnums=(0,) if donate else ())
    step = jax.vmap(one, in_axes=(0, None, 0, 0, None, None), spmd_axis_name=distributed.SEEDS)
    seeds, rep = distributed.sharding(mesh, distributed.SEEDS), distributed.sharding(mesh)
    return jax.jit(step, in_shardings=(seeds, rep, rep, seeds, rep, rep), out_shardings=(seeds, rep),
                   donate_argnums=(0,) if donate else ())


def _make_feature_fn(model: FeatureNet, dtype, mesh=None) -> Callable:
    def one(params, batch_stats, images, mean, std, idx):
        x = _batch_sharded(standardize(images[idx], mean, std, dtype), mesh)
        h, _ = model.apply({"params": params, "batch_stats": batch_stats}, x, train=False)
        return h

    if mesh is None:
        return jax.jit(jax.vmap(one, in_axes=(0, 0, None, None, None, 0)))
    seeds, rep = distributed.sharding(mesh, distributed.SEEDS), distributed.sharding(mesh)
    return jax.jit(jax.vmap(one, in_axes=(0, 0, None, None, None, 0), spmd_axis_name=distributed.SEEDS),
                   in_shardings=(seeds, seeds, rep, rep, rep, rep), out_shardings=rep)


def setup(cfg: TrainConfig, data: ImageData, *, donate: bool | None = None, mesh=None) -> Run:
    """Resolve defaults, draw each seed's STEP subset, build the model, optimizer and step
    (data-parallel on ``mesh``, ``deep.distributed.make_mesh``, when given).

    ``conv="auto"`` becomes the implementation used (``deep.configs.resolve_conv`` for the
    mesh's device count) in ``Run.cfg``.

    Raises ``ValueError`` when the imbalance or batch size cannot be met by the data.
    """
    cfg = resolve(cfg)
    cfg = dataclasses.replace(cfg, conv=resolve_conv(cfg.conv, 1 if mesh is None else mesh.devices.size))
    seeds = tuple(range(cfg.seed, cfg.seed + cfg.seeds))
    k = data.num_classes
    counts = step_class_counts(k, cfg.R, cfg.rho, cfg.n_maj)
    subsets = np.stack([step_subset(data.y_train, counts, s) for s in seeds])  # checks the sizes first
    labels = labels_from_counts(counts).astype(np.int64)
    steps = len(epoch_batches(labels, schedule=cfg.schedule, batch_size=cfg.batch_size, epoch=0,
                              seed=seeds[0], drop_last=cfg.drop_last))
    if cfg.epochs * steps > MAX_STEPS:  # the optimizer's step counter is int32
        raise ImbalanceError(f"{cfg.epochs} epochs of {steps} steps exceed the {MAX_STEPS} steps "
                             f"the optimizer counts; at most {MAX_STEPS // steps} epochs",
                             "--epochs")
    activation, slope = feature_activation(cfg)
    model = make_model(cfg.arch, activation=activation, slope=slope,
                       num_classes=k if cfg.loss == "ce" else None, dtype=cfg.dtype, conv=cfg.conv)
    tx = make_optimizer(cfg, steps)
    if donate is None:
        donate = jax.default_backend() != "cpu"
    device_data = DeviceData.from_numpy(data)
    if mesh is not None:
        device_data = distributed.put(jax.device_get(device_data), mesh)
    return Run(
        cfg=cfg, seeds=seeds, model=model, tx=tx, data=device_data,
        counts=counts, labels=labels, subsets=subsets, y_test=np.asarray(data.y_test),
        test_idx=data.x_train.shape[0] + np.arange(data.y_test.size),
        test_subset=np.sort(np.random.default_rng(_TEST_SUBSET_SEED).permutation(data.y_test.size)
                            [:min(cfg.test_subset, data.y_test.size)]),
        steps_per_epoch=steps, n_majority=k - int(np.floor(cfg.rho * k + 0.5)),
        step=make_train_step(cfg, model, tx, donate=donate, mesh=mesh),
        feature_fn=_make_feature_fn(model, jnp.dtype(cfg.dtype), mesh),
        mesh=mesh,
    )


def _fast_init_rng():
    """The non-partitionable threefry: the ~60 initializer draws compile several times faster
    on CPU; the draws stay a pure function of the seed (no-op where JAX lacks the switch)."""
    switch = getattr(jax, "threefry_partitionable", None)
    return switch(False) if switch is not None else contextlib.nullcontext()


def init_states(model: FeatureNet, tx: optax.GradientTransformation,
                image_shape: tuple[int, ...], seeds: tuple[int, ...]) -> TrainState:
    """Fresh state stacked over ``seeds``: seed ``s`` initialized from ``fold_in(PRNGKey(s), 0)``.

    One jitted single-seed init called per seed (compiled once for any number of seeds).
    """

    @jax.jit
    def one(seed: jax.Array) -> TrainState:
        key = jax.random.fold_in(jax.random.PRNGKey(seed), _INIT_TAG)
        v = model.init(key, jnp.zeros((1, *image_shape), jnp.float32), train=False)
        return TrainState(v["params"], v["batch_stats"], tx.init(v["params"]))

    with _fast_init_rng():
        states = [one(jnp.uint32(s)) for s in seeds]
    return jax.tree_util.tree_map(lambda *a: jnp.stack(a), *states)


def init_state(run: Run) -> TrainState:
    """``init_states`` for the run's model, optimizer, image shape and seeds (on one device;
    ``Run.place`` puts it on the run's mesh)."""
    return init_states(run.model, run.tx, tuple(run.data.images.shape[1:]), run.seeds)


def epoch_indices(run: Run, epoch: int) -> list[np.ndarray]:
    """The pool indices of every step of ``epoch``: a list of (S, B_t) int32 arrays."""
    per_seed = [epoch_batches(run.labels, schedule=run.cfg.schedule, batch_size=run.cfg.batch_size,
                              epoch=epoch, seed=s, drop_last=run.cfg.drop_last) for s in run.seeds]
    return [np.stack([run.subsets[i][per_seed[i][t]] for i in range(len(run.seeds))]).astype(np.int32)
            for t in range(len(per_seed[0]))]


def train_epoch(run: Run, state: TrainState, epoch: int,
                on_step: Callable[[int, jax.Array], None] | None = None) -> tuple[TrainState, np.ndarray]:
    """One epoch of every seed; returns the new state and each seed's mean step loss (S,)."""
    keys = run.aug_keys()
    losses = []
    for t, idx in enumerate(epoch_indices(run, epoch)):
        state, loss = run.step(state, run.data, run.put(idx), keys, epoch, t)
        losses.append(loss)
        if on_step is not None:
            on_step(t, loss)
    return state, np.mean(np.stack(jax.device_get(losses)), axis=0)


def features(run: Run, state: TrainState, idx: np.ndarray) -> np.ndarray:
    """Evaluation-mode features (S, n, d) of the images ``data.images[idx]``, ``idx`` (S, n).

    Chunks of exactly ``eval_batch_size`` (the last padded with index 0 and cut), so one
    compiled shape serves the training subset and the test set.
    """
    size = run.eval_chunk
    n = idx.shape[1]
    out = []
    for start in range(0, n, size):
        chunk = idx[:, start:start + size]
        pad = size - chunk.shape[1]
        chunk = np.pad(chunk, ((0, 0), (0, pad)))
        h = run.feature_fn(state.params, state.batch_stats, run.data.images, run.data.mean, run.data.std,
                           run.put(chunk.astype(np.int32)))
        out.append(np.asarray(jax.device_get(h))[:, : chunk.shape[1] - pad])
    return np.concatenate(out, axis=1)


def evaluation_test_set(cfg: TrainConfig, epoch: int) -> str:
    """Which test images epoch ``epoch`` (1-based) is evaluated on (``TrainConfig``'s doc):
    ``"full"`` every ``test_every`` epochs and at the last, else ``"subset"`` (``test_subset``
    > 0) or ``"none"``.

    >>> from deep.configs import TrainConfig
    >>> cfg = TrainConfig(epochs=7, test_every=3, test_subset=100)
    >>> [evaluation_test_set(cfg, e) for e in range(1, 8)]
    ['subset', 'subset', 'full', 'subset', 'subset', 'full', 'full']
    """
    if epoch % cfg.test_every == 0 or epoch >= cfg.epochs:
        return "full"
    return "subset" if cfg.test_subset > 0 else "none"


def evaluate(run: Run, state: TrainState, test: str = "full") -> list[dict[str, Any]]:
    """``deep.metrics.epoch_metrics`` of every seed: the geometry on the training subset, the
    NCM accuracy on the ``test`` images (``evaluation_test_set``; on the whole test set also a linear
    probe's); each record says which (``test_set``, ``test_images``)."""
    s = len(run.seeds)
    pick = {"full": slice(None), "subset": run.test_subset, "none": slice(0, 0)}[test]
    idx, y_test = run.test_idx[pick], run.y_test[pick]
    h_train = features(run, state, run.subsets)
    h_test = (features(run, state, np.broadcast_to(idx, (s, idx.size))) if idx.size
              else np.zeros((s, 0, h_train.shape[2]), h_train.dtype))
    return [{**epoch_metrics(h_train[i], run.labels, h_test[i], y_test, k=run.num_classes,
                             n_majority=run.n_majority, probe=test == "full"),
             "test_set": test, "test_images": int(idx.size)}
            for i in range(s)]


def unstack(tree: Any, i: int) -> Any:
    """Member ``i`` of a pytree stacked over seeds."""
    return jax.tree_util.tree_map(lambda a: a[i], tree)


# ----------------------------------------------------------------------------- the training run


class StartError(ValueError):
    """The run cannot start: the data set cannot be read, the data cannot meet the imbalance or
    the batch size, ``workdir`` already holds a run (and ``resume`` is off), or its checkpoint is
    unreadable or belongs to other seeds. ``argument``: the ``python -m deep.train`` flag to
    change (as in ``deep.data.ImbalanceError``), or None."""

    def __init__(self, message: str, argument: str | None = None):
        super().__init__(message)
        self.argument = argument


class TrainingDiverged(ArithmeticError):
    """An epoch's loss or its features after the epoch are not finite (for ``seeds``); nothing
    of that ``epoch`` (1-based) was written."""

    def __init__(self, epoch: int, seeds: Sequence[int]):
        which = f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {', '.join(map(str, seeds))}"
        super().__init__(f"the loss or the features of epoch {epoch} are not finite ({which}): "
                         "training diverged, and the epoch is not saved")
        self.epoch, self.seeds = epoch, tuple(seeds)


class TrainCallbacks:
    """How ``train_and_evaluate`` reports progress; each hook here does nothing (subclass it).

    Order: ``on_start`` once (the run is built and the state restored; only when there are
    epochs to train), then for each epoch ``on_epoch_start``, ``on_step`` after every step and
    ``on_epoch_end`` once the epoch's metrics lines (and checkpoint, when due) are written.
    """

    def on_start(self, run: Run, start: int, stop: int) -> None:
        """Epochs ``start + 1 .. stop`` are about to train (``start`` are done already)."""

    def on_epoch_start(self, epoch: int) -> None:
        """Epoch ``epoch`` (1-based) starts."""

    def on_step(self, step: int, loss: jax.Array) -> None:
        """Step ``step`` (0-based, within the epoch) ran; ``loss``: each seed's loss, (S,), still
        on the device (reading it waits for the device)."""

    def on_epoch_end(self, records: list[dict[str, Any]]) -> None:
        """The ``metrics.jsonl`` record of every seed for the epoch just done."""


@dataclass(frozen=True)
class TrainResult:
    """What ``train_and_evaluate`` leaves: ``start`` epochs were done before the call, ``stop``
    after it; ``records``: each seed's record of epoch ``stop`` when this call trained it
    (else empty); ``dirs``: each seed's metrics folder."""

    run: Run
    state: TrainState
    start: int
    stop: int
    records: list[dict[str, Any]]
    dirs: list[Path]

    @property
    def finished(self) -> bool:
        """Whether every epoch of the configuration is done."""
        return self.stop >= self.run.cfg.epochs


def _versions() -> dict[str, str]:
    """``ufm.core.versions.library_versions`` plus scikit-learn (the digits loader)."""
    from importlib import metadata

    from ufm.core.versions import library_versions

    base = library_versions()
    try:
        return {**base, "scikit-learn": metadata.version("scikit-learn")}
    except metadata.PackageNotFoundError:
        return base


def config_record(run: Run, cfg: TrainConfig, extra: dict[str, Any]) -> dict[str, Any]:
    """The ``config.json`` of a run (or of one seed's folder, ``cfg = run.cfg.for_seed(s)``)."""
    from ufm.core.versions import machine_info

    shape = tuple(run.data.images.shape[1:])
    return {
        "config": cfg.to_dict(),
        "conv_used": run.cfg.conv,  # what conv="auto" became on this machine
        "seeds": list(run.seeds),
        "counts": run.counts.tolist(),
        "n_train": int(run.labels.size),
        "n_test": int(run.y_test.size),
        "steps_per_epoch": run.steps_per_epoch,
        "image_shape": list(shape),
        "feature_dim": feature_dim(run.model, shape),
        "param_count": param_count(run.model, shape),
        "device": str(jax.devices()[0].device_kind),
        "machine": machine_info(),
        "versions": _versions(),
        **extra,
    }


def epoch_record(epoch: int, loss: float, metrics: dict[str, Any], lr: float,
                 seconds: float, train_seconds: float) -> dict[str, Any]:
    """One metrics.jsonl line: ``seconds`` is the epoch's wall time (training + evaluation)."""
    metrics = dict(metrics)
    gram = metrics.pop("class_mean_gram")
    return {"epoch": epoch, "loss": float(loss), **metrics, "lr": lr, "seconds": round(seconds, 4),
            "train_seconds": round(train_seconds, 4), "class_mean_gram": gram}


def _check_finite(seeds: Sequence[int], losses: np.ndarray, metrics: list[dict[str, Any]],
                  epoch: int) -> None:
    """``TrainingDiverged`` when a seed's epoch loss or its features are not finite."""
    bad = [s for s, loss, m in zip(seeds, losses, metrics)
           if not np.isfinite(loss) or m["nonfinite_features"] > 0]
    if bad:
        raise TrainingDiverged(epoch, bad)


def _earlier_run_files(workdir: Path) -> list[str]:
    """Files of a run in ``workdir`` (checkpoint, metrics, seed folders): a folder without
    ``config.json`` must hold none of them to start a fresh run there."""
    found = [p for p in (CHECKPOINT, METRICS) if (workdir / p).exists()]
    found += sorted(p.name for p in workdir.glob("seed_*") if p.is_dir())
    return found


def _span(epochs: set[int]) -> str:
    """``{1, 2, 3, 7}`` -> ``1-3, 7``."""
    runs: list[list[int]] = []
    for e in sorted(epochs):
        if runs and e == runs[-1][-1] + 1:
            runs[-1].append(e)
        else:
            runs.append([e])
    return ", ".join(f"{r[0]}-{r[-1]}" if len(r) > 1 else f"{r[0]}" for r in runs)


def _check_memory(run: Run) -> None:
    """``StartError`` naming --seeds when the stacked training state (parameters, gradients
    and momentum in float32, for every seed) cannot fit the memory available."""
    from ufm.cli.limits import too_big

    shape = tuple(run.data.images.shape[1:])
    need = 3 * 4 * param_count(run.model, shape) * len(run.seeds) + run.data.images.nbytes
    reason = too_big(need, f"{len(run.seeds)} x {run.cfg.arch}: parameters, gradients, momentum")
    if reason is not None:
        raise StartError(reason, "--seeds" if len(run.seeds) > 1 else "--arch")


def _build(cfg: TrainConfig, data: ImageData | None, mesh) -> Run:
    """Load the data (unless given) and ``setup`` the run; ``StartError`` when it cannot."""
    if data is None:
        try:
            data = load_dataset(cfg.dataset, cfg.data_dir, test_fraction=cfg.test_fraction,
                                split_seed=cfg.split_seed)
        except DataError as err:
            raise StartError(str(err), "--data-dir") from err
    try:
        run = setup(cfg, data, mesh=mesh)
    except ImbalanceError as err:
        raise StartError(str(err), err.argument) from err
    except ValueError as err:
        raise StartError(str(err)) from err
    _check_memory(run)
    return run


def _mesh_record(run: Run) -> dict[str, Any]:
    """``config.json``'s note of the devices of a sharded run (nothing for one device)."""
    if run.mesh is None:
        return {}
    shape = distributed.mesh_shape(run.mesh)
    return {"devices": int(run.mesh.devices.size), "processes": jax.process_count(),
            "mesh": shape, "batchnorm": "global batch (sync)"}


def _start(cfg: TrainConfig, workdir: Path, resume: bool,
           data: ImageData | None, mesh=None) -> tuple[Run, TrainState, int, list[Path]]:
    """Load the data, build the run, restore or initialize the state, write config.json (fresh
    runs) and drop metrics lines past the checkpoint; ``StartError`` when it cannot.

    Everything is checked before a file is touched: the folder (a fresh run needs one without
    files of an earlier run), the data and sizes, the checkpoint (readable, same structure and
    seeds, its epoch within 1..epochs) and the metrics files (a line for every epoch up to the
    checkpoint's: lost lines cannot be recomputed, so resuming without them is refused).
    The state returned is on one device (or host arrays); ``Run.place`` shards it.
    """
    has_config = (workdir / CONFIG).is_file()
    if not resume and has_config:
        raise StartError(f"{workdir} already holds a run; resume it or choose another folder", "--out")
    leftovers = [] if has_config else _earlier_run_files(workdir)
    if leftovers:
        raise StartError(f"{workdir} holds {', '.join(leftovers)} of an earlier run but no {CONFIG}; "
                         "move them away or choose another folder", "--out")
    run = _build(cfg, data, mesh)
    state, start = init_state(run), 0
    ckpt = checkpoint_path(workdir)
    if resume and ckpt.is_file():
        try:
            state, start, seeds = load_checkpoint(ckpt, state)
        except CheckpointError as err:
            raise StartError(str(err), "--resume") from err
        if tuple(seeds) != run.seeds:
            raise StartError(f"the checkpoint holds seeds {list(seeds)}, the run {list(run.seeds)}",
                             "--resume")
        if start > cfg.epochs:
            raise StartError(f"the checkpoint is at epoch {start}, past the run's {cfg.epochs} "
                             f"epochs: {ckpt} does not belong to {workdir / CONFIG}", "--resume")
    dirs = seed_dirs(workdir, run.seeds)
    for d in dirs if start > 0 else ():
        missing = set(range(1, start + 1)) - logged_epochs(d)
        if missing:
            which = f"epochs {_span(missing)}" if len(missing) > 1 else f"epoch {min(missing)}"
            raise StartError(f"{d / METRICS} lacks the line of {which} while the "
                             f"checkpoint is at epoch {start}; they cannot be recomputed: restore "
                             "the file, or start a new run in another folder", "--resume")
    if start == 0:
        extra = _mesh_record(run)
        write_config(workdir, config_record(run, cfg, extra))
        if len(dirs) > 1:
            for s, d in zip(run.seeds, dirs):
                write_config(d, config_record(run, cfg.for_seed(s),
                                              {"vmapped_with": list(run.seeds), **extra}))
    for d in dirs:
        truncate_metrics(d, start)
    return run, state, start, dirs


def train_and_evaluate(config: TrainConfig, workdir: str | os.PathLike, *, resume: bool = False,
                       stop_after: int | None = None, checkpoint_every: int = 1,
                       callbacks: TrainCallbacks | None = None,
                       data: ImageData | None = None, devices: int | None = 1,
                       seed_shards: int = 1) -> TrainResult:
    """Train ``config`` (all its seeds, vmapped) in ``workdir``, evaluating after every epoch.

    Each epoch appends one ``metrics.jsonl`` line per seed (``epoch_record``), then writes the
    checkpoint when due (every ``checkpoint_every`` epochs and after the last epoch of this
    call). A fresh run (``resume`` off, or no checkpoint yet) writes ``config.json`` first.
    With ``resume``, training continues from ``workdir``'s checkpoint, whose configuration the
    caller passes as ``config``; later metrics lines are dropped. ``stop_after``: end this call
    after that epoch (resume later). ``data``: the loaded data set (default: loaded from
    ``config``). ``callbacks`` hear of the progress (``TrainCallbacks``).

    ``devices`` (None: all, of every process) and ``seed_shards``: train data-parallel on
    ``deep.distributed.make_mesh(devices, seed_shards)``; 1 and 1 (the default) in one process
    is the unsharded step. A checkpoint holds the unsharded state, so a run resumes on any
    device count. With several processes (``deep.distributed.initialize``) every process calls
    this; only process 0 takes the lock, reads the checkpoint and writes files (it broadcasts
    the state), the others write nothing.

    The call holds ``workdir``'s lock (``deep.rundir.run_lock``) throughout: a second call on
    the same folder, from any process, gets ``StartError`` at once instead of training beside it.

    Raises ``StartError`` before any epoch when the run cannot start, ``TrainingDiverged``
    (nothing of the epoch written) when an epoch's loss or features are not finite, and lets
    ``OSError`` (a write failing) and ``KeyboardInterrupt`` through: the last checkpoint stays
    valid, and ``resume`` continues from it.
    """
    cfg = resolve(config)
    workdir = Path(workdir)
    try:
        mesh = distributed.make_mesh(devices, seed_shards, cfg.seeds)
    except distributed.MeshError as err:
        raise StartError(str(err), err.argument) from err
    main = distributed.is_main()
    created = [p for p in (workdir, *workdir.parents) if not p.exists()] if main else []
    with contextlib.ExitStack() as stack:
        failure: StartError | None = None
        try:
            if main:
                try:
                    stack.enter_context(run_lock(workdir))
                except RunLocked as err:
                    raise StartError(str(err), "--out") from err
                run, state, start, dirs = _start(cfg, workdir, resume, data, mesh)
            else:  # builds the same run; process 0's checks, checkpoint and epoch are broadcast
                run = _build(cfg, data, mesh)
                state, start, dirs = init_state(run), 0, seed_dirs(workdir, run.seeds)
        except StartError as err:
            failure = err
        if not distributed.all_ok(failure is None):
            failure = failure or StartError("another process of the job could not start the run "
                                            "(process 0's error says why)")
        if failure is not None:
            if created:  # leave no folder behind a run that could not start
                (workdir / LOCK).unlink(missing_ok=True)
                with contextlib.suppress(OSError):
                    for folder in created:
                        folder.rmdir()
            raise failure
        if distributed.process_count() > 1:
            start = int(distributed.broadcast(np.int64(start)))
            state = distributed.broadcast(distributed.to_host(state))
        return _train(run, run.place(state), start, dirs, workdir, stop_after, checkpoint_every,
                      callbacks if callbacks is not None else TrainCallbacks(), main)


def _train(run: Run, state: TrainState, start: int, dirs: list[Path], workdir: Path,
           stop_after: int | None, checkpoint_every: int, callbacks: TrainCallbacks,
           main: bool = True) -> TrainResult:
    """The epochs of ``train_and_evaluate`` (the run folder locked and checked); only ``main``
    (process 0) writes."""
    cfg = run.cfg
    stop = cfg.epochs if stop_after is None else min(cfg.epochs, stop_after)
    if stop <= start:
        return TrainResult(run, state, start, start, [], dirs)
    callbacks.on_start(run, start, stop)
    ckpt = checkpoint_path(workdir)
    records: list[dict[str, Any]] = []
    for epoch in range(start, stop):
        t0 = time.perf_counter()
        callbacks.on_epoch_start(epoch + 1)
        state, losses = train_epoch(run, state, epoch, callbacks.on_step)
        train_seconds = time.perf_counter() - t0
        metrics = evaluate(run, state, evaluation_test_set(cfg, epoch + 1))
        _check_finite(run.seeds, losses, metrics, epoch + 1)
        seconds = time.perf_counter() - t0
        lr = lr_at_epoch(cfg, epoch)
        records = [epoch_record(epoch + 1, losses[i], metrics[i], lr, seconds, train_seconds)
                   for i in range(len(dirs))]
        for d, r in zip(dirs, records) if main else ():
            append_metrics(d, r)
        if checkpoint_due(epoch + 1, checkpoint_every, stop):
            host = state if run.mesh is None else distributed.to_host(state)  # every process
            if main:
                save_checkpoint(ckpt, host, epoch=epoch + 1, seeds=run.seeds)
        callbacks.on_epoch_end(records)
    return TrainResult(run, state, start, stop, records, dirs)
