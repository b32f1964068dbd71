"""Graders: the registry, the built-in checks, and building graders from config.

Third-party packages add grader types by exposing a module in the ``tracegrade`` entry-point
group that registers :class:`Grader` subclasses with :func:`register`; the built-ins use the
same path.
"""

from __future__ import annotations

from pydantic import ValidationError

from tracegrade._validation import describe_validation_error
from tracegrade.graders._async import AsyncGrader, GradingRun
from tracegrade.graders._base import (
    AppliesTo,
    Grader,
    GraderConfig,
    Outcome,
    Result,
    grader_version,
    load_plugins,
    register,
    registered_types,
)
from tracegrade.graders._factory import build_grader
from tracegrade.graders._targets import TargetMissing, TraceContext, resolve, text_of


class GraderConfigError(ValueError):
    """A grader's config cannot be built; the message names the grader and the key."""


def build_graders(configs: list[GraderConfig], only: list[str] | None = None) -> list[Grader]:
    """Build every configured grader (or the ``only`` ones), with errors naming the grader.

    Raises:
        GraderConfigError: unknown type, bad parameter, or an unknown name in ``only``.
    """
    known = {c.name for c in configs}
    missing = sorted(set(only or []) - known)
    if missing:
        raise GraderConfigError(f"no grader named {', '.join(missing)} in the config "
                                f"(configured: {', '.join(sorted(known)) or 'none'})")
    graders = []
    for index, config in enumerate(configs):
        if only and config.name not in only:
            continue
        graders.append(_build(index, config))
    return graders


def _build(index: int, config: GraderConfig) -> Grader:
    where = f"graders[{index}] ({config.name})"
    try:
        return build_grader(config)
    except ValidationError as exc:
        described = describe_validation_error(exc, root="")  # ": what" when about no one key
        raise GraderConfigError(
            f"{where}{'' if described.startswith(': ') else '.'}{described}") from None
    except ValueError as exc:
        raise GraderConfigError(f"{where}: {exc}") from None


__all__ = [
    "AppliesTo",
    "AsyncGrader",
    "Grader",
    "GraderConfig",
    "GraderConfigError",
    "GradingRun",
    "Outcome",
    "Result",
    "TargetMissing",
    "TraceContext",
    "build_grader",
    "build_graders",
    "grader_version",
    "load_plugins",
    "register",
    "registered_types",
    "resolve",
    "text_of",
]
