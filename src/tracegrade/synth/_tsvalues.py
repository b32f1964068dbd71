"""TypeScript / JavaScript source as tree-sitter trees, and static evaluation of expressions.

Values follow :mod:`._pyvalues`: strings (``PartialStr`` for templates with holes), numbers,
booleans, None, dicts, lists, :data:`UNKNOWN`; plus :class:`Zod` for Zod schemas (converted to
JSON Schema as they are read) and :class:`FunctionRef` for functions.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import tree_sitter_javascript
import tree_sitter_typescript
from tree_sitter import Language, Node, Parser

from tracegrade.synth._pyvalues import UNKNOWN, PartialStr

_MAX_DEPTH = 16
_WRAPPERS = {"as_expression", "satisfies_expression", "parenthesized_expression",
             "non_null_expression", "await_expression", "type_assertion"}
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "v": "\v", "0": "\0"}


@cache
def parser_for(suffix: str) -> Parser:
    """A tree-sitter parser for a file extension (.ts, .tsx, .js, .jsx, .mjs, .cjs)."""
    if suffix == ".ts" or suffix in (".mts", ".cts"):
        language = Language(tree_sitter_typescript.language_typescript())
    elif suffix == ".tsx":
        language = Language(tree_sitter_typescript.language_tsx())
    else:
        language = Language(tree_sitter_javascript.language())
    return Parser(language)


@dataclass(frozen=True)
class Zod:
    """A Zod schema read statically, as JSON Schema; ``optional`` for ``.optional()`` fields."""

    schema: dict[str, Any]
    optional: bool = False


@dataclass(frozen=True)
class FunctionRef:
    """A function expression or declaration, and the file it is in."""

    node: Node
    file: str


@dataclass
class TsModule:
    """One parsed file."""

    file: str
    root: Node
    imports: dict[str, str] = field(default_factory=dict)
    """Local name -> the module it was imported from."""


class TsProject:
    """Every parsed file, with top-level constants and functions indexed by name."""

    def __init__(self, modules: list[TsModule]) -> None:
        self.modules = modules
        self.constants: dict[str, list[tuple[str, Node]]] = {}
        self.functions: dict[str, list[tuple[str, Node]]] = {}
        for module in modules:
            self._index(module)

    def _index(self, module: TsModule) -> None:
        for statement in module.root.named_children:
            declaration = statement.child_by_field_name("declaration") \
                if statement.type == "export_statement" else statement
            if declaration is None:
                continue
            if declaration.type in ("lexical_declaration", "variable_declaration"):
                for declarator in declaration.named_children:
                    name, value = declarator_parts(declarator)
                    if name and value is not None:
                        self.constants.setdefault(name, []).append((module.file, value))
                        if value.type in ("arrow_function", "function_expression", "function"):
                            self.functions.setdefault(name, []).append((module.file, value))
            elif declaration.type in ("function_declaration", "generator_function_declaration"):
                name_node = declaration.child_by_field_name("name")
                if name_node is not None:
                    self.functions.setdefault(text(name_node), []).append(
                        (module.file, declaration))

    def constant(self, name: str, file: str) -> tuple[str, Node] | None:
        """The top-level value of ``name`` as ``file`` sees it."""
        return _prefer(self.constants.get(name, []), file)

    def function(self, name: str, file: str) -> tuple[str, Node] | None:
        """The function ``name`` as ``file`` sees it."""
        return _prefer(self.functions.get(name, []), file)


def _prefer(found: list[tuple[str, Node]], file: str) -> tuple[str, Node] | None:
    own = [entry for entry in found if entry[0] == file]
    if own:
        return own[-1]
    return found[0] if len(found) == 1 else None


def declarator_parts(declarator: Node) -> tuple[str | None, Node | None]:
    """``(name, value)`` of a ``variable_declarator`` with a plain identifier name."""
    if declarator.type != "variable_declarator":
        return None, None
    name = declarator.child_by_field_name("name")
    value = declarator.child_by_field_name("value")
    if name is None or name.type != "identifier":
        return None, None
    return text(name), value


def text(node: Node) -> str:
    """The source text of a node."""
    return (node.text or b"").decode("utf-8", errors="replace")


def line(node: Node) -> int:
    """The 1-based line a node starts on."""
    return int(node.start_point[0]) + 1


def unwrap(node: Node) -> Node:
    """The expression inside ``(x)``, ``x as T``, ``x satisfies T``, ``x!`` and ``await x``."""
    while node.type in _WRAPPERS:
        inner = [child for child in node.named_children if child.type not in ("type_annotation",)]
        if not inner:
            break
        node = inner[0]
    return node


def member_parts(node: Node) -> list[str]:
    """``a.b().c`` as ``["a", "b", "()", "c"]``."""
    node = unwrap(node)
    if node.type in ("identifier", "property_identifier", "this"):
        return [text(node)]
    if node.type == "member_expression":
        target = node.child_by_field_name("object")
        prop = node.child_by_field_name("property")
        head = member_parts(target) if target is not None else ["?"]
        return [*head, text(prop) if prop is not None else "?"]
    if node.type == "call_expression":
        function = node.child_by_field_name("function")
        return [*(member_parts(function) if function is not None else ["?"]), "()"]
    return ["?"]


def arguments_of(call: Node) -> list[Node]:
    """The argument expressions of a call or ``new`` expression."""
    arguments = call.child_by_field_name("arguments")
    if arguments is None:
        return []
    if arguments.type == "template_string":
        return [arguments]
    return [child for child in arguments.named_children if child.type != "comment"]


def object_entries(node: Node) -> dict[str, Node]:
    """Key -> value node of an object literal (shorthand ``{a}`` maps to the identifier)."""
    entries: dict[str, Node] = {}
    for child in unwrap(node).named_children:
        if child.type == "pair":
            key = child.child_by_field_name("key")
            value = child.child_by_field_name("value")
            if key is not None and value is not None:
                entries[_key_text(key)] = value
        elif child.type == "shorthand_property_identifier":
            entries[text(child)] = child
        elif child.type == "method_definition":
            name = child.child_by_field_name("name")
            if name is not None:
                entries[_key_text(name)] = child
    return entries


def _key_text(key: Node) -> str:
    if key.type == "string":
        return string_value(key)
    return text(key)


def string_value(node: Node) -> str:
    """A string literal's value with its escape sequences decoded."""
    parts: list[str] = []
    for child in node.named_children:
        if child.type == "string_fragment":
            parts.append(text(child))
        elif child.type == "escape_sequence":
            parts.append(_unescape(text(child)))
    # JavaScript strings are UTF-16: "\uD83D\uDE00" is one character; a lone half is not text.
    return "".join(parts).encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _unescape(sequence: str) -> str:
    body = sequence[1:]
    if body[:1] in _ESCAPES:
        return _ESCAPES[body[:1]]
    code = body[2:-1] if body.startswith("u{") and body.endswith("}") else body[1:]
    if body.startswith(("u", "x")) and code:
        try:
            return chr(int(code, 16))
        except (ValueError, OverflowError):
            return "\ufffd" if body.startswith("u{") else body
    return body


class TsScope:
    """Where an expression is evaluated: a file and, inside a function, its own constants."""

    def __init__(self, project: TsProject, file: str, function: Node | None = None) -> None:
        self.project = project
        self.file = file
        self.locals: dict[str, Node] = {}
        if function is not None:
            for node in _descendants(function):
                if node.type == "variable_declarator":
                    name, value = declarator_parts(node)
                    if name and value is not None:
                        self.locals.setdefault(name, value)

    def resolve(self, node: Node) -> tuple[Node, TsScope]:
        """Follow an identifier to the expression it is bound to."""
        scope: TsScope = self
        for _ in range(8):
            node = unwrap(node)
            if node.type not in ("identifier", "shorthand_property_identifier"):
                break
            name = text(node)
            if name in scope.locals:
                node = scope.locals[name]
                continue
            found = scope.project.constant(name, scope.file)
            if found is None:
                break
            scope = TsScope(scope.project, found[0])
            node = found[1]
        return node, scope

    def value(self, node: Node | None, depth: int = 0) -> Any:
        """The static value of an expression, or UNKNOWN."""
        if node is None or depth > _MAX_DEPTH:
            return UNKNOWN
        from tracegrade.synth._zod import zod_value

        resolved, scope = self.resolve(node)
        zod = zod_value(resolved, scope, depth)
        if zod is not None:
            return zod
        return _TsEvaluator(scope, depth).evaluate(resolved)


def _descendants(node: Node) -> list[Node]:
    found: list[Node] = []
    pending = list(node.named_children)
    while pending:
        current = pending.pop()
        found.append(current)
        if current.type in ("arrow_function", "function_expression", "function_declaration",
                            "method_definition", "class_declaration"):
            continue
        pending.extend(current.named_children)
    return found


class _TsEvaluator:
    def __init__(self, scope: TsScope, depth: int) -> None:
        self.scope = scope
        self.depth = depth

    def sub(self, node: Node) -> Any:
        return self.scope.value(node, self.depth + 1)

    def evaluate(self, node: Node) -> Any:
        kind = node.type
        if kind == "string":
            return string_value(node)
        if kind == "template_string":
            return self._template(node)
        if kind == "number":
            return _number(text(node))
        if kind in ("true", "false"):
            return kind == "true"
        if kind in ("null", "undefined"):
            return None
        if kind == "object":
            return {key: self.sub(value) for key, value in object_entries(node).items()}
        if kind == "array":
            return [self.sub(child) for child in node.named_children
                    if child.type != "spread_element"]
        if kind in ("arrow_function", "function_expression", "function_declaration",
                    "function", "method_definition"):
            return FunctionRef(node, self.scope.file)
        if kind == "binary_expression":
            return self._binary(node)
        if kind == "call_expression":
            return self._call(node)
        if kind == "unary_expression" and text(node).startswith("-"):
            operand = self.sub(node.named_children[-1])
            return -operand if isinstance(operand, int | float) else UNKNOWN
        if kind == "identifier":
            found = self.scope.project.function(text(node), self.scope.file)
            return FunctionRef(found[1], found[0]) if found else UNKNOWN
        return UNKNOWN

    def _template(self, node: Node) -> Any:
        parts: list[str] = []
        partial = False
        for child in node.named_children:
            if child.type == "string_fragment":
                parts.append(text(child))
            elif child.type == "escape_sequence":
                parts.append(_unescape(text(child)))
            elif child.type == "template_substitution":
                inner = self.sub(child.named_children[0]) if child.named_children else UNKNOWN
                if isinstance(inner, str | int | float) and not isinstance(inner, bool):
                    partial = partial or isinstance(inner, PartialStr)
                    parts.append(str(inner))
                else:
                    partial = True
                    parts.append("{" + text(child)[2:-1] + "}")
        joined = "".join(parts)
        return PartialStr(joined) if partial else joined

    def _binary(self, node: Node) -> Any:
        left_node = node.child_by_field_name("left")
        right_node = node.child_by_field_name("right")
        operator = node.child_by_field_name("operator")
        if left_node is None or right_node is None or operator is None:
            return UNKNOWN
        left, right = self.sub(left_node), self.sub(right_node)
        op = text(operator)
        if op == "+" and isinstance(left, str) and isinstance(right, str):
            joined = left + right
            partial = isinstance(left, PartialStr) or isinstance(right, PartialStr)
            return PartialStr(joined) if partial else joined
        numeric = all(isinstance(v, int | float) and not isinstance(v, bool)
                      for v in (left, right))
        if numeric and op in ("*", "+", "-"):
            return {"*": left * right, "+": left + right, "-": left - right}[op]
        if op in ("??", "||"):
            return right if left in (UNKNOWN, None, "") else left
        return UNKNOWN

    def _call(self, node: Node) -> Any:
        function = node.child_by_field_name("function")
        if function is None:
            return UNKNOWN
        parts = member_parts(function)
        arguments = arguments_of(node)
        if parts[-1:] == ["dedent"] and arguments:
            inner = self.sub(arguments[0])
            return _keep_partial(inner, textwrap.dedent(inner)) if isinstance(inner, str) \
                else UNKNOWN
        if parts[-1:] in (["trim"], ["trimStart"], ["trimEnd"]):
            target = function.child_by_field_name("object")
            inner = self.sub(target) if target is not None else UNKNOWN
            return _keep_partial(inner, inner.strip()) if isinstance(inner, str) else UNKNOWN
        if parts[-1:] == ["join"]:
            return self._join(function, arguments)
        if parts[-2:] == ["AbortSignal", "timeout"] and arguments:
            milliseconds = self.sub(arguments[0])
            return {"__timeout_ms__": milliseconds}
        return UNKNOWN

    def _join(self, function: Node, arguments: list[Node]) -> Any:
        target = function.child_by_field_name("object")
        items = self.sub(target) if target is not None else UNKNOWN
        separator = self.sub(arguments[0]) if arguments else ","
        if isinstance(items, list) and isinstance(separator, str) \
                and all(isinstance(item, str) for item in items):
            joined = separator.join(items)
            partial = any(isinstance(item, PartialStr) for item in items)
            return PartialStr(joined) if partial else joined
        return UNKNOWN


def _keep_partial(original: str, value: str) -> str:
    return PartialStr(value) if isinstance(original, PartialStr) else value


_NUMBER = re.compile(r"^-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")


def _number(raw: str) -> Any:
    cleaned = raw.replace("_", "")
    if _NUMBER.match(cleaned):
        value = float(cleaned)
        return int(value) if value.is_integer() and "." not in cleaned and "e" not in \
            cleaned.lower() else value
    if cleaned.lower().startswith("0x"):
        return int(cleaned, 16)
    return UNKNOWN
