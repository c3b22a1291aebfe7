"""`race`: return the first usable reply; every reply is still ranked, in the background.

Usable: valid, and passing the cheap filters (empty, echo, refusal, and the request's
schema and tool checks; `gateway.serving.rank.usable`). With n > 1, the first n usable replies.
When none is usable, the best ranked reply that says something is returned, as best_of would.

A streaming client of a plain request gets the live race: every miner streams at once, and
the first whose text passes the cheap filters once it has `COMMIT_CHARS` characters (or has
ended) is forwarded chunk by chunk. A request for JSON or tools, or for n > 1, waits for whole
replies instead (only a whole reply shows whether it is valid) and replays the chosen ones.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator
from typing import Any

import orjson

from gateway.errors import error_body
from gateway.serving.candidates import judged
from gateway.serving.plan import Plan
from gateway.serving.rank import best_indexes, usable
from gateway.serving.replay import replay
from gateway.serving.responses import SSE_DONE, sse_event
from gateway.serving.result import Result
from gateway.serving.strategies.base import LiveStream, Stages, kept_alive
from gateway.serving.strategies.fanout import deadline, fan_out
from ranking.filters import cheap_reasons
from router.chunk_log import ChunkLog
from router.miner_client import MinerCalls, Reply
from router.wire import InvalidReply, StreamAnswer, chunk_object, first_choice, holds_back

DONE = None
# A live stream is judged once it has said this much: enough for refusal boilerplate
# ("As an AI language model, ...") or an echo to show, little enough to stay fast.
COMMIT_CHARS = 64


class Race:
    """The first usable reply wins; the others are settled once they are in."""

    def __init__(self, client: MinerCalls, stages: Stages) -> None:
        self.client = client
        self.stages = stages

    async def serve(self, plan: Plan) -> Result | LiveStream:
        """The first usable reply(s) (a live stream for plain streaming requests); 502/504."""
        if plan.live:
            return await LiveRace(self.client, self.stages, plan).start()
        return await kept_alive(plan, self._first(plan))

    async def _first(self, plan: Plan) -> Result:
        started = time.perf_counter()
        tasks = fan_out(self.client, plan, deadline(plan))
        chosen: list[Reply] = []
        try:
            for next_done in asyncio.as_completed(tasks):
                reply = await next_done
                if usable(plan, reply):
                    chosen.append(reply)
                    if len(chosen) == plan.n:
                        break
        except asyncio.CancelledError:  # the client left: what was in still counts
            self.stages.settler.settle_abandoned(plan, tasks)
            raise
        if not chosen:
            return await best_of_the_rest(self.stages, plan, [t.result() for t in tasks], started)
        result = self.stages.results.early(plan, chosen[0], tasks, started, chosen)
        self.stages.settler.settle_later(plan, tasks, chosen[0])
        return result


async def best_of_the_rest(
    stages: Stages, plan: Plan, replies: list[Reply], started: float
) -> Result:
    """No reply passed the cheap filters: the best ranked that says something; else 502/504."""
    ranking = await stages.judge.rank(plan, replies)
    speaking = [
        replies[i]
        for i in best_indexes(ranking.rewards, replies, len(replies))
        if replies[i].text.strip()
    ][: plan.n]
    if not speaking:
        raise await stages.settler.failed(plan, replies)
    result = stages.results.ranked(plan, speaking[0], replies, ranking, started, speaking)
    stages.settler.settle(plan, replies, ranking, speaking[0])
    return result


class LiveRace:
    """Streams from every miner at once and forwards the first that passes the cheap filters."""

    def __init__(self, client: MinerCalls, stages: Stages, plan: Plan) -> None:
        self.client = client
        self.stages = stages
        self.settler = stages.settler
        self.plan = plan
        # Chunks travel and wait as bytes (`ChunkLog`): parsed, a chunk can cost ~24x them.
        self.events: asyncio.Queue[tuple[int, bytes | None]] = asyncio.Queue()
        self.buffered: dict[int, ChunkLog] = {}
        self.tasks: dict[int, asyncio.Task[Reply]] = {}
        self.started = time.perf_counter()
        self.winner: int | None = None
        self.winner_finished = False
        self.first_text: dict[int, float] = {}
        self.heard: dict[int, StreamAnswer] = {}

    async def _stream_one(self, index: int, until: float) -> Reply:
        neuron = self.plan.candidates[index]
        try:
            return await self.client.stream(
                neuron,
                self.plan.kind,
                self.plan.body,
                until,
                sink=self._heard,
            )
        finally:
            self.events.put_nowait((neuron.uid, DONE))

    def _heard(self, uid: int, data: bytes) -> None:
        """Queue a chunk, unless another miner already won (the loser is still read whole)."""
        if self.winner is None or uid == self.winner:
            self.events.put_nowait((uid, data))

    async def start(self) -> LiveStream:
        """Wait for the first miner whose stream passes the cheap filters; 502/504 if none."""
        first = await self._first()
        if isinstance(first, Result):
            return LiveStream(first.headers(), replay(first))
        uid, chunks = first
        self.winner = uid
        self.buffered.clear()  # the losers' early chunks: they are read whole, not sent
        return LiveStream(self.headers(uid), self.forward(uid, chunks))

    def _passes_so_far(self, uid: int, chunk: dict[str, Any]) -> bool:
        """Whether this stream, with this chunk, has said enough, and nothing a race refuses."""
        heard = self.heard.setdefault(uid, StreamAnswer(self.plan.kind))
        if heard.size >= COMMIT_CHARS:
            return False  # judged once, when it first said enough; now only when it ends
        try:
            heard.add(chunk)
        except InvalidReply:
            return False  # the miner client ends this stream as invalid
        if heard.size < COMMIT_CHARS:
            return False
        return not cheap_reasons(self.plan.prompt, judged(uid, heard.answer))

    async def _first(self) -> tuple[int, ChunkLog] | Result:
        until = deadline(self.plan)
        create = asyncio.get_running_loop().create_task
        for i, neuron in enumerate(self.plan.candidates):
            self.tasks[neuron.uid] = create(self._stream_one(i, until))
        finished = 0
        try:
            while finished < len(self.tasks):
                uid, data = await self.events.get()
                if data is DONE:
                    finished += 1
                    reply = self.tasks[uid].result()
                    if usable(self.plan, reply):
                        self.winner_finished = True
                        self.first_text.setdefault(uid, time.perf_counter())
                        return uid, reply.chunks
                    continue
                self.buffered.setdefault(uid, ChunkLog()).append(data)
                if self._passes_so_far(uid, orjson.loads(data)):
                    self.first_text[uid] = time.perf_counter()
                    return uid, self.buffered[uid]
        except BaseException:  # the client left: what was in still counts
            self.settler.settle_abandoned(self.plan, list(self.tasks.values()))
            raise
        replies = [t.result() for t in self.tasks.values()]
        return await best_of_the_rest(self.stages, self.plan, replies, self.started)

    async def forward(self, uid: int, first: ChunkLog) -> AsyncGenerator[bytes, None]:
        """The winner's chunks as they come; its last one carries the `bitgate` block."""
        reply: Reply | None = None
        tasks = list(self.tasks.values())
        held = ChunkLog()
        try:
            for early in first:
                event = self._pass(early, held)
                if event is not None:
                    yield event
            while not self.winner_finished:
                event_uid, data = await self.events.get()
                if event_uid != uid:
                    continue
                if data is DONE:
                    self.winner_finished = True
                    break
                event = self._pass(orjson.loads(data), held)
                if event is not None:
                    yield event
            reply = await self.tasks[uid]
            block = self.stages.results.early(self.plan, reply, tasks, self.started).block()
            if not reply.ok:
                # Text already sent cannot be taken back: say the stream broke, as OpenAI does.
                message = f"The chosen miner's stream broke off ({reply.status}: {reply.error})."
                body = error_body(message, "upstream_error", None, "miner_stream_failed")
                yield sse_event({**body, "bitgate": block})
                return
            last = self._closing(reply)
            for i, chunk in enumerate(held):
                if i == len(held) - 1:
                    last = chunk
                else:
                    yield sse_event(chunk)
            yield sse_event({**last, "bitgate": block})
            yield SSE_DONE
        finally:
            if reply is not None:
                self.settler.settle_later(self.plan, tasks, reply)
            else:
                self.settler.settle_abandoned(self.plan, tasks)

    def headers(self, uid: int) -> dict[str, str]:
        """The `x-bitgate-*` headers once the winner is known (overhead: since its text came)."""
        overhead_ms = (time.perf_counter() - self.first_text.get(uid, time.perf_counter())) * 1e3
        return {"x-bitgate-miner-uid": str(uid), "x-bitgate-overhead-ms": f"{overhead_ms:.3f}"}

    def _rename(self, chunk: dict[str, Any]) -> dict[str, Any]:
        return {**chunk, "model": self.plan.pool.name}

    def _pass(self, chunk: dict[str, Any], held: ChunkLog) -> bytes | None:
        """The event to send now for a chunk, or None: a finish or usage chunk is held back
        (the last one carries the block), a usage chunk the client did not ask for dropped."""
        renamed = self._rename(chunk)
        if not holds_back(renamed):
            return sse_event(renamed)
        if first_choice(renamed) is not None or (
            self.plan.include_usage and renamed.get("usage") is not None
        ):
            held.append(orjson.dumps(renamed))
        return None

    def _closing(self, reply: Reply) -> dict[str, Any]:
        """A closing chunk with the finish reason, for a miner that sent none."""
        last = reply.chunks.last() or {}
        finish = reply.finish_reason or "stop"
        choice: dict[str, Any] = {"index": 0, "finish_reason": finish}
        if self.plan.kind == "chat":
            choice["delta"] = {}
        else:
            choice["text"] = ""
        return {
            "id": last.get("id", "bitgate"),
            "object": chunk_object(self.plan.kind),
            "created": last.get("created", int(time.time())),
            "model": self.plan.pool.name,
            "choices": [choice],
        }
