"""Miners' replies as the rankers see them: content, tool calls and tokens, bounded in size."""

from __future__ import annotations

from typing import Any

from ranking.base import Candidate, ToolCall
from ranking.constraints import call_text, tool_calls_of
from router.miner_client import Kind, Reply

# Rankers see at most this much of a reply: a miner sending megabytes must not stall the
# event loop for everyone.
MAX_RANK_CHARS = 8192
MAX_CALLS = 16
# Longer arguments are cut, which makes them fail to parse: no real call needs this much.
MAX_ARGUMENT_CHARS = 32768


def _streamed_message(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    """A chat stream's deltas put back together: content and tool calls by index."""
    content: list[str] = []
    calls: dict[int, dict[str, Any]] = {}
    for chunk in chunks:
        choices = chunk.get("choices")
        choice = choices[0] if isinstance(choices, list) and choices else None
        delta = choice.get("delta") if isinstance(choice, dict) else None
        if not isinstance(delta, dict):
            continue
        if isinstance(delta.get("content"), str):
            content.append(delta["content"])
        for part in delta.get("tool_calls") or ():
            if not isinstance(part, dict) or len(calls) > MAX_CALLS:
                continue
            index = part.get("index", 0)
            call = calls.setdefault(
                index if isinstance(index, int) else 0, {"name": "", "args": []}
            )
            function = part.get("function")
            if isinstance(function, dict):
                if isinstance(function.get("name"), str) and not call["name"]:
                    call["name"] = function["name"]
                if isinstance(function.get("arguments"), str):
                    call["args"].append(function["arguments"])
    tool_calls = [
        {"function": {"name": c["name"], "arguments": "".join(c["args"])}}
        for _, c in sorted(calls.items())
    ]
    return {"content": "".join(content), "tool_calls": tool_calls}


def _usage_tokens(reply: Reply) -> int | None:
    """The completion tokens the miner reported, if it did."""
    sources = [reply.body] if reply.body else list(reversed(reply.chunks))
    for source in sources:
        usage = source.get("usage") if isinstance(source, dict) else None
        if isinstance(usage, dict) and isinstance(usage.get("completion_tokens"), int):
            return int(usage["completion_tokens"])
    return None


def message_of(reply: Reply) -> dict[str, Any]:
    """The chat message a reply carries, from its body or reassembled from its stream."""
    if reply.body:
        choices = reply.body.get("choices")
        choice = choices[0] if isinstance(choices, list) and choices else None
        message = choice.get("message") if isinstance(choice, dict) else None
        return message if isinstance(message, dict) else {}
    return _streamed_message(reply.chunks)


def candidate_of(reply: Reply, kind: Kind) -> Candidate:
    """One valid reply as a ranking candidate: content, tool calls, finish, tokens."""
    calls: tuple[ToolCall, ...] = ()
    content = reply.text
    if kind == "chat":
        message = message_of(reply)
        calls = tuple(
            ToolCall(c.name[:64], c.arguments[:MAX_ARGUMENT_CHARS])
            for c in tool_calls_of(message)[:MAX_CALLS]
        )
        said = message.get("content")
        content = said if isinstance(said, str) else ("" if calls else reply.text)
    content = content[:MAX_RANK_CHARS]
    shown = "\n".join(p for p in (content, call_text(calls)) if p) if calls else content
    return Candidate(
        reply.neuron.uid,
        shown,
        reply.finish_reason,
        reply.latency_ms,
        tool_calls=calls,
        content=content if calls else None,
        completion_tokens=_usage_tokens(reply),
    )
