"""Atomic checkpoints of a training state: one ``.npz`` of the flattened pytree + epoch.

The file holds ``leaf_0000 ...`` (the leaves of ``jax.tree_util.tree_flatten_with_path`` in
order), ``paths`` (their key paths, to check the structure on restore), ``epoch`` (epochs
completed) and ``seeds``. It is written to a temporary file in the same folder, fsynced, then
renamed over the old one (``ufm.cli.io.save_npz_atomic``), so a crash or ``kill -9`` at any
moment leaves either the previous or the new checkpoint, never a torn one. No random-number
state is stored: every key derives from (seed, epoch, step), see ``deep.training``.

>>> import tempfile, os, numpy as np
>>> tree = {"w": np.arange(3.0, dtype=np.float32), "n": np.int32(7)}
>>> with tempfile.TemporaryDirectory() as tmp:
...     save_checkpoint(os.path.join(tmp, "c.npz"), tree, epoch=2, seeds=(0, 1))
...     back, epoch, seeds = load_checkpoint(os.path.join(tmp, "c.npz"), tree)
>>> back["w"].tolist(), int(back["n"]), epoch, seeds
([0.0, 1.0, 2.0], 7, 2, (0, 1))
"""

from __future__ import annotations

import json
import os
import zipfile
from typing import Any, Sequence

import jax
import numpy as np

from ufm.cli.io import save_npz_atomic

__all__ = ["save_checkpoint", "load_checkpoint", "checkpoint_due", "CheckpointError"]


class CheckpointError(ValueError):
    """The checkpoint is unreadable or does not fit the run being resumed."""


def _flatten(tree: Any) -> tuple[list[str], list[Any]]:
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return [jax.tree_util.keystr(p) for p, _ in leaves], [v for _, v in leaves]


def checkpoint_due(epoch: int, every: int, last: int) -> bool:
    """Whether to checkpoint after ``epoch`` (1-based): every ``every`` epochs, and at ``last``.

    ``last`` is the final epoch of this invocation (``--epochs`` or ``--stop-after``), so a
    finished or time-boxed run always ends with a checkpoint; an interrupt loses at most
    ``every - 1`` epochs (``--resume`` drops their metrics lines and trains them again).

    >>> [e for e in range(1, 8) if checkpoint_due(e, every=3, last=7)]
    [3, 6, 7]
    """
    return epoch % every == 0 or epoch >= last


def save_checkpoint(path: str | os.PathLike, tree: Any, *, epoch: int, seeds: Sequence[int]) -> None:
    """Write ``tree`` (a pytree of arrays) with its epoch and seeds to ``path`` atomically."""
    paths, leaves = _flatten(tree)
    arrays = {f"leaf_{i:04d}": np.asarray(jax.device_get(v)) for i, v in enumerate(leaves)}
    save_npz_atomic(path, paths=np.array(json.dumps(paths)), epoch=np.int64(epoch),
                    seeds=np.asarray(list(seeds), dtype=np.int64), **arrays)


def load_checkpoint(path: str | os.PathLike, template: Any) -> tuple[Any, int, tuple[int, ...]]:
    """``(tree, epoch, seeds)`` from ``path``; the tree takes the structure of ``template``.

    Raises ``CheckpointError`` when the file is unreadable or its key paths, shapes or dtypes
    differ from the template's.
    """
    t_paths, t_leaves = _flatten(template)
    try:
        with np.load(path, allow_pickle=False) as f:
            paths = json.loads(str(f["paths"]))
            epoch = int(f["epoch"])
            seeds = tuple(int(s) for s in f["seeds"])
            leaves = [f[f"leaf_{i:04d}"] for i in range(len(paths))]
    except (OSError, KeyError, ValueError, TypeError, EOFError, zipfile.BadZipFile) as err:
        raise CheckpointError(f"cannot read checkpoint {path}: {err}") from None
    if epoch < 1:
        raise CheckpointError(f"checkpoint {path} is corrupt: its epoch is {epoch} (a checkpoint "
                              "is written after epoch 1 or later)")
    if paths != t_paths:
        raise CheckpointError(f"checkpoint {path} holds a different model/optimizer structure")
    for p, new, old in zip(paths, leaves, t_leaves):
        old_shape, old_dtype = np.shape(old), np.dtype(getattr(old, "dtype", np.asarray(old).dtype))
        if new.shape != tuple(old_shape) or new.dtype != old_dtype:
            raise CheckpointError(f"checkpoint {path}: {p} has shape {new.shape} {new.dtype}, "
                                  f"the run expects {tuple(old_shape)} {old_dtype}")
    treedef = jax.tree_util.tree_structure(template)
    return jax.tree_util.tree_unflatten(treedef, leaves), epoch, seeds
