"""Command-line helpers shared by ``deep.train``, ``deep.report`` and ``deep.bench``.

Usage errors go through ``ufm.cli.Parser``: one line ``<prog>: error: ...``, exit status 2.
"""

from __future__ import annotations

import os

__all__ = ["enable_compilation_cache"]


def enable_compilation_cache() -> None:
    """Persist XLA compilations across runs (``~/.cache/scl-geometry/jax``).

    ``SCL_GEOMETRY_CACHE`` overrides the folder; ``off`` (or empty, ``0``, ``none``) disables.
    """
    import jax

    path = os.environ.get("SCL_GEOMETRY_CACHE", os.path.expanduser("~/.cache/scl-geometry/jax"))
    if path.lower() in ("", "0", "off", "none"):
        return
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
