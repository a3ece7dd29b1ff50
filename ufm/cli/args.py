"""Command-line plumbing shared by the CLIs of ``ufm``, ``theory_checks`` and ``deep`` (JAX-free:
JAX loads only in ``enable_compilation_cache``, once the arguments are valid).

Usage errors print ONE line ``<prog>: error: argument --x: ...`` and exit with status 2.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path
from typing import Callable, NoReturn, Sequence

import numpy as np

from ufm.cli.limits import ENV as MEMORY_ENV
from ufm.cli.limits import too_big
from ufm.core.checks import TAU_MAX, TAU_MIN
from ufm.core.labels import check_counts, exp_counts, step_counts

__all__ = [
    "ACTIVATION_NAMES",
    "Parser",
    "add_problem_args",
    "counts_from_args",
    "counts_flag",
    "ranged",
    "int_list",
    "check_size",
    "usage_error",
    "unwritable_reason",
    "output_file",
    "output_dir",
    "write_failed",
    "write_outputs",
    "format_counts",
    "format_matrix",
    "enable_compilation_cache",
]

#: ``ufm.core.activations.ACTIVATIONS`` spelled out, so that ``--help`` and argument errors load
#: no JAX (``tests/test_activations.py`` checks the two agree).
ACTIVATION_NAMES = ("relu", "softplus", "leaky_relu", "gelu", "elu", "none")

K_MAX, R_MAX, D_MAX = 1000, 1_000_000, 100_000


class Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line and exit 2 (no usage dump)."""

    def error(self, message: str):  # noqa: D102
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        sys.exit(2)


def usage_error(parser: argparse.ArgumentParser, message: str):
    """Report a usage error on one line and exit 2."""
    parser.error(message)


def ranged(kind: type, lo: float | None = None, hi: float | None = None, *,
           lo_open: bool = False, hi_open: bool = False) -> Callable[[str], float]:
    """argparse ``type=`` parsing ``kind`` within ``[lo, hi]`` (an end is excluded if open)."""
    left = "(" if lo_open else "["
    right = ")" if hi_open or hi is None else "]"
    show = lambda v: f"{v:g}" if isinstance(v, float) else str(v)  # noqa: E731
    span = f"{left}{'-inf' if lo is None else show(lo)}, {'inf' if hi is None else show(hi)}{right}"
    what = "an integer" if kind is int else "a number"

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what} in {span}, got {text!r}") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be {what} in {span}, got {text!r}")
        too_low = lo is not None and (value <= lo if lo_open else value < lo)
        too_high = hi is not None and (value >= hi if hi_open else value > hi)
        if too_low or too_high:
            raise argparse.ArgumentTypeError(f"must be {what} in {span}, got {text!r}")
        return value

    return parse


def unwritable_reason(path: str | os.PathLike, *, folder: bool = False) -> str | None:
    """Why ``path`` (a file, or with ``folder`` a folder) cannot be written, or None.

    Checked without writing: ``path`` must not be a folder (a file if ``folder``); a file path
    must not be a symbolic link or an existing non-regular file (a device such as /dev/null, a
    FIFO: the atomic rename would replace it); and its nearest existing ancestor must be a
    folder we may write in (the atomic writes put a temp file beside the target, and missing
    folders are created).

    >>> unwritable_reason("/")
    '/ is a folder'
    """
    p = Path(path)
    if not folder and p.is_symlink():  # the atomic rename would replace the link itself
        return f"{p} is a symbolic link (give the path of a regular file)"
    if p.is_dir() and not folder:
        return f"{p} is a folder"
    if not folder and p.exists() and not p.is_file():  # a device, FIFO or socket
        return f"{p} is not a regular file"
    if p.exists() and folder and not p.is_dir():
        return f"{p} is a file, not a folder"
    base = p if folder and p.is_dir() else p.parent
    while not base.exists() and base != base.parent:
        base = base.parent
    if not base.is_dir():
        return f"{base} is a file, not a folder"
    if not os.access(base, os.W_OK | os.X_OK):
        return f"{base} is not writable"
    return None


def _output(folder: bool) -> Callable[[str], str]:
    def parse(text: str) -> str:
        reason = unwritable_reason(text, folder=folder) if text else "empty path"
        if reason is not None:
            raise argparse.ArgumentTypeError(f"cannot write {text!r}: {reason}")
        return text

    return parse


output_file = _output(folder=False)
output_file.__doc__ = "argparse ``type=`` for an output file: a usage error if it cannot be written."
output_dir = _output(folder=True)
output_dir.__doc__ = "argparse ``type=`` for an output folder: a usage error if it cannot be written."


def write_failed(parser: argparse.ArgumentParser, flag: str, path: str | os.PathLike,
                 err: OSError) -> NoReturn:
    """One-line error (exit 2) for an output that failed to write after all (disk full, ...)."""
    parser.error(f"argument {flag}: {path}: cannot write ({err.strerror or err})")


def write_outputs(parser: argparse.ArgumentParser, writes) -> None:
    """Run each ``(flag, path, write)`` with a path given (``write(path)``, atomic); a failure
    is ``write_failed``'s one-line error naming the flag."""
    for flag, path, write in writes:
        if path:
            try:
                write(path)
            except OSError as err:
                write_failed(parser, flag, path, err)


def int_list(text: str) -> list[str]:
    """The entries of a comma-separated flag value, spaces dropped; ``ArgumentTypeError`` for
    an empty value or an empty entry (``"3,,3"``, ``"3,3,"``, ``",3"``: a typo, not a list).

    >>> int_list("3, 4")
    ['3', '4']
    """
    parts = text.replace(" ", "").split(",")
    if not text.strip() or any(v == "" for v in parts):
        raise argparse.ArgumentTypeError(
            f"must be comma-separated values with no empty entry (e.g. 500,500,5,5), got {text!r}")
    return parts


def _counts_list(text: str) -> np.ndarray:
    parts = int_list(text)
    try:
        values = [int(v) for v in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be comma-separated integers >= 2 (e.g. 500,500,5,5), got {text!r}"
        ) from None
    if any(v >= 2**62 for v in values):  # int64 would overflow; far beyond any memory anyway
        raise argparse.ArgumentTypeError(f"each count must be below 2**62, got {text!r}")
    try:
        return check_counts(values)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{err}; each count must be >= 2, at least 2 classes") from None


def add_problem_args(p: argparse.ArgumentParser) -> None:
    """The problem flags: class counts, dimension, temperature, ReLU, seed."""
    g = p.add_argument_group("problem")
    add_counts_args(g)
    g.add_argument("--d", type=ranged(int, 1, D_MAX), default=None, help="embedding dimension (default k)")
    g.add_argument("--tau", type=ranged(float, TAU_MIN, TAU_MAX), default=0.1,
                   help=f"temperature in [{TAU_MIN:g}, {TAU_MAX:g}] (default 0.1); outside it float64 "
                   "rounding swamps the loss (docs/solver.md)")
    g.add_argument("--nonneg", action="store_true", help="ReLU features: add z >= 0 (UFM+)")
    g.add_argument("--seed", type=ranged(int, 0, 2**31 - 1), default=0, help="random seed (default 0)")


def add_counts_args(g) -> None:
    """The class-count flags (``--k --R --rho --n-min --imbalance --counts``) on a parser/group."""
    g.add_argument("--k", type=ranged(int, 2, K_MAX), default=10, help="number of classes (default 10)")
    g.add_argument("--R", type=ranged(float, 1, R_MAX), default=100.0,
                   help="imbalance ratio n_max/n_min (default 100; 1 = balanced)")
    g.add_argument("--rho", type=ranged(float, 0, 1, lo_open=True, hi_open=True), default=0.5,
                   help="STEP: fraction of minority classes, in (0, 1) (default 0.5)")
    g.add_argument("--n-min", type=ranged(int, 2, None), default=5,
                   help="samples in the smallest class (default 5)")
    g.add_argument("--imbalance", choices=("step", "exp"), default="step",
                   help="step (two class sizes) or exp (long tail) (default step)")
    g.add_argument("--counts", type=_counts_list, default=None,
                   help="explicit class counts, e.g. 500,500,5,5 (overrides --k/--R/--rho/--n-min)")


def counts_flag(args: argparse.Namespace) -> str:
    """The flag(s) that made the counts: ``--counts``, else ``--k/--R/--n-min``."""
    return "--counts" if getattr(args, "counts", None) is not None else "--k/--R/--n-min"


def check_size(parser: argparse.ArgumentParser, flag: str, n: int, need: tuple[int, str]) -> None:
    """Usage error (exit 2) naming ``flag`` when ``need = (bytes, what)`` for ``N = n`` samples
    exceeds the memory available (``ufm.cli.limits``; ``SCL_GEOMETRY_MEMORY`` sets it)."""
    try:
        reason = too_big(*need)
    except ValueError as err:  # SCL_GEOMETRY_MEMORY is not a size
        usage_error(parser, str(err))
    if reason is not None:
        usage_error(parser, f"argument {flag}: N = {n} samples {reason} (the environment variable "
                            f"{MEMORY_ENV} sets the limit)")


def counts_from_args(parser: argparse.ArgumentParser, args: argparse.Namespace,
                     need: Callable[[np.ndarray], tuple[int, str]] | None = None) -> np.ndarray:
    """Class counts from ``--counts`` or the imbalance flags (usage error if impossible).

    The sizes are bounded BEFORE anything of size N is allocated: ``need(counts)`` gives
    ``(bytes, what)`` of the command's work (default: the ``N`` int64 labels), and a usage error
    naming ``--counts`` (or ``--k/--R/--n-min``) and the limit follows when it exceeds the
    memory available (``ufm.cli.limits.memory_budget``).
    """
    flag = counts_flag(args)
    if args.counts is not None:
        counts = args.counts
    else:
        # the majority / largest class, computed in Python (no int64 overflow for huge flags)
        n_big = int(round(args.R * args.n_min))
        if n_big * args.k >= 2**62:
            usage_error(parser, f"argument {flag}: N = about {n_big * args.k:.3g} samples (k = "
                                f"{args.k}, R = {args.R:g}, n_min = {args.n_min}) is beyond any memory")
        if args.imbalance == "step":
            counts = step_counts(args.k, args.R, args.rho, args.n_min)
        else:
            try:
                counts = exp_counts(args.k, args.R, n_big)
            except ValueError as err:
                usage_error(parser, f"argument --R: {err}")
    n = int(np.sum(counts))
    check_size(parser, flag, n, need(counts) if need is not None else
               (8 * n, "the N int64 labels"))
    return counts


def format_counts(counts: Sequence[int]) -> str:
    """Run-length form: ``500 x5, 5 x5``."""
    out, prev, run = [], None, 0
    for c in list(counts) + [None]:
        if c == prev:
            run += 1
            continue
        if prev is not None:
            out.append(f"{prev} x{run}" if run > 1 else f"{prev}")
        prev, run = c, 1
    return ", ".join(out)


def format_matrix(a: np.ndarray, max_k: int = 12) -> str:
    """Compact 2-decimal table of a k x k matrix (first ``max_k`` rows/columns)."""
    a = np.asarray(a)
    k = a.shape[0]
    shown = a[:max_k, :max_k]
    rows = ["      " + " ".join(f"{j:>5d}" for j in range(shown.shape[1]))]
    for i, row in enumerate(shown):
        rows.append(f"{i:>5d} " + " ".join(f"{v:5.2f}" for v in row))
    if k > max_k:
        off = a[~np.eye(k, dtype=bool)]
        rows.append(f"  ... {k - max_k} more classes; off-diagonal min {off.min():.3f}, "
                    f"mean {off.mean():.3f}, max {off.max():.3f}")
    return "\n".join(rows)


def enable_compilation_cache() -> None:
    """Persist XLA compilations across runs (``~/.cache/scl-geometry/jax``), for the CLIs of
    ``ufm`` and ``deep``. ``SCL_GEOMETRY_CACHE`` overrides the folder; ``off`` (or empty,
    ``0``, ``none``) disables. Imports JAX, so call it once the arguments are valid.
    """
    import os

    import jax

    path = os.environ.get("SCL_GEOMETRY_CACHE", os.path.expanduser("~/.cache/scl-geometry/jax"))
    if path.lower() in ("", "0", "off", "none"):
        return
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
