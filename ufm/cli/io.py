"""File I/O of the command lines: atomic output (temp file in the same folder, then
``os.replace``) and size-bounded input (``input_size``, ``read_bounded``: regular files only, no
larger than a limit, checked before reading)."""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Callable

import numpy as np

from ufm.cli.limits import ENV, format_bytes
from ufm.cli.signals import removed_on_interrupt
from ufm.core.jsonable import to_json, to_jsonable

__all__ = ["atomic_write", "write_json_atomic", "save_npz_atomic", "save_figure_atomic", "to_jsonable",
           "to_json", "InputFileError", "input_size", "read_bounded"]

_CHUNK = 1 << 24  # bytes per read past the reported size (a file that grows, /proc's size 0)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> None:
    """Call ``write(fh)`` on a temp file in ``path``'s folder, fsync, then ``os.replace`` it
    onto ``path``: readers see the old file or the whole new one, never a part. The file gets
    the usual mode of a new file (0666 less the umask), not ``mkstemp``'s 0600.

    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "a.txt")
    >>> atomic_write(p, lambda fh: fh.write(b"hi"))
    >>> open(p).read(), oct(os.stat(p).st_mode & 0o777) == oct(0o666 & ~_umask())
    ('hi', True)
    """
    path = Path(path)
    if path.is_symlink() or (path.exists() and not path.is_file()):
        # the rename would replace a link, a device (/dev/null as root), a FIFO or a socket
        raise OSError(errno.EINVAL, "not a regular file (a link, device, FIFO or socket)", str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with removed_on_interrupt(tmp):  # a command line's SIGINT / SIGTERM exit removes it too
        try:
            with os.fdopen(fd, "wb") as fh:
                write(fh)
                fh.flush()
                os.fchmod(fh.fileno(), 0o666 & ~_umask())
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    text = to_json(obj, indent=2) + "\n"
    atomic_write(path, lambda fh: fh.write(text.encode()))


def save_npz_atomic(path: str | os.PathLike, **arrays: np.ndarray) -> None:
    """``np.savez`` to ``path`` atomically."""
    atomic_write(path, lambda fh: np.savez(fh, **arrays))


def save_figure_atomic(fig: Any, path: str | os.PathLike, **savefig_kwargs: Any) -> None:
    """``fig.savefig`` to ``path`` atomically, in the format of its suffix (``.png``, ``.pdf``)."""
    fmt = Path(path).suffix.lstrip(".").lower() or "png"
    atomic_write(path, lambda fh: fig.savefig(fh, format=fmt, **savefig_kwargs))


class InputFileError(ValueError):
    """An input file that is not read: the message is one line, without the path (the caller
    names the flag and the path)."""


def input_size(path: str | os.PathLike, limit: int, budget: int) -> int:
    """The size of ``path``, which must be a regular file of at most ``limit`` bytes (``budget``:
    the memory the limit derives from, for the message); ``InputFileError`` otherwise, before
    anything is read (a device such as /dev/zero, or a FIFO, whose open could block, is
    refused by its ``stat``)."""
    try:
        st = os.stat(path)
    except OSError as err:
        raise InputFileError(f"cannot read the file ({err.strerror or type(err).__name__})") from None
    if stat.S_ISDIR(st.st_mode):
        raise InputFileError("is a folder, not a file")
    if not stat.S_ISREG(st.st_mode):
        raise InputFileError("is not a regular file (a device, FIFO or socket)")
    if st.st_size > limit:
        raise InputFileError(f"is {format_bytes(st.st_size)}, too big to read: {_limit_text(limit, budget)}")
    return st.st_size


def _limit_text(limit: int, budget: int) -> str:
    return (f"a file may be at most {format_bytes(limit)} with {format_bytes(budget)} of memory "
            f"available (1/{max(1, round(budget / max(limit, 1)))}; set {ENV} to change)")


def read_bounded(path: str | os.PathLike, limit: int, budget: int) -> bytes:
    """The bytes of ``path`` (``input_size`` first), read with a bounded read: a file that grows
    while read, or reports a wrong size (``/proc``), cannot pass ``limit`` either.

    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "a.json")
    >>> _ = open(p, "w").write("[1, 2]")
    >>> read_bounded(p, limit=100, budget=300)
    b'[1, 2]'
    >>> read_bounded(p, limit=3, budget=9)
    Traceback (most recent call last):
    ...
    ufm.cli.io.InputFileError: is 6 B, too big to read: a file may be at most 3 B with 9 B of memory available (1/3; set SCL_GEOMETRY_MEMORY to change)
    """
    size = input_size(path, limit, budget)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        with os.fdopen(fd, "rb", buffering=0) as fh:
            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):  # replaced since the stat
                raise InputFileError("is not a regular file (a device, FIFO or socket)")
            parts = [fh.read(min(size, limit) + 1)]  # the whole file, in the usual case
            total = len(parts[0])
            while parts[-1] and total <= limit:
                parts.append(fh.read(min(_CHUNK, limit + 1 - total)))
                total += len(parts[-1])
    except OSError as err:
        raise InputFileError(f"cannot read the file ({err.strerror or type(err).__name__})") from None
    if total > limit:
        raise InputFileError(f"holds more than {format_bytes(limit)} (it grew while read, or reports "
                             f"a wrong size), too big to read: {_limit_text(limit, budget)}")
    return parts[0] if len(parts) <= 2 and not parts[-1] else b"".join(parts)
