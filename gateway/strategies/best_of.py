"""`best_of`: hear the miners that can still win (or every one), rank, return the best.

With `wait: adaptive` (the default) waiting stops once the miners still out are unlikely to
change the winner, or the wait budget is spent (gateway.stop_rule); with `wait: all`, or
n > 1, every miner is heard (or the deadline passes).
"""

from __future__ import annotations

import time

from gateway.pipeline import Result, Settler, best_indexes, gather_or_cancel
from gateway.plan import Plan
from gateway.strategies.base import LiveStream, deadline, fan_out, kept_alive
from gateway.strategies.waiting import Waiter, noted, settle_heard
from router.miner_client import MinerClient


class BestOf:
    """The best reply of those heard; the rest are ranked and settled when they are in."""

    def __init__(self, client: MinerClient, settler: Settler) -> None:
        self.client = client
        self.settler = settler

    async def serve(self, plan: Plan) -> Result | LiveStream:
        """The best valid reply (n > 1: the best n distinct); 502/504 when there is none.

        A streaming client gets keep-alive comments while the miners are out, and the
        chosen reply as soon as it is chosen.
        """
        if plan.wait == "adaptive" and plan.n == 1:
            return await kept_alive(plan, self._adaptive(plan))
        return await kept_alive(plan, self._best(plan))

    async def _adaptive(self, plan: Plan) -> Result:
        started = time.perf_counter()
        tasks = fan_out(self.client, plan, deadline(plan))
        waiter = Waiter(self.settler, plan, tasks, self.client)
        return await settle_heard(self.settler, plan, waiter, await waiter.hear(), started)

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
        noted(self.settler, result)
        return result
