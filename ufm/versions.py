"""Versions of the libraries a result depends on (recorded in every JSON output)."""

from __future__ import annotations

import platform
from importlib import metadata

__all__ = ["library_versions"]

_PACKAGES = ("scl-geometry", "jax", "jaxlib", "optax", "numpy", "scipy", "cvxpy", "networkx", "flax")


def library_versions() -> dict[str, str]:
    """``{package: version}`` for the installed packages we use, plus Python's version."""
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out
