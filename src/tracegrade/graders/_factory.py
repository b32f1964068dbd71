"""Building a grader from its config: look the type up, validate its parameters, construct it."""

from __future__ import annotations

from pydantic import BaseModel

from tracegrade.graders._base import Grader, GraderConfig, registered_types


def build_grader(config: GraderConfig) -> Grader:
    """The grader ``config`` describes, with its parameters validated.

    Raises:
        ValueError: for an unknown type, parameters given to a type that takes none, or a
            grader whose construction rejects its config (bad pattern, JSONPath, import…).
        pydantic.ValidationError: when the parameters do not fit the type's ``Params`` model
            (a subclass of ``ValueError``).
    """
    known = registered_types()
    cls = known.get(config.type)
    if cls is None:
        raise ValueError(
            f"unknown grader type {config.type!r}; known types: {', '.join(known) or 'none'}"
        )
    return cls(config, _params(cls, config))


def _params(cls: type[Grader], config: GraderConfig) -> BaseModel | None:
    given = config.params()
    if cls.Params is not None:
        return cls.Params.model_validate(given)
    if given:
        raise ValueError(
            f"grader type {config.type!r} takes no parameters; got {', '.join(sorted(given))}"
        )
    return None
