"""A finished result as an OpenAI stream: what a streaming client gets from `best_of`."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

from gateway.pipeline import Result
from gateway.responses import SSE_DONE, sse_event
from router.miner_client import Kind


def chunk_object(kind: Kind) -> str:
    """The `object` of a stream chunk of this kind of request."""
    return "chat.completion.chunk" if kind == "chat" else "text_completion"


def replay_chunks(result: Result) -> list[dict[str, Any]]:
    """A finished reply as OpenAI stream chunks, the `bitgate` block on the last one."""
    plan, body = result.plan, result.winner.body or {}
    base = {
        "id": body.get("id", "bitgate"),
        "object": chunk_object(plan.kind),
        "created": body.get("created", int(time.time())),
        "model": plan.pool.name,
    }
    text, finish = result.winner.text, result.winner.finish_reason or "stop"
    if plan.kind == "chat":
        delta = _replay_delta(body)
        first = {"index": 0, "delta": delta, "finish_reason": None}
        last = {"index": 0, "delta": {}, "finish_reason": finish}
    else:
        first = {"index": 0, "text": text, "logprobs": None, "finish_reason": None}
        last = {"index": 0, "text": "", "logprobs": None, "finish_reason": finish}
    chunks: list[dict[str, Any]] = [{**base, "choices": [first]}, {**base, "choices": [last]}]
    if plan.include_usage and isinstance(body.get("usage"), dict):
        chunks.append({**base, "choices": [], "usage": body["usage"]})
    chunks[-1]["bitgate"] = result.block()
    return chunks


def _replay_delta(body: dict[str, Any]) -> dict[str, Any]:
    """The whole chosen message as one delta: its text, and its tool calls if it made any."""
    message = body["choices"][0]["message"]
    delta: dict[str, Any] = {"role": "assistant", "content": message.get("content")}
    calls = message.get("tool_calls")
    if isinstance(calls, list) and calls:
        delta["tool_calls"] = [
            {"index": i, **call} for i, call in enumerate(calls) if isinstance(call, dict)
        ]
    return delta


async def replay(result: Result) -> AsyncIterator[bytes]:
    """Stream a finished reply to the client."""
    for chunk in replay_chunks(result):
        yield sse_event(chunk)
    yield SSE_DONE
