"""Run-directory layout and its files (config.json, metrics.jsonl, checkpoint.npz).

One process trains S seeds; the layout is::

    RUN_DIR/config.json          full configuration + library versions (+ seeds list)
    RUN_DIR/checkpoint.npz       all seeds' stacked state, written atomically every epoch
    RUN_DIR/metrics.jsonl        (S = 1) one JSON object per epoch
    RUN_DIR/seed_<s>/config.json (S > 1) that seed's configuration (seed = s, seeds = 1)
    RUN_DIR/seed_<s>/metrics.jsonl

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

import json
import os
from pathlib import Path
from typing import Any, Sequence

from ufm.cli.io import to_jsonable, write_json_atomic

__all__ = [
    "seed_dirs",
    "write_config",
    "read_config",
    "append_metrics",
    "read_metrics",
    "truncate_metrics",
    "checkpoint_path",
    "run_dirs",
]

CONFIG, METRICS, CHECKPOINT = "config.json", "metrics.jsonl", "checkpoint.npz"


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
    line = json.dumps(to_jsonable(record)) + "\n"
    with open(path, "a") as fh:
        fh.write(line)
        fh.flush()
        os.fsync(fh.fileno())


def read_metrics(directory: str | os.PathLike) -> list[dict[str, Any]]:
    """All complete lines of ``metrics.jsonl`` (a torn last line is skipped)."""
    path = Path(directory) / METRICS
    if not path.is_file():
        return []
    out = []
    with open(path) as fh:
        for line in fh:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return out


def truncate_metrics(directory: str | os.PathLike, epoch: int) -> None:
    """Keep only the lines with ``epoch <= epoch`` (rewritten atomically)."""
    keep = [m for m in read_metrics(directory) if m.get("epoch", 0) <= epoch]
    path = Path(directory) / METRICS
    tmp = path.with_name(f".{path.name}.tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(tmp, "w") as fh:
        fh.writelines(json.dumps(m) + "\n" for m in keep)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def run_dirs(path: str | os.PathLike) -> list[Path]:
    """The metrics directories under a run path: itself, or its ``seed_*`` folders (sorted)."""
    path = Path(path)
    if (path / METRICS).is_file():
        return [path]
    subs = sorted((p for p in path.glob("seed_*") if (p / METRICS).is_file()),
                  key=lambda p: (len(p.name), p.name))
    return subs
