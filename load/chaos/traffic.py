"""Open-loop traffic through nginx, one stream of requests per API key, every answer recorded."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass

import aiohttp

REQUEST_TIMEOUT_S = 30.0
MAX_INFLIGHT = 64
CUT = -1  # a stream that ended without `data: [DONE]`
UNREACHABLE = 0  # no HTTP answer at all


@dataclass(frozen=True, slots=True)
class Sent:
    """One request: when it left and came back (seconds on the run's clock), and its answer."""

    key: str
    start: float
    end: float
    status: int
    stream: bool

    @property
    def answered(self) -> bool:
        """A reply or a limit's refusal: what a client is owed."""
        return self.status in (200, 429)

    @property
    def failed(self) -> bool:
        """A 5xx, a cut stream or no answer."""
        return not self.answered and (self.status >= 500 or self.status <= 0)


@dataclass(frozen=True, slots=True)
class KeyLoad:
    """One API key's secret and the requests per second it sends."""

    name: str
    secret: str
    rate: float


async def _one(
    session: aiohttp.ClientSession, url: str, model: str, key: KeyLoad, n: int, t0: float
) -> Sent:
    stream = n % 4 == 3
    body = {
        "model": model,
        "messages": [{"role": "user", "content": f"chaos {key.name} {n}: say something"}],
        "max_tokens": 16,
        "stream": stream,
    }
    headers = {"Authorization": f"Bearer {key.secret}"}
    start = time.monotonic() - t0
    status = UNREACHABLE
    try:
        async with session.post(url, json=body, headers=headers) as resp:
            status = resp.status
            if stream and status == 200:
                done = False
                async for line in resp.content:
                    done = done or line.strip() == b"data: [DONE]"
                status = 200 if done else CUT
            else:
                await resp.read()
    except (aiohttp.ClientError, TimeoutError):
        status = CUT if status == 200 else UNREACHABLE
    return Sent(key.name, start, time.monotonic() - t0, status, stream)


async def drive(
    base_url: str, model: str, keys: list[KeyLoad], stop: asyncio.Event, t0: float
) -> list[Sent]:
    """Send each key's requests at its rate until `stop` is set; wait for all to finish."""
    url = base_url + "/v1/chat/completions"
    limit = asyncio.Semaphore(MAX_INFLIGHT)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    tasks: list[asyncio.Task[Sent]] = []

    async def bounded(key: KeyLoad, n: int) -> Sent:
        async with limit:
            return await _one(session, url, model, key, n, t0)

    async def schedule(key: KeyLoad) -> None:
        begin, n = time.monotonic(), 0
        while not stop.is_set():
            tasks.append(asyncio.create_task(bounded(key, n)))
            n += 1
            wait = begin + n / key.rate - time.monotonic()
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), wait)

    connector = aiohttp.TCPConnector(limit=MAX_INFLIGHT)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        await asyncio.gather(*(schedule(k) for k in keys))
        return list(await asyncio.gather(*tasks))
