"""Validate what the fakes send (and what tracegrade sends them) against the published specs.

The OpenAPI files in ``/work/shared/specs`` (Langfuse, Braintrust) are the contract. Every
answer a fake gives goes through :meth:`OpenApiSpec.check_response`, every request body
tracegrade sends through :meth:`OpenApiSpec.check_request`; a mismatch is recorded as a
violation, and the fixtures fail the test that produced one. So a fake cannot drift from the
real API without a test saying so.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import yaml
from jsonschema.exceptions import ValidationError
from jsonschema.validators import extend
from openapi_schema_validator import OAS30Validator, oas30_format_checker

# Braintrust's 3.0 document writes JSON Schema's `type: "null"` (a 3.1 idiom) inside anyOf; the
# validator reads it as "the value is null" instead of failing on an unknown type.
_oas30_type = OAS30Validator.VALIDATORS["type"]


def _type_with_null(validator: Any, data_type: Any, instance: Any, schema: Any) -> Any:
    if data_type == "null":
        if instance is not None:
            yield ValidationError(f"{instance!r} is not null")
        return
    yield from _oas30_type(validator, data_type, instance, schema)


Validator = extend(OAS30Validator, validators={"type": _type_with_null})

SPECS = Path(os.environ.get("TRACEGRADE_SPECS", Path(__file__).resolve().parents[3] / "shared"
                            / "specs"))
LANGFUSE_SPEC = SPECS / "langfuse-openapi.yml"
BRAINTRUST_SPEC = SPECS / "braintrust-openapi.yaml"


class OpenApiSpec:
    """One OpenAPI 3.0 document, with cached validators per schema."""

    def __init__(self, path: Path) -> None:
        with path.open(encoding="utf-8") as handle:
            self.document: dict[str, Any] = yaml.load(handle, Loader=yaml.CSafeLoader)
        self.name = path.name
        self._validators: dict[str, Any] = {}

    def operation(self, template: str, method: str) -> dict[str, Any]:
        """The operation object of ``METHOD template``.

        Raises:
            KeyError: the spec has no such operation (the fake serves something undocumented).
        """
        return self.document["paths"][template][method.lower()]

    def response_schema(self, template: str, method: str, status: int) -> dict[str, Any] | None:
        """The JSON schema of a documented answer (``None`` when it documents no body)."""
        responses = self.operation(template, method)["responses"]
        response = responses.get(str(status)) or responses.get("default")
        if response is None:
            raise KeyError(f"{method} {template} documents no {status} answer")
        content = response.get("content") or {}
        media = content.get("application/json")
        return media.get("schema") if media else None

    def check_response(self, template: str, method: str, status: int, body: Any) -> list[str]:
        """Problems with a JSON answer the fake is about to send (empty when it conforms)."""
        try:
            schema = self.response_schema(template, method, status)
        except KeyError as error:
            return [f"{self.name}: {error}"]
        if schema is None:
            return []
        return self.check(schema, body, f"{method} {template} → {status}")

    def check_request(self, template: str, method: str, body: Any) -> list[str]:
        """Problems with a JSON request body (empty when it conforms)."""
        request_body = self.operation(template, method).get("requestBody") or {}
        media = (request_body.get("content") or {}).get("application/json")
        if media is None:
            return []
        return self.check(media["schema"], body, f"{method} {template} request")

    def check_component(self, name: str, value: Any) -> list[str]:
        """Problems with a value against ``#/components/schemas/<name>``."""
        return self.check({"$ref": f"#/components/schemas/{name}"}, value, name)

    def check(self, schema: dict[str, Any], value: Any, where: str) -> list[str]:
        """Problems with ``value`` against ``schema`` (its ``$ref``s resolve in this spec)."""
        validator = self._validator(schema)
        return [f"{self.name}: {where}: {_describe(error)}"
                for error in validator.iter_errors(value)][:10]

    def _validator(self, schema: dict[str, Any]) -> Any:
        key = repr(schema)
        validator = self._validators.get(key)
        if validator is None:
            # The document itself is the root, so "#/components/schemas/…" resolves.
            root = {**schema, "components": self.document["components"]}
            validator = Validator(root, format_checker=oas30_format_checker)
            self._validators[key] = validator
        return validator


def _describe(error: ValidationError) -> str:
    location = "/".join(str(part) for part in error.absolute_path) or "(root)"
    return f"{location}: {error.message[:300]}"


@functools.cache
def langfuse_spec() -> OpenApiSpec:
    """The Langfuse OpenAPI document (parsed once per process)."""
    return OpenApiSpec(LANGFUSE_SPEC)


@functools.cache
def braintrust_spec() -> OpenApiSpec:
    """The Braintrust OpenAPI document (parsed once per process)."""
    return OpenApiSpec(BRAINTRUST_SPEC)
