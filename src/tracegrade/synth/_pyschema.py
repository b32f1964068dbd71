"""JSON Schemas from Python source, statically: pydantic models, TypedDicts, dataclasses, enums.

Only what can be read from the class bodies is used; a type the converter does not know becomes
``{}`` (anything), so a schema is never stricter than the code it came from.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

_SCALARS: dict[str, dict[str, Any]] = {
    "str": {"type": "string"},
    "int": {"type": "integer"},
    "float": {"type": "number"},
    "bool": {"type": "boolean"},
    "dict": {"type": "object"},
    "list": {"type": "array"},
    "None": {"type": "null"},
    "NoneType": {"type": "null"},
    "datetime": {"type": "string", "format": "date-time"},
    "date": {"type": "string", "format": "date"},
    "UUID": {"type": "string", "format": "uuid"},
    "EmailStr": {"type": "string", "format": "email"},
    "HttpUrl": {"type": "string", "format": "uri"},
    "AnyUrl": {"type": "string", "format": "uri"},
}
_ARRAYS = {"list", "List", "Sequence", "set", "Set", "frozenset", "tuple", "Tuple", "Iterable"}
_MAPPINGS = {"dict", "Dict", "Mapping", "MutableMapping"}
_WRAPPERS = {"Required", "NotRequired", "ReadOnly", "Final"}
_FIELD_CONSTRAINTS = {
    "ge": "minimum",
    "gt": "exclusiveMinimum",
    "le": "maximum",
    "lt": "exclusiveMaximum",
    "min_length": "minLength",
    "max_length": "maxLength",
    "pattern": "pattern",
}
_ENUM_BASES = {"Enum", "StrEnum", "IntEnum"}


@dataclass(frozen=True)
class ClassInfo:
    """A class definition and the file it is in."""

    node: ast.ClassDef
    file: str


ClassLookup = Callable[[str, str], ClassInfo | None]
"""Finds a class by name, preferring the given file's own definition."""


def model_kind(info: ClassInfo, lookup: ClassLookup, depth: int = 0) -> str | None:
    """``pydantic``, ``typeddict``, ``dataclass`` or ``enum`` for a class, else None."""
    if any(_last_name(d) == "dataclass" for d in info.node.decorator_list):
        return "dataclass"
    for base in info.node.bases:
        name = _last_name(base)
        if name == "BaseModel":
            return "pydantic"
        if name == "TypedDict":
            return "typeddict"
        if name in _ENUM_BASES:
            return "enum"
        parent = lookup(name, info.file) if name and depth < 10 else None
        if parent is not None and (kind := model_kind(parent, lookup, depth + 1)):
            return kind
    return None


def class_schema(name: str, file: str, lookup: ClassLookup) -> dict[str, Any] | None:
    """The JSON Schema of the model class ``name`` as seen from ``file``; None when unknown."""
    info = lookup(name, file)
    if info is None or model_kind(info, lookup) is None:
        return None
    return _Converter(lookup).class_schema(info, frozenset())


def required_fields(name: str, file: str, lookup: ClassLookup) -> list[str] | None:
    """The fields an instance of model class ``name`` always has, in declaration order."""
    schema = class_schema(name, file, lookup)
    if schema is None or schema.get("type") != "object":
        return None
    required: list[str] = schema.get("required", [])
    return required


def annotation_schema(node: ast.expr | None, file: str, lookup: ClassLookup) -> dict[str, Any]:
    """The JSON Schema of a type annotation (``{}`` when unknown or absent)."""
    if node is None:
        return {}
    return _Converter(lookup).annotation(node, file, frozenset())


class _Converter:
    def __init__(self, lookup: ClassLookup) -> None:
        self.lookup = lookup

    def class_schema(self, info: ClassInfo, seen: frozenset[str]) -> dict[str, Any]:
        if info.node.name in seen:
            return {}  # a recursive model: leave the inner level open
        seen = seen | {info.node.name}
        kind = model_kind(info, self.lookup)
        if kind == "enum":
            return _enum_schema(info.node)
        properties: dict[str, Any] = {}
        required: list[str] = []
        fields = self._fields(info, kind, seen)
        if kind == "pydantic":
            fields = self._renamed(info, fields)
        for name, field_schema, is_required in fields:
            properties[name] = field_schema
            if is_required and name not in required:
                required.append(name)
        result: dict[str, Any] = {"type": "object", "properties": properties}
        if required:
            result["required"] = required
        return result

    def _fields(self, info: ClassInfo, kind: str | None, seen: frozenset[str],
                lineage: frozenset[int] = frozenset()
                ) -> list[tuple[str, dict[str, Any], bool]]:
        lineage = lineage | {id(info.node)}
        inherited: list[tuple[str, dict[str, Any], bool]] = []
        for base in info.node.bases:
            parent = self.lookup(_last_name(base), info.file)
            # ``class Order(base.Order)`` finds itself by name: its base stays unknown.
            if parent is None or id(parent.node) in lineage:
                continue
            if model_kind(parent, self.lookup) == kind:
                inherited += self._fields(parent, kind, seen, lineage)
        total = _typeddict_total(info.node)
        own = [
            field_info
            for statement in info.node.body
            if (field_info := self._field(statement, info.file, kind, total, seen)) is not None
        ]
        names = {name for name, _, _ in own}
        return [f for f in inherited if f[0] not in names] + own

    def _field(self, statement: ast.stmt, file: str, kind: str | None, total: bool,
               seen: frozenset[str]) -> tuple[str, dict[str, Any], bool] | None:
        if not isinstance(statement, ast.AnnAssign) or not isinstance(statement.target, ast.Name):
            return None
        name = statement.target.id
        if name == "model_config" or _last_name(_unsubscript(statement.annotation)) == "ClassVar":
            return None
        if kind == "pydantic" and name.startswith("_"):
            return None  # a private attribute, never part of the model's JSON
        schema = self.annotation(statement.annotation, file, seen)
        if kind == "typeddict":
            wrapper = _last_name(_unsubscript(statement.annotation))
            required = (wrapper == "Required") or (total and wrapper != "NotRequired")
            return name, schema, required
        required, constraints = _default_and_constraints(statement.value)
        return name, {**schema, **constraints}, required

    def _renamed(self, info: ClassInfo, fields: list[tuple[str, dict[str, Any], bool]]
                 ) -> list[tuple[str, dict[str, Any], bool]]:
        """A pydantic model's fields under the names its JSON uses (``alias``, generators)."""
        generator = _alias_generator(info.node)
        aliases = {
            statement.target.id: _field_aliases(statement.value)
            for statement in info.node.body
            if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name)
        }
        unknown = _has_unknown_generator(info.node)
        renamed: list[tuple[str, dict[str, Any], bool]] = []
        for name, schema, required in fields:
            generated = generator(name) if generator else name
            validation, serialization = aliases.get(name, (None, None))
            names = {validation or generated, serialization or generated}
            if unknown and validation is None:
                required = False  # the name in the JSON cannot be read from the source
            # With a serialization alias the JSON may carry either name: require neither.
            renamed.append((validation or generated, schema, required and len(names) == 1))
        return renamed

    def annotation(self, node: ast.expr, file: str, seen: frozenset[str]) -> dict[str, Any]:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            try:
                return self.annotation(ast.parse(node.value, mode="eval").body, file, seen)
            except SyntaxError:
                return {}
        if isinstance(node, ast.Constant) and node.value is None:
            return {"type": "null"}
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
            return _any_of([self.annotation(node.left, file, seen),
                            self.annotation(node.right, file, seen)])
        if isinstance(node, ast.Subscript):
            return self._generic(node, file, seen)
        name = _last_name(node)
        if name in _SCALARS:
            return dict(_SCALARS[name])
        info = self.lookup(name, file) if name else None
        if info is not None and model_kind(info, self.lookup) is not None:
            return self.class_schema(info, seen)
        return {}

    def _generic(self, node: ast.Subscript, file: str, seen: frozenset[str]) -> dict[str, Any]:
        origin = _last_name(node.value)
        args = list(node.slice.elts) if isinstance(node.slice, ast.Tuple) else [node.slice]
        if origin in _WRAPPERS or origin == "Annotated":
            schema = self.annotation(args[0], file, seen)
            extra = [a for a in args[1:] if isinstance(a, ast.Call)]
            return {**schema, **_default_and_constraints(extra[0])[1]} if extra else schema
        if origin == "Optional":
            return _any_of([self.annotation(args[0], file, seen), {"type": "null"}])
        if origin == "Union":
            return _any_of([self.annotation(a, file, seen) for a in args])
        if origin == "Literal":
            literals = [a.value for a in args if isinstance(a, ast.Constant)]
            return {"enum": literals} if len(literals) == len(args) else {}
        if origin in {"tuple", "Tuple"} and not (len(args) == 2 and _is_ellipsis(args[1])):
            return _fixed_tuple([self.annotation(a, file, seen) for a in args])
        if origin in _ARRAYS:
            items = self.annotation(args[0], file, seen) if args else {}
            return {"type": "array", "items": items} if items else {"type": "array"}
        if origin in _MAPPINGS:
            values = self.annotation(args[-1], file, seen) if len(args) == 2 else {}
            return {"type": "object", "additionalProperties": values} if values else \
                {"type": "object"}
        return {}


def _any_of(options: list[dict[str, Any]]) -> dict[str, Any]:
    if any(not option for option in options):
        return {}  # one branch accepts anything, so the union does too
    return {"anyOf": options}


def _fixed_tuple(items: list[dict[str, Any]]) -> dict[str, Any]:
    """``tuple[str, int]``: a JSON array with one item of each type, in order."""
    return {"type": "array", "prefixItems": items, "minItems": len(items),
            "maxItems": len(items)}


def _enum_schema(node: ast.ClassDef) -> dict[str, Any]:
    members = [
        statement.value
        for statement in node.body
        if isinstance(statement, ast.Assign)
        and not all(isinstance(t, ast.Name) and t.id.startswith("_") for t in statement.targets)
    ]
    values = [m.value for m in members
              if isinstance(m, ast.Constant) and isinstance(m.value, str | int)]
    # A member set by auto() or an expression has a value the source does not spell out.
    return {"enum": values} if values and len(values) == len(members) else {}


_ALIAS_GENERATORS: dict[str, Callable[[str], str]] = {
    "to_camel": lambda name: (lambda parts: parts[0] + "".join(p.title() for p in parts[1:]))(
        name.split("_")),
    "to_pascal": lambda name: "".join(part.title() for part in name.split("_")),
    "to_snake": lambda name: name,
}


def _model_config(node: ast.ClassDef) -> dict[str, ast.expr]:
    """The keywords of ``model_config = ConfigDict(...)`` (or a dict literal)."""
    for statement in node.body:
        if isinstance(statement, ast.Assign) and len(statement.targets) == 1:
            target, value = statement.targets[0], statement.value
        elif isinstance(statement, ast.AnnAssign) and statement.value is not None:
            target, value = statement.target, statement.value
        else:
            continue
        if not (isinstance(target, ast.Name) and target.id == "model_config"):
            continue
        if isinstance(value, ast.Call):
            return {k.arg: k.value for k in value.keywords if k.arg}
        if isinstance(value, ast.Dict):
            return {k.value: v for k, v in zip(value.keys, value.values, strict=True)
                    if isinstance(k, ast.Constant) and isinstance(k.value, str)}
    return {}


def _alias_generator(node: ast.ClassDef) -> Callable[[str], str] | None:
    generator = _model_config(node).get("alias_generator")
    return _ALIAS_GENERATORS.get(_last_name(generator)) if generator is not None else None


def _has_unknown_generator(node: ast.ClassDef) -> bool:
    return "alias_generator" in _model_config(node) and _alias_generator(node) is None


def _field_aliases(value: ast.expr | None) -> tuple[str | None, str | None]:
    """The validation and serialization names a ``Field(alias=...)`` sets, None when unset."""
    if not (isinstance(value, ast.Call) and _last_name(value.func) == "Field"):
        return None, None
    keywords = {k.arg: k.value.value for k in value.keywords
                if k.arg and isinstance(k.value, ast.Constant) and isinstance(k.value.value, str)}
    alias = keywords.get("alias")
    return keywords.get("validation_alias", alias), keywords.get("serialization_alias", alias)


def _default_and_constraints(value: ast.expr | None) -> tuple[bool, dict[str, Any]]:
    """Whether a pydantic field is required, and the JSON Schema constraints its Field() sets."""
    if value is None:
        return True, {}
    if not (isinstance(value, ast.Call) and _last_name(value.func) == "Field"):
        return False, {}
    keywords = {k.arg: k.value for k in value.keywords if k.arg}
    has_default = "default" in keywords or "default_factory" in keywords or (
        bool(value.args) and not _is_ellipsis(value.args[0])
    )
    if "default" in keywords and _is_ellipsis(keywords["default"]):
        has_default = False
    constraints = {
        _FIELD_CONSTRAINTS[key]: node.value
        for key, node in keywords.items()
        if key in _FIELD_CONSTRAINTS and isinstance(node, ast.Constant)
        and isinstance(node.value, int | float | str) and not isinstance(node.value, bool)
    }
    return not has_default, constraints


def _typeddict_total(node: ast.ClassDef) -> bool:
    for keyword in node.keywords:
        if keyword.arg == "total" and isinstance(keyword.value, ast.Constant):
            return bool(keyword.value.value)
    return True


def _is_ellipsis(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and node.value is Ellipsis


def _unsubscript(node: ast.expr) -> ast.expr:
    return node.value if isinstance(node, ast.Subscript) else node


def _last_name(node: ast.expr) -> str:
    """``Name`` for ``Name`` and ``module.Name``; empty for anything else."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""
