"""Reading an application's source tree: which files, and which analyser reads each."""

from __future__ import annotations

import tokenize
from pathlib import Path

from tracegrade.synth._facts import CodeFacts
from tracegrade.synth._python import analyse_python
from tracegrade.synth._typescript import analyse_typescript

PYTHON_SUFFIXES = frozenset({".py"})
SCRIPT_SUFFIXES = frozenset({".ts", ".tsx", ".mts", ".cts", ".js", ".jsx", ".mjs", ".cjs"})
SKIPPED_DIRECTORIES = frozenset({
    ".git", ".hg", ".venv", "venv", "env", ".env", "node_modules", "__pycache__",
    "site-packages", "dist", "build", ".tox", ".nox", ".mypy_cache", ".pytest_cache",
    ".ruff_cache", ".next", "coverage", "tests", "test", "__tests__", "__mocks__",
})
MAX_FILE_BYTES = 1_000_000
"""Larger files are bundles or generated code, not the application's own source."""


def analyse(path: Path) -> CodeFacts:
    """Analyse an application: one source file, or every source file under a directory.

    Test files and directories (``tests/``, ``test_*.py``, ``*.test.ts``…) are skipped: the
    calls they make are fakes, not what runs in production.

    Raises:
        FileNotFoundError: ``path`` does not exist.
    """
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or directory")
    files = [path] if path.is_file() else sorted(_source_files(path))
    base = path.parent if path.is_file() else path
    python: dict[str, str] = {}
    scripts: dict[str, str] = {}
    problems: list[str] = []
    for file in files:
        relative = file.relative_to(base).as_posix()
        text = _read(file, relative, problems)
        if text is None:
            continue
        (python if file.suffix in PYTHON_SUFFIXES else scripts)[relative] = text
    facts = CodeFacts(root=str(path))
    facts.merge(analyse_python(python))
    facts.merge(analyse_typescript(scripts))
    facts.problems += problems
    facts.files = sorted(facts.files)
    return facts


def _source_files(root: Path) -> list[Path]:
    found: list[Path] = []
    for file in root.rglob("*"):
        parts = file.relative_to(root).parts
        if any(part in SKIPPED_DIRECTORIES for part in parts[:-1]) or not file.is_file():
            continue
        if _is_source(file) and not _is_test(file):
            found.append(file)
    return found


def _is_source(file: Path) -> bool:
    if file.name.endswith(".d.ts") or file.name.endswith(".min.js"):
        return False
    return file.suffix in PYTHON_SUFFIXES or file.suffix in SCRIPT_SUFFIXES


def _is_test(file: Path) -> bool:
    name = file.name
    return name.startswith("test_") or name.endswith(("_test.py", "conftest.py")) or any(
        f".{marker}." in name for marker in ("test", "spec"))


def _read(file: Path, relative: str, problems: list[str]) -> str | None:
    if file.stat().st_size > MAX_FILE_BYTES:
        problems.append(f"{relative}: larger than {MAX_FILE_BYTES // 1000} kB, skipped")
        return None
    try:
        if file.suffix in PYTHON_SUFFIXES:
            # Python honours a byte-order mark and a PEP 263 ``# coding:`` line; so does this.
            with tokenize.open(file) as source:
                return source.read()
        return file.read_text(encoding="utf-8-sig")
    except (UnicodeDecodeError, SyntaxError, LookupError):
        problems.append(f"{relative}: not text in its declared encoding (or UTF-8), skipped")
        return None
