"""Build hook: compile tracegrade's per-span hot paths to C with mypyc, keeping pure Python too.

Everything else about the package is in pyproject.toml. The modules in ``COMPILED`` are plain,
fully typed Python that mypyc turns into C extensions; an import or a pull spends most of its
time in them, and compiled they run about twice as fast. The extension sits beside its ``.py``
and wins at import. The build falls back to pure Python, with a warning, when
``TRACEGRADE_PURE_PYTHON=1`` is set, when mypyc is missing or when the C compiler fails;
``TRACEGRADE_PURE_PYTHON=1`` at run time makes an installed package use its ``.py`` files
(see ``tracegrade/_compiled.py``).
"""

from __future__ import annotations

import os
import sys
from typing import Any

from setuptools import Distribution, setup
from setuptools.command.build_ext import build_ext

# Keep in step with tracegrade._compiled.COMPILED (a test checks).
COMPILED = [
    "src/tracegrade/sources/conventions.py",
    "src/tracegrade/sources/_langfuse_map.py",
    "src/tracegrade/sources/otlp.py",
    "src/tracegrade/store/_fast.py",
    "src/tracegrade/grading.py",
]

# Translated against tracegrade's own types only: third-party packages (pydantic, SQLAlchemy…)
# are left unknown (Any) whether or not they are installed, so every build compiles the same code
# and calls into them stay generic instead of trusting their annotations (a SQLAlchemy ``Row``
# is not the ``tuple`` its stubs describe). Errors in modules only imported are mypy's job.
MYPY_OPTIONS = ["--config-file=", "--no-site-packages", "--ignore-missing-imports",
                "--follow-imports=silent"]  # and the building interpreter's Python version

# setup.py also runs to read metadata (egg_info, dist_info): translating is only worth it when
# one of these is what it was asked to do.
_BUILDING_COMMANDS = {"build", "build_ext", "bdist_wheel", "editable_wheel", "develop", "install"}


def _warn(message: str) -> None:
    print(f"tracegrade: {message}; installing pure Python (slower import and pull)",
          file=sys.stderr)


class _OptionalBuildExt(build_ext):
    """Translates with mypyc only when extensions are built (setup.py also runs for metadata),
    and lets a failing C compiler leave the pure-Python modules in charge instead of failing
    the install."""

    def finalize_options(self) -> None:
        dist = self.distribution
        if dist.ext_modules is None and set(dist.commands) & _BUILDING_COMMANDS:
            dist.ext_modules = _extensions()
        super().finalize_options()

    def run(self) -> None:
        try:
            super().run()
        except Exception as error:  # noqa: BLE001 - any compiler failure means "stay pure"
            _warn(f"compiling the hot paths failed ({error})")

    def build_extension(self, ext: Any) -> None:
        try:
            super().build_extension(ext)
        except Exception as error:  # noqa: BLE001
            _warn(f"compiling {ext.name} failed ({error})")


def _extensions() -> list[Any]:
    if os.environ.get("TRACEGRADE_PURE_PYTHON", "") not in ("", "0"):
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        _warn("mypyc is not available")
        return []
    try:
        return list(mypycify([*MYPY_OPTIONS, *COMPILED], opt_level="3"))
    except BaseException as error:  # mypy reports type errors with SystemExit
        _warn(f"mypyc could not translate the hot paths ({error!r})")
        return []


class _CompiledDistribution(Distribution):
    """Has extensions (so build_ext runs), though they are only known once it does."""

    def has_ext_modules(self) -> bool:
        return True


setup(distclass=_CompiledDistribution, cmdclass={"build_ext": _OptionalBuildExt})
