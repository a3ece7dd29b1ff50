"""Atomic file output (temp file in the same folder, then ``os.replace``)."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Callable

import numpy as np

from ufm.cli.signals import removed_on_interrupt
from ufm.core.jsonable import to_json, to_jsonable

__all__ = ["atomic_write", "write_json_atomic", "save_npz_atomic", "save_figure_atomic", "to_jsonable",
           "to_json"]


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
