"""Server-sent events: replaying a chosen reply, and racing miners' live streams."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from gateway.errors import error_body
from gateway.pipeline import Pipeline, Result, failure_error, usable
from gateway.plan import Plan
from gateway.responses import SSE_DONE, sse_event
from router.miner_client import Reply

DONE = None


def _chunk_object(plan: Plan) -> str:
    return "chat.completion.chunk" if plan.kind == "chat" else "text_completion"


def replay_chunks(result: Result) -> list[dict[str, Any]]:
    """A finished reply as OpenAI stream chunks, the `bitgate` block on the last one."""
    plan, body = result.plan, result.winner.body or {}
    base = {
        "id": body.get("id", "bitgate"),
        "object": _chunk_object(plan),
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


class LiveRace:
    """Streams from every miner at once and forwards the first one that says something."""

    def __init__(self, pipeline: Pipeline, plan: Plan) -> None:
        self.pipeline = pipeline
        self.plan = plan
        self.events: asyncio.Queue[tuple[int, dict[str, Any] | None]] = asyncio.Queue()
        self.buffered: dict[int, list[dict[str, Any]]] = {}
        self.tasks: dict[int, asyncio.Task[Reply]] = {}
        self.started = time.perf_counter()
        self.winner_finished = False
        self.first_text: dict[int, float] = {}

    async def _stream_one(self, index: int, deadline: float) -> Reply:
        neuron = self.plan.candidates[index]
        try:
            return await self.pipeline.client.stream(
                neuron,
                self.plan.kind,
                self.plan.body,
                deadline,
                sink=lambda uid, chunk: self.events.put_nowait((uid, chunk)),
            )
        finally:
            self.events.put_nowait((neuron.uid, DONE))

    async def start(self) -> tuple[int, list[dict[str, Any]]]:
        """Wait for the first miner whose stream carries text; raises when none does."""
        deadline = self.pipeline.deadline(self.plan)
        create = asyncio.get_running_loop().create_task
        for i, neuron in enumerate(self.plan.candidates):
            self.tasks[neuron.uid] = create(self._stream_one(i, deadline))
        finished = 0
        try:
            while finished < len(self.tasks):
                uid, chunk = await self.events.get()
                if chunk is DONE:
                    finished += 1
                    reply = self.tasks[uid].result()
                    if usable(reply):
                        self.winner_finished = True
                        return uid, reply.chunks
                    continue
                self.buffered.setdefault(uid, []).append(chunk)
                if _has_text(chunk):
                    self.first_text[uid] = time.perf_counter()
                    return uid, self.buffered[uid]
        except BaseException:
            self.cancel()
            raise
        replies = [t.result() for t in self.tasks.values()]
        ranking = await self.pipeline.rank(self.plan, replies)
        self.pipeline.settle(self.plan, replies, ranking, None)
        raise failure_error(replies)

    def cancel(self) -> None:
        """Stop every miner stream."""
        for task in self.tasks.values():
            task.cancel()

    async def forward(self, uid: int, first: list[dict[str, Any]]) -> AsyncIterator[bytes]:
        """The winner's chunks as they come, then the `bitgate` block and `[DONE]`."""
        reply: Reply | None = None
        tasks = list(self.tasks.values())
        try:
            for early in first:
                yield sse_event(self._rename(early))
            while not self.winner_finished:
                event_uid, chunk = await self.events.get()
                if event_uid != uid:
                    continue
                if chunk is DONE:
                    self.winner_finished = True
                    break
                yield sse_event(self._rename(chunk))
            reply = await self.tasks[uid]
            block = self.pipeline.early_result(self.plan, reply, tasks, self.started).block()
            if not reply.ok:
                # Text already sent cannot be taken back: say the stream broke, as OpenAI does.
                message = f"The chosen miner's stream broke off ({reply.status}: {reply.error})."
                body = error_body(message, "upstream_error", None, "miner_stream_failed")
                yield sse_event({**body, "bitgate": block})
                return
            yield sse_event({**self._envelope(reply), "choices": [], "bitgate": block})
            yield SSE_DONE
        finally:
            if reply is not None:
                self.pipeline.settle_when_done(self.plan, tasks, reply)
            else:
                self.cancel()

    def headers(self, uid: int) -> dict[str, str]:
        """The `x-bitgate-*` headers once the winner is known (overhead: since its text came)."""
        overhead_ms = (time.perf_counter() - self.first_text.get(uid, time.perf_counter())) * 1e3
        return {"x-bitgate-miner-uid": str(uid), "x-bitgate-overhead-ms": f"{overhead_ms:.3f}"}

    def _rename(self, chunk: dict[str, Any]) -> dict[str, Any]:
        return {**chunk, "model": self.plan.pool.name}

    def _envelope(self, reply: Reply) -> dict[str, Any]:
        """The id, object, created and model of the winner's chunks, for a closing chunk."""
        last = reply.chunks[-1] if reply.chunks else {}
        return {
            "id": last.get("id", "bitgate"),
            "object": _chunk_object(self.plan),
            "created": last.get("created", int(time.time())),
            "model": self.plan.pool.name,
        }


def _has_text(chunk: dict[str, Any]) -> bool:
    """Whether a stream chunk says something: text, or a tool call."""
    for choice in chunk.get("choices") or ():
        if not isinstance(choice, dict):
            continue
        delta = choice.get("delta")
        if isinstance(delta, dict) and delta.get("tool_calls"):
            return True
        text = delta.get("content") if isinstance(delta, dict) else choice.get("text")
        if isinstance(text, str) and text.strip():
            return True
    return False
