"""batches.json files (DESIGN.md section 6): strict reading and atomic writing.

Format: ``{"labels": [y_0, ..., y_{N-1}], "batches": [[i, j, ...], ...]}`` (0-based indices into
labels; repeated batches allowed), plus an optional ``"config"`` object. The writer puts one
batch per line. The reader rejects, with one message naming the problem, anything that is not
exactly that: booleans, floats (even 2.0), strings and nulls are not integers.

>>> import tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), "b.json")
>>> write_batches_json(path, [0, 0, 1], [[0, 2], [1, 2]], config={"schedule": "fixed"})
>>> labels, fb, config = read_batches_json(path)
>>> labels.tolist(), [b.tolist() for b in fb], config
([0, 0, 1], [[0, 2], [1, 2]], {'schedule': 'fixed'})
"""

from __future__ import annotations

import gc
import io
import itertools
import json
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ufm.core.batching import Batching
from ufm.cli.io import atomic_write, to_jsonable

__all__ = ["BatchesFileError", "read_batches_json", "write_batches_json"]


class BatchesFileError(ValueError):
    """An unusable batches.json (the message is one line naming the problem)."""


def _loads(raw: bytes, fast: bool = True) -> Any:
    """Parse JSON: orjson when installed (``fast``), else the json module (whose errors and
    big integers are what the messages describe)."""
    if fast:
        try:
            import orjson  # optional: only used when already installed
        except ImportError:
            orjson = None
        if orjson is not None:
            try:
                return orjson.loads(raw)
            except (ValueError, TypeError):
                pass  # re-parse with json for its message
    try:
        return json.loads(raw)
    except json.JSONDecodeError as err:
        raise BatchesFileError(f"not valid JSON ({err.msg} at line {err.lineno}, "
                               f"column {err.colno})") from None
    except (ValueError, RecursionError) as err:  # undecodable bytes, absurd nesting
        raise BatchesFileError(f"not valid JSON ({type(err).__name__})") from None


def _describe(v: Any) -> str:
    text = json.dumps(v)
    return text if len(text) <= 30 else text[:27] + "..."


def _labels(obj: Any) -> np.ndarray:
    if not isinstance(obj, list):
        raise BatchesFileError(f'"labels" must be a list of integers, got {type(obj).__name__}')
    if not obj:
        raise BatchesFileError('"labels" is empty')
    if set(map(type, obj)) != {int}:
        i = next(i for i, v in enumerate(obj) if type(v) is not int)
        raise BatchesFileError(f"labels[{i}] = {_describe(obj[i])} is not an integer")
    try:
        arr = np.array(obj, dtype=np.int64)
    except OverflowError:
        i = next(i for i, v in enumerate(obj) if abs(v) >= 2**63)
        raise BatchesFileError(f"labels[{i}] = {obj[i]} is out of range") from None
    if arr.min() < 0:
        i = int(np.argmax(arr < 0))
        raise BatchesFileError(f"labels[{i}] = {int(arr[i])} is negative")
    return arr


def _batches(obj: Any, n: int) -> Batching:
    if not isinstance(obj, list):
        raise BatchesFileError(f'"batches" must be a list of index lists, got {type(obj).__name__}')
    if not obj:
        raise BatchesFileError('"batches" is empty: need at least one batch')
    if set(map(type, obj)) != {list}:
        b = next(b for b, v in enumerate(obj) if type(v) is not list)
        raise BatchesFileError(f"batches[{b}] = {_describe(obj[b])} is not a list of indices")
    sizes = np.fromiter(map(len, obj), dtype=np.int64, count=len(obj))
    if (sizes == 0).any():
        raise BatchesFileError(f"batches[{int(np.argmax(sizes == 0))}] is empty")
    if set(map(type, itertools.chain.from_iterable(obj))) != {int}:
        for b, batch in enumerate(obj):
            for j, v in enumerate(batch):
                if type(v) is not int:
                    raise BatchesFileError(f"batches[{b}][{j}] = {_describe(v)} is not an "
                                           f"integer index")
    offsets = np.r_[0, np.cumsum(sizes)].astype(np.int64)
    try:
        flat = np.fromiter(itertools.chain.from_iterable(obj), dtype=np.int64, count=int(offsets[-1]))
    except OverflowError:
        flat = np.array([v if abs(v) < 2**62 else -2**62 if v < 0 else 2**62
                         for v in itertools.chain.from_iterable(obj)], dtype=np.int64)
    bad = (flat < 0) | (flat >= n)
    if bad.any():
        e = int(np.argmax(bad))
        b = int(np.searchsorted(offsets, e, side="right") - 1)
        value = obj[b][e - offsets[b]]
        why = "is negative" if value < 0 else f"is out of range [0, {n}) for {n} labels"
        raise BatchesFileError(f"batches[{b}][{e - offsets[b]}] = {value} {why}")
    return Batching(flat, offsets, n)  # validated above, with file positions in the messages


def read_batches_json(path: str | os.PathLike) -> tuple[np.ndarray, Batching, dict | None]:
    """``(labels, batches, config)`` from a batches.json; ``BatchesFileError`` if unusable."""
    try:
        raw = Path(path).read_bytes()
    except OSError as err:
        raise BatchesFileError(f"cannot read the file ({err.strerror or type(err).__name__})") from None
    was_enabled = gc.isenabled()
    gc.disable()  # millions of fresh ints and lists: the cyclic GC would rescan them repeatedly
    try:
        obj = _loads(raw)
        try:
            labels, batches = _parsed(obj)
        except BatchesFileError:
            # orjson reads integers beyond 64 bits as floats: describe the json module's reading
            obj = _loads(raw, fast=False)
            labels, batches = _parsed(obj)
        del raw
    finally:
        if was_enabled:
            gc.enable()
    config = obj.get("config")
    return labels, batches, config if isinstance(config, dict) else None


def _parsed(obj: Any) -> tuple[np.ndarray, Batching]:
    if not isinstance(obj, dict):
        raise BatchesFileError('top level must be a JSON object with keys "labels" and "batches", '
                               f"got {type(obj).__name__}")
    for key in ("labels", "batches"):
        if key not in obj:
            raise BatchesFileError(f'missing key "{key}" (need "labels" and "batches")')
    labels = _labels(obj["labels"])
    return labels, _batches(obj["batches"], labels.size)


def write_batches_json(path: str | os.PathLike, labels: Sequence[int], batches: Any,
                       config: dict | None = None, progress: bool = False) -> None:
    """Write ``{"config": ..., "labels": [...], "batches": [[...], ...]}`` atomically (temp file
    in the same folder, then ``os.replace``), one batch per line; ``progress``: a tqdm bar on
    stderr (when it is a terminal)."""
    labels = np.asarray(labels, dtype=np.int64)
    if isinstance(batches, Batching):
        batches = list(batches)

    def write(fh) -> None:
        fh.write("{\n")
        if config is not None:
            rows = [f"  {json.dumps(str(k))}: {json.dumps(v)}" for k, v in to_jsonable(config).items()]
            fh.write('"config": {\n' + ",\n".join(rows) + "\n},\n")
        fh.write('"labels": [' + ", ".join(map(str, labels.tolist())) + "],\n")
        fh.write('"batches": [\n')
        last = len(batches) - 1
        items_iter = enumerate(batches)
        if progress:
            from tqdm import tqdm

            items_iter = tqdm(items_iter, total=len(batches), desc="writing batches",
                              unit="batch", disable=None, leave=False)
        for b, batch in items_iter:
            items = np.asarray(batch).tolist()
            fh.write("[" + ", ".join(map(str, items)) + ("]\n" if b == last else "],\n"))
        fh.write("]\n}\n")

    def write_bytes(fh) -> None:
        text = io.TextIOWrapper(fh, encoding="utf-8")
        write(text)
        text.flush()
        text.detach()  # leave fh open for atomic_write's fsync

    atomic_write(path, write_bytes)
