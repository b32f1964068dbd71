"""Applications the replay tests run golden inputs through."""

from __future__ import annotations

from typing import Any


def echo_upper(value: Any) -> str:
    """Answers with the question in capitals; raises on a question about refunds."""
    text = str(value)
    if "refund" in text:
        raise RuntimeError("refunds are not implemented")
    return text.upper()


async def echo_async(value: Any) -> str:
    """The same, as a coroutine."""
    return f"async: {value}"


def set_for_refunds(value: Any) -> Any:
    """Answers in capitals, but with a Python set (not JSON) to a question about refunds."""
    text = str(value)
    return {"refund"} if "refund" in text else text.upper()


def echo_lower(value: Any) -> str:
    """Answers in small letters: every answer fails a grader wanting capitals."""
    return str(value).lower()
