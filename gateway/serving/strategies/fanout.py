"""The fan-out every strategy shares: one call per candidate at once, under one deadline."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence

from gateway.serving.plan import Plan
from router.miner_client import MinerCalls, Reply


def deadline(plan: Plan) -> float:
    """The loop time by which every miner call of the plan ends."""
    return asyncio.get_running_loop().time() + plan.timeout_s


def fan_out(client: MinerCalls, plan: Plan, until: float) -> list[asyncio.Task[Reply]]:
    """One non-streaming call to each candidate, all at once, in the candidates' order."""
    create = asyncio.get_running_loop().create_task
    return [create(client.complete(n, plan.kind, plan.body, until)) for n in plan.candidates]


def cancel_all(tasks: Iterable[asyncio.Task[Reply]]) -> None:
    """Cancel every miner call."""
    for task in tasks:
        task.cancel()


async def gather_or_cancel(tasks: Sequence[asyncio.Task[Reply]]) -> list[Reply]:
    """Every task's reply; if the caller is cancelled, the miner calls are cancelled too."""
    try:
        return list(await asyncio.gather(*tasks))
    except asyncio.CancelledError:
        cancel_all(tasks)
        raise
