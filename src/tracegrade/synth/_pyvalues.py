"""The Python project as symbols, and static evaluation of the expressions analysis cares about.

Nothing here imports or runs the application: constants are read from assignments, classes and
functions from their definitions, and an expression evaluates to a plain value only when the
source alone determines it (otherwise :data:`UNKNOWN`).
"""

from __future__ import annotations

import ast
import textwrap
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from tracegrade.synth._facts import Origin
from tracegrade.synth._pyschema import ClassInfo, class_schema


class _Unknown:
    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN: Any = _Unknown()
"""A value static analysis cannot determine."""


class PartialStr(str):
    """A string with holes (an f-string's expressions), shown as ``{expr}``."""

    partial = True


@dataclass(frozen=True)
class Symbol:
    """An attribute chain of names such as ``SpanAttributes.OUTPUT_VALUE``, kept symbolically."""

    dotted: str


_MAX_DEPTH = 12


@dataclass(frozen=True)
class Definition:
    """A module-level assignment: its value expression and where it is."""

    file: str
    value: ast.expr
    line: int


FunctionNode = ast.FunctionDef | ast.AsyncFunctionDef


class PythonProject:
    """Every module of the analysed application, indexed by the names it defines."""

    def __init__(self, modules: dict[str, ast.Module]) -> None:
        self.modules = modules
        self.constants: dict[str, list[Definition]] = {}
        self.classes: dict[str, list[ClassInfo]] = {}
        self.functions: dict[str, list[tuple[str, FunctionNode]]] = {}
        for file, module in modules.items():
            self._index(file, module)

    def _index(self, file: str, module: ast.Module) -> None:
        for node in ast.walk(module):
            if isinstance(node, ast.ClassDef):
                self.classes.setdefault(node.name, []).append(ClassInfo(node, file))
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                self.functions.setdefault(node.name, []).append((file, node))
        for statement in module.body:
            for name, value in assigned_names(statement):
                self.constants.setdefault(name, []).append(
                    Definition(file, value, statement.lineno))

    def find_class(self, name: str, file: str) -> ClassInfo | None:
        """The class ``name`` as ``file`` sees it: its own, else the project's only one."""
        return _prefer(self.classes.get(name, []), file, lambda info: info.file)

    def find_function(self, name: str, file: str) -> tuple[str, FunctionNode] | None:
        """The function ``name`` as ``file`` sees it."""
        return _prefer(self.functions.get(name, []), file, lambda found: found[0])

    def find_constant(self, name: str, file: str) -> Definition | None:
        """The module-level value of ``name`` as ``file`` sees it."""
        return _prefer(self.constants.get(name, []), file, lambda found: found.file)

    def schema_of(self, name: str, file: str) -> dict[str, Any] | None:
        """The JSON Schema of model class ``name``, or None when it is not a known model."""
        return class_schema(name, file, self.find_class)


T = TypeVar("T")


def _prefer(candidates: list[T], file: str, file_of: Callable[[T], str]) -> T | None:
    own = [c for c in candidates if file_of(c) == file]
    if own:
        return own[-1]
    return candidates[0] if len(candidates) == 1 else None


def assigned_names(statement: ast.stmt) -> list[tuple[str, ast.expr]]:
    """``(name, value)`` for ``NAME = value`` and ``NAME: T = value``."""
    if isinstance(statement, ast.Assign):
        return [(t.id, statement.value) for t in statement.targets if isinstance(t, ast.Name)]
    if isinstance(statement, ast.AnnAssign) and statement.value is not None \
            and isinstance(statement.target, ast.Name):
        return [(statement.target.id, statement.value)]
    return []


class Scope:
    """Where an expression is evaluated: a file and, inside a function, its local assignments."""

    def __init__(self, project: PythonProject, file: str,
                 function: FunctionNode | None = None) -> None:
        self.project = project
        self.file = file
        self.function = function
        self.locals: dict[str, list[ast.expr]] = {}
        if function is not None:
            for node in _own_statements(function):
                for name, value in assigned_names(node):
                    self.locals.setdefault(name, []).append(value)

    def local_value(self, name: str) -> ast.expr | None:
        """The expression a local name is assigned, when it is assigned exactly once."""
        values = self.locals.get(name, [])
        return values[0] if len(values) == 1 else None

    def value(self, node: ast.expr | None, depth: int = 0) -> Any:
        """The static value of ``node``: str, number, bool, None, dict, list, Symbol or UNKNOWN."""
        if node is None or depth > _MAX_DEPTH:
            return UNKNOWN
        return _Evaluator(self, depth).evaluate(node)

    def origin_of_name(self, node: ast.expr) -> tuple[Origin, str | None]:
        """Where the value of ``node`` is written: a constant's definition, else the node itself."""
        if isinstance(node, ast.Name) and self.local_value(node.id) is None:
            definition = self.project.find_constant(node.id, self.file)
            if definition is not None:
                return Origin(definition.file, definition.line), node.id
        if isinstance(node, ast.Name) and (local := self.local_value(node.id)) is not None:
            return Origin(self.file, local.lineno), None
        return Origin(self.file, node.lineno), None


def _own_statements(function: FunctionNode) -> list[ast.stmt]:
    """The statements of a function, nested blocks included, nested functions excluded."""
    found: list[ast.stmt] = []
    pending: deque[ast.AST] = deque(function.body)
    while pending:
        node = pending.popleft()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda):
            continue
        if isinstance(node, ast.stmt):
            found.append(node)
        pending.extend(ast.iter_child_nodes(node))
    return found


class _Evaluator:
    def __init__(self, scope: Scope, depth: int) -> None:
        self.scope = scope
        self.depth = depth

    def evaluate(self, node: ast.expr) -> Any:
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.JoinedStr):
            return self._fstring(node)
        if isinstance(node, ast.BinOp):
            return self._binop(node)
        if isinstance(node, ast.Name):
            return self._name(node.id)
        if isinstance(node, ast.Attribute):
            dotted = dotted_name(node)
            return Symbol(dotted) if dotted else UNKNOWN
        if isinstance(node, ast.Dict):
            return self._dict(node)
        if isinstance(node, ast.List | ast.Tuple):
            return [self.sub(element) for element in node.elts
                    if not isinstance(element, ast.Starred)]
        if isinstance(node, ast.Call):
            return self._call(node)
        if isinstance(node, ast.Subscript):
            container, key = self.sub(node.value), self.sub(node.slice)
            if isinstance(container, dict) and _hashable(key):
                return container.get(key, UNKNOWN)
        return UNKNOWN

    def sub(self, node: ast.expr) -> Any:
        return self.scope.value(node, self.depth + 1)

    def _fstring(self, node: ast.JoinedStr) -> Any:
        parts: list[str] = []
        partial = False
        for value in node.values:
            if isinstance(value, ast.Constant):
                parts.append(str(value.value))
                continue
            assert isinstance(value, ast.FormattedValue)
            inner = self.sub(value.value)
            if isinstance(inner, str | int | float) and value.format_spec is None:
                partial = partial or isinstance(inner, PartialStr)
                parts.append(str(inner))
            else:
                partial = True
                parts.append("{" + ast.unparse(value.value) + "}")
        text = "".join(parts)
        return PartialStr(text) if partial else text

    def _binop(self, node: ast.BinOp) -> Any:
        left, right = self.sub(node.left), self.sub(node.right)
        if isinstance(node.op, ast.Add) and isinstance(left, str) and isinstance(right, str):
            joined = left + right
            partial = isinstance(left, PartialStr) or isinstance(right, PartialStr)
            return PartialStr(joined) if partial else joined
        if isinstance(node.op, ast.Mod) and isinstance(left, str):
            return PartialStr(left)
        if _numbers(left, right):
            if isinstance(node.op, ast.Mult):
                return left * right
            if isinstance(node.op, ast.Add):
                return left + right
            if isinstance(node.op, ast.Sub):
                return left - right
        return UNKNOWN

    def _name(self, name: str) -> Any:
        local = self.scope.local_value(name)
        if local is not None:
            return self.sub(local)
        if self.scope.function is not None and name in self.scope.locals:
            return UNKNOWN  # assigned more than once: no single static value
        definition = self.scope.project.find_constant(name, self.scope.file)
        if definition is None:
            return UNKNOWN
        return Scope(self.scope.project, definition.file).value(definition.value, self.depth + 1)

    def _dict(self, node: ast.Dict) -> Any:
        result: dict[Any, Any] = {}
        for key_node, value_node in zip(node.keys, node.values, strict=True):
            if key_node is None:
                unpacked = self.sub(value_node)
                if isinstance(unpacked, dict):
                    result.update(unpacked)
                continue
            key = self.sub(key_node)
            if _hashable(key):
                result[key] = self.sub(value_node)
        return result

    def _call(self, node: ast.Call) -> Any:
        parts = dotted_parts(node.func)
        method = parts[-1] if parts else ""
        if method == "dedent" and node.args:
            text = self.sub(node.args[0])
            return _same_kind(text, textwrap.dedent(text)) if isinstance(text, str) else UNKNOWN
        if method in ("strip", "lstrip", "rstrip") and not node.args \
                and isinstance(node.func, ast.Attribute):
            text = self.sub(node.func.value)
            return _same_kind(text, getattr(str, method)(text)) if isinstance(text, str) \
                else UNKNOWN
        if method == "join" and isinstance(node.func, ast.Attribute) and node.args:
            return self._join(node.func.value, node.args[0])
        if method == "format" and isinstance(node.func, ast.Attribute):
            text = self.sub(node.func.value)
            return PartialStr(text) if isinstance(text, str) else UNKNOWN
        if method == "model_json_schema" and isinstance(node.func, ast.Attribute):
            model = dotted_parts(node.func.value)
            schema = self.scope.project.schema_of(model[-1], self.scope.file) if model else None
            return schema if schema is not None else UNKNOWN
        if parts[-2:] in (["environ", "get"], ["os", "getenv"]) or parts == ["getenv"]:
            return self.sub(node.args[1]) if len(node.args) > 1 else UNKNOWN
        if parts == ["dict"] and not node.args:
            return {k.arg: self.sub(k.value) for k in node.keywords if k.arg}
        return UNKNOWN

    def _join(self, separator_node: ast.expr, items_node: ast.expr) -> Any:
        separator, items = self.sub(separator_node), self.sub(items_node)
        if isinstance(separator, str) and isinstance(items, list) \
                and all(isinstance(item, str) for item in items):
            joined = separator.join(items)
            partial = any(isinstance(item, PartialStr) for item in items)
            return PartialStr(joined) if partial else joined
        return UNKNOWN


def _same_kind(original: str, text: str) -> str:
    return PartialStr(text) if isinstance(original, PartialStr) else text


def _numbers(*values: Any) -> bool:
    return all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)


def _hashable(value: Any) -> bool:
    return isinstance(value, str | int | float | bool | Symbol) or value is None


def dotted_parts(node: ast.expr) -> list[str]:
    """``a.b().c`` as ``["a", "b", "()", "c"]``; parts it cannot name are ``"?"``."""
    if isinstance(node, ast.Name):
        return [node.id]
    if isinstance(node, ast.Attribute):
        return [*dotted_parts(node.value), node.attr]
    if isinstance(node, ast.Call):
        return [*dotted_parts(node.func), "()"]
    if isinstance(node, ast.Subscript):
        return [*dotted_parts(node.value), "[]"]
    return ["?"]


def dotted_name(node: ast.expr) -> str | None:
    """``a.b.c`` for an attribute chain of plain names, else None."""
    parts = dotted_parts(node)
    if any(part in ("()", "[]", "?") for part in parts):
        return None
    return ".".join(parts)
