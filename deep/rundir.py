"""Run-directory layout and its files (config.json, metrics.jsonl, checkpoint.npz).

One process trains S seeds; the layout is::

    RUN_DIR/config.json          full configuration + library versions (+ seeds list)
    RUN_DIR/checkpoint.npz       all seeds' stacked state, written atomically every epoch
    RUN_DIR/metrics.jsonl        (S = 1) one JSON object per epoch
    RUN_DIR/seed_<s>/config.json (S > 1) that seed's configuration (seed = s, seeds = 1)
    RUN_DIR/seed_<s>/metrics.jsonl
    RUN_DIR/.lock                held (fcntl.flock) by the process training in RUN_DIR

Each epoch appends the metrics lines first, then replaces the checkpoint, so after a crash the
metrics files hold at least the checkpoint's epochs; ``--resume`` drops any later line
(``truncate_metrics``) before continuing.

>>> import tempfile
>>> with tempfile.TemporaryDirectory() as tmp:
...     append_metrics(tmp, {"epoch": 1, "loss": 2.0})
...     append_metrics(tmp, {"epoch": 2, "loss": 1.0})
...     truncate_metrics(tmp, 1)
...     [m["epoch"] for m in read_metrics(tmp)]
[1]
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from pathlib import Path
from typing import Any, Iterator, Sequence

from ufm.cli.io import atomic_write, to_json, write_json_atomic

__all__ = [
    "seed_dirs",
    "write_config",
    "read_config",
    "append_metrics",
    "read_metrics",
    "read_metrics_lines",
    "truncate_metrics",
    "logged_epochs",
    "run_lock",
    "RunLocked",
    "checkpoint_path",
    "run_dirs",
]

CONFIG, METRICS, CHECKPOINT, LOCK = "config.json", "metrics.jsonl", "checkpoint.npz", ".lock"


def seed_dirs(run_dir: str | os.PathLike, seeds: Sequence[int]) -> list[Path]:
    """Where each seed's metrics go: ``RUN_DIR`` itself for one seed, else ``RUN_DIR/seed_<s>``."""
    run_dir = Path(run_dir)
    if len(seeds) == 1:
        return [run_dir]
    return [run_dir / f"seed_{s}" for s in seeds]


def checkpoint_path(run_dir: str | os.PathLike) -> Path:
    return Path(run_dir) / CHECKPOINT


def write_config(directory: str | os.PathLike, config: dict[str, Any]) -> None:
    write_json_atomic(Path(directory) / CONFIG, config)


def read_config(directory: str | os.PathLike) -> dict[str, Any]:
    with open(Path(directory) / CONFIG) as fh:
        return json.load(fh)


def append_metrics(directory: str | os.PathLike, record: dict[str, Any]) -> None:
    """Append one JSON line (flushed and fsynced)."""
    path = Path(directory) / METRICS
    path.parent.mkdir(parents=True, exist_ok=True)
    line = to_json(record) + "\n"
    with open(path, "a") as fh:
        fh.write(line)
        fh.flush()
        os.fsync(fh.fileno())


def read_metrics_lines(path: str | os.PathLike) -> tuple[list[Any], int]:
    """The parsed non-blank lines of a ``metrics.jsonl`` file, and how many were not UTF-8 JSON
    (random bytes, a torn last line). Raises ``OSError`` if the file cannot be read."""
    values, bad = [], 0
    with open(path, "rb") as fh:
        for raw in fh:
            if not raw.strip():
                continue
            try:
                values.append(json.loads(raw.decode("utf-8")))
            except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError too
                bad += 1
    return values, bad


def read_metrics(directory: str | os.PathLike) -> list[dict[str, Any]]:
    """The JSON-object lines of ``directory``'s ``metrics.jsonl`` (``read_metrics_lines``: a
    torn last line, bytes that are not UTF-8 and lines that are not a JSON object are skipped;
    readers check the fields they use); [] without the file."""
    path = Path(directory) / METRICS
    if not path.is_file():
        return []
    return [v for v in read_metrics_lines(path)[0] if isinstance(v, dict)]


def logged_epochs(directory: str | os.PathLike) -> set[int]:
    """The epochs (ints >= 1) that ``metrics.jsonl`` holds a line for."""
    return {m["epoch"] for m in read_metrics(directory)
            if type(m.get("epoch")) is int and m["epoch"] >= 1}


def truncate_metrics(directory: str | os.PathLike, epoch: int) -> None:
    """Keep only the lines with an integer ``epoch <= epoch`` (rewritten atomically; a file that
    would not change is left alone, so resuming an intact run writes nothing)."""
    records = read_metrics(directory)
    keep = [m for m in records if type(m.get("epoch")) is int and m["epoch"] <= epoch]
    path = Path(directory) / METRICS
    if path.is_file() and len(keep) == len(records) and _intact(path, len(records)):
        return
    text = "".join(to_json(m) + "\n" for m in keep).encode()
    atomic_write(path, lambda fh: fh.write(text))


def _intact(path: Path, n_records: int) -> bool:
    """Whether every line of ``path`` is one of the ``n_records`` records (nothing to drop)."""
    with open(path, "rb") as fh:
        lines = fh.read().splitlines()
    return len(lines) == n_records


@contextlib.contextmanager
def run_lock(run_dir: str | os.PathLike) -> Iterator[None]:
    """Hold the run folder's lock (``RUN_DIR/.lock``, ``fcntl.flock``) for the block: one
    process at a time trains in a folder. The kernel drops the lock when the process ends, in
    any way (kill -9 too), so a crash never leaves the folder locked. Creates ``run_dir``.

    Raises ``RunLocked`` (naming the holder's pid) at once when another process holds it.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise RunLocked(run_dir, holder) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


class RunLocked(RuntimeError):
    """Another process trains in the run folder (``pid``: what it wrote in the lock file)."""

    def __init__(self, run_dir: Path, pid: str):
        super().__init__(f"{run_dir} is in use by another deep.train (pid {pid}); wait for it to "
                         "end or choose another folder")
        self.run_dir, self.pid = run_dir, pid


def run_dirs(path: str | os.PathLike) -> list[Path]:
    """The metrics directories under a run path: itself, or its ``seed_*`` folders (sorted)."""
    path = Path(path)
    if (path / METRICS).is_file():
        return [path]
    subs = sorted((p for p in path.glob("seed_*") if (p / METRICS).is_file()),
                  key=lambda p: (len(p.name), p.name))
    return subs
