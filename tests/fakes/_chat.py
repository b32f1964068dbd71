"""A minimal OpenAI-compatible chat-completions endpoint, for instrumentation tests.

It answers ``POST /v1/chat/completions`` like the OpenAI API does: when the request offers
tools, the assistant calls the first one; otherwise it replies with text. Usage counts are
derived from the request so tests can check they travel through the instrumentation.
"""

from __future__ import annotations

from typing import Any

import orjson

from tests.fakes._server import FakeRequest, FakeResponse, LoopbackServer


def chat_completions(request: FakeRequest) -> FakeResponse:
    """The fake's one endpoint."""
    if request.method != "POST" or request.path != "/v1/chat/completions":
        return FakeResponse(404, {"error": {"message": "not found", "type": "invalid_request"}})
    body = request.json()
    prompt_tokens = sum(len(str(m.get("content") or "").split()) for m in body["messages"])
    tools = body.get("tools") or []
    message: dict[str, Any] = {"role": "assistant", "content": "Your order has shipped.",
                               "refusal": None}
    finish = "stop"
    if tools:
        name = tools[0]["function"]["name"]
        message = {"role": "assistant", "content": None, "refusal": None, "tool_calls": [{
            "id": "call_7f3a", "type": "function",
            "function": {"name": name, "arguments": orjson.dumps({"order_id": "A-1001"}).decode()},
        }]}
        finish = "tool_calls"
    return FakeResponse(200, {
        "id": "chatcmpl-test-1", "object": "chat.completion", "created": 1_764_000_000,
        "model": f"{body['model']}-2026-04-14",
        "choices": [{"index": 0, "message": message, "finish_reason": finish,
                     "logprobs": None}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": 17,
                  "total_tokens": prompt_tokens + 17},
        "system_fingerprint": "fp_test",
    })


def chat_server() -> LoopbackServer:
    """A loopback server answering chat completions (start it, or use it as a context)."""
    return LoopbackServer(chat_completions)
