"""Layout rules of the source tree: no private name crosses a module, no module is over 600 lines.

Both rules are read from the source with :mod:`ast` (nothing is imported). The exceptions that exist today
are listed below; the lists may only shrink: a new violation fails, and so does a listed one that has gone
(remove it from the list), so the lists stay honest.
"""

from __future__ import annotations

import ast
from pathlib import Path

import gioselect

PACKAGE_DIR = Path(gioselect.__file__).parent
MAX_LINES = 600

# (importing module, module the name belongs to, name). Empty: every name one module uses from another is
# public where it lives.
KNOWN_PRIVATE_CROSSINGS: set[tuple[str, str, str]] = set()

# Modules over MAX_LINES lines today. Empty: every module is at most MAX_LINES lines (a new long one fails).
KNOWN_LONG_MODULES: set[str] = set()


def _modules() -> dict[str, Path]:
    """Dotted name -> file of every module under src/gioselect (a package is its ``__init__.py``)."""
    out = {}
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _is_private(name: str) -> bool:
    """A leading underscore that is not a dunder."""
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module an ``ImportFrom`` names, relative imports resolved against ``module``."""
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def private_crossings(modules: dict[str, Path]) -> set[tuple[str, str, str]]:
    """Every private name one gioselect module imports from, or reads as an attribute of, another."""
    found = set()
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        is_package = path.name == "__init__.py"
        aliases: dict[str, str] = {}  # local name -> gioselect module it is bound to
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                source = _resolve(module, is_package, node)
                if source.split(".")[0] != "gioselect":
                    continue
                for a in node.names:
                    if f"{source}.{a.name}" in modules:  # a submodule: `from . import io`
                        aliases[a.asname or a.name] = f"{source}.{a.name}"
                    elif _is_private(a.name) and source != module:
                        found.add((module, source, a.name))
            elif isinstance(node, ast.Import):
                for a in node.names:
                    if a.name in modules and a.asname:
                        aliases[a.asname] = a.name
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                target = aliases.get(node.value.id)
                if target is not None and target != module and _is_private(node.attr):
                    found.add((module, target, node.attr))
    return found


def test_the_checker_sees_imports_and_attributes(tmp_path: Path) -> None:
    pkg = tmp_path / "gioselect"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("_x = 1\ny = 2\n")
    (pkg / "sub" / "__init__.py").write_text("from .. import a\nfrom ..a import y\nz = a._x + a.__name__.count('')\n")
    (pkg / "sub" / "b.py").write_text("from ..a import _x\nfrom gioselect.a import __doc__\n")
    (pkg / "c.py").write_text("import gioselect.a as m\nfrom .a import _x as _fine_locally\nw = m._x\n")
    modules = {
        "gioselect": pkg / "__init__.py",
        "gioselect.a": pkg / "a.py",
        "gioselect.sub": pkg / "sub" / "__init__.py",
        "gioselect.sub.b": pkg / "sub" / "b.py",
        "gioselect.c": pkg / "c.py",
    }
    assert private_crossings(modules) == {
        ("gioselect.sub", "gioselect.a", "_x"),
        ("gioselect.sub.b", "gioselect.a", "_x"),
        ("gioselect.c", "gioselect.a", "_x"),
    }


def test_no_new_private_name_crosses_a_module() -> None:
    found = private_crossings(_modules())
    new = sorted(found - KNOWN_PRIVATE_CROSSINGS)
    gone = sorted(KNOWN_PRIVATE_CROSSINGS - found)
    assert not new, f"private names used from another module (give them a public name where they live): {new}"
    assert not gone, f"these crossings are gone: remove them from KNOWN_PRIVATE_CROSSINGS: {gone}"


def test_no_new_module_over_600_lines() -> None:
    lengths = {m: len(p.read_text(encoding="utf-8").splitlines()) for m, p in _modules().items()}
    long = {m for m, n in lengths.items() if n > MAX_LINES}
    new = sorted((m, lengths[m]) for m in long - KNOWN_LONG_MODULES)
    gone = sorted(KNOWN_LONG_MODULES - long)
    assert not new, f"modules over {MAX_LINES} lines (split them): {new}"
    assert not gone, f"these modules are now short enough: remove them from KNOWN_LONG_MODULES: {gone}"
