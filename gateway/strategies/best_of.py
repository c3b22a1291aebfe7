"""`best_of`: wait for every miner (or the deadline), rank the replies, return the best."""

from __future__ import annotations

import time
from collections.abc import Sequence

from gateway.pipeline import Result, Settler, gather_or_cancel
from gateway.plan import Plan
from gateway.strategies.base import deadline, fan_out
from router.miner_client import MinerClient, Reply


def best_index(rewards: Sequence[float], replies: Sequence[Reply]) -> int:
    """The valid reply with the highest reward; ties go to the lower latency."""
    valid = [i for i, r in enumerate(replies) if r.ok]
    return max(valid, key=lambda i: (rewards[i], -replies[i].latency_ms))


class BestOf:
    """Every candidate is heard before one is chosen."""

    def __init__(self, client: MinerClient, settler: Settler) -> None:
        self.client = client
        self.settler = settler

    async def serve(self, plan: Plan) -> Result:
        """The best valid reply; 502/504 when there is none."""
        started = time.perf_counter()
        replies = await gather_or_cancel(fan_out(self.client, plan, deadline(plan)))
        if not any(r.ok for r in replies):
            raise await self.settler.failed(plan, replies)
        ranking = await self.settler.rank(plan, replies)
        winner = replies[best_index(ranking.rewards, replies)]
        result = self.settler.result(plan, winner, replies, ranking, started)
        self.settler.settle(plan, replies, ranking, winner)
        return result
