"""The live OTLP source: spans an OpenTelemetry exporter pushes to ``tracegrade serve``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 4318
"""The OTLP/HTTP port every OpenTelemetry exporter defaults to."""


class OtlpReceiverConfig(BaseModel):
    """Where ``tracegrade serve`` listens, and the source name received spans are stored under.

    Binding anything but a loopback address requires a bearer ``token`` (or the
    ``TRACEGRADE_SERVER_TOKEN`` environment variable).
    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    type: Literal["otlp"]
    host: str = DEFAULT_HOST
    port: int = Field(default=DEFAULT_PORT, ge=0, le=65535)
    token: SecretStr | None = None
    acknowledge: Literal["stored", "queued"] = "stored"
    """``stored``: answer exporters once spans are committed (nothing acknowledged is lost);
    ``queued``: once they are queued for writing (faster; a crash loses what was queued)."""
