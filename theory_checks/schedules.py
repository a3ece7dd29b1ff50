"""Batch schedules (samplers): pure, seeded functions, reused by the ``deep`` package.

For labels ``y_0..y_{N-1}`` an epoch is a list of batches (arrays of sample indices):

- ``shuffle``: a fresh random permutation every epoch, cut into batches of ``batch_size``;
- ``fixed``: ONE random partition (it depends on the seed only), the same every epoch; only
  the order of the batches is redrawn per epoch;
- ``sorted``: samples ordered by class (classes in label order, a random order inside each
  class, redrawn per epoch), cut into consecutive batches: class-sorted, mostly pure batches,
  the case where the conditions fail;
- ``binding``: ``binding_samples`` picks one fixed sample per class; the other samples are
  shuffled every epoch into batches of ``batch_size``, and the k binding samples are added to
  EVERY batch (so a batch holds up to ``batch_size + k`` distinct samples). With k >= 2
  classes every batch is then mixed, and conditions (a*) and (b) hold whenever each class has
  a sample besides its binding one (and no sample is dropped by ``drop_last``).

The last partial batch is kept unless ``drop_last``. Every epoch depends only on
``(seed, epoch)`` (streams from ``np.random.SeedSequence(seed, spawn_key=(tag, epoch))``).

>>> labels = [0, 0, 0, 1, 1, 1]
>>> [b.tolist() for b in epoch_batches(labels, schedule="sorted", batch_size=3, epoch=0, seed=0)]
[[2, 0, 1], [3, 4, 5]]
>>> b = epoch_batches(labels, schedule="binding", batch_size=2, epoch=0, seed=0)
>>> bind = binding_samples(labels, seed=0)
>>> len(b), all(set(bind.tolist()) <= set(x.tolist()) for x in b)
(2, True)
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ufm.core.checks import check_int, check_nonneg_ints

__all__ = ["SCHEDULES", "epoch_batches", "schedule_batches", "binding_samples", "check_labels",
           "binding_variant_epoch", "binding_variant_batches"]

SCHEDULES = ("shuffle", "fixed", "sorted", "binding")

# spawn-key tags: one independent random stream per purpose
_SHUFFLE, _FIXED_PARTITION, _FIXED_ORDER, _SORTED, _BINDING_PICK, _BINDING_SHUFFLE = range(6)
_BINDING_EPOCH_PICK = 6  # binding_variant_epoch(per_epoch=True): the binding samples of an epoch


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def check_labels(labels: Sequence[int]) -> np.ndarray:
    """Labels as a 1-D int64 array; ``ValueError`` unless non-empty non-negative integers
    (``ufm.core.checks.check_nonneg_ints``).

    >>> check_labels([1, 0, 1]).tolist()
    [1, 0, 1]
    """
    return check_nonneg_ints("labels", labels)


def _check_schedule(schedule: str) -> str:
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}; got {schedule!r}")
    return schedule


def _cut(order: np.ndarray, batch_size: int, drop_last: bool) -> list[np.ndarray]:
    n_full = order.size // batch_size
    out = [order[i * batch_size:(i + 1) * batch_size] for i in range(n_full)]
    if not drop_last and order.size > n_full * batch_size:
        out.append(order[n_full * batch_size:])
    return out


def _with_binding(n: int, bind: np.ndarray, batch_size: int, drop_last: bool, seed: int,
                  epoch: int) -> list[np.ndarray]:
    """One epoch of batch-binding: the samples outside ``bind`` shuffled (seeded by ``seed`` and
    ``epoch``) and cut into batches of ``batch_size``, each with every sample of ``bind`` added
    (one batch of ``bind`` alone when nothing else is left)."""
    keep = np.ones(n, dtype=bool)
    keep[bind] = False
    rest = np.flatnonzero(keep)
    if rest.size == 0:
        return [bind.copy()]
    rest = rest[_rng(seed, _BINDING_SHUFFLE, epoch).permutation(rest.size)]
    return [np.concatenate([b, bind]) for b in _cut(rest, batch_size, drop_last)]


def binding_samples(labels: Sequence[int], seed: int) -> np.ndarray:
    """One sample per class (classes in increasing label order), drawn uniformly, seeded.

    >>> binding_samples([0, 1, 0, 1, 2], seed=3).tolist()
    [0, 3, 4]
    """
    y = check_labels(labels)
    seed = check_int("seed", seed, 0)
    perm = _rng(seed, _BINDING_PICK).permutation(y.size)
    order = perm[np.argsort(y[perm], kind="stable")]
    ys = y[order]
    first = np.r_[True, ys[1:] != ys[:-1]]
    return order[first].astype(np.int64)


def epoch_batches(labels: Sequence[int], *, schedule: str, batch_size: int, epoch: int,
                  seed: int, drop_last: bool = False) -> list[np.ndarray]:
    """The batches of ONE epoch (int64 index arrays), deterministic in ``(seed, epoch)``.

    Raises ``ValueError`` for a schedule not in ``SCHEDULES``, ``batch_size < 2``,
    ``epoch < 0``, ``seed < 0``, bad labels, or ``drop_last`` leaving no batch.
    """
    y = check_labels(labels)
    schedule = _check_schedule(schedule)
    batch_size = check_int("batch_size", batch_size, 2)
    epoch = check_int("epoch", epoch, 0)
    seed = check_int("seed", seed, 0)
    n = y.size

    if schedule == "shuffle":
        out = _cut(_rng(seed, _SHUFFLE, epoch).permutation(n), batch_size, drop_last)
    elif schedule == "fixed":
        parts = _cut(_rng(seed, _FIXED_PARTITION).permutation(n), batch_size, drop_last)
        order = _rng(seed, _FIXED_ORDER, epoch).permutation(len(parts))
        out = [parts[i] for i in order]
    elif schedule == "sorted":
        perm = _rng(seed, _SORTED, epoch).permutation(n)
        out = _cut(perm[np.argsort(y[perm], kind="stable")], batch_size, drop_last)
    else:  # binding
        out = _with_binding(n, binding_samples(y, seed), batch_size, drop_last, seed, epoch)
    if not out:
        raise ValueError(f"batch_size ({batch_size}) exceeds the {n} samples to batch with "
                         f"drop_last=True: no batch left")
    return [b.astype(np.int64, copy=False) for b in out]


def schedule_batches(labels: Sequence[int], *, schedule: str, batch_size: int, epochs: int,
                     seed: int, drop_last: bool = False) -> list[np.ndarray]:
    """All batches of epochs ``0..epochs-1`` concatenated (``epochs >= 1``).

    >>> bs = schedule_batches([0, 1, 0, 1], schedule="shuffle", batch_size=2, epochs=3, seed=0)
    >>> len(bs), sorted(np.concatenate(bs[:2]).tolist())
    (6, [0, 1, 2, 3])
    """
    epochs = check_int("epochs", epochs, 1)
    out: list[np.ndarray] = []
    for e in range(epochs):
        out.extend(epoch_batches(labels, schedule=schedule, batch_size=batch_size, epoch=e,
                                 seed=seed, drop_last=drop_last))
    return out


# ----------------------------------------------------------------------------- binding variants
# (issue 38: fewer binding classes than k, binding samples that change per epoch; not in
# SCHEDULES, so the ``binding`` schedule and the command line are unchanged)


def _one_per_class(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One sample per class (classes in increasing label order), uniformly, from ``rng``."""
    perm = rng.permutation(y.size)
    order = perm[np.argsort(y[perm], kind="stable")]
    ys = y[order]
    return order[np.r_[True, ys[1:] != ys[:-1]]].astype(np.int64)


def _binding_class_set(y: np.ndarray, binding_classes) -> np.ndarray:
    classes = np.unique(y)
    if binding_classes is None:
        return classes
    values = list(binding_classes)
    chosen = (np.unique(check_nonneg_ints("binding_classes", values)) if values
              else np.zeros(0, dtype=np.int64))
    missing = np.setdiff1d(chosen, classes)
    if missing.size:
        raise ValueError(f"binding_classes must be labels that occur; {missing.tolist()} do not")
    return chosen


def binding_variant_epoch(labels: Sequence[int], *, batch_size: int, epoch: int, seed: int,
                          binding_classes: Sequence[int] | None = None, per_epoch: bool = False,
                          drop_last: bool = False) -> tuple[list[np.ndarray], np.ndarray]:
    """One epoch of a batch-binding VARIANT: ``(batches, binding)``.

    The binding samples are one per class of ``binding_classes`` (label values; None: every
    class): the ``binding`` schedule's (``binding_samples(labels, seed)``), or, with
    ``per_epoch``, new ones drawn for each epoch. They are added to EVERY batch; the other
    samples (the unbound classes' included) are shuffled into batches of ``batch_size`` exactly
    as in the ``binding`` schedule. With ``binding_classes=None`` and ``per_epoch=False`` the
    batches are those of ``epoch_batches(schedule="binding")``.

    Raises ``ValueError`` for bad labels, ``batch_size < 1``, ``epoch < 0``, ``seed < 0``, a
    binding class that does not occur, or ``drop_last`` leaving no batch.

    >>> y = [0, 0, 0, 1, 1, 1, 2, 2]
    >>> b, bind = binding_variant_epoch(y, batch_size=2, epoch=0, seed=0, binding_classes=[2])
    >>> len(bind), all(bind[0] in x for x in b)
    (1, True)
    """
    y = check_labels(labels)
    batch_size = check_int("batch_size", batch_size, 1)
    epoch = check_int("epoch", epoch, 0)
    seed = check_int("seed", seed, 0)
    chosen = _binding_class_set(y, binding_classes)
    if per_epoch:
        every = _one_per_class(y, _rng(seed, _BINDING_EPOCH_PICK, epoch))
    else:
        every = binding_samples(y, seed)
    bind = every[np.isin(y[every], chosen)]
    out = _with_binding(y.size, bind, batch_size, drop_last, seed, epoch)
    if not out:
        raise ValueError(f"batch_size ({batch_size}) exceeds the {y.size - bind.size} samples to shuffle "
                         f"with drop_last=True: no batch left")
    return [b.astype(np.int64, copy=False) for b in out], bind


def binding_variant_batches(labels: Sequence[int], *, batch_size: int, epochs: int, seed: int,
                            binding_classes: Sequence[int] | None = None, per_epoch: bool = False,
                            drop_last: bool = False) -> list[np.ndarray]:
    """All batches of epochs ``0..epochs-1`` of ``binding_variant_epoch``, concatenated.

    >>> y = [0, 0, 1, 1, 2, 2]
    >>> a = binding_variant_batches(y, batch_size=2, epochs=2, seed=1)
    >>> b = schedule_batches(y, schedule="binding", batch_size=2, epochs=2, seed=1)
    >>> all(np.array_equal(u, v) for u, v in zip(a, b)) and len(a) == len(b)
    True
    """
    epochs = check_int("epochs", epochs, 1)
    out: list[np.ndarray] = []
    for e in range(epochs):
        out.extend(binding_variant_epoch(labels, batch_size=batch_size, epoch=e, seed=seed,
                                         binding_classes=binding_classes, per_epoch=per_epoch,
                                         drop_last=drop_last)[0])
    return out
