"""Static analysis of TypeScript / JavaScript applications with tree-sitter.

Recognised: the Vercel AI SDK (``generateText``, ``streamText``, ``generateObject``,
``streamObject`` with ``tools: {name: tool({...})}`` and Zod schemas), the openai and anthropic
SDKs (same calls as in Python), and MCP servers (``server.tool(...)``, ``server.registerTool``).
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Iterator
from pathlib import PurePosixPath
from typing import Any

import orjson
from tree_sitter import Node

from tracegrade.synth._facts import (
    CodeFacts,
    LLMCall,
    Origin,
    OutputSchema,
    Prompt,
    ToolDef,
    ToolReturn,
    ToolTimeout,
)
from tracegrade.synth._pyvalues import UNKNOWN, PartialStr
from tracegrade.synth._tsvalues import (
    FunctionRef,
    TsModule,
    TsProject,
    TsScope,
    Zod,
    arguments_of,
    line,
    member_parts,
    object_entries,
    parser_for,
    string_value,
    text,
    unwrap,
)

_AI_SDK_CALLS = {"generateText", "streamText", "generateObject", "streamObject"}
_FUNCTIONS = ("arrow_function", "function_expression", "function_declaration",
              "method_definition", "function")
_SYSTEM_ROLES = ("system", "developer")


def analyse_typescript(sources: dict[str, str]) -> CodeFacts:
    """Analyse TypeScript / JavaScript sources (relative path -> text) as one application."""
    facts = CodeFacts(root="")
    modules = [_parse(file, source, facts) for file, source in sources.items()]
    project = TsProject(modules)
    for module in modules:
        _FileAnalyser(project, module, facts).run()
    facts.files = sorted(sources)
    return facts


def _parse(file: str, source: str, facts: CodeFacts) -> TsModule:
    tree = parser_for(PurePosixPath(file).suffix).parse(source.encode("utf-8"))
    if tree.root_node.has_error:
        facts.problems.append(f"{file}: parsed with syntax errors; parts may be missed")
    module = TsModule(file, tree.root_node)
    for statement in tree.root_node.named_children:
        if statement.type == "import_statement":
            module.imports.update(_imported_names(statement))
    return module


def _imported_names(statement: Node) -> dict[str, str]:
    source_node = statement.child_by_field_name("source")
    source = string_value(source_node) if source_node is not None else ""
    names: dict[str, str] = {}
    for node in _walk_all(statement):
        if node.type == "import_specifier":
            alias = node.child_by_field_name("alias") or node.child_by_field_name("name")
            if alias is not None:
                names[text(alias)] = source
        elif node.type == "namespace_import" or (
                node.type == "identifier" and node.parent is not None
                and node.parent.type == "import_clause"):
            names[text(node.named_children[0]) if node.named_children else text(node)] = source
    return names


class _FileAnalyser:
    def __init__(self, project: TsProject, module: TsModule, facts: CodeFacts) -> None:
        self.project, self.module, self.facts = project, module, facts
        self.file = module.file
        self.mcp_servers: set[str] = set()
        self.scopes: dict[int, TsScope] = {}

    def run(self) -> None:
        located = list(_calls_with_scope(self.module.root))
        for node, _, assigned in located:
            if node.type == "new_expression" and assigned:
                constructor = node.child_by_field_name("constructor")
                if constructor is not None and text(constructor) in ("McpServer", "Server"):
                    self.mcp_servers.add(assigned)
        for node, function, _ in located:
            if node.type == "call_expression":
                self._call(node, function)

    def _scope(self, function: Node | None) -> TsScope:
        key = function.id if function is not None else -1
        if key not in self.scopes:
            self.scopes[key] = TsScope(self.project, self.file, function)
        return self.scopes[key]

    def _call(self, call: Node, function: Node | None) -> None:
        target = call.child_by_field_name("function")
        if target is None:
            return
        parts = member_parts(target)
        scope = self._scope(function)
        scope_name = _function_name(function)
        if parts[-1] in _AI_SDK_CALLS and self._from_ai_sdk(parts):
            self._ai_sdk(call, parts[-1], scope, scope_name)
        elif len(parts) >= 3 and parts[-3:-1] == ["chat", "completions"] \
                and parts[-1] in ("create", "parse", "stream"):
            self._sdk(call, "openai", "chat.completions." + parts[-1], scope, scope_name)
        elif len(parts) >= 2 and parts[-2] == "responses" and parts[-1] in ("create", "parse"):
            self._sdk(call, "openai", "responses." + parts[-1], scope, scope_name)
        elif len(parts) >= 2 and parts[-2] == "messages" and parts[-1] in ("create", "stream") \
                and "threads" not in parts:
            self._sdk(call, "anthropic", "messages." + parts[-1], scope, scope_name)
        elif len(parts) == 2 and parts[0] in self.mcp_servers \
                and parts[1] in ("tool", "registerTool"):
            self._mcp_tool(call, parts[1], scope)

    def _from_ai_sdk(self, parts: list[str]) -> bool:
        origin = self.module.imports.get(parts[0], "")
        return origin == "ai" or origin.startswith("ai/")

    # --- the Vercel AI SDK ---------------------------------------------------------------------

    def _ai_sdk(self, call: Node, api: str, scope: TsScope, scope_name: str) -> None:
        arguments = arguments_of(call)
        if not arguments:
            return
        options_node, options_scope = scope.resolve(arguments[0])
        options = object_entries(options_node)
        model, provider = _ai_sdk_model(options.get("model"), options_scope)
        llm_call = LLMCall(Origin(self.file, line(call)), "vercel_ai", api, scope_name,
                           model=model, provider=provider)
        self._limits(llm_call, options, options_scope)
        llm_call.system_prompt = self._system(options, options_scope)
        if "tools" in options:
            self._ai_sdk_tools(llm_call, options["tools"], options_scope)
        schema_node = options.get("schema")
        if schema_node is not None:
            schema = self._schema(schema_node, options_scope)
            if schema is not None:
                name = options_scope.value(options.get("schemaName"))
                llm_call.output_schema = OutputSchema(
                    name if isinstance(name, str) else _schema_name(schema_node),
                    schema, Origin(self.file, line(schema_node)))
                llm_call.structured_via = "object"
        self.facts.llm_calls.append(llm_call)

    def _limits(self, llm_call: LLMCall, options: dict[str, Node], scope: TsScope) -> None:
        for key in ("maxOutputTokens", "maxTokens", "max_tokens", "max_completion_tokens",
                    "max_output_tokens"):
            value = scope.value(options.get(key))
            if isinstance(value, int) and not isinstance(value, bool):
                llm_call.max_tokens = value
                llm_call.max_tokens_origin = Origin(self.file, line(options[key]))
        signal = scope.value(options.get("abortSignal"))
        if isinstance(signal, dict) and isinstance(signal.get("__timeout_ms__"), int | float):
            llm_call.timeout_s = float(signal["__timeout_ms__"]) / 1000.0
            llm_call.timeout_origin = Origin(self.file, line(options["abortSignal"]))

    def _system(self, options: dict[str, Node], scope: TsScope) -> Prompt | None:
        for key in ("system", "instructions"):
            if key in options:
                return self._prompt(options[key], scope)
        for key in ("messages", "input"):
            if key in options:
                messages, where = scope.resolve(options[key])
                for element in messages.named_children if messages.type == "array" else []:
                    entries = object_entries(element) if element.type == "object" else {}
                    if where.value(entries.get("role")) in _SYSTEM_ROLES and "content" in entries:
                        return self._prompt(entries["content"], where)
        return None

    def _prompt(self, node: Node, scope: TsScope) -> Prompt | None:
        value = scope.value(node)
        if isinstance(value, list):
            texts = [block.get("text") for block in value if isinstance(block, dict)]
            value = "\n".join(t for t in texts if isinstance(t, str))
        if not isinstance(value, str) or not value.strip():
            return None
        resolved, where = scope.resolve(node)
        name = text(unwrap(node)) if unwrap(node).type == "identifier" else None
        return Prompt(str(value), Origin(where.file, line(resolved)), name,
                      partial=isinstance(value, PartialStr))

    def _ai_sdk_tools(self, llm_call: LLMCall, node: Node, scope: TsScope) -> None:
        tools_node, where = scope.resolve(node)
        for name, value in object_entries(tools_node).items():
            definition, definition_scope = where.resolve(value)
            if definition.type != "call_expression":
                continue
            arguments = arguments_of(definition)
            config = object_entries(definition_scope.resolve(arguments[0])[0]) \
                if arguments else {}
            schema_node = config.get("inputSchema", config.get("parameters"))
            schema = self._schema(schema_node, definition_scope) if schema_node else None
            execute = definition_scope.value(config["execute"]) if "execute" in config else None
            self._tool(name, Origin(definition_scope.file, line(definition)), "vercel_tool",
                       schema, execute if isinstance(execute, FunctionRef) else None)
            llm_call.tools.append(name)

    def _schema(self, node: Node, scope: TsScope) -> dict[str, Any] | None:
        value = scope.value(node)
        if isinstance(value, Zod):
            return value.schema
        resolved, where = scope.resolve(node)
        if resolved.type == "call_expression":
            parts = member_parts(resolved)
            arguments = arguments_of(resolved)
            if parts[-2:] == ["jsonSchema", "()"] and arguments:
                literal = where.value(arguments[0])
                return literal if isinstance(literal, dict) else None
        return None

    # --- the openai and anthropic SDKs ---------------------------------------------------------

    def _sdk(self, call: Node, sdk: str, api: str, scope: TsScope, scope_name: str) -> None:
        arguments = arguments_of(call)
        if not arguments:
            return
        body, where = scope.resolve(arguments[0])
        options = object_entries(body)
        if not options:
            return
        model = where.value(options.get("model"))
        llm_call = LLMCall(Origin(self.file, line(call)), sdk, api, scope_name,
                           model=model if isinstance(model, str) else None, provider=sdk)
        self._limits(llm_call, options, where)
        if len(arguments) > 1:
            request_options = object_entries(scope.resolve(arguments[1])[0])
            timeout = scope.value(request_options.get("timeout"))
            if isinstance(timeout, int | float) and not isinstance(timeout, bool):
                llm_call.timeout_s = float(timeout) / 1000.0
                llm_call.timeout_origin = Origin(self.file, line(arguments[1]))
        llm_call.system_prompt = self._system(options, where)
        if "tools" in options:
            self._declared_tools(llm_call, options["tools"], where)
        self._response_format(llm_call, options, where)
        self.facts.llm_calls.append(llm_call)

    def _declared_tools(self, llm_call: LLMCall, node: Node, scope: TsScope) -> None:
        tools, where = scope.resolve(node)
        for element in tools.named_children if tools.type == "array" else []:
            value = where.value(element)
            if not isinstance(value, dict):
                continue
            nested = value.get("function")
            function: dict[Any, Any] = nested if isinstance(nested, dict) else value
            name = function.get("name")
            if not isinstance(name, str):
                continue
            resolved, element_scope = where.resolve(element)
            schema = function.get("parameters", function.get("input_schema"))
            implementation = self.project.function(name, self.file)
            self._tool(name, Origin(element_scope.file, line(resolved)), "function_schema",
                       schema if isinstance(schema, dict) else None,
                       FunctionRef(implementation[1], implementation[0])
                       if implementation else None)
            llm_call.tools.append(name)

    def _response_format(self, llm_call: LLMCall, options: dict[str, Node],
                         scope: TsScope) -> None:
        node = options.get("response_format")
        if node is None and "text" in options:
            node = object_entries(scope.resolve(options["text"])[0]).get("format")
        if node is None:
            return
        resolved, where = scope.resolve(node)
        if resolved.type == "call_expression" and member_parts(resolved)[-2] in (
                "zodResponseFormat", "zodTextFormat"):
            arguments = arguments_of(resolved)
            schema = where.value(arguments[0]) if arguments else None
            name = where.value(arguments[1]) if len(arguments) > 1 else None
            if isinstance(schema, Zod):
                llm_call.output_schema = OutputSchema(
                    name if isinstance(name, str) else _schema_name(arguments[0]),
                    schema.schema, Origin(self.file, line(resolved)))
            return
        value = where.value(resolved)
        if not isinstance(value, dict):
            return
        nested = value.get("json_schema")
        inner: dict[Any, Any] = nested if isinstance(nested, dict) else value
        if isinstance(inner.get("schema"), dict):
            llm_call.output_schema = OutputSchema(str(inner.get("name", "response_format")),
                                                  inner["schema"],
                                                  Origin(self.file, line(resolved)))

    # --- tools ---------------------------------------------------------------------------------

    def _mcp_tool(self, call: Node, method: str, scope: TsScope) -> None:
        arguments = arguments_of(call)
        name = scope.value(arguments[0]) if arguments else None
        if not isinstance(name, str):
            return
        shape: Node | None = None
        if method == "registerTool" and len(arguments) > 1:
            shape = object_entries(scope.resolve(arguments[1])[0]).get("inputSchema")
        else:
            shapes = [a for a in arguments[1:-1] if scope.resolve(a)[0].type == "object"]
            shape = shapes[0] if shapes else None
        schema = _shape_schema(shape, scope) if shape is not None else None
        handler = scope.value(arguments[-1]) if len(arguments) > 1 else None
        self._tool(name, Origin(self.file, line(call)), "mcp", schema,
                   handler if isinstance(handler, FunctionRef) else None)

    def _tool(self, name: str, origin: Origin, style: str, schema: dict[str, Any] | None,
              implementation: FunctionRef | None) -> None:
        implementation_name = _function_name(implementation.node) if implementation else None
        self.facts.tools.append(ToolDef(name, origin, style, _digest(schema),
                                        implementation=implementation_name))
        if implementation is None:
            return
        returned = _returned_fields(self.project, implementation, name)
        if returned is not None:
            self.facts.tool_returns.append(returned)
        timeout = _tool_timeout(self.project, implementation, name)
        if timeout is not None:
            self.facts.tool_timeouts.append(timeout)


def _shape_schema(node: Node, scope: TsScope) -> dict[str, Any] | None:
    """An MCP raw shape ``{field: z.string(), ...}`` as an object schema."""
    value = scope.value(node)
    if isinstance(value, Zod):
        return value.schema
    if not isinstance(value, dict):
        return None
    properties = {k: v.schema for k, v in value.items() if isinstance(v, Zod)}
    required = [k for k, v in value.items() if isinstance(v, Zod) and not v.optional]
    return {"type": "object", "properties": properties, "required": required}


def _ai_sdk_model(node: Node | None, scope: TsScope) -> tuple[str | None, str | None]:
    """``openai("gpt-4o")`` -> ("gpt-4o", "openai"); ``"openai/gpt-4o"`` -> the same."""
    if node is None:
        return None, None
    resolved, where = scope.resolve(node)
    if resolved.type == "call_expression":
        arguments = arguments_of(resolved)
        model = where.value(arguments[0]) if arguments else None
        function = resolved.child_by_field_name("function")
        provider = member_parts(function)[0] if function is not None else None
        return (model if isinstance(model, str) else None), provider
    value = where.value(resolved)
    if isinstance(value, str):
        provider = value.split("/", 1)[0] if "/" in value else None
        return value, provider
    return None, None


def _returned_fields(project: TsProject, function: FunctionRef, tool: str) -> ToolReturn | None:
    scope = TsScope(project, function.file, function.node)
    body = function.node.child_by_field_name("body")
    if body is None:
        return None
    expressions = [body] if body.type != "statement_block" else [
        child for node in _own_returns(body) for child in node.named_children[:1]]
    if not expressions:
        return None
    key_sets = []
    for expression in expressions:
        keys = _object_keys(expression, scope)
        if keys is None:
            return None
        key_sets.append(keys)
    common = [k for k in key_sets[0] if all(k in keys for keys in key_sets[1:])]
    if not common:
        return None
    how = "object literal" if len(key_sets) == 1 else f"{len(key_sets)} object literals"
    return ToolReturn(tool, tuple(common), Origin(function.file, line(expressions[0])), how)


def _object_keys(node: Node, scope: TsScope) -> list[str] | None:
    resolved, _ = scope.resolve(node)
    if resolved.type == "call_expression" and member_parts(resolved)[-3:-1] == [
            "JSON", "stringify"]:
        arguments = arguments_of(resolved)
        return _object_keys(arguments[0], scope) if arguments else None
    if resolved.type != "object":
        return None
    if any(child.type == "spread_element" for child in resolved.named_children):
        return None
    return list(object_entries(resolved))


def _tool_timeout(project: TsProject, function: FunctionRef, tool: str) -> ToolTimeout | None:
    scope = TsScope(project, function.file, function.node)
    found: list[tuple[float, int]] = []
    for node in _walk_all(function.node):
        if node.type == "call_expression" and member_parts(node)[-3:-1] == [
                "AbortSignal", "timeout"]:
            arguments = arguments_of(node)
            value = scope.value(arguments[0]) if arguments else UNKNOWN
            if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
                found.append((float(value) / 1000.0, line(node)))
    if not found:
        return None
    seconds, at = max(found)
    return ToolTimeout(tool, seconds, Origin(function.file, at))


def _own_returns(body: Node) -> Iterator[Node]:
    pending = deque(body.named_children)
    while pending:
        node = pending.popleft()
        if node.type in _FUNCTIONS:
            continue
        if node.type == "return_statement":
            yield node
        pending.extend(node.named_children)


def _calls_with_scope(root: Node) -> Iterator[tuple[Node, Node | None, str | None]]:
    """Every call / new expression with its enclosing function and assigned variable name."""
    stack: list[tuple[Node, Node | None, str | None]] = [(root, None, None)]
    while stack:
        node, function, assigned = stack.pop()
        if node.type in ("call_expression", "new_expression"):
            yield node, function, assigned
        if node.type in _FUNCTIONS:
            function = node
        if node.type == "variable_declarator":
            name = node.child_by_field_name("name")
            assigned = text(name) if name is not None else None
        elif node.type in ("call_expression", "new_expression"):
            assigned = None
        stack.extend((child, function, assigned) for child in reversed(node.named_children))


def _walk_all(node: Node) -> Iterator[Node]:
    pending = [node]
    while pending:
        current = pending.pop()
        yield current
        pending.extend(current.named_children)


def _function_name(function: Node | None) -> str:
    if function is None:
        return "module"
    name = function.child_by_field_name("name")
    if name is not None:
        return text(name)
    parent = function.parent
    while parent is not None and parent.type in ("parenthesized_expression", "as_expression",
                                                  "call_expression", "arguments"):
        parent = parent.parent
    if parent is not None and parent.type in ("variable_declarator", "pair"):
        key = parent.child_by_field_name("name") or parent.child_by_field_name("key")
        if key is not None:
            return text(key)
    return "anonymous"


def _schema_name(node: Node) -> str:
    node = unwrap(node)
    return text(node) if node.type == "identifier" else "schema"


def _digest(value: Any) -> str:
    raw = orjson.dumps(value, option=orjson.OPT_SORT_KEYS, default=repr)
    return hashlib.sha256(raw).hexdigest()[:10]
