"""In-process stand-ins for the strategies' collaborators: miners, a ranker, a plan."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from gateway.config import PoolConfig
from gateway.runtime.metrics import Metrics
from gateway.runtime.pools import Pool
from gateway.serving.plan import Plan
from gateway.serving.rank import Judge
from gateway.serving.result import Results
from gateway.serving.settle import Settler
from gateway.serving.strategies.base import Stages
from ranking.base import Candidate, Prompt, Ranking
from router.chunk_log import ChunkLog
from router.metagraph import Axon, FileMetagraphSource, Metagraph, Neuron
from router.miner_client import (
    JSON_REQUEST_HEADERS,
    STREAM_REQUEST_HEADERS,
    ChunkSink,
    Headers,
    Kind,
    MinerCalls,
    Reply,
)
from router.scores import Scoreboard
from router.stats import MinerStats, ScorePolicy, Status
from router.store import MemoryStore
from router.wire import StreamAnswer, answer_of

POOL = "sim"


@dataclass
class Script:
    """What one fake miner does: wait for `gate` (if any), then answer with `pieces`.

    A stream sends each piece as a chunk and, after the first, waits for `hold` (if any);
    it then ends as `status` (a failed stream keeps the chunks it sent).
    """

    pieces: Sequence[str] = ("Paris.",)
    status: Status = "ok"
    latency_ms: float = 10.0
    gate: asyncio.Event | None = None
    hold: asyncio.Event | None = None


def chunk(piece: str, model: str = "miner-model") -> dict[str, Any]:
    """One OpenAI chat stream chunk carrying `piece`."""
    delta = {"content": piece}
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
    }


def closing() -> dict[str, Any]:
    """The last chunk of a chat stream: no content, `finish_reason` stop."""
    return {**chunk(""), "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}


@dataclass
class FakeMiners:
    """A MinerClient in process: each uid follows its script; cancelled calls are noted."""

    scripts: dict[int, Script]
    waiting: list[int] = field(default_factory=list)
    cancelled: list[int] = field(default_factory=list)

    async def complete(
        self,
        neuron: Neuron,
        kind: Kind,
        body: bytes,
        deadline: float,
        headers: Headers = JSON_REQUEST_HEADERS,
    ) -> Reply:
        """One non-streaming call."""
        script = self.scripts[neuron.uid]
        await self._wait(neuron, script.gate)
        if script.status != "ok":
            return Reply(neuron, script.status, script.latency_ms, error=f"fake {script.status}")
        text = "".join(script.pieces)
        message = {"role": "assistant", "content": text}
        body_out = {
            "id": f"cmpl-{neuron.uid}",
            "object": "chat.completion",
            "model": "miner-model",
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        }
        raw = orjson.dumps(body_out)
        return Reply(neuron, "ok", script.latency_ms, answer_of(body_out, kind), raw)

    async def stream(
        self,
        neuron: Neuron,
        kind: Kind,
        body: bytes,
        deadline: float,
        sink: ChunkSink | None = None,
        headers: Headers = STREAM_REQUEST_HEADERS,
    ) -> Reply:
        """One streaming call; chunks go to `sink` as they are made."""
        script = self.scripts[neuron.uid]
        await self._wait(neuron, script.gate)
        sent = ChunkLog()
        for i, piece in enumerate(script.pieces):
            data = orjson.dumps(chunk(piece))
            sent.append(data)
            if sink is not None:
                sink(neuron.uid, data)
            await self._wait(neuron, script.hold if i == 0 else None)
        if script.status != "ok":
            error = f"fake {script.status}"
            return Reply(neuron, script.status, script.latency_ms, error=error, chunks=sent)
        heard = StreamAnswer(kind)
        for sent_chunk in [*sent, closing()]:
            heard.add(sent_chunk)
        return Reply(neuron, "ok", script.latency_ms, heard.answer, chunks=sent)

    async def _wait(self, neuron: Neuron, event: asyncio.Event | None) -> None:
        try:
            await asyncio.sleep(0)  # every call yields once, as a real one would
            if event is not None:
                self.waiting.append(neuron.uid)
                await event.wait()
        except asyncio.CancelledError:
            self.cancelled.append(neuron.uid)
            raise


@dataclass
class TextRanker:
    """Rewards each reply by its text, from a table (0.5 for text it does not know)."""

    rewards: dict[str, float] = field(default_factory=dict)
    name: str = "table"

    async def score(self, prompt: Prompt, candidates: Sequence[Candidate]) -> Ranking:
        """The table's reward for each candidate."""
        return Ranking([self.rewards.get(c.text, 0.5) for c in candidates])


def neuron(uid: int) -> Neuron:
    """A miner on loopback (never dialled: the fake client answers)."""
    return Neuron(uid=uid, hotkey=f"hk{uid}", axon=Axon(ip="127.0.0.1", port=9000 + uid))


def pool(uids: Sequence[int]) -> Pool:
    """A file pool of these miners (the file is never read)."""
    path = Path("unread-metagraph.json")
    graph = Metagraph(netuid=1, name=POOL, neurons=[neuron(u) for u in uids])
    return Pool(POOL, PoolConfig(metagraph=path), FileMetagraphSource(path), graph)


def plan(
    strategy: str,
    uids: Sequence[int],
    ranker: TextRanker | None = None,
    *,
    stream: bool = False,
) -> Plan:
    """A chat plan asking these miners, in this order."""
    return Plan(
        kind="chat",
        pool=pool(uids),
        strategy=strategy,  # type: ignore[arg-type]
        ranker=ranker or TextRanker(),
        timeout_s=5.0,
        candidates=[neuron(u) for u in uids],
        prompt=Prompt(text="capital of France?", last_user="capital of France?"),
        body=b"{}",
        client_stream=stream,
        include_usage=False,
        live=stream and strategy == "race",
    )


def stages() -> Stages:
    """The real stages over an in-memory scoreboard; the fallback ranker is a table."""
    metrics = Metrics()
    judge = Judge(metrics, TextRanker(name="fallback"))
    board = Scoreboard(MemoryStore(), ScorePolicy())
    return Stages(judge, Results(metrics), Settler(board, metrics, judge))


def stats(settled: Stages) -> dict[int, MinerStats]:
    """What the scoreboard learned of each miner."""
    return dict(settled.settler.scoreboard.stats(POOL))


async def drain(settled: Stages) -> None:
    """Wait until every background settle task has finished."""
    tasks = settled.settler.settling
    async with asyncio.timeout(10):
        while tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


async def until(done: Callable[[], bool]) -> None:
    """Let other tasks run until `done()` holds (bounded: a few hundred loop turns)."""
    for _ in range(500):
        if done():
            return
        await asyncio.sleep(0)
    raise AssertionError("the condition never held")


def _checked(miners: FakeMiners) -> MinerCalls:
    """mypy checks here that the fake has the real client's calls."""
    return miners
