"""Miners' answers as the rankers see them: the one definition of the text a ranker judges.

A whole reply, a stream put back together and a live stream still arriving all become a
`Candidate` here, from the same `router.wire.Answer`, so every path judges the same text.
"""

from __future__ import annotations

from ranking.base import Candidate, ToolCall
from ranking.constraints import call_text
from router.miner_client import Reply
from router.wire import Answer

# Rankers see at most this much of a reply: a miner sending megabytes must not stall the
# event loop for everyone.
MAX_RANK_CHARS = 8192


def judged(uid: int, answer: Answer, latency_ms: float = 0.0) -> Candidate:
    """An answer as a ranking candidate: content, then its calls as `name(arg=value)` lines."""
    calls = tuple(ToolCall(c.name, c.arguments) for c in answer.tool_calls)
    content = answer.content[:MAX_RANK_CHARS]
    shown = "\n".join(p for p in (content, call_text(calls)) if p) if calls else content
    usage = answer.usage
    return Candidate(
        uid,
        shown,
        answer.finish_reason,
        latency_ms,
        tool_calls=calls,
        content=content if calls else None,
        completion_tokens=usage.completion_tokens if usage is not None else None,
    )


def candidate_of(reply: Reply) -> Candidate:
    """One valid reply as a ranking candidate."""
    return judged(reply.neuron.uid, reply.answer, reply.latency_ms)
