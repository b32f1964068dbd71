"""``judges:`` in tracegrade.yaml: which model grades, where it is served, and how hard to push it.

A grader names its judge (``judge: default``); :data:`JudgesField` resolves those names when the
config is validated, so an unknown name is one config error naming the grader, and every built
grader carries the judge it will call.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from tracegrade.graders._base import GraderConfig

JUDGE_GRADER_TYPES = frozenset({"llm_judge", "classify"})
"""Grader types that call a judge; they default to the judge named ``default``."""

DEFAULT_JUDGE = "default"

PROVIDERS = ("openai", "anthropic")
"""``openai`` is any OpenAI-compatible endpoint (OpenAI, Azure OpenAI, vLLM, Ollama, LiteLLM…)."""


class Prices(BaseModel):
    """What a judge model costs, in US dollars per million tokens."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input: float = Field(ge=0.0, description="USD per 1M input (prompt) tokens.")
    output: float = Field(ge=0.0, description="USD per 1M output (completion) tokens.")


class JudgeConfig(BaseModel):
    """One judge: a model behind an endpoint, with its limits. The API key never leaves memory."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: str = "openai"
    base_url: str | None = None
    """The endpoint; the provider's own when omitted (``https://api.openai.com/v1``…)."""
    api_key: SecretStr | None = None
    """Usually ``${OPENAI_API_KEY}``; when omitted the SDK reads its usual environment variable."""
    model: str = Field(min_length=1)
    temperature: float | None = Field(default=0.0, ge=0.0, le=2.0)
    """``null`` leaves it to the model (some reasoning models accept no other value)."""
    seed: int | None = None
    max_tokens: int = Field(default=1024, gt=0)
    """The answer's token cap; also what a call is assumed to cost at most under ``--budget``."""
    max_tokens_param: str = Field(default="auto",
                                  pattern=r"^(auto|max_tokens|max_completion_tokens)$")
    """How the cap is sent to an OpenAI-compatible server; ``auto`` uses ``max_completion_tokens``
    for api.openai.com and Azure, ``max_tokens`` elsewhere (vLLM, Ollama, LiteLLM)."""
    structured_output: str = Field(default="auto", pattern=r"^(auto|json_schema|none)$")
    """``auto`` asks for a JSON schema and falls back to plain JSON instructions when the
    endpoint rejects ``response_format``; ``none`` never sends it."""
    max_concurrency: int = Field(default=16, gt=0, le=1000)
    requests_per_minute: float | None = Field(default=None, gt=0.0)
    tokens_per_minute: float | None = Field(default=None, gt=0.0)
    timeout_s: float = Field(default=60.0, gt=0.0)
    max_retries: int = Field(default=4, ge=0, le=20)
    retry_backoff_s: float = Field(default=1.0, ge=0.0)
    """The first wait after a failed call without ``Retry-After``; it doubles per retry."""
    max_consecutive_failures: int | None = Field(default=5, ge=1)
    """Spans in a row the judge may leave unanswered through all their retries (timeouts,
    5xx, 429s, dropped connections) before the run stops asking it; ``null`` never stops."""
    prices: Prices | None = None
    """Overrides tracegrade's price table for this judge's model."""
    headers: dict[str, str] = Field(default_factory=dict)
    """Extra HTTP headers, e.g. for a proxy."""
    query: dict[str, str] = Field(default_factory=dict)
    """Extra query parameters, e.g. ``api-version`` for an Azure deployment URL."""

    @field_validator("provider")
    @classmethod
    def _known_provider(cls, provider: str) -> str:
        if provider not in PROVIDERS:
            raise ValueError(f"unknown provider {provider!r}; known: {', '.join(PROVIDERS)}")
        return provider

    @field_validator("base_url")
    @classmethod
    def _blank_is_default(cls, base_url: str | None) -> str | None:
        # `${JUDGE_BASE_URL:-}` in the config means "the provider's own endpoint".
        if base_url is None or not base_url.strip():
            return None
        return base_url.strip()

    def identity(self) -> dict[str, Any]:
        """What makes this judge's answers what they are: part of every judge grader's version."""
        return {"provider": self.provider, "model": self.model,
                "temperature": self.temperature, "seed": self.seed}


class JudgeGraderConfig(GraderConfig):
    """A grader config whose ``judge:`` name has been resolved to the judge it calls."""

    _judge_name: str = PrivateAttr(default=DEFAULT_JUDGE)
    _judge: JudgeConfig | None = PrivateAttr(default=None)

    @property
    def judge_name(self) -> str:
        """The name the grader refers to its judge by."""
        return self._judge_name

    @property
    def judge(self) -> JudgeConfig | None:
        """The resolved judge, or None when the config was built without one."""
        return self._judge


def bind_judge(grader: GraderConfig, name: str, judge: JudgeConfig) -> JudgeGraderConfig:
    """``grader`` with its judge attached; the grader's own fields are unchanged."""
    bound = JudgeGraderConfig.model_validate(grader.model_dump())
    bound._judge_name = name
    bound._judge = judge
    return bound


def judge_name_of(grader: GraderConfig) -> str | None:
    """The judge a grader config refers to, or None when it uses none."""
    name = grader.params().get("judge")
    if isinstance(name, str):
        return name
    return DEFAULT_JUDGE if grader.type in JUDGE_GRADER_TYPES and name is None else None


def _resolve_judges(judges: dict[str, JudgeConfig], info: ValidationInfo
                    ) -> dict[str, JudgeConfig]:
    graders = info.data.get("graders")
    if not isinstance(graders, list):
        return judges
    for index, grader in enumerate(graders):
        name = judge_name_of(grader)
        if name is None:
            continue
        if name not in judges:
            configured = ", ".join(sorted(judges)) or "none"
            # Formatted here: pydantic would read braces in a judge's name as placeholders.
            raise PydanticCustomError("unknown_judge", (
                f"graders[{index}] ({grader.name}) uses judge {name!r}, which is not configured "
                f"under `judges:` (configured: {configured})"))
        graders[index] = bind_judge(grader, name, judges[name])
    return judges


JudgesField = Annotated[dict[str, JudgeConfig], AfterValidator(_resolve_judges)]
"""The ``judges:`` mapping; declared after ``graders:`` it checks and binds their judge names."""
