"""Where spans come from: trace files, Langfuse, Braintrust, live OTLP; and the HTTP policy.

Every remote call in tracegrade goes through :class:`HttpClient` (retries, backoff,
``Retry-After``, a requests-per-minute cap, secrets redacted from errors). Incremental pulls are
:func:`tracegrade.sources.pull.pull_sources`.
"""

from tracegrade.sources._http import (
    BearerAuth,
    HttpClient,
    RateLimiter,
    RemoteError,
    RemoteRejected,
    RemoteUnavailable,
    RetryPolicy,
    UnexpectedResponse,
)

__all__ = [
    "BearerAuth",
    "HttpClient",
    "RateLimiter",
    "RemoteError",
    "RemoteRejected",
    "RemoteUnavailable",
    "RetryPolicy",
    "UnexpectedResponse",
]
