"""Lazy re-exports for a package ``__init__`` (PEP 562): each name is imported from its module
on first use, so importing the package (or a light submodule of it) loads no JAX or cvxpy.

>>> import types
>>> pkg = types.ModuleType("pkg")
>>> pkg.__getattr__, pkg.__dir__ = lazy_exports(pkg.__dict__, "pkg", {"sqrt": "math"})
>>> pkg.__getattr__("sqrt")(9.0), "sqrt" in pkg.__dir__()
(3.0, True)
"""

from __future__ import annotations

import importlib
from typing import Any, Callable

__all__ = ["lazy_exports"]


def lazy_exports(namespace: dict[str, Any], package: str,
                 exports: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The module-level ``__getattr__`` and ``__dir__`` of ``package``, whose ``namespace`` is
    its ``globals()``: ``exports`` maps each public name to the module that defines it. Any
    other name is tried as a submodule (``ufm.solvers.ce`` after a bare ``import ufm``)."""

    def __getattr__(name: str) -> Any:
        if name in exports:
            value = getattr(importlib.import_module(exports[name]), name)
            namespace[name] = value
            return value
        try:
            return importlib.import_module(f"{package}.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"{package}.{name}":
                raise
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(exports))

    return __getattr__, __dir__
