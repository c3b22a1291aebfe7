"""A finished result as OpenAI sends it: one JSON document, or a stream replaying it.

The replay keeps what the chosen miners sent beside their text — `system_fingerprint`,
`logprobs`, `reasoning_content`, tool calls — and ends with a `choices: []` usage chunk only
when the client asked for it (`stream_options.include_usage`), as OpenAI does. With n > 1
each chosen reply is choice i; usage adds their completion tokens.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Sequence
from typing import Any

from gateway.serving.responses import SSE_DONE, sse_event
from gateway.serving.result import Result
from router.miner_client import Kind, Reply
from router.wire import chunk_object, first_choice


def _choice(reply: Reply, document: dict[str, Any] | None, kind: Kind) -> dict[str, Any]:
    """The reply's first choice as the miner sent it (rebuilt from its text if it has none)."""
    choice = first_choice(document)
    if choice is not None:
        return dict(choice)
    answer = reply.answer
    finish = answer.finish_reason or "stop"
    if kind == "chat":
        message = {"role": "assistant", "content": answer.content}
        return {"message": message, "finish_reason": finish}
    return {"text": answer.content, "logprobs": None, "finish_reason": finish}


def usage_of(documents: Sequence[dict[str, Any] | None]) -> dict[str, Any] | None:
    """The winner's usage as its miner reported it; with several replies, their tokens added."""
    reports = [d.get("usage") if d else None for d in documents]
    if not isinstance(reports[0], dict):
        return None
    if len(documents) == 1:
        return reports[0]
    prompt = reports[0].get("prompt_tokens", 0)
    completion = sum(u.get("completion_tokens", 0) for u in reports if isinstance(u, dict))
    if not isinstance(prompt, int) or not isinstance(completion, int):
        return reports[0]
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _documents(result: Result) -> list[dict[str, Any] | None]:
    """Each chosen reply as its miner sent it, parsed again (replies keep their bytes)."""
    return [reply.document() for reply in result.chosen]


def document(result: Result) -> dict[str, Any]:
    """The JSON response: the winner's document, every chosen reply as a choice, the block."""
    documents = _documents(result)
    body: dict[str, Any] = documents[0] or {}
    body["model"] = result.plan.pool.name
    chosen = result.chosen
    if len(chosen) > 1:
        kind = result.plan.kind
        body["choices"] = [
            {**_choice(r, d, kind), "index": i}
            for i, (r, d) in enumerate(zip(chosen, documents, strict=True))
        ]
        usage = usage_of(documents)
        if usage is not None:
            body["usage"] = usage
    body["bitgate"] = result.block()
    return body


def _first(choice: dict[str, Any], index: int, kind: Kind) -> dict[str, Any]:
    """One choice's whole reply as its first chunk."""
    logprobs = choice.get("logprobs")
    if kind != "chat":
        text = choice.get("text")
        return {"index": index, "text": text or "", "logprobs": logprobs, "finish_reason": None}
    message = choice.get("message")
    message = message if isinstance(message, dict) else {}
    delta: dict[str, Any] = {"role": "assistant", "content": message.get("content")}
    for key in ("reasoning_content", "reasoning"):  # vLLM's two names, as the miner sent it
        if message.get(key) is not None:
            delta[key] = message[key]
    calls = message.get("tool_calls")
    if isinstance(calls, list) and calls:
        delta["tool_calls"] = [
            {"index": i, **call} for i, call in enumerate(calls) if isinstance(call, dict)
        ]
    return {"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": None}


def _last(choice: dict[str, Any], index: int, kind: Kind) -> dict[str, Any]:
    """The closing chunk of one choice, carrying its finish reason."""
    finish = choice.get("finish_reason") or "stop"
    if kind == "chat":
        return {"index": index, "delta": {}, "logprobs": None, "finish_reason": finish}
    return {"index": index, "text": "", "logprobs": None, "finish_reason": finish}


def replay_chunks(result: Result) -> list[dict[str, Any]]:
    """A finished result as OpenAI stream chunks, the `bitgate` block on the last one."""
    plan, documents = result.plan, _documents(result)
    body = documents[0] or {}
    base: dict[str, Any] = {
        "id": body.get("id", "bitgate"),
        "object": chunk_object(plan.kind),
        "created": body.get("created", int(time.time())),
        "model": plan.pool.name,
    }
    if body.get("system_fingerprint") is not None:
        base["system_fingerprint"] = body["system_fingerprint"]
    choices = [_choice(r, d, plan.kind) for r, d in zip(result.chosen, documents, strict=True)]
    chunks: list[dict[str, Any]] = [
        {**base, "choices": [_first(c, i, plan.kind)]} for i, c in enumerate(choices)
    ]
    chunks += [{**base, "choices": [_last(c, i, plan.kind)]} for i, c in enumerate(choices)]
    usage = usage_of(documents)
    if plan.include_usage and usage is not None:
        chunks.append({**base, "choices": [], "usage": usage})
    chunks[-1]["bitgate"] = result.block()
    return chunks


async def replay(result: Result) -> AsyncGenerator[bytes, None]:
    """Stream a finished reply to the client."""
    for chunk in replay_chunks(result):
        yield sse_event(chunk)
    yield SSE_DONE
