"""Fixtures for the exporter tests: the fake Langfuse and Braintrust servers."""

from tests.fakes.fixtures import fake_braintrust, fake_langfuse

__all__ = ["fake_braintrust", "fake_langfuse"]
