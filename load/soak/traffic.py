"""The soak's requests: a weighted mix of what clients do, each kind one coroutine."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp
import orjson

QUESTION = "What is the capital of France?"
BIG_PROMPT_CHARS = 64 * 1024
DEEP_LEVELS = 300  # past the depth limit, and past the 254 levels orjson can write
DISCONNECT_AFTER_S = 0.05


@dataclass(slots=True)
class Outcome:
    """What one request did: its kind, the status seen (0: none), how long it took."""

    kind: str
    status: int
    latency_s: float


@dataclass(slots=True)
class Traffic:
    """Sends the mix's requests to one gateway."""

    session: aiohttp.ClientSession
    url: str
    model: str
    timeout_s: float = 30.0
    rng: random.Random = field(default_factory=lambda: random.Random(0))

    def chat(self, content: str = QUESTION, **extra: object) -> dict[str, object]:
        """A chat request body."""
        return {"model": self.model, "messages": [{"role": "user", "content": content}], **extra}

    async def _post(self, kind: str, body: dict[str, object] | bytes) -> Outcome:
        started = time.perf_counter()
        data = body if isinstance(body, bytes) else None
        payload = None if isinstance(body, bytes) else body
        async with self.session.post(
            self.url + "/v1/chat/completions",
            json=payload,
            data=data,
            headers={"content-type": "application/json"},
            timeout=aiohttp.ClientTimeout(total=self.timeout_s),
        ) as resp:
            await resp.read()
            return Outcome(kind, resp.status, time.perf_counter() - started)

    async def best_of(self) -> Outcome:
        """A plain request: every sampled miner is heard."""
        return await self._post("best_of", self.chat(bitgate={"strategy": "best_of"}))

    async def race(self) -> Outcome:
        """The first usable reply wins; the rest settle in the background."""
        return await self._post("race", self.chat(bitgate={"strategy": "race"}))

    async def big_prompt(self) -> Outcome:
        """A long prompt (the filters and rankers read a bounded part of it)."""
        words = " ".join(self.rng.choice(("alpha", "beta", "gamma", "delta")) for _ in range(64))
        text = (words + " ") * (BIG_PROMPT_CHARS // (len(words) + 1)) + QUESTION
        return await self._post("big_prompt", self.chat(text))

    async def deep_json(self) -> Outcome:
        """A body nested past the depth limit: a 400."""
        head = orjson.dumps(self.chat())[:-1]
        body = head + b', "metadata": ' + b"[" * DEEP_LEVELS + b"]" * DEEP_LEVELS + b"}"
        return await self._post("deep_json", body)

    async def stream(self) -> Outcome:
        """A live race stream, read to `[DONE]`."""
        started = time.perf_counter()
        body = self.chat(stream=True, bitgate={"strategy": "race"})
        async with self.session.post(
            self.url + "/v1/chat/completions",
            json=body,
            timeout=aiohttp.ClientTimeout(total=self.timeout_s),
        ) as resp:
            async for _ in resp.content:
                pass
            return Outcome("stream", resp.status, time.perf_counter() - started)

    async def stream_then_leave(self) -> Outcome:
        """A stream whose client closes the connection after the first event."""
        started = time.perf_counter()
        body = self.chat(stream=True, bitgate={"strategy": "race"})
        async with self.session.post(
            self.url + "/v1/chat/completions",
            json=body,
            timeout=aiohttp.ClientTimeout(total=self.timeout_s),
        ) as resp:
            status = resp.status
            await resp.content.readline()
            resp.close()
        return Outcome("stream_then_leave", status, time.perf_counter() - started)

    async def leave_early(self) -> Outcome:
        """A request whose client gives up before any reply."""
        started = time.perf_counter()
        try:
            async with asyncio.timeout(DISCONNECT_AFTER_S):
                return await self.best_of()
        except TimeoutError:
            return Outcome("leave_early", 0, time.perf_counter() - started)


Kind = Callable[[Traffic], Awaitable[Outcome]]
MIX: dict[str, tuple[float, Kind]] = {
    "best_of": (0.35, Traffic.best_of),
    "race": (0.15, Traffic.race),
    "stream": (0.2, Traffic.stream),
    "stream_then_leave": (0.08, Traffic.stream_then_leave),
    "leave_early": (0.07, Traffic.leave_early),
    "big_prompt": (0.1, Traffic.big_prompt),
    "deep_json": (0.05, Traffic.deep_json),
}
# What each kind should get; anything else (a 500 above all) is an error of the gateway.
# 502/504: every sampled miner was a faulty one; 503: every miner is cooling down after
# failures (a stalled machine makes even the good ones miss their deadline).
SERVED = {200, 502, 503, 504}
EXPECTED = {"deep_json": {400}, "leave_early": {0} | SERVED}


def pick(rng: random.Random) -> str:
    """One kind of request, drawn by the mix's weights."""
    kinds = list(MIX)
    return rng.choices(kinds, weights=[MIX[k][0] for k in kinds])[0]


def expected(outcome: Outcome) -> bool:
    """Whether the gateway answered this kind of request as it should."""
    return outcome.status in EXPECTED.get(outcome.kind, SERVED)
