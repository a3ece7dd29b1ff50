"""One SIGINT / SIGTERM path for every command line (``python -m ufm.solve``, ``deep.train``, ...).

``run_main("pkg.x_cmd")`` is what each entry module calls under ``if __name__ == "__main__"``.
It installs the handler FIRST (this module imports only the standard library), then imports the
command line and runs its ``main()``. On SIGINT (Ctrl-C) or SIGTERM (``kill``, ``timeout``,
batch schedulers), from the first moment of start-up on (also in a background job of a script,
which starts with SIGINT ignored), the handler:

1. removes the temp files of writes in progress (``ufm.cli.io.atomic_write`` registers each
   with ``removed_on_interrupt``), so the target keeps its old content and nothing stray stays;
2. prints the command's one line (``on_interrupt_say``; default ``<prog>: interrupted``), and
3. ends the process at once with status 130 (128 + SIGINT, as shells report Ctrl-C).

Why exit from the handler instead of raising ``KeyboardInterrupt`` (Python's default): the
exception is raised wherever the main thread happens to be, and with JAX that is often Python
code called from C++ (a garbage-collection callback, an import hook, a traced function). There
it is swallowed (``Exception ignored in _xla_gc_callback``: the interrupt is lost) or aborts the
process (``terminate called after throwing nanobind::python_error``, exit 134; a segfault, 139,
in the teardown) — all seen on this project's commands. Nothing needs the unwinding: every
output is written atomically and fsynced, metrics lines are appended whole and fsynced (a torn
last line is skipped by the readers), and ``deep.train``'s run lock is released by the kernel.
A second signal while the first is handled does nothing (no traceback, one line, exit 130).

Library code called in-process (tests, notebooks) keeps Python's usual ``KeyboardInterrupt``:
the handler is installed only by ``run_main``.

>>> with removed_on_interrupt("/tmp/x.tmp"):
...     "/tmp/x.tmp" in _TEMP_FILES
True
>>> "/tmp/x.tmp" in _TEMP_FILES
False
"""

from __future__ import annotations

import contextlib
import importlib
import os
import signal
import sys
from typing import Iterator

__all__ = ["run_main", "install", "on_interrupt_say", "removed_on_interrupt", "INTERRUPTED"]

INTERRUPTED = 130  # exit status after SIGINT / SIGTERM
SIGNALS = (signal.SIGINT, signal.SIGTERM)

_TEMP_FILES: set[str] = set()
_message = "interrupted"
_exiting = False


def on_interrupt_say(line: str) -> None:
    """The line printed (on stderr) when the command is interrupted from now on, e.g.
    ``interrupted; continue with: python -m deep.train --out runs/a --resume``."""
    global _message
    _message = line


@contextlib.contextmanager
def removed_on_interrupt(path: str | os.PathLike) -> Iterator[None]:
    """Within the block, an interrupt removes ``path`` (a temp file being written) before exit."""
    key = os.fspath(path)
    _TEMP_FILES.add(key)
    try:
        yield
    finally:
        _TEMP_FILES.discard(key)


def _on_signal(signum, frame) -> None:
    """Clean up, say so, exit 130 (see the module doc). Re-entry (a 2nd signal) does nothing."""
    global _exiting
    if _exiting:
        return
    _exiting = True
    for sig in SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    for path in list(_TEMP_FILES):
        with contextlib.suppress(OSError):
            os.unlink(path)
    with contextlib.suppress(Exception):  # a buffer in use by the interrupted code: skip it
        sys.stdout.flush()
    newline = "\n" if os.isatty(2) else ""  # end a progress bar's line first
    with contextlib.suppress(OSError):
        os.write(2, f"{newline}{_message}\n".encode())
    os._exit(INTERRUPTED)


def install(prog: str | None = None) -> None:
    """SIGINT and SIGTERM call the exiting handler (``run_main`` does this first)."""
    global _message
    if prog is not None:
        _message = f"{prog}: interrupted"
    for sig in SIGNALS:
        signal.signal(sig, _on_signal)


def run_main(module: str) -> None:
    """Install the handler, import ``module`` and exit with the status its ``main()`` returns.

    A closed stdout (``... --json | head -1``) ends quietly with status 1, not a
    ``BrokenPipeError`` traceback.
    """
    install(_prog(module))
    try:
        status = importlib.import_module(module).main()
    except BrokenPipeError:
        # the reader of stdout went away: say nothing more, and keep Python's exit flush of
        # stdout from raising again
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        status = 1
    raise SystemExit(status)


def _prog(module: str) -> str:
    """``python -m ufm.solve`` for ``ufm.cli.solve_cmd`` / ``deep.train`` for ``deep.train_cmd``."""
    package, _, name = module.rpartition(".")
    name = name.removesuffix("_cmd")
    package = package.removesuffix(".cli")
    return f"python -m {package}.{name}"
