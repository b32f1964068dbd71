"""The ``python`` grader: a user's own function, named as ``"module:function"``."""

from __future__ import annotations

import hashlib
import importlib
import inspect
import signal
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from tracegrade.graders._base import GraderConfig, Outcome, Result, grader_version, register
from tracegrade.graders._common import ParamsGrader, excerpt
from tracegrade.graders._targets import TargetMissing
from tracegrade.spans import Span

if TYPE_CHECKING:
    from tracegrade.graders._targets import TraceContext

GradeFunction = Callable[..., Any]

_ACCEPTED = "a Result, a bool, 'pass'/'fail'/'error'/'skip' or a (verdict, reason) tuple"


class PythonParams(BaseModel):
    """Parameters of ``python``."""

    model_config = ConfigDict(extra="forbid", title="python params")

    function: str = Field(
        pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$",
        description='"module:function" (or "module:Class.method"), importable where tracegrade '
        "runs. Called as function(span) or, when it takes two parameters, "
        f"function(span, context); returns {_ACCEPTED}.",
    )
    timeout_s: float | None = Field(
        default=60.0, gt=0,
        description="Seconds a call may take; one that runs longer is interrupted and is an "
        "error verdict (null: no limit). Enforced where grading runs on a process's main "
        "thread (grade, import --grade), with SIGALRM.",
    )


@register
class PythonGrader(ParamsGrader[PythonParams]):
    """Grade with a user function, imported once when the grader is built."""

    type_name = "python"
    Params = PythonParams

    def __init__(self, config: GraderConfig, params: BaseModel | None) -> None:
        super().__init__(config, params)
        self.spec = self.params.function
        self.function = import_function(self.spec)
        self.takes_context = takes_context(self.function, self.spec)
        code = code_identity(self.function)
        if code is not None:  # editing the function starts a new series, as editing config does
            self.version = hashlib.sha256(
                f"{grader_version(config)}\x1f{code}".encode()).hexdigest()[:12]

    def check(self, span: Span, context: TraceContext) -> Result:
        """Call the function; what it raises or returns unreadably is an ``error``."""
        args = (span, context) if self.takes_context else (span,)
        try:
            returned = call_within(self.params.timeout_s, self.function, *args)
        except CallTimedOut:
            return Result.errored(f"{self.spec} did not return within "
                                  f"{self.params.timeout_s:g} s (timeout_s)")
        except TargetMissing as exc:
            return one_line(Result.errored(str(exc)))
        except Exception as exc:  # the user's code may raise anything; that is an error verdict
            return Result.errored(f"{self.spec} raised {type(exc).__name__}: {excerpt(str(exc))}")
        except SystemExit as exc:  # sys.exit() in a grader ended the whole run, silently, rc 0
            return Result.errored(f"{self.spec} called sys.exit({excerpt(exc.code)})")
        return one_line(to_result(returned, self.spec))


class CallTimedOut(BaseException):
    """A grade function ran past its time limit (a BaseException, so that the function's own
    ``except Exception`` does not swallow it)."""


def call_within(seconds: float | None, function: GradeFunction, *args: Any) -> Any:
    """``function(*args)``, interrupted with :class:`CallTimedOut` after ``seconds``.

    The limit needs SIGALRM, so it holds on a process's main thread (where ``grade`` and the
    import workers grade); elsewhere the call runs unlimited.
    """
    if seconds is None or not hasattr(signal, "setitimer") \
            or threading.current_thread() is not threading.main_thread():
        return function(*args)

    def interrupt(signum: int, frame: Any) -> None:
        raise CallTimedOut

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return function(*args)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def import_function(spec: str) -> GradeFunction:
    """The callable ``spec`` ("module:attr.attr") names.

    Raises:
        ValueError: when the module cannot be imported or the attribute is missing or not callable.
    """
    module_name, _, attribute = spec.partition(":")
    try:
        found: Any = importlib.import_module(module_name)
    except (Exception, SystemExit) as exc:  # a user module can fail to import in any way
        raise ValueError(
            f"python grader {spec!r}: cannot import module {module_name!r}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    for part in attribute.split("."):
        if not hasattr(found, part):
            raise ValueError(f"python grader {spec!r}: {module_name!r} has no {attribute!r}")
        found = getattr(found, part)
    if not callable(found):
        raise ValueError(f"python grader {spec!r}: {attribute!r} is not callable")
    return found  # type: ignore[no-any-return]


def code_identity(function: GradeFunction) -> str | None:
    """A hash of the function's source (None when Python cannot show it, e.g. a builtin).

    Only the named function's own source counts: a helper it calls can change unseen.
    """
    try:
        source = inspect.getsource(function)
    except (OSError, TypeError):
        return None
    return hashlib.sha256(source.encode()).hexdigest()


def takes_context(function: GradeFunction, spec: str) -> bool:
    """Whether ``function`` is called with ``(span, context)`` rather than ``(span)``.

    Raises:
        ValueError: when it can take neither.
    """
    try:
        parameters = list(inspect.signature(function).parameters.values())
    except (TypeError, ValueError):  # some builtins have no signature; call them with the span
        return False
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = [p for p in positional if p.default is p.empty]
    varargs = any(p.kind == p.VAR_POSITIONAL for p in parameters)
    if len(required) > 2 or (not positional and not varargs):
        raise ValueError(
            f"python grader {spec!r}: a grade function takes (span) or (span, context); "
            f"it has ({', '.join(p.name for p in parameters)})"
        )
    return varargs or len(positional) >= 2


def to_result(returned: Any, spec: str) -> Result:
    """A grade function's return value as a :class:`Result`; an unreadable one is an ``error``."""
    if isinstance(returned, Result):
        return returned
    if isinstance(returned, tuple) and len(returned) == 2 and isinstance(returned[1], str):
        outcome = _outcome(returned[0])
        if outcome is not None:
            return Result(outcome=outcome, reason=returned[1])
    outcome = None if isinstance(returned, tuple) else _outcome(returned)
    if outcome is not None:
        return Result(outcome=outcome, reason=f"{spec} returned {returned}")
    return Result.errored(
        f"{spec} returned {type(returned).__name__} {excerpt(returned, 40)}; expected {_ACCEPTED}"
    )


REASON_CHARS = 300
"""A reason is one line of at most this many characters, whatever the function returned."""


def one_line(result: Result) -> Result:
    """``result`` with its reason on one line (whitespace runs collapsed), cut to
    :data:`REASON_CHARS` with "…"."""
    reason = " ".join(result.reason.split())
    if len(reason) > REASON_CHARS:
        reason = reason[: REASON_CHARS - 1] + "…"
    return result if reason == result.reason else result.model_copy(update={"reason": reason})


def _outcome(verdict: Any) -> Outcome | None:
    if isinstance(verdict, bool):
        return Outcome.PASS if verdict else Outcome.FAIL
    if isinstance(verdict, str):
        try:
            return Outcome(verdict.strip().lower())
        except ValueError:
            return None
    return None
