"""`best_of`: wait for every miner (or the deadline), rank the replies, return the best."""

from __future__ import annotations

import time

from gateway.serving.plan import Plan
from gateway.serving.rank import best_indexes
from gateway.serving.result import Result
from gateway.serving.strategies.base import LiveStream, Stages, kept_alive
from gateway.serving.strategies.fanout import deadline, fan_out, gather_or_cancel
from router.miner_client import MinerCalls


class BestOf:
    """Every candidate is heard before one is chosen."""

    def __init__(self, client: MinerCalls, stages: Stages) -> None:
        self.client = client
        self.stages = stages

    async def serve(self, plan: Plan) -> Result | LiveStream:
        """The best valid reply (n > 1: the best n distinct); 502/504 when there is none.

        A streaming client gets keep-alive comments while the miners are out.
        """
        return await kept_alive(plan, self._best(plan))

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
