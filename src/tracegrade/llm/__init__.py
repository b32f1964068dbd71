"""LLM judges: providers, rate limits, retries, the judge cache, cost and budget, rubrics.

The ``llm_judge`` and ``classify`` grader types (in :mod:`tracegrade.graders`) are built on this
package. The provider SDKs (``openai``, and ``anthropic`` as the ``tracegrade[anthropic]`` extra)
are imported only when a judge is called.
"""

from tracegrade.llm._cache import cache_key, cached_answers
from tracegrade.llm._client import JudgeAnswer, JudgeClient, JudgeSession, PreparedCall
from tracegrade.llm._config import (
    DEFAULT_JUDGE,
    JUDGE_GRADER_TYPES,
    JudgeConfig,
    JudgeGraderConfig,
    JudgesField,
    Prices,
    bind_judge,
)
from tracegrade.llm._cost import PRICE_TABLE, Budget, BudgetExhausted, cost_of, prices_for
from tracegrade.llm._errors import JudgeDeferred, JudgeError, JudgeStopped, JudgeUnavailable
from tracegrade.llm._fewshot import Example, train_examples
from tracegrade.llm._limits import RateLimiter, TokenBucket
from tracegrade.llm._parse import (
    AnswerUnreadable,
    LabelAnswer,
    VerdictAnswer,
    parse_label,
    parse_verdict,
)
from tracegrade.llm._providers import JudgeReply, JudgeRequest, Provider, make_provider
from tracegrade.llm._rubrics import (
    Rubric,
    RubricError,
    compile_rubric,
    shipped_rubric,
    shipped_rubrics,
)

__all__ = [
    "DEFAULT_JUDGE",
    "JUDGE_GRADER_TYPES",
    "PRICE_TABLE",
    "AnswerUnreadable",
    "Budget",
    "BudgetExhausted",
    "Example",
    "JudgeAnswer",
    "JudgeClient",
    "JudgeConfig",
    "JudgeDeferred",
    "JudgeError",
    "JudgeGraderConfig",
    "JudgeReply",
    "JudgeRequest",
    "JudgeSession",
    "JudgeStopped",
    "JudgeUnavailable",
    "JudgesField",
    "LabelAnswer",
    "PreparedCall",
    "Prices",
    "Provider",
    "RateLimiter",
    "Rubric",
    "RubricError",
    "TokenBucket",
    "VerdictAnswer",
    "bind_judge",
    "cache_key",
    "cached_answers",
    "compile_rubric",
    "cost_of",
    "make_provider",
    "parse_label",
    "parse_verdict",
    "prices_for",
    "shipped_rubric",
    "shipped_rubrics",
    "train_examples",
]
