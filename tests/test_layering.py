"""Layers you can see (issue 33, item 4): who may import whom, read from the source with ``ast``.

Bottom up:

1. the core, ``ufm``'s library modules: no ``theory_checks``, ``deep`` or ``figures``, and none of
   ``ufm``'s command-line / file-writing modules (``UFM_CLI_IO``);
2. ``theory_checks``' library modules: may use the core; never ``deep``;
3. ``deep``'s library modules: may use the core and ``theory_checks``;
4. on top: the command lines (``*_cmd``), the entry modules ``python -m`` names
   (``ENTRY_MODULES``: the ``__main__`` shim only) and ``figures``.

No library module of ``theory_checks`` or ``deep`` imports a command line, an entry module or
``figures``. Every ``import`` and ``from ... import`` counts, inside functions too.
"""

from __future__ import annotations

import ast
import fnmatch
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("ufm", "theory_checks", "deep", "figures")

# The command-line and file-writing (I-O) modules of the core: no ufm library module imports them.
UFM_CLI_IO = ("ufm.cli", "ufm.cli.*", "ufm.solve", "ufm.certify", "ufm.bench", "ufm.analyze")

# The modules ``python -m`` names: each holds the ``if __name__ == "__main__"`` shim and, where an
# old import path still has users, an alias to its library module; no functions, no classes.
ENTRY_MODULES = ("ufm.solve", "ufm.certify", "ufm.bench", "ufm.analyze",
                 "theory_checks.graph", "theory_checks.batches", "theory_checks.bench",
                 "deep.train", "deep.report", "deep.bench",
                 "figures.make", "figures.fashionmnist")

# Command lines: what no library module may import (``ufm.bench`` is ``python -m ufm.bench``).
CLI_MODULES = ("*_cmd", "ufm.cli.args", "ufm.bench", *ENTRY_MODULES)

# Outside the library layers: the command lines, the entry modules and the core's I-O.
NOT_LIBRARY = (*CLI_MODULES, *UFM_CLI_IO)

# Known violations of the core's rule, kept visible until their owner fixes them (strict: the
# fix turns the xfail into a failure, which says to delete the entry here).
KNOWN_CORE_VIOLATIONS: dict[str, str] = {}


def _matches(module: str, patterns) -> bool:
    return any(fnmatch.fnmatchcase(module, p) for p in patterns)


def _within(module: str, packages) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules(package: str) -> dict[str, Path]:
    """Every module of ``package`` (its ``__init__`` included; pytest's conftest files not)."""
    return {_module_name(p): p for p in sorted((ROOT / package).rglob("*.py"))
            if p.name != "conftest.py" and "__pycache__" not in p.parts}


def _is_module(name: str) -> bool:
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _public_names(package: str) -> set[str]:
    """Names a package's ``__init__`` exports: its ``__all__`` (a literal list, or
    ``list(_EXPORTS)`` of a literal dict), and what it imports by name."""
    init = ROOT.joinpath(*package.split(".")) / "__init__.py"
    if not init.is_file():
        return set()
    tree = ast.parse(init.read_text(), str(init))
    dicts: dict[str, set[str]] = {}
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            names |= {a.asname or a.name for a in node.names}
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)):
            continue
        target, value = node.targets[0].id, node.value
        if isinstance(value, ast.Dict):
            dicts[target] = {k.value for k in value.keys if isinstance(k, ast.Constant)}
        if target == "__all__":
            if isinstance(value, (ast.List, ast.Tuple)):
                names |= {e.value for e in value.elts if isinstance(e, ast.Constant)}
            elif (isinstance(value, ast.Call) and value.args and isinstance(value.args[0], ast.Name)):
                names |= dicts.get(value.args[0].id, set())
    return names


def imports(module: str, path: Path) -> set[str]:
    """The modules ``module`` imports: ``import a.b`` gives ``a.b``; ``from a import b`` gives
    ``a``, and ``a.b`` too when ``b`` is a module of ``a`` rather than a name ``a`` exports
    (``from ufm import solve`` is the function, ``from ufm import io`` the module)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1])
                source = f"{base}.{node.module}" if node.module else base
            else:
                source = node.module
            found.add(source)
            exported = _public_names(source) if _within(source, PACKAGES) else set()
            for alias in node.names:
                sub = f"{source}.{alias.name}"
                if alias.name not in exported and _is_module(sub):
                    found.add(sub)
    return found


def _library(package: str) -> dict[str, Path]:
    return {m: p for m, p in _modules(package).items() if not _matches(m, NOT_LIBRARY)}


def _case(module: str, reasons: dict[str, str]):
    if module in reasons:
        return pytest.param(module, marks=pytest.mark.xfail(strict=True, reason=reasons[module]))
    return module


CORE = _library("ufm")
UPPER = {**_library("theory_checks"), **_library("deep")}
THEORY_CHECKS = _modules("theory_checks")


def test_the_scan_sees_the_layers():
    """The file walk and the import parser work (so the rules below do not pass vacuously)."""
    assert {"ufm.core.loss", "ufm.solvers.solver"} <= set(CORE) and not set(CORE) & {"ufm.cli.args", "ufm.cli.io"}
    assert {"theory_checks.interaction", "theory_checks.schedules", "deep.training"} <= set(UPPER)
    assert not set(UPPER) & {"deep.train", "deep.train_cmd", "theory_checks.graph"}
    got = imports("deep.training", ROOT / "deep" / "training.py")
    assert {"ufm.core.loss", "theory_checks.schedules", "deep.rundir", "jax"} <= got
    cmd = imports("deep.train_cmd", ROOT / "deep" / "train_cmd.py")
    assert {"ufm.cli.args", "deep.training"} <= cmd  # the latter inside ``main``


def test_from_package_import_name_tells_functions_from_modules(tmp_path):
    path = tmp_path / "probe.py"
    path.write_text("def f():\n    from ufm import solve, certificates\n    from . import labels\n")
    got = imports("ufm.core.probe", path)  # read as if it were ufm/core/probe.py
    assert "ufm.certificates" in got and "ufm.core.labels" in got
    assert "ufm.solve" not in got  # ufm exports the function ``solve``


@pytest.mark.parametrize("module", [_case(m, KNOWN_CORE_VIOLATIONS) for m in CORE])
def test_core_imports_neither_upper_layers_nor_cli_io(module):
    bad = sorted(m for m in imports(module, CORE[module])
                 if _within(m, ("theory_checks", "deep", "figures")) or _matches(m, UFM_CLI_IO))
    assert not bad, f"{module} (the core) imports {bad}"


@pytest.mark.parametrize("module", [m for m in CORE if _within(m, ("ufm.core",))])
def test_math_layer_imports_no_solver_or_certificate(module):
    """``ufm.core`` (the math) is the bottom layer: no ``ufm.solvers``, ``ufm.certificates``."""
    bad = sorted(m for m in imports(module, CORE[module])
                 if _within(m, ("ufm.solvers", "ufm.certificates")))
    assert not bad, f"{module} (the math layer) imports {bad}"


def test_the_core_is_split_by_job():
    """Every library module of ``ufm`` sits in one of its subpackages (or is package plumbing)."""
    subpackages = ("ufm.core", "ufm.solvers", "ufm.certificates", "ufm.analysis", "ufm.cli")
    loose = sorted(m for m in CORE if m.count(".") == 1 and m not in ("ufm.lazy", *subpackages))
    assert not loose, f"ufm modules outside core/solvers/certificates/analysis/cli: {loose}"


@pytest.mark.parametrize("module", list(UPPER))
def test_libraries_import_no_cli_entry_or_figures(module):
    bad = sorted(m for m in imports(module, UPPER[module])
                 if _matches(m, CLI_MODULES) or _within(m, ("figures",)))
    assert not bad, f"{module} (a library module) imports {bad}"


@pytest.mark.parametrize("module", list(THEORY_CHECKS))
def test_theory_checks_never_imports_deep(module):
    bad = sorted(m for m in imports(module, THEORY_CHECKS[module]) if _within(m, ("deep",)))
    assert not bad, f"{module} imports {bad}"


@pytest.mark.parametrize("module", ENTRY_MODULES)
def test_entry_modules_hold_no_library_code(module):
    path = ROOT.joinpath(*module.split(".")).with_suffix(".py")
    tree = ast.parse(path.read_text(), str(path))
    defined = [n.name for n in ast.walk(tree)
               if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
    assert not defined, f"{module} defines {defined}"
    mains = [n for n in tree.body if isinstance(n, ast.If) and "__main__" in ast.unparse(n.test)]
    assert len(mains) == 1, f"{module} has no `if __name__ == '__main__'` shim"
