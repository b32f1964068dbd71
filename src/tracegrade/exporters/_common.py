"""What the exporters share: finding the configured destination, and deterministic ids."""

from __future__ import annotations

import uuid

from tracegrade.config import Config, ConfigError, load_config
from tracegrade.sources.braintrust import BraintrustSourceConfig
from tracegrade.sources.langfuse import LangfuseSourceConfig

RemoteConfig = LangfuseSourceConfig | BraintrustSourceConfig

_NAMESPACE = uuid.UUID("5f0c7d52-2b1e-4c55-9d0e-7a1c3e9b8f21")
"""tracegrade's UUIDv5 namespace: the same inputs give the same remote id on every machine."""


class ExportError(ConfigError):
    """The export names something that does not exist or cannot take it (a user mistake)."""


def remote_source(config: Config | None, name: str) -> RemoteConfig:
    """The configured Langfuse or Braintrust source called ``name``.

    Raises:
        ExportError: no such source, or it is not a Langfuse/Braintrust one.
    """
    config = config or load_config()
    for source in config.sources:
        if source.name == name:
            if isinstance(source, LangfuseSourceConfig | BraintrustSourceConfig):
                config.require_sources([name])
                return source
            raise ExportError(f"source {name!r} is a {source.type} source: only langfuse and "
                              "braintrust sources take verdicts, datasets or labels")
    remote = [s.name for s in config.sources
              if isinstance(s, LangfuseSourceConfig | BraintrustSourceConfig)]
    raise ExportError(f"no langfuse or braintrust source named {name!r} in the config "
                      f"(configured: {', '.join(remote) or 'none'})")


def remote_sources(config: Config) -> list[RemoteConfig]:
    """Every configured Langfuse and Braintrust source.

    Raises:
        ConfigError: one of them names an unset environment variable.
    """
    sources = [s for s in config.sources
               if isinstance(s, LangfuseSourceConfig | BraintrustSourceConfig)]
    config.require_sources(s.name for s in sources)
    return sources


def stable_id(*parts: str) -> str:
    """A UUID derived from ``parts``: re-sending the same thing updates it instead of adding."""
    return str(uuid.uuid5(_NAMESPACE, "\x1f".join(parts)))
