"""``ufm``'s public names: the lazy table, ``__all__`` and the ``TYPE_CHECKING`` imports that
type checkers and IDEs read list the same names, and each resolves to its module's object."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import ufm

INIT = Path(ufm.__file__)


def _type_checking_imports() -> dict[str, str]:
    tree = ast.parse(INIT.read_text())
    out: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for stmt in node.body:
                assert isinstance(stmt, ast.ImportFrom)
                for alias in stmt.names:
                    out[alias.asname or alias.name] = stmt.module
    return out


def test_exports_are_listed_three_times_alike():
    static = _type_checking_imports()
    assert set(static) == set(ufm.__all__) == set(ufm._EXPORTS)
    assert static == ufm._EXPORTS  # same module for each name
    assert len(ufm.__all__) == len(set(ufm.__all__))


def test_every_export_resolves_to_its_module_object():
    for name, module in ufm._EXPORTS.items():
        assert getattr(ufm, name) is getattr(importlib.import_module(module), name), name
