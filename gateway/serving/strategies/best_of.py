"""`best_of`: wait for every miner (or the deadline), rank the replies, return the best."""

from __future__ import annotations

import time

from gateway.serving.pipeline import Result, Settler, best_indexes, gather_or_cancel
from gateway.serving.plan import Plan
from gateway.serving.strategies.base import LiveStream, deadline, fan_out, kept_alive
from router.miner_client import MinerClient


class BestOf:
    """Every candidate is heard before one is chosen."""

    def __init__(self, client: MinerClient, settler: Settler) -> None:
        self.client = client
        self.settler = settler

    async def serve(self, plan: Plan) -> Result | LiveStream:
        """The best valid reply (n > 1: the best n distinct); 502/504 when there is none.

        A streaming client gets keep-alive comments while the miners are out.
        """
        return await kept_alive(plan, self._best(plan))

    async def _best(self, plan: Plan) -> Result:
        started = time.perf_counter()
        replies = await gather_or_cancel(fan_out(self.client, plan, deadline(plan)))
        if not any(r.ok for r in replies):
            raise await self.settler.failed(plan, replies)
        ranking = await self.settler.rank(plan, replies)
        chosen = [replies[i] for i in best_indexes(ranking.rewards, replies, plan.n)]
        winner = chosen[0]
        result = self.settler.result(plan, winner, replies, ranking, started, chosen)
        self.settler.settle(plan, replies, ranking, winner)
        return result
