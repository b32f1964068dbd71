"""Judge providers: an OpenAI-compatible endpoint (``openai`` SDK) and Anthropic (``anthropic``).

A provider turns a :class:`JudgeRequest` into the exact request body it sends (that body is also
the cache key) and sends it, mapping every SDK failure to a :mod:`tracegrade.llm._errors` class.
The SDKs retry nothing themselves: the judge client owns retries, so they honour the run's
rate limits and are counted. Both SDKs are imported only when a judge is used.
"""

from __future__ import annotations

import os
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import orjson

from tracegrade.llm._config import JudgeConfig
from tracegrade.llm._errors import (
    JudgeError,
    RetryableError,
    status_error,
)

ANTHROPIC_MISSING = ('the anthropic provider needs the anthropic package: '
                     'pip install "tracegrade[anthropic]"')


@dataclass(frozen=True)
class JudgeRequest:
    """One question for a judge: instructions, the conversation, and the answer's JSON schema."""

    system: str
    messages: tuple[tuple[str, str], ...]
    """(role, content) pairs: few-shot turns, then the rendered rubric as the last user turn."""
    schema_name: str
    schema: dict[str, Any]


@dataclass(frozen=True)
class JudgeReply:
    """What the judge answered, with the usage its provider reported."""

    text: str
    input_tokens: int | None = None
    output_tokens: int | None = None
    stop: str | None = None
    """Why the answer is incomplete, as the provider said it (``length``, ``content_filter``,
    ``refusal``, ``max_tokens``…); None for an answer that ended normally."""


class Provider(ABC):
    """How one kind of endpoint is asked."""

    name: ClassVar[str]
    where: str
    """The endpoint as messages name it, without credentials."""

    def __init__(self, judge: JudgeConfig) -> None:
        self.judge = judge
        self.asks_structured = judge.structured_output != "none"
        """Whether bodies carry the answer's schema (so cache keys do, whatever happens later)."""
        self.structured = self.asks_structured
        """Whether the endpoint is sent them: False once it refused them (``auto``)."""

    @abstractmethod
    def body(self, request: JudgeRequest) -> dict[str, Any]:
        """The request body sent for ``request``: everything that decides the answer, no secret."""

    @abstractmethod
    async def send(self, body: dict[str, Any]) -> JudgeReply:
        """Send one request; raises a :class:`ProviderError` or :class:`JudgeUnavailable`."""

    def plain_body(self, body: dict[str, Any]) -> dict[str, Any]:
        """``body`` without structured-output parameters (for endpoints that refuse them)."""
        return body

    @abstractmethod
    async def aclose(self) -> None:
        """Release connections."""


def make_provider(judge: JudgeConfig) -> Provider:
    """The provider for ``judge``.

    Raises:
        JudgeError: the provider's SDK is missing or the judge has no API key.
    """
    check_available(judge)
    check_credentials(judge)
    return AnthropicProvider(judge) if judge.provider == "anthropic" else OpenAIProvider(judge)


def check_available(judge: JudgeConfig) -> None:
    """Fail early, with the fix, when the SDK ``judge`` needs is not installed.

    Raises:
        JudgeError: it is not.
    """
    if judge.provider == "anthropic":
        try:
            import anthropic  # noqa: F401
        except ImportError:
            raise JudgeError(ANTHROPIC_MISSING) from None


def check_credentials(judge: JudgeConfig) -> None:
    """Fail, with the fix, when ``judge`` has no API key (checked when a run starts).

    Raises:
        JudgeError: no key in the config or the SDK's usual environment variable.
    """
    if _api_key(judge) is None:
        variable = "ANTHROPIC_API_KEY" if judge.provider == "anthropic" else "OPENAI_API_KEY"
        raise JudgeError(f"judge model {judge.model!r} has no API key: set api_key "
                         f"(e.g. api_key: ${{{variable}}}) or the {variable} variable")


def _api_key(judge: JudgeConfig) -> str | None:
    if judge.api_key is not None and judge.api_key.get_secret_value():
        return judge.api_key.get_secret_value()
    variable = "ANTHROPIC_API_KEY" if judge.provider == "anthropic" else "OPENAI_API_KEY"
    if os.environ.get(variable):
        return os.environ[variable]
    # A local server (vLLM, Ollama) usually wants no key, but the SDKs insist on one.
    return "unused" if judge.base_url else None


class OpenAIProvider(Provider):
    """Any OpenAI-compatible ``/chat/completions`` endpoint, through ``openai.AsyncOpenAI``."""

    name = "openai"

    def __init__(self, judge: JudgeConfig) -> None:
        super().__init__(judge)
        import openai

        self._openai = openai
        self.client = openai.AsyncOpenAI(
            api_key=_api_key(judge), base_url=judge.base_url, timeout=judge.timeout_s,
            max_retries=0, default_headers=judge.headers or None,
            default_query=judge.query or None)
        self.where = _where(self.client.base_url)
        self.max_tokens_param = _max_tokens_param(judge, self.where)

    def body(self, request: JudgeRequest) -> dict[str, Any]:
        """A chat-completions body; structured output through ``response_format``."""
        messages = [{"role": "system", "content": request.system}]
        messages += [{"role": role, "content": content} for role, content in request.messages]
        body: dict[str, Any] = {"model": self.judge.model, "messages": messages,
                                self.max_tokens_param: self.judge.max_tokens}
        if self.judge.temperature is not None:
            body["temperature"] = self.judge.temperature
        if self.judge.seed is not None:
            body["seed"] = self.judge.seed
        if self.asks_structured:
            body["response_format"] = {"type": "json_schema", "json_schema": {
                "name": request.schema_name, "schema": request.schema, "strict": True}}
        return body

    def plain_body(self, body: dict[str, Any]) -> dict[str, Any]:
        """The body without ``response_format``."""
        return {key: value for key, value in body.items() if key != "response_format"}

    async def send(self, body: dict[str, Any]) -> JudgeReply:
        """POST the body and read the first choice."""
        openai = self._openai
        try:
            # The SDK's generic `post` (its documented way to make a custom request) skips the
            # typed `create()`'s per-call parameter transform and response models: ~1 ms of CPU
            # per call, a third of the client's cost at 250 calls/s.
            content = await self.client.post("/chat/completions", body=body, cast_to=bytes)
        except openai.APIStatusError as exc:
            raise status_error(exc.status_code, exc.response.headers, _message(exc),
                               self.where) from None
        except openai.APITimeoutError:
            raise RetryableError(f"{self.where} did not answer within "
                                 f"{self.judge.timeout_s:g} s", kind="timeout") from None
        except openai.APIConnectionError as exc:
            raise RetryableError(f"cannot reach {self.where}: {_cause(exc)}",
                                 kind="connection") from None
        return _chat_reply(content, self.where)

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        await self.client.close()


def _max_tokens_param(judge: JudgeConfig, where: str) -> str:
    if judge.max_tokens_param != "auto":
        return judge.max_tokens_param
    official = "api.openai.com" in where or ".openai.azure.com" in where
    return "max_completion_tokens" if official else "max_tokens"


def _chat_reply(content: bytes, where: str) -> JudgeReply:
    try:
        document = orjson.loads(content)
        message = document["choices"][0]["message"]
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError):
        raw = content[:2000].decode("utf-8", "replace")
        raise RetryableError(f"{where} sent an unreadable response", kind="malformed",
                             raw=raw) from None
    text = message.get("content")
    if not isinstance(text, str):
        text = ""
    stop = document["choices"][0].get("finish_reason")
    stop = stop if stop in _OPENAI_INCOMPLETE else None
    refusal = message.get("refusal")
    if isinstance(refusal, str) and refusal:
        text, stop = refusal, "refusal"
    usage = document.get("usage") or {}
    return JudgeReply(text=text, input_tokens=_int(usage.get("prompt_tokens")),
                      output_tokens=_int(usage.get("completion_tokens")), stop=stop)


_OPENAI_INCOMPLETE = frozenset({"length", "content_filter"})
"""``finish_reason`` values of an answer cut short (``stop`` and ``tool_calls`` end normally)."""
_ANTHROPIC_INCOMPLETE = frozenset({"max_tokens", "refusal", "model_context_window_exceeded",
                                   "pause_turn"})
"""``stop_reason`` values of an answer cut short (``end_turn``, ``stop_sequence`` and
``tool_use`` end normally)."""


class AnthropicProvider(Provider):
    """Anthropic's Messages API through ``anthropic.AsyncAnthropic``.

    The answer's schema goes in ``output_config.format`` (Anthropic's structured outputs). The
    Messages API takes no temperature or seed any more; they stay in the judge's identity as
    configured but are not sent.
    """

    name = "anthropic"

    def __init__(self, judge: JudgeConfig) -> None:
        super().__init__(judge)
        try:
            import anthropic
        except ImportError:
            raise JudgeError(ANTHROPIC_MISSING) from None
        self._anthropic = anthropic
        self.client = anthropic.AsyncAnthropic(
            api_key=_api_key(judge), base_url=judge.base_url, timeout=judge.timeout_s,
            max_retries=0, default_headers=judge.headers or None)
        self.where = _where(self.client.base_url)

    def body(self, request: JudgeRequest) -> dict[str, Any]:
        """A Messages body, the answer's JSON schema as its output format."""
        body: dict[str, Any] = {
            "model": self.judge.model, "system": request.system,
            "messages": [{"role": role, "content": content} for role, content in request.messages],
            "max_tokens": self.judge.max_tokens,
        }
        if self.asks_structured:
            body["output_config"] = {"format": {"type": "json_schema", "schema": request.schema}}
        return body

    def plain_body(self, body: dict[str, Any]) -> dict[str, Any]:
        """The body without ``output_config``."""
        return {key: value for key, value in body.items() if key != "output_config"}

    async def send(self, body: dict[str, Any]) -> JudgeReply:
        """Create one message and read the tool input (or the text)."""
        anthropic = self._anthropic
        try:
            message = await self.client.messages.create(**body)
        except anthropic.APIStatusError as exc:
            raise status_error(exc.status_code, exc.response.headers, _message(exc),
                               self.where) from None
        except anthropic.APITimeoutError:
            raise RetryableError(f"{self.where} did not answer within "
                                 f"{self.judge.timeout_s:g} s", kind="timeout") from None
        except anthropic.APIConnectionError as exc:
            raise RetryableError(f"cannot reach {self.where}: {_cause(exc)}",
                                 kind="connection") from None
        except anthropic.APIResponseValidationError as exc:
            raise RetryableError(f"{self.where} sent an unreadable response", kind="malformed",
                                 raw=str(exc.body)[:2000]) from None
        stop = getattr(message, "stop_reason", None)
        return JudgeReply(text=_anthropic_text(message.content),
                          input_tokens=_int(message.usage.input_tokens),
                          output_tokens=_int(message.usage.output_tokens),
                          stop=stop if stop in _ANTHROPIC_INCOMPLETE else None)

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        await self.client.close()


def _anthropic_text(blocks: Any) -> str:
    return "".join(getattr(block, "text", "") for block in blocks
                   if getattr(block, "type", None) == "text")


def _where(base_url: Any) -> str:
    """The endpoint as messages name it: without any user:password a URL may carry."""
    return re.sub(r"//[^/@]*@", "//", str(base_url)).rstrip("/")


def _message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        # The SDKs give the body's `error` object, or the whole body
        inner = body.get("error")
        error: dict[str, Any] = inner if isinstance(inner, dict) else body
        if isinstance(error.get("message"), str):
            message = str(error["message"])[:300]
            code = error.get("code") or error.get("type")
            # OpenAI's `insufficient_quota` says more than its message does
            named = isinstance(code, str) and not code.isdigit() and code not in message
            return f"{message} ({code})" if named else message
    return str(getattr(exc, "message", exc))[:300]


def _cause(exc: BaseException) -> str:
    cause = exc.__cause__ or exc.__context__
    return f"{type(cause).__name__}: {cause}" if cause else str(exc)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None

