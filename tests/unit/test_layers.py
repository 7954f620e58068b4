"""The package's layers: each module imports only from its own layer and those below it.

Layers, bottom up (docs/contributing.md): errors; the maths, four packages in their own order
(data, mlp, stability, analysis); job; results; search and report (siblings, neither importing
the other); and on top the CLI and the package's front. Imports made only for type checking
count too: a layer that needs a type from above takes a Protocol.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO

PACKAGE = REPO / "gdsearch"
MATHS = ("data", "mlp", "stability", "analysis")
"""The maths layer's packages, bottom up: each may import those before it."""
LEVELS = {
    "errors": 0,
    **{name: 1 + i for i, name in enumerate(MATHS)},
    "job": 5,
    "results": 6,
    "search": 7,
    "report": 7,
    "cli": 8,
}
TOP = 8  # the command line, gdsearch/__init__.py and the old paths' aliases
FORBIDDEN = {
    **{name: {"ray", "pyarrow", "matplotlib"} for name in MATHS},
    "job": {"ray", "pyarrow", "matplotlib"},
    "results": {"ray", "matplotlib"},
    "search": {"matplotlib"},
    "report": {"ray"},
}
"""Third-party packages a layer must not import (docs/contributing.md), so that the maths and
the storage are testable without Ray, and Ray is replaceable in one place."""
EXCEPTIONS = {"gdsearch.data.files": {"pyarrow"}}
"""Data sets read Parquet data files with pyarrow (only when such a file is loaded)."""


def _layer(module: str) -> str:
    """``gdsearch.search.loop`` → "search"; a top-level module → its own name."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _level(module: str) -> int:
    return LEVELS.get(_layer(module), TOP)


def _modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out.append((name, path))
    return out


def _imports(path: Path, module: str) -> list[tuple[str, int]]:
    """Every module this file imports (absolute or relative, anywhere in it), with its line."""
    found = []
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.append((base, node.lineno))
            found += [(f"{base}.{alias.name}", node.lineno) for alias in node.names]
    return found


MODULES = _modules()


def test_the_layers_are_folders_of_the_package() -> None:
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert folders == {name for name in LEVELS if name != "errors"}


@pytest.mark.parametrize(("module", "path"), MODULES, ids=[m for m, _ in MODULES])
def test_no_module_imports_from_a_layer_above_its_own(module: str, path: Path) -> None:
    level, layer = _level(module), _layer(module)
    names = {m for m, _ in MODULES}
    for imported, line in _imports(path, module):
        top = imported.split(".")[0]
        forbidden = FORBIDDEN.get(layer, set()) - EXCEPTIONS.get(module, set())
        assert top not in forbidden, f"{module}:{line} imports {imported}"
        if top != "gdsearch" or imported not in names or imported == "gdsearch":
            continue  # a name from a module (counted with the module), or another package
        other = _layer(imported)
        assert _level(imported) <= level, f"{module}:{line} imports {imported} from above"
        if level == LEVELS["search"] and other != layer:
            assert _level(imported) < level, f"{module}:{line}: search and report are apart"
        if level < TOP:  # the package's front and its CLI are for users, not for the layers
            assert _level(imported) < TOP, f"{module}:{line} imports {imported} from the top"


def test_the_check_sees_a_violation() -> None:
    """The check above would fail on an mlp module importing the search layer, or analysis."""
    source = PACKAGE / "mlp" / "population.py"
    imports = {name for name, _ in _imports(source, "gdsearch.mlp.population")}
    assert "gdsearch.mlp.network" in imports  # it does see imports
    assert _level("gdsearch.search.loop") > _level("gdsearch.mlp.population")
    assert _level("gdsearch.analysis.convergence") > _level("gdsearch.mlp.population")
    assert _level("gdsearch.cli") == TOP and _level("gdsearch.errors") == 0
