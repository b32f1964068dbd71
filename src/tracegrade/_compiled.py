"""Which modules run compiled, and the switch back to their pure-Python source.

The per-span hot paths are compiled to C with mypyc when the package is built (``setup.py``):
each compiled module is an extension beside its ``.py``, which Python imports in its place.
``TRACEGRADE_PURE_PYTHON=1`` in the environment makes tracegrade import the ``.py`` files
instead (to debug, profile or compare); set at build time, it also skips compiling.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Sequence
from importlib.abc import MetaPathFinder
from importlib.machinery import EXTENSION_SUFFIXES, ModuleSpec, PathFinder
from pathlib import Path
from types import ModuleType

COMPILED = (
    "tracegrade.sources.conventions",
    "tracegrade.sources._langfuse_map",
    "tracegrade.sources.otlp",
    "tracegrade.store._fast",
    "tracegrade.grading",
)
"""The modules ``setup.py`` compiles (a test keeps the two lists equal)."""

PURE_PYTHON_ENV = "TRACEGRADE_PURE_PYTHON"


def pure_python_requested() -> bool:
    """Whether the environment asks for the pure-Python modules."""
    return os.environ.get(PURE_PYTHON_ENV, "") not in ("", "0")


def is_compiled(module: ModuleType) -> bool:
    """Whether ``module`` was loaded from a compiled extension."""
    return str(getattr(module, "__file__", "")).endswith(tuple(EXTENSION_SUFFIXES))


def compiled_modules() -> list[str]:
    """The modules of :data:`COMPILED` that run compiled in this process (imports them)."""
    return [name for name in COMPILED if is_compiled(importlib.import_module(name))]


def stale_extensions() -> list[str]:
    """Compiled extensions older than their ``.py`` (an edit since the last build).

    Python imports the extension whatever its age, so an edited hot-path module does nothing
    until the package is rebuilt (``make venv`` or ``pip install -e .``).
    """
    stale = []
    for name in COMPILED:
        spec = PathFinder.find_spec(name, _parent_path(name))
        if spec is None or spec.origin is None or not spec.origin.endswith(
                tuple(EXTENSION_SUFFIXES)):
            continue
        extension = Path(spec.origin)
        source = extension.with_name(name.rpartition(".")[2] + ".py")
        if source.exists() and source.stat().st_mtime > extension.stat().st_mtime:
            stale.append(name)
    return stale


def _parent_path(name: str) -> list[str] | None:
    parent = importlib.import_module(name.rpartition(".")[0])
    return list(getattr(parent, "__path__", [])) or None


class _SourceFinder(MetaPathFinder):
    """Finds the ``.py`` of a compiled module, so that it is imported instead."""

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> ModuleSpec | None:
        if fullname not in COMPILED:
            return None
        spec = PathFinder.find_spec(fullname, path)
        if spec is None or spec.origin is None:
            return None
        source = Path(spec.origin).with_name(fullname.rpartition(".")[2] + ".py")
        if not source.exists():
            return None
        return importlib.util.spec_from_file_location(fullname, source)


def install_source_finder() -> None:
    """Import compiled modules from their ``.py`` when :data:`PURE_PYTHON_ENV` asks for it."""
    if pure_python_requested() and not any(isinstance(f, _SourceFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _SourceFinder())
