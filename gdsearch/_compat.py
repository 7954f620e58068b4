"""Old import paths: ``gdsearch.model.*``, where the maths lived until 0.3, still imports.

The maths layer was one folder, ``gdsearch/model``; it is now the packages its public modules
name (:mod:`gdsearch.mlp`, :mod:`gdsearch.data`, :mod:`gdsearch.analysis`,
:mod:`gdsearch.stability`). An import of an old path gets the module at its new home, the same
object, and the first such import in a process says where it went in one warning.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types
import warnings
from collections.abc import Sequence

OLD = "gdsearch.model"
MOVED = {
    "activations": "gdsearch.mlp.activations",
    "compiled": "gdsearch.mlp.compiled",
    "config": "gdsearch.mlp.config",
    "elementary": "gdsearch.mlp.elementary",
    "inits": "gdsearch.mlp.inits",
    "kernel": "gdsearch.mlp.kernel",
    "network": "gdsearch.mlp.network",
    "numerics": "gdsearch.mlp.numerics",
    "optim": "gdsearch.mlp.optim",
    "population": "gdsearch.mlp.population",
    "sharpness": "gdsearch.mlp.sharpness",
    "stopping": "gdsearch.mlp.stopping",
    "datasets": "gdsearch.data",
    "holdout": "gdsearch.data.holdout",
    "analysis": "gdsearch.analysis.convergence",
    "comparison": "gdsearch.analysis.comparison",
    "histories": "gdsearch.analysis.histories",
    "ranking": "gdsearch.analysis.ranking",
    "trajectory": "gdsearch.analysis.trajectory",
    "edge": "gdsearch.stability.edge",
    "stability": "gdsearch.stability.limits",
}
"""Each module of the old ``gdsearch.model`` and its home now."""

_warned = False


def new_name(name: str) -> str:
    """``gdsearch.model.network`` → ``gdsearch.mlp.network`` (submodules follow their package).

    Raises:
        ModuleNotFoundError: ``gdsearch.model`` never had such a module.
    """
    first, _, rest = name[len(OLD) + 1 :].partition(".")
    if first not in MOVED:
        raise ModuleNotFoundError(f"No module named {name!r}", name=name)
    return MOVED[first] + (f".{rest}" if rest else "")


def _warn_once(name: str, new: str) -> None:
    global _warned
    if not _warned:
        _warned = True
        warnings.warn(
            f"{name} is now {new} (gdsearch.model was split into gdsearch.mlp, gdsearch.data, "
            "gdsearch.analysis and gdsearch.stability); the old paths will be removed",
            FutureWarning,
            stacklevel=3,
        )


class _OldPaths(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds ``gdsearch.model`` and its old modules; loads each as its module at its new home."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: types.ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != OLD and not fullname.startswith(OLD + "."):
            return None
        if fullname != OLD:
            new_name(fullname)  # an unknown old name fails here, as a missing module
        return importlib.util.spec_from_loader(fullname, self, is_package=fullname == OLD)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        if spec.name == OLD:
            return None  # a plain module, whose attributes are the old modules
        new = new_name(spec.name)
        _warn_once(spec.name, new)
        return importlib.import_module(new)

    def exec_module(self, module: types.ModuleType) -> None:
        if module.__spec__ is not None and module.__spec__.name == OLD:
            module.__doc__ = __doc__
            module.__getattr__ = _attribute  # type: ignore[method-assign]


def _attribute(name: str) -> types.ModuleType:
    """``gdsearch.model.network`` as an attribute: the old module, imported on first use."""
    if name not in MOVED:
        raise AttributeError(f"module {OLD!r} has no attribute {name!r}")
    return importlib.import_module(f"{OLD}.{name}")


def install() -> None:
    """Let the old paths import (once per process)."""
    if not any(isinstance(finder, _OldPaths) for finder in sys.meta_path):
        sys.meta_path.append(_OldPaths())
