"""`best_of`: hear the miners that can still win (or every one), rank, return the best.

With `wait: adaptive` (the default) waiting stops once the miners still out are unlikely to
change the winner (n > 1: the n chosen), or the wait budget is spent
(`gateway.serving.stop_rule`); with `wait: all` every miner is heard (or the deadline passes).
"""

from __future__ import annotations

import time

from gateway.serving.plan import Plan
from gateway.serving.rank import best_indexes
from gateway.serving.result import Result
from gateway.serving.strategies.base import LiveStream, Stages, kept_alive
from gateway.serving.strategies.fanout import deadline, fan_out, gather_or_cancel
from gateway.serving.strategies.waiting import Waiter, settle_heard
from router.miner_client import MinerCalls


class BestOf:
    """The best reply of those heard; the rest are ranked and settled when they are in."""

    def __init__(self, client: MinerCalls, stages: Stages) -> None:
        self.client = client
        self.stages = stages

    async def serve(self, plan: Plan) -> Result | LiveStream:
        """The best valid reply (n > 1: the best n distinct); 502/504 when there is none.

        A streaming client gets keep-alive comments while the miners are out, and the
        chosen reply as soon as it is chosen.
        """
        if plan.wait == "adaptive":
            return await kept_alive(plan, self._adaptive(plan))
        return await kept_alive(plan, self._best(plan))

    async def _adaptive(self, plan: Plan) -> Result:
        started = time.perf_counter()
        tasks = fan_out(self.client, plan, deadline(plan))
        waiter = Waiter(self.stages, plan, tasks, self.client)
        return await settle_heard(self.stages, plan, waiter, await waiter.hear(), started)

    async def _best(self, plan: Plan) -> Result:
        started = time.perf_counter()
        replies = await gather_or_cancel(fan_out(self.client, plan, deadline(plan)))
        judge, results, settler = self.stages.judge, self.stages.results, self.stages.settler
        if not any(r.ok for r in replies):
            raise await settler.failed(plan, replies)
        ranking = await judge.rank(plan, replies)
        chosen = [replies[i] for i in best_indexes(ranking.rewards, replies, plan.n)]
        result = results.ranked(plan, chosen[0], replies, ranking, started, chosen)
        settler.settle(plan, replies, ranking, chosen[0])
        return result
