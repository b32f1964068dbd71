"""JSON Schemas read from Python classes: what pydantic really accepts, never stricter."""

from __future__ import annotations

import ast
import textwrap
from typing import Any

from tracegrade.synth._pyvalues import PythonProject


def schema_of(name: str, **files: str) -> Any:
    modules = {f"{file}.py": ast.parse(textwrap.dedent(text)) for file, text in files.items()}
    return PythonProject(modules).schema_of(name, f"{list(files)[-1]}.py")


def test_a_dataclass_subclassing_a_same_named_import_is_no_crash() -> None:
    schema = schema_of("Order", base="""
        from dataclasses import dataclass

        @dataclass
        class Order:
            order_id: str
    """, tools="""
        from dataclasses import dataclass
        import base

        @dataclass
        class Order(base.Order):
            status: str
    """)
    assert schema["required"] == ["status"]


def test_pydantic_fields_under_their_json_names() -> None:
    schema = schema_of("Reply", app="""
        from enum import Enum, auto
        from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

        class Colour(Enum):
            RED = auto()
            BLUE = "blue"

        class Reply(BaseModel):
            model_config = ConfigDict(alias_generator=to_camel)
            order_id: str
            total: int = Field(alias="grand_total")
            note: str = Field(serialization_alias="remark")
            _cache: dict = PrivateAttr()
            _seen: int
            pair: tuple[str, int]
            many: tuple[str, ...]
            colour: Colour
    """)
    assert list(schema["properties"]) == ["orderId", "grand_total", "note", "pair", "many",
                                          "colour"]
    # A serialization alias means the JSON may carry either name.
    assert schema["required"] == ["orderId", "grand_total", "pair", "many", "colour"]
    assert schema["properties"]["pair"] == {
        "type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}],
        "minItems": 2, "maxItems": 2}
    assert schema["properties"]["many"] == {"type": "array", "items": {"type": "string"}}
    assert schema["properties"]["colour"] == {}


def test_an_unknown_alias_generator_requires_nothing() -> None:
    schema = schema_of("Reply", app="""
        from pydantic import BaseModel, ConfigDict

        class Reply(BaseModel):
            model_config = ConfigDict(alias_generator=lambda name: name.upper())
            answer: str
    """)
    assert "required" not in schema
