"""`race`: return the first usable reply; every reply is still ranked, in the background.

A streaming client gets the live race: every miner streams at once and the first one whose
stream says something is forwarded chunk by chunk.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator
from typing import Any

from gateway.errors import error_body
from gateway.pipeline import Result, Settler, cancel_all
from gateway.plan import Plan
from gateway.replay import chunk_object
from gateway.responses import SSE_DONE, sse_event
from gateway.strategies.base import LiveStream, deadline, fan_out
from router.miner_client import MinerClient, Reply

DONE = None


def usable(reply: Reply) -> bool:
    """A reply a race may return at once: valid and not blank."""
    return reply.ok and bool(reply.text.strip())


class Race:
    """The first usable reply wins; the others are settled once they are in."""

    def __init__(self, client: MinerClient, settler: Settler) -> None:
        self.client = client
        self.settler = settler

    async def serve(self, plan: Plan) -> Result | LiveStream:
        """The first usable reply (a live stream when the client streams); 502/504 if none."""
        if plan.client_stream:
            return await LiveRace(self.client, self.settler, plan).start()
        started = time.perf_counter()
        tasks = fan_out(self.client, plan, deadline(plan))
        winner: Reply | None = None
        try:
            for next_done in asyncio.as_completed(tasks):
                reply = await next_done
                if usable(reply):
                    winner = reply
                    break
        except asyncio.CancelledError:
            cancel_all(tasks)
            raise
        if winner is None:
            raise await self.settler.failed(plan, [t.result() for t in tasks])
        result = self.settler.early_result(plan, winner, tasks, started)
        self.settler.settle_later(plan, tasks, winner)
        return result


class LiveRace:
    """Streams from every miner at once and forwards the first one that says something."""

    def __init__(self, client: MinerClient, settler: Settler, plan: Plan) -> None:
        self.client = client
        self.settler = settler
        self.plan = plan
        self.events: asyncio.Queue[tuple[int, dict[str, Any] | None]] = asyncio.Queue()
        self.buffered: dict[int, list[dict[str, Any]]] = {}
        self.tasks: dict[int, asyncio.Task[Reply]] = {}
        self.started = time.perf_counter()
        self.winner_finished = False
        self.first_text: dict[int, float] = {}

    async def _stream_one(self, index: int, until: float) -> Reply:
        neuron = self.plan.candidates[index]
        try:
            return await self.client.stream(
                neuron,
                self.plan.kind,
                self.plan.body,
                until,
                sink=lambda uid, chunk: self.events.put_nowait((uid, chunk)),
            )
        finally:
            self.events.put_nowait((neuron.uid, DONE))

    async def start(self) -> LiveStream:
        """Wait for the first miner whose stream carries text; raises when none does."""
        uid, first = await self._first()
        return LiveStream(self.headers(uid), self.forward(uid, first))

    async def _first(self) -> tuple[int, list[dict[str, Any]]]:
        until = deadline(self.plan)
        create = asyncio.get_running_loop().create_task
        for i, neuron in enumerate(self.plan.candidates):
            self.tasks[neuron.uid] = create(self._stream_one(i, until))
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
            cancel_all(self.tasks.values())
            raise
        raise await self.settler.failed(self.plan, [t.result() for t in self.tasks.values()])

    async def forward(self, uid: int, first: list[dict[str, Any]]) -> AsyncGenerator[bytes, None]:
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
            block = self.settler.early_result(self.plan, reply, tasks, self.started).block()
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
                self.settler.settle_later(self.plan, tasks, reply)
            else:
                cancel_all(tasks)

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
            "object": chunk_object(self.plan.kind),
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
