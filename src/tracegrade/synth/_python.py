"""Static analysis of Python applications with :mod:`ast`: LLM calls, tools, schemas, spans.

Recognised: the openai SDK (``chat.completions.create/parse/stream``, ``responses.*``), anthropic
(``messages.create/parse/stream``), litellm (``completion``), instructor (``response_model=``),
LangChain / LangGraph chat models (``bind_tools``, ``with_structured_output``, prompt templates,
``create_react_agent`` / ``create_agent``), pydantic-ai ``Agent``, ``@tool`` functions, MCP tools
(``@mcp.tool()`` and ``types.Tool``), and agent spans the application opens itself.
"""

from __future__ import annotations

import ast
import hashlib
from collections import deque
from collections.abc import Iterator
from typing import Any

import orjson

from tracegrade.synth._facts import (
    AgentSpan,
    CodeFacts,
    LLMCall,
    Origin,
    OutputSchema,
    Prompt,
    ToolDef,
    ToolReturn,
    ToolTimeout,
)
from tracegrade.synth._pyschema import model_kind, required_fields
from tracegrade.synth._pyvalues import (
    UNKNOWN,
    FunctionNode,
    PartialStr,
    PythonProject,
    Scope,
    Symbol,
    dotted_parts,
)

LANGCHAIN_CHAT_MODELS = {
    "ChatOpenAI": "openai", "AzureChatOpenAI": "openai", "ChatAnthropic": "anthropic",
    "ChatGoogleGenerativeAI": "google", "ChatVertexAI": "google", "ChatBedrock": "bedrock",
    "ChatBedrockConverse": "bedrock", "ChatMistralAI": "mistral", "ChatGroq": "groq",
    "ChatOllama": "ollama", "ChatLiteLLM": "litellm", "init_chat_model": None,
}
_SYSTEM_ROLES = ("system", "developer")
_LLM_SDKS = ("openai", "anthropic", "litellm", "instructor", "langfuse", "braintrust")


def analyse_python(sources: dict[str, str]) -> CodeFacts:
    """Analyse Python sources (relative path -> text) as one application.

    Files that do not parse are listed in ``problems`` and skipped.
    """
    facts = CodeFacts(root="")
    modules: dict[str, ast.Module] = {}
    for file, text in sources.items():
        try:
            modules[file] = ast.parse(text, filename=file)
        except (SyntaxError, ValueError) as exc:
            facts.problems.append(f"{file}: not valid Python ({exc})")
        except (RecursionError, MemoryError):
            facts.problems.append(f"{file}: nested too deeply for Python's parser, skipped")
    project = PythonProject(modules)
    imports = {file: _imports(module) for file, module in modules.items()}
    used = {origin.split(".")[0] for found in imports.values() for origin in found.values()}
    for file, module in modules.items():
        analyser = _FileAnalyser(project, file, imports[file], used, facts)
        try:
            analyser.run(module)
        except RecursionError:
            facts.problems.append(f"{file}: nested too deeply to analyse, partly skipped")
    _link_tools(project, facts)
    facts.files = sorted(sources)
    return facts


def _imports(module: ast.Module) -> dict[str, str]:
    """Local name -> the dotted name it was imported as."""
    names: dict[str, str] = {}
    for node in ast.walk(module):
        if isinstance(node, ast.Import):
            for alias in node.names:
                names[alias.asname or alias.name.split(".")[0]] = alias.name
        elif isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return names


class _FileAnalyser:
    """One module's facts, recorded into the shared :class:`CodeFacts`."""

    def __init__(self, project: PythonProject, file: str, imports: dict[str, str],
                 used: set[str], facts: CodeFacts) -> None:
        self.project, self.file, self.imports, self.facts = project, file, imports, facts
        self.used_roots = used
        self.scopes: dict[int, Scope] = {}
        self.chat_models: dict[str, LLMCall] = {}
        self.calls_by_node: dict[int, LLMCall] = {}
        self.prompt_templates: dict[str, Prompt] = {}
        self.mcp_hosts: set[str] = set()
        self.client_timeouts: list[tuple[float, Origin]] = []

    def imported_from(self, name: str, *roots: str) -> bool:
        """Whether local ``name`` was imported from a module under one of ``roots``."""
        origin = self.imports.get(name, "")
        return any(origin == root or origin.startswith(root + ".") or
                   origin.startswith(root + "_") for root in roots)

    def uses(self, *roots: str) -> bool:
        """Whether any module of the project imports one of ``roots``."""
        return any(root in self.used_roots or any(u.startswith(root + "_")
                                                  for u in self.used_roots) for root in roots)

    def scope(self, function: FunctionNode | None) -> Scope:
        key = id(function)
        if key not in self.scopes:
            self.scopes[key] = Scope(self.project, self.file, function)
        return self.scopes[key]

    # --- walking -------------------------------------------------------------------------------

    def run(self, module: ast.Module) -> None:
        located = list(_walk(module))
        calls = [(n, f, a) for n, f, a in located if isinstance(n, ast.Call)]
        for call, function, assigned in calls:
            self._constructors(call, self.scope(function), function, assigned)
        for node, _, _ in located:
            if isinstance(node, ast.Assign | ast.AnnAssign):
                self._prompt_template(node)
        for call, function, _ in calls:
            self._uses(call, self.scope(function))
        for call, function, assigned in calls:
            self._sdk_call(call, self.scope(function), function, assigned)
        for node, function, _ in located:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                self._decorators(node)
            elif isinstance(node, ast.With | ast.AsyncWith):
                self._span(node, function)

    # --- direct SDK calls: openai, anthropic, litellm, instructor -------------------------------

    def _sdk_call(self, call: ast.Call, scope: Scope, function: FunctionNode | None,
                  assigned: str | None) -> None:
        parts = dotted_parts(call.func)
        kind = _sdk_kind(parts, self)
        if kind is None:
            return
        sdk, api = kind
        keywords = _keywords(call)
        provider = "anthropic" if sdk == "anthropic" else "openai"
        if "response_model" in keywords:
            sdk = "instructor"
            if api.startswith("messages") or self.imported_from("from_anthropic", "instructor") \
                    or _mentions(self.project.modules[self.file], "from_anthropic"):
                provider = "anthropic"
        elif sdk == "litellm":
            provider = "litellm"
        llm_call = LLMCall(
            origin=Origin(self.file, call.lineno), sdk=sdk, api=api,
            scope=_scope_name(function, assigned), provider=provider,
            model=_text(scope.value(keywords.get("model"))),
            traced_by=self._native_tracer(),
        )
        self._common_parameters(llm_call, keywords, scope)
        self._system_prompt(llm_call, keywords, scope, api)
        self._tools(llm_call, keywords.get("tools"), scope)
        self._structured_output(llm_call, keywords, scope)
        self.facts.llm_calls.append(llm_call)

    def _native_tracer(self) -> str | None:
        if self.uses("langfuse"):
            return "langfuse"
        if self.uses("braintrust"):
            return "braintrust"
        return None

    def _common_parameters(self, llm_call: LLMCall, keywords: dict[str, ast.expr],
                           scope: Scope) -> None:
        for key in ("max_tokens", "max_completion_tokens", "max_output_tokens"):
            if key in keywords and isinstance(value := scope.value(keywords[key]), int):
                llm_call.max_tokens = value
                llm_call.max_tokens_origin = Origin(self.file, keywords[key].lineno)
        if "timeout" in keywords:
            seconds = _seconds(scope, keywords["timeout"])
            if seconds is not None:
                llm_call.timeout_s = seconds
                llm_call.timeout_origin = scope.origin_of_name(keywords["timeout"])[0]
        elif self.client_timeouts:
            llm_call.timeout_s, llm_call.timeout_origin = self.client_timeouts[0]

    def _system_prompt(self, llm_call: LLMCall, keywords: dict[str, ast.expr], scope: Scope,
                       api: str) -> None:
        for key in ("system", "instructions", "system_prompt"):
            if key in keywords:
                llm_call.system_prompt = _prompt(keywords[key], scope)
                return
        for key in ("messages", "input"):
            if key in keywords:
                llm_call.system_prompt = self.system_from_messages(keywords[key], scope)
                return

    def system_from_messages(self, node: ast.expr, scope: Scope) -> Prompt | None:
        """The system (or developer) message's text in a message list."""
        resolved, where = _resolve(node, scope)
        if not isinstance(resolved, ast.List | ast.Tuple):
            return None
        for element in resolved.elts:
            content = _system_content(element, where)
            if content is not None:
                return _prompt(content, where)
        return None

    def _tools(self, llm_call: LLMCall, node: ast.expr | None, scope: Scope) -> None:
        if node is None:
            return
        resolved, where = _resolve(node, scope)
        elements = resolved.elts if isinstance(resolved, ast.List | ast.Tuple) else []
        for element in elements:
            name = self._tool_from_element(element, where)
            if name and name not in llm_call.tools:
                llm_call.tools.append(name)

    def _tool_from_element(self, element: ast.expr, scope: Scope) -> str | None:
        value = scope.value(element)
        if isinstance(value, dict):
            declared = _declared_tool(value)
            if declared is None:
                return None
            name, parameters = declared
            origin, _ = scope.origin_of_name(element)
            self.facts.tools.append(ToolDef(name, origin, "function_schema", _digest(parameters)))
            return name
        parts = dotted_parts(element)
        if isinstance(element, ast.Call) and parts[-2:] == ["pydantic_function_tool", "()"]:
            return self._pydantic_function_tool(element, scope)
        if isinstance(element, ast.Call) and parts and parts[-2:-1] == ["Tool"] and element.args:
            parts = dotted_parts(element.args[0])  # pydantic-ai Tool(function)
        return parts[-1] if parts and parts[-1] not in ("()", "[]", "?") else None

    def _pydantic_function_tool(self, call: ast.Call, scope: Scope) -> str | None:
        if not call.args:
            return None
        model = dotted_parts(call.args[0])[-1]
        name = _text(scope.value(_keywords(call).get("name"))) or model
        schema = self.project.schema_of(model, self.file) or {}
        self.facts.tools.append(ToolDef(name, Origin(self.file, call.lineno), "function_schema",
                                        _digest(schema)))
        return name

    def _structured_output(self, llm_call: LLMCall, keywords: dict[str, ast.expr],
                           scope: Scope) -> None:
        for key in ("response_model", "output_format", "text_format", "output_type",
                    "result_type", "response_format"):
            node = keywords.get(key)
            if node is None:
                continue
            schema = self.output_schema(node, scope)
            if schema is not None:
                llm_call.output_schema = schema
                llm_call.structured_via = "tool" if key == "response_model" else "json"
                return
        text = scope.value(keywords.get("text"))
        if isinstance(text, dict) and isinstance(text.get("format"), dict):
            llm_call.output_schema = _json_schema_format(text["format"], self.file,
                                                         keywords["text"].lineno)

    def output_schema(self, node: ast.expr, scope: Scope) -> OutputSchema | None:
        """A pydantic model / TypedDict class, or a response_format dict, as a JSON Schema."""
        parts = dotted_parts(node)
        if isinstance(node, ast.Name | ast.Attribute):
            schema = self.project.schema_of(parts[-1], self.file)
            info = self.project.find_class(parts[-1], self.file)
            if schema is not None and info is not None:
                return OutputSchema(parts[-1], schema, Origin(info.file, info.node.lineno))
        value = scope.value(node)
        if isinstance(value, dict):
            return _json_schema_format(value, self.file, node.lineno)
        return None

    # --- LangChain / LangGraph and pydantic-ai ------------------------------------------------

    def _constructors(self, call: ast.Call, scope: Scope, function: FunctionNode | None,
                      assigned: str | None) -> None:
        parts = dotted_parts(call.func)
        name = parts[-1] if parts else ""
        keywords = _keywords(call)
        if name in LANGCHAIN_CHAT_MODELS and self.uses("langchain"):
            self._chat_model(call, name, keywords, scope, function, assigned)
        elif name == "Agent" and self.imported_from("Agent", "pydantic_ai"):
            self._pydantic_ai_agent(call, keywords, scope, function, assigned)
        elif name in ("FastMCP", "Server") and self.imported_from(name, "mcp", "fastmcp"):
            if assigned:
                self.mcp_hosts.add(assigned)
        elif name == "Tool" and (self.imported_from("Tool", "mcp") or (
                parts[-2:] == ["types", "Tool"] and self.uses("mcp"))):
            self._mcp_tool(call, keywords, scope)
        elif name in ("OpenAI", "AsyncOpenAI", "Anthropic", "AsyncAnthropic", "AzureOpenAI") \
                and "timeout" in keywords:
            seconds = _seconds(scope, keywords["timeout"])
            if seconds is not None:
                self.client_timeouts.append((seconds, Origin(self.file, call.lineno)))

    def _chat_model(self, call: ast.Call, name: str, keywords: dict[str, ast.expr],
                    scope: Scope, function: FunctionNode | None, assigned: str | None) -> None:
        model_node = keywords.get("model", keywords.get("model_name"))
        if model_node is None and call.args:
            model_node = call.args[0]
        model = _text(scope.value(model_node))
        provider = LANGCHAIN_CHAT_MODELS[name] or _provider_of(model)
        api = name if name != "init_chat_model" else _langchain_class(provider)
        llm_call = LLMCall(Origin(self.file, call.lineno), "langchain", api,
                           _scope_name(function, assigned), model=model, provider=provider,
                           traced_by=self._native_tracer())
        self._common_parameters(llm_call, keywords, scope)
        self.calls_by_node[id(call)] = llm_call
        if assigned:
            self.chat_models[assigned] = llm_call
        self.facts.llm_calls.append(llm_call)

    def _pydantic_ai_agent(self, call: ast.Call, keywords: dict[str, ast.expr], scope: Scope,
                           function: FunctionNode | None, assigned: str | None) -> None:
        model_node = keywords.get("model", call.args[0] if call.args else None)
        model = _text(scope.value(model_node))
        llm_call = LLMCall(Origin(self.file, call.lineno), "pydantic_ai", "Agent",
                           _scope_name(function, assigned), model=model,
                           provider=_provider_of(model), traced_by=self._native_tracer())
        settings = scope.value(keywords.get("model_settings"))
        if isinstance(settings, dict):
            if isinstance(settings.get("max_tokens"), int):
                llm_call.max_tokens = settings["max_tokens"]
                llm_call.max_tokens_origin = Origin(self.file, call.lineno)
            if isinstance(settings.get("timeout"), int | float):
                llm_call.timeout_s = float(settings["timeout"])
                llm_call.timeout_origin = Origin(self.file, call.lineno)
        self._system_prompt(llm_call, keywords, scope, "Agent")
        self._tools(llm_call, keywords.get("tools"), scope)
        self._structured_output(llm_call, keywords, scope)
        if llm_call.output_schema is not None:
            llm_call.structured_via = "tool"
        if assigned:
            self.chat_models[assigned] = llm_call
        self.facts.llm_calls.append(llm_call)

    def _uses(self, call: ast.Call, scope: Scope) -> None:
        parts = dotted_parts(call.func)
        method = parts[-1] if parts else ""
        keywords = _keywords(call)
        if method in ("create_react_agent", "create_agent", "create_tool_calling_agent"):
            self._langgraph_agent(call, keywords, scope)
            return
        if not isinstance(call.func, ast.Attribute):
            return
        llm_call = self._model_of(call.func.value)
        if llm_call is None or llm_call.sdk != "langchain":
            return
        if method == "bind_tools" and call.args:
            self._tools(llm_call, call.args[0], scope)
        elif method == "with_structured_output" and call.args:
            llm_call.output_schema = self.output_schema(call.args[0], scope)
            llm_call.structured_via = "json" if llm_call.provider == "openai" else "tool"
        elif method in ("invoke", "ainvoke", "stream", "astream") and call.args \
                and llm_call.system_prompt is None:
            llm_call.system_prompt = self.system_from_messages(call.args[0], scope)

    def _langgraph_agent(self, call: ast.Call, keywords: dict[str, ast.expr],
                         scope: Scope) -> None:
        model_node = keywords.get("model", call.args[0] if call.args else None)
        llm_call = self._model_of(model_node) if model_node is not None else None
        if llm_call is None and model_node is not None:
            model = _text(scope.value(model_node))
            if model is None:
                return
            provider = _provider_of(model)
            llm_call = LLMCall(Origin(self.file, call.lineno), "langchain",
                               _langchain_class(provider), "agent", model=model,
                               provider=provider, traced_by=self._native_tracer())
            self.facts.llm_calls.append(llm_call)
        if llm_call is None:
            return
        tools = keywords.get("tools", call.args[1] if len(call.args) > 1 else None)
        self._tools(llm_call, tools, scope)
        for key in ("prompt", "system_prompt", "state_modifier"):
            if key in keywords:
                llm_call.system_prompt = _prompt(keywords[key], scope) or \
                    self._template_prompt(keywords[key])
        response_format = keywords.get("response_format")
        if response_format is not None:
            llm_call.output_schema = self.output_schema(response_format, scope)
        self.facts.agent_spans.append(AgentSpan("LangGraph", Origin(self.file, call.lineno),
                                                kind="chain"))

    def _model_of(self, node: ast.expr | None) -> LLMCall | None:
        """The chat model an expression is built on: ``llm``, ``llm.bind_tools(...)``, …"""
        while node is not None:
            if isinstance(node, ast.Call):
                if id(node) in self.calls_by_node:
                    return self.calls_by_node[id(node)]
                node = node.func
            elif isinstance(node, ast.Attribute):
                node = node.value
            elif isinstance(node, ast.Name):
                return self.chat_models.get(node.id)
            else:
                return None
        return None

    def _prompt_template(self, node: ast.Assign | ast.AnnAssign) -> None:
        """``PROMPT = ChatPromptTemplate.from_messages([("system", ...), ...])``; then ``|``."""
        value = node.value
        if isinstance(value, ast.BinOp) and isinstance(value.op, ast.BitOr):
            self._pipe(value)
        if not isinstance(value, ast.Call):
            return
        parts = dotted_parts(value.func)
        if parts[-1:] != ["from_messages"] or not value.args:
            return
        prompt = self.system_from_messages(value.args[0], self.scope(None))
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        for target in targets:
            if isinstance(target, ast.Name) and prompt is not None:
                self.prompt_templates[target.id] = prompt

    def _template_prompt(self, node: ast.expr) -> Prompt | None:
        return self.prompt_templates.get(node.id) if isinstance(node, ast.Name) else None

    def _pipe(self, node: ast.BinOp) -> None:
        operands = _pipe_operands(node)
        prompts = [p for o in operands if (p := self._template_prompt(o)) is not None]
        models = [m for o in operands if (m := self._model_of(o)) is not None]
        if prompts and models and models[0].system_prompt is None:
            models[0].system_prompt = prompts[0]

    # --- tools declared by decorators or MCP --------------------------------------------------

    def _decorators(self, function: FunctionNode) -> None:
        for decorator in function.decorator_list:
            target = decorator.func if isinstance(decorator, ast.Call) else decorator
            parts = dotted_parts(target)
            name = _decorator_tool_name(decorator) or function.name
            style = self._tool_style(parts, name)
            if style is not None:
                digest = _digest(ast.unparse(function.args) +
                                 (ast.unparse(function.returns) if function.returns else ""))
                self.facts.tools.append(ToolDef(name, Origin(self.file, function.lineno), style,
                                                digest, implementation=function.name))
            self._decorated_agent_span(function, decorator, parts)

    def _tool_style(self, parts: list[str], tool_name: str) -> str | None:
        if parts == ["tool"] and self.imported_from("tool", "langchain", "langchain_core"):
            return "decorator"
        if len(parts) != 2 or parts[1] not in ("tool", "tool_plain"):
            return None
        if parts[0] in self.mcp_hosts:
            return "mcp"
        agent = self.chat_models.get(parts[0])
        if agent is not None and agent.sdk == "pydantic_ai":
            agent.tools.append(tool_name)
            return "decorator"
        return None

    def _mcp_tool(self, call: ast.Call, keywords: dict[str, ast.expr], scope: Scope) -> None:
        name = _text(scope.value(keywords.get("name")))
        if name:
            schema = scope.value(keywords.get("inputSchema"))
            self.facts.tools.append(ToolDef(name, Origin(self.file, call.lineno), "mcp",
                                            _digest(schema)))

    # --- spans the application opens itself --------------------------------------------------

    def _span(self, node: ast.With | ast.AsyncWith, function: FunctionNode | None) -> None:
        scope = self.scope(function)
        for item in node.items:
            call = item.context_expr
            if not isinstance(call, ast.Call):
                continue
            if dotted_parts(call.func)[-1:] not in (["start_as_current_span"], ["start_span"]):
                continue
            name = _text(scope.value(call.args[0])) if call.args else None
            attributes = scope.value(_keywords(call).get("attributes"))
            if name and _is_agent_kind(attributes) and _sets_output(node):
                self.facts.agent_spans.append(AgentSpan(name, Origin(self.file, call.lineno)))

    def _decorated_agent_span(self, function: FunctionNode, decorator: ast.expr,
                              parts: list[str]) -> None:
        keywords = _keywords(decorator) if isinstance(decorator, ast.Call) else {}
        scope = self.scope(None)
        kind = _text(scope.value(keywords.get("as_type", keywords.get("type"))))
        is_agent = parts[-1:] == ["agent"] and len(parts) == 2 or (
            parts[-1:] in (["observe"], ["traced"]) and kind == "agent")
        if is_agent:
            name = _text(scope.value(keywords.get("name"))) or function.name
            self.facts.agent_spans.append(AgentSpan(name, Origin(self.file, function.lineno)))


# --- linking tools to their implementations ---------------------------------------------------


def _link_tools(project: PythonProject, facts: CodeFacts) -> None:
    dispatch = _dispatch_tables(project, {tool.name for tool in facts.tools})
    seen: set[str] = set()
    for tool in facts.tools:
        if tool.implementation is None:
            tool.implementation = dispatch.get(tool.name) or (
                tool.name if project.functions.get(tool.name) else None)
        if tool.implementation is None or tool.name in seen:
            continue
        seen.add(tool.name)
        found = project.find_function(tool.implementation, tool.origin.file)
        if found is None:
            continue
        file, function = found
        returned = _returned_fields(project, file, function, tool.name)
        if returned is not None:
            facts.tool_returns.append(returned)
        timeout = _tool_timeout(project, file, function, tool.name)
        if timeout is not None:
            facts.tool_timeouts.append(timeout)


def _dispatch_tables(project: PythonProject, tool_names: set[str]) -> dict[str, str]:
    """``{"lookup_order": lookup_order}`` style tables: tool name -> implementing function."""
    table: dict[str, str] = {}
    for module in project.modules.values():
        for node in ast.walk(module):
            if not isinstance(node, ast.Dict):
                continue
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and key.value in tool_names \
                        and isinstance(value, ast.Name):
                    table.setdefault(str(key.value), value.id)
    return table


def _returned_fields(project: PythonProject, file: str, function: FunctionNode,
                     tool: str) -> ToolReturn | None:
    """The keys every returned dict literal has (or the returned model's required fields)."""
    scope = Scope(project, file, function)
    key_sets: list[list[str]] = []
    first_line = None
    for node in _own_returns(function):
        keys = _returned_keys(project, scope, node.value)
        if keys is None:
            return _annotated_return(project, file, function, tool)
        key_sets.append(keys)
        first_line = first_line or node.lineno
    if not key_sets or first_line is None:
        return _annotated_return(project, file, function, tool)
    common = [k for k in key_sets[0] if all(k in keys for keys in key_sets[1:])]
    if not common:
        return None
    how = "dict literal" if len(key_sets) == 1 else f"{len(key_sets)} dict literals"
    return ToolReturn(tool, tuple(common), Origin(file, first_line), how)


def _returned_keys(project: PythonProject, scope: Scope, node: ast.expr | None
                   ) -> list[str] | None:
    if node is None:
        return None
    if isinstance(node, ast.Call):
        parts = dotted_parts(node.func)
        if parts[-2:] == ["json", "dumps"] and node.args:
            return _returned_keys(project, scope, node.args[0])
        if parts[-1:] == ["model_dump"] and isinstance(node.func, ast.Attribute):
            return _returned_keys(project, scope, node.func.value)
        if parts and parts[-1] not in ("()", "?"):
            return required_fields(parts[-1], scope.file, project.find_class)
    if isinstance(node, ast.Name) and (local := scope.local_value(node.id)) is not None:
        return _returned_keys(project, scope, local)
    if isinstance(node, ast.Dict):
        keys = [k.value for k in node.keys if isinstance(k, ast.Constant)]
        return [str(k) for k in keys] if len(keys) == len(node.keys) else None
    return None


def _annotated_return(project: PythonProject, file: str, function: FunctionNode,
                      tool: str) -> ToolReturn | None:
    if function.returns is None:
        return None
    name = dotted_parts(function.returns)[-1]
    info = project.find_class(name, file)
    if info is None or model_kind(info, project.find_class) not in ("pydantic", "typeddict",
                                                                    "dataclass"):
        return None
    fields = required_fields(name, file, project.find_class) or []
    if not fields:
        return None
    return ToolReturn(tool, tuple(fields), Origin(file, function.lineno), f"returns {name}")


def _tool_timeout(project: PythonProject, file: str, function: FunctionNode,
                  tool: str) -> ToolTimeout | None:
    scope = Scope(project, file, function)
    found: list[tuple[float, int]] = []
    for node in ast.walk(function):
        if isinstance(node, ast.Call) and (timeout := _keywords(node).get("timeout")) is not None:
            seconds = _seconds(scope, timeout)
            if seconds is not None:
                found.append((seconds, node.lineno))
    if not found:
        return None
    seconds, line = max(found)
    return ToolTimeout(tool, seconds, Origin(file, line))


def _own_returns(function: FunctionNode) -> Iterator[ast.Return]:
    pending: deque[ast.AST] = deque(function.body)
    while pending:
        node = pending.popleft()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda):
            continue
        if isinstance(node, ast.Return):
            yield node
        pending.extend(ast.iter_child_nodes(node))


# --- small helpers --------------------------------------------------------------------------


def _walk(module: ast.Module) -> Iterator[tuple[ast.AST, FunctionNode | None, str | None]]:
    """Every node with its enclosing function and, for calls, the name they are assigned to."""
    pending: list[tuple[ast.AST, FunctionNode | None, str | None]] = [(module, None, None)]
    while pending:
        node, function, assigned = pending.pop()
        yield node, function, assigned if isinstance(node, ast.Call) else None
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            function, assigned = node, None
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = [t.id for t in targets if isinstance(t, ast.Name)] + \
                [t.attr for t in targets if isinstance(t, ast.Attribute)]
            assigned = names[0] if names else assigned
        elif isinstance(node, ast.Call):
            assigned = None  # only the outermost call is the assigned value
        children = list(ast.iter_child_nodes(node))
        pending.extend((child, function, assigned) for child in reversed(children))


def _sdk_kind(parts: list[str], analyser: _FileAnalyser) -> tuple[str, str] | None:
    if len(parts) >= 3 and parts[-3:-1] == ["chat", "completions"] \
            and parts[-1] in ("create", "parse", "stream") and analyser.uses(*_LLM_SDKS):
        prefix = "beta." if "beta" in parts else ""
        return "openai", f"{prefix}chat.completions.{parts[-1]}"
    if len(parts) >= 2 and parts[-2] == "responses" and parts[-1] in ("create", "parse", "stream") \
            and analyser.uses("openai", "langfuse", "braintrust"):
        return "openai", f"responses.{parts[-1]}"
    if len(parts) >= 2 and parts[-2] == "messages" and parts[-1] in ("create", "parse", "stream") \
            and "threads" not in parts and analyser.uses("anthropic", "instructor"):
        prefix = "beta." if "beta" in parts else ""
        return "anthropic", f"{prefix}messages.{parts[-1]}"
    if parts in (["litellm", "completion"], ["litellm", "acompletion"]) or (
            len(parts) == 1 and parts[0] in ("completion", "acompletion")
            and analyser.imported_from(parts[0], "litellm")):
        return "litellm", parts[-1]
    return None


def _keywords(call: ast.Call) -> dict[str, ast.expr]:
    return {keyword.arg: keyword.value for keyword in call.keywords if keyword.arg}


def _resolve(node: ast.expr, scope: Scope) -> tuple[ast.expr, Scope]:
    """Follow a name to the expression it is assigned (locally, else at module level)."""
    for _ in range(8):
        if not isinstance(node, ast.Name):
            break
        local = scope.local_value(node.id)
        if local is not None:
            node = local
            continue
        definition = scope.project.find_constant(node.id, scope.file)
        if definition is None:
            break
        node, scope = definition.value, Scope(scope.project, definition.file)
    return node, scope


def _system_content(element: ast.expr, scope: Scope) -> ast.expr | None:
    """The content of a system message written as a dict, a tuple or a SystemMessage."""
    if isinstance(element, ast.Dict):
        entries = {k.value: v for k, v in zip(element.keys, element.values, strict=True)
                   if isinstance(k, ast.Constant)}
        role = scope.value(entries.get("role"))
        return entries.get("content") if role in _SYSTEM_ROLES else None
    if isinstance(element, ast.Tuple) and len(element.elts) == 2:
        role = scope.value(element.elts[0])
        return element.elts[1] if role in ("system", "developer") else None
    if isinstance(element, ast.Call) and dotted_parts(element.func)[-1:] == ["SystemMessage"]:
        return _keywords(element).get("content", element.args[0] if element.args else None)
    if isinstance(element, ast.Call) and element.args and dotted_parts(element.func)[-2:] == [
            "SystemMessagePromptTemplate", "from_template"]:
        return element.args[0]
    return None


def _prompt(node: ast.expr, scope: Scope) -> Prompt | None:
    """A system prompt from an expression: a string, or a list of text blocks."""
    value = scope.value(node)
    if isinstance(value, list):
        texts = [block.get("text") for block in value if isinstance(block, dict)]
        value = "\n".join(t for t in texts if isinstance(t, str)) if texts else UNKNOWN
    if not isinstance(value, str) or not value.strip():
        return None
    origin, name = scope.origin_of_name(node)
    return Prompt(str(value), origin, name, partial=isinstance(value, PartialStr))


def _declared_tool(value: dict[Any, Any]) -> tuple[str, Any] | None:
    """(name, parameters) of an openai chat / responses or anthropic tool declaration."""
    function = value.get("function")
    if isinstance(function, dict) and isinstance(function.get("name"), str):
        return function["name"], function.get("parameters")
    if isinstance(value.get("name"), str) and ("parameters" in value or "input_schema" in value):
        return value["name"], value.get("parameters", value.get("input_schema"))
    return None


def _json_schema_format(value: dict[Any, Any], file: str, line: int) -> OutputSchema | None:
    """``{"type": "json_schema", "json_schema": {"name", "schema"}}`` and the responses shape."""
    nested = value.get("json_schema")
    inner: dict[Any, Any] = nested if isinstance(nested, dict) else value
    schema = inner.get("schema")
    if value.get("type") != "json_schema" or not isinstance(schema, dict) or _has_unknown(schema):
        return None
    name = inner.get("name") if isinstance(inner.get("name"), str) else "response_format"
    return OutputSchema(str(name), schema, Origin(file, line))


def _has_unknown(value: Any) -> bool:
    if value is UNKNOWN or isinstance(value, Symbol):
        return True
    if isinstance(value, dict):
        return any(_has_unknown(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_unknown(v) for v in value)
    return False


def _is_agent_kind(attributes: Any) -> bool:
    if not isinstance(attributes, dict):
        return False
    for key, value in attributes.items():
        key_text = key.dotted if isinstance(key, Symbol) else str(key)
        if key_text.endswith("OPENINFERENCE_SPAN_KIND") or key_text == "openinference.span.kind":
            value_text = value.dotted if isinstance(value, Symbol) else str(value)
            return "AGENT" in value_text.upper()
    return False


def _sets_output(node: ast.With | ast.AsyncWith) -> bool:
    for inner in ast.walk(node):
        if isinstance(inner, ast.Call) and dotted_parts(inner.func)[-1:] == ["set_attribute"] \
                and inner.args:
            key = inner.args[0]
            text = ".".join(dotted_parts(key)) if not isinstance(key, ast.Constant) \
                else str(key.value)
            if text.endswith("OUTPUT_VALUE") or text == "output.value":
                return True
    return False


def _decorator_tool_name(decorator: ast.expr) -> str | None:
    if not isinstance(decorator, ast.Call):
        return None
    if decorator.args and isinstance(decorator.args[0], ast.Constant) \
            and isinstance(decorator.args[0].value, str):
        return decorator.args[0].value
    for keyword in decorator.keywords:
        if keyword.arg in ("name", "name_or_callable") and isinstance(keyword.value, ast.Constant):
            return str(keyword.value.value)
    return None


def _pipe_operands(node: ast.expr) -> list[ast.expr]:
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return [*_pipe_operands(node.left), *_pipe_operands(node.right)]
    return [node]


def _mentions(module: ast.Module, name: str) -> bool:
    return any(isinstance(n, ast.Attribute) and n.attr == name or
               isinstance(n, ast.Name) and n.id == name for n in ast.walk(module))


def _seconds(scope: Scope, node: ast.expr) -> float | None:
    value = scope.value(node)
    if isinstance(node, ast.Call) and dotted_parts(node.func)[-1:] == ["Timeout"]:
        value = scope.value(node.args[0]) if node.args else UNKNOWN
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    return None


def _text(value: Any) -> str | None:
    return str(value) if isinstance(value, str) and value else None


def _scope_name(function: FunctionNode | None, assigned: str | None) -> str:
    if function is not None:
        return function.name
    return assigned or "module"


def _provider_of(model: str | None) -> str | None:
    if not model:
        return None
    lowered = model.lower()
    if ":" in lowered:
        return lowered.split(":", 1)[0].replace("-chat", "")
    if lowered.startswith(("gpt", "o1", "o3", "o4", "chatgpt")):
        return "openai"
    if lowered.startswith("claude"):
        return "anthropic"
    if lowered.startswith("gemini"):
        return "google"
    return None


def _langchain_class(provider: str | None) -> str:
    classes = {"openai": "ChatOpenAI", "anthropic": "ChatAnthropic",
               "google": "ChatGoogleGenerativeAI", "google_genai": "ChatGoogleGenerativeAI"}
    return classes.get(provider or "", "ChatModel")


def _digest(value: Any) -> str:
    data = value if isinstance(value, str) else orjson.dumps(
        value, option=orjson.OPT_SORT_KEYS, default=repr)
    raw = data.encode() if isinstance(data, str) else data
    return hashlib.sha256(raw).hexdigest()[:10]
