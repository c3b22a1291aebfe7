"""The interface every serving strategy implements, and the stages it serves with."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

from gateway.errors import GatewayError, error_body
from gateway.serving.plan import Plan
from gateway.serving.rank import Judge
from gateway.serving.replay import replay
from gateway.serving.responses import SSE_KEEPALIVE, sse_event
from gateway.serving.result import Result, Results
from gateway.serving.settle import Settler
from router.miner_client import MinerCalls


@dataclass(slots=True)
class LiveStream:
    """A response already under way: its `x-bitgate-*` headers and its SSE events."""

    headers: dict[str, str]
    events: AsyncGenerator[bytes, None]


# What a strategy hands the route: a finished result (sent as JSON, or replayed as a
# stream), or a stream that forwards a miner's chunks as they come.
Served = Result | LiveStream


@dataclass(frozen=True, slots=True)
class Stages:
    """What a strategy serves with, after its miner calls: rank, build the result, settle."""

    judge: Judge
    results: Results
    settler: Settler


class Strategy(Protocol):
    """How one request is served: whom to wait for, and when to stop."""

    async def serve(self, plan: Plan) -> Served:
        """Ask the plan's candidates and return the reply to send; raises the 5xx errors."""
        ...


class StrategyFactory(Protocol):
    """A strategy class: built once per app from the miner client and the stages."""

    def __call__(self, client: MinerCalls, stages: Stages) -> Strategy: ...


async def kept_alive(plan: Plan, serving: Coroutine[Any, Any, Result]) -> Result | LiveStream:
    """Serve; a streaming client whose reply takes longer than `plan.keepalive_s` gets the
    stream at once, with `: keep-alive` comments until the result is replayed.

    A fast failure keeps its status (502/504); once the stream has started, a failure is an
    OpenAI error event instead, as for a broken race stream.
    """
    task = asyncio.get_running_loop().create_task(serving)
    if not plan.client_stream:
        return await task
    try:
        done, _ = await asyncio.wait({task}, timeout=plan.keepalive_s)
    except asyncio.CancelledError:
        task.cancel()
        raise
    if done:
        return task.result()
    return LiveStream({}, _keep_alive(plan, task))


async def _keep_alive(plan: Plan, task: asyncio.Task[Result]) -> AsyncGenerator[bytes, None]:
    """Comments while the task runs, then its result replayed (or its error as an event)."""
    try:
        while True:
            yield SSE_KEEPALIVE
            done, _ = await asyncio.wait({task}, timeout=plan.keepalive_s)
            if done:
                break
        try:
            result = task.result()
        except GatewayError as exc:
            yield sse_event(error_body(exc.message, exc.type, exc.param, exc.code))
            return
        async for event in replay(result):
            yield event
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
