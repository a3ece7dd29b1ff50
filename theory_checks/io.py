"""batches.json files (DESIGN.md section 6): strict reading and atomic writing.

Format: ``{"labels": [y_0, ..., y_{N-1}], "batches": [[i, j, ...], ...]}`` (0-based indices into
labels; repeated batches allowed), plus an optional ``"config"`` object. The writer puts one
batch per line. The reader rejects, with one message naming the problem, anything that is not
exactly that: booleans, floats (even 2.0), strings and nulls are not integers.

Reading is bounded (``read_json_file``): the path must name a regular file (a device such as
/dev/zero, a FIFO, a folder is refused before it is opened for reading), its size is checked
against ``MAX_FILE_FACTOR`` x less than the memory budget (``ufm.cli.limits.memory_budget``;
``SCL_GEOMETRY_MEMORY`` overrides) before a byte is read, it is read with a bounded read (at
most that limit + 1 bytes, so a file that grows or reports a wrong size cannot pass it), and
the memory the parse will take is estimated from the text (``parse_estimate``) before parsing.

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
from typing import Any, Sequence

import numpy as np

from ufm.core.batching import Batching
from ufm.cli.io import InputFileError, atomic_write, read_bounded, to_jsonable
from ufm.cli.limits import ENV, format_bytes, memory_budget, too_big

__all__ = ["BatchesFileError", "read_batches_json", "read_json_file", "write_batches_json",
           "parse_estimate", "MAX_FILE_FACTOR"]

# Memory json.loads takes, measured (CPython 3.11, issue 34) on batches files of 10-20 MB by peak
# RSS, including the int64 arrays read_batches_json builds: the bytes read plus the str they are
# decoded to (2 x the text), then per list or object 64-96 B (header and growth: 10^6 batches of
# one index take 27 x their text), per item (a comma) 34-45 B (a pointer and an int object, 8 B
# more for the int64 copy), per object member (a colon) about 100 B (key string and slot). A
# standard batches file (batches of 50 indices < 10^6) takes 7.6 x its text; the estimate
# below is 1.05-1.8 x the measured peak on every shape tried.
_PER_TEXT_BYTE, _PER_CONTAINER, _PER_ITEM, _PER_MEMBER = 2, 100, 50, 100
#: A file larger than ``budget / MAX_FILE_FACTOR`` is refused before it is read (any JSON text
#: costs at least 2 x its size to parse: the bytes and the decoded str).
MAX_FILE_FACTOR = 3


class BatchesFileError(ValueError):
    """An unusable batches.json (the message is one line naming the problem)."""


def parse_estimate(raw: bytes | bytearray) -> int:
    """Bytes of memory parsing the JSON text ``raw`` into Python objects (and the int64 arrays
    of a batches file) takes at most, from its size and its counts of ``[ { , :`` (see the
    measured constants above).

    >>> parse_estimate(b'{"labels": [0, 1], "batches": [[0, 1]]}')
    828
    """
    containers = raw.count(b"[") + raw.count(b"{")
    return (_PER_TEXT_BYTE * len(raw) + _PER_CONTAINER * containers
            + _PER_ITEM * raw.count(b",") + _PER_MEMBER * raw.count(b":"))


def _budget(budget: int | None) -> int:
    if budget is not None:
        return budget
    try:
        return memory_budget()
    except ValueError as err:  # SCL_GEOMETRY_MEMORY is not a size
        raise BatchesFileError(str(err)) from None


def _read_bounded(path: str | os.PathLike, budget: int) -> bytes:
    """The bytes of the regular file ``path``, at most ``budget // MAX_FILE_FACTOR`` of them
    (``ufm.cli.io.read_bounded``; ``BatchesFileError`` otherwise)."""
    try:
        return read_bounded(path, budget // MAX_FILE_FACTOR, budget)
    except InputFileError as err:
        raise BatchesFileError(str(err)) from None


def read_json_file(path: str | os.PathLike, budget: int | None = None) -> Any:
    """The JSON value in the file ``path``, read within the memory ``budget`` (default
    ``ufm.cli.limits.memory_budget()``): a regular file, size-checked before reading, read with
    a bounded read, its parse estimated (``parse_estimate``) before parsing. ``BatchesFileError``
    (one line) for every unusable file."""
    return _read_and_parse(path, budget)[0]


def _read_and_parse(path: str | os.PathLike, budget: int | None,
                    check=None) -> tuple[Any, Any]:
    budget = _budget(budget)
    raw = _read_bounded(path, budget)
    reason = too_big(parse_estimate(raw), f"parsing {format_bytes(len(raw))} of JSON: "
                     f"{_PER_TEXT_BYTE} x the text + {_PER_ITEM} B per item + {_PER_CONTAINER} B "
                     f"per list", budget)
    if reason is not None:
        raise BatchesFileError(f"too big to read: {reason} (set {ENV} to change)")
    was_enabled = gc.isenabled()
    gc.disable()  # millions of fresh ints and lists: the cyclic GC would rescan them repeatedly
    try:
        obj, fast = _loads(raw)
        if check is None:
            return obj, None
        try:
            return obj, check(obj)
        except BatchesFileError:
            if not fast:
                raise
        # orjson reads integers beyond 64 bits as floats: describe the json module's reading
        del obj  # one parse alive at a time
        obj, _ = _loads(raw, fast=False)
        return obj, check(obj)
    finally:
        if was_enabled:
            gc.enable()


def _loads(raw: bytes, fast: bool = True) -> tuple[Any, bool]:
    """``(value, by orjson)``: parse JSON with orjson when installed (``fast``), else the json
    module (whose errors and big integers are what the messages describe)."""
    if fast:
        try:
            import orjson  # optional: only used when already installed
        except ImportError:
            orjson = None
        if orjson is not None:
            try:
                return orjson.loads(raw), True
            except (ValueError, TypeError):
                pass  # re-parse with json for its message
    try:
        return json.loads(raw), False
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


def read_batches_json(path: str | os.PathLike,
                      budget: int | None = None) -> tuple[np.ndarray, Batching, dict | None]:
    """``(labels, batches, config)`` from a batches.json; ``BatchesFileError`` if unusable,
    including a file the memory ``budget`` (default: ``memory_budget()``) cannot parse (see
    ``read_json_file``)."""
    obj, (labels, batches) = _read_and_parse(path, budget, _parsed)
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
