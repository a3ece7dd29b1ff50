"""Versions of the libraries a result depends on, and the machine it ran on (recorded in JSON)."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from typing import Any

__all__ = ["cpu_model", "library_versions", "machine_info"]

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


def cpu_model(cpuinfo: str = "/proc/cpuinfo") -> str:
    """The CPU's model name (Linux ``/proc/cpuinfo``), else ``platform.processor()`` or the ISA.

    XLA compiles for the host CPU, so float results can differ between CPU models; the model
    name lets a run say where it came from.

    >>> isinstance(cpu_model(), str)
    True
    """
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and value.strip():
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict[str, Any]:
    """``{platform, cpu_model, cpus, jax_backend, devices}`` of the machine running this process."""
    import jax

    return {
        "platform": platform.platform(),
        "cpu_model": cpu_model(),
        "cpus": os.cpu_count(),
        "jax_backend": jax.default_backend(),
        "devices": [str(dv) for dv in jax.devices()],
    }
