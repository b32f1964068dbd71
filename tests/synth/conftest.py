"""Fixtures for the synthesis tests: the fake Langfuse the dry run pulls from."""

from tests.fakes.fixtures import fake_langfuse

__all__ = ["fake_langfuse"]
