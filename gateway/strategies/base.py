"""The interface every serving strategy implements, and the fan-out they share."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Protocol

from gateway.pipeline import Result, Settler
from gateway.plan import Plan
from router.miner_client import MinerClient, Reply


@dataclass(slots=True)
class LiveStream:
    """A response already under way: its `x-bitgate-*` headers and its SSE events."""

    headers: dict[str, str]
    events: AsyncGenerator[bytes, None]


# What a strategy hands the route: a finished result (sent as JSON, or replayed as a
# stream), or a stream that forwards a miner's chunks as they come.
Served = Result | LiveStream


class Strategy(Protocol):
    """How one request is served: whom to wait for, and when to stop."""

    async def serve(self, plan: Plan) -> Served:
        """Ask the plan's candidates and return the reply to send; raises the 5xx errors."""
        ...


class StrategyFactory(Protocol):
    """A strategy class: built once per app from the miner client and the settler."""

    def __call__(self, client: MinerClient, settler: Settler) -> Strategy: ...


def deadline(plan: Plan) -> float:
    """The loop time by which every miner call of the plan ends."""
    return asyncio.get_running_loop().time() + plan.timeout_s


def fan_out(client: MinerClient, plan: Plan, until: float) -> list[asyncio.Task[Reply]]:
    """One non-streaming call to each candidate, all at once, in the candidates' order."""
    create = asyncio.get_running_loop().create_task
    return [create(client.complete(n, plan.kind, plan.body, until)) for n in plan.candidates]
