"""Input sizes bounded BEFORE memory is allocated: how much memory a command may use, and the
one-line reason when a request needs more.

The budget is what the machine can really give: ``MemAvailable`` of ``/proc/meminfo``, capped by
the cgroup (v2 ``memory.max - memory.current``, v1 ``memory.limit_in_bytes - usage``) and by
``RLIMIT_AS`` / ``RLIMIT_DATA``; where none of these can be read (not Linux), 8 GiB. The
environment variable ``SCL_GEOMETRY_MEMORY`` (bytes, or with a suffix ``K M G T``: ``4G``)
replaces it, to set a lower limit on a shared machine (and for tests). A command refuses a
request whose estimate exceeds the budget, with a usage error naming the flag, the estimate and
the budget, instead of starting an allocation the kernel would kill.

>>> format_bytes(3 * 2**30)
'3.0 GiB'
>>> parse_bytes("512M") == 512 * 2**20
True
>>> too_big(10 * 2**30, "the N x d float64 embeddings", budget=2**30)
'needs about 10.0 GiB (the N x d float64 embeddings); 1.0 GiB of memory is available'
"""

from __future__ import annotations

import os
import resource
from pathlib import Path

__all__ = ["memory_budget", "too_big", "format_bytes", "parse_bytes", "ENV"]

ENV = "SCL_GEOMETRY_MEMORY"
_FALLBACK = 8 * 2**30
_SUFFIX = {"": 1, "B": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def parse_bytes(text: str) -> int:
    """``"4G"`` -> 4 * 2**30 (suffixes K, M, G, T, optional ``iB``/``B``); ValueError otherwise."""
    t = text.strip().upper().removesuffix("IB").removesuffix("B")
    unit = t[-1:] if t[-1:] in _SUFFIX and t[-1:].isalpha() else ""
    number = float(t[: len(t) - len(unit)])
    value = number * _SUFFIX[unit]
    if not (value > 0 and value < 2**63):
        raise ValueError(f"{text!r} is not a positive size")
    return int(value)


def format_bytes(n: float) -> str:
    """Bytes in binary units, one decimal: ``1.5 GiB``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"  # pragma: no cover


def _read_int(path: str) -> int | None:
    try:
        text = Path(path).read_text().split()[0]
    except (OSError, IndexError):
        return None
    return int(text) if text.isdigit() else None


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cgroup_room() -> int | None:
    v2_max, v2_cur = _read_int("/sys/fs/cgroup/memory.max"), _read_int("/sys/fs/cgroup/memory.current")
    if v2_max is not None and v2_cur is not None:
        return max(0, v2_max - v2_cur)
    v1_max = _read_int("/sys/fs/cgroup/memory/memory.limit_in_bytes")
    v1_cur = _read_int("/sys/fs/cgroup/memory/memory.usage_in_bytes")
    if v1_max is not None and v1_cur is not None and v1_max < 2**60:
        return max(0, v1_max - v1_cur)
    return None


def _rlimit_room() -> int | None:
    rooms = []
    for name in ("RLIMIT_AS", "RLIMIT_DATA"):
        soft, _ = resource.getrlimit(getattr(resource, name))
        if soft != resource.RLIM_INFINITY:
            rooms.append(soft)
    return min(rooms) if rooms else None


def memory_budget() -> int:
    """Bytes a command may plan to allocate now (see the module doc; ``SCL_GEOMETRY_MEMORY``
    overrides). Raises ``ValueError`` when that variable is set but is not a size."""
    env = os.environ.get(ENV, "").strip()
    if env:
        try:
            return parse_bytes(env)
        except ValueError:
            raise ValueError(f"environment variable {ENV}={env!r} is not a size such as 4G") from None
    found = [v for v in (_meminfo_available(), _cgroup_room(), _rlimit_room()) if v is not None]
    return min(found) if found else _FALLBACK


def too_big(nbytes: float, what: str, budget: int | None = None) -> str | None:
    """The reason a request of ``nbytes`` (for ``what``) cannot be served, or None when it fits
    the ``budget`` (default ``memory_budget()``)."""
    budget = memory_budget() if budget is None else budget
    if nbytes <= budget:
        return None
    return (f"needs about {format_bytes(nbytes)} ({what}); {format_bytes(budget)} of memory "
            "is available")
