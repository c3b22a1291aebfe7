"""`cascade`: ask the best-known miners first, widen only while the ranking is not confident.

FrugalGPT's cascade over a pool: the plan's candidates are ordered by win rate (then EMA
score), the first stage asks one, each further stage twice as many. While a stage is out,
the stop rule (gateway.serving.stop_rule) weighs its miners still out and the miners not yet
asked; once a stage is in, those not yet asked. When they are unlikely to beat the winner,
no more are waited for or asked (`confident`); a stage's late replies are settled off the
path, as best_of's are. Cold, with no history, it widens to every candidate, as best_of would.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

from gateway.serving.plan import Plan
from gateway.serving.rank import best_indexes, usable
from gateway.serving.result import Result
from gateway.serving.stop_rule import change_risk
from gateway.serving.strategies.base import LiveStream, Stages, kept_alive
from gateway.serving.strategies.fanout import deadline, fan_out
from gateway.serving.strategies.waiting import Waiter, settle_heard
from router.metagraph import Neuron
from router.miner_client import MinerCalls

FIRST_STAGE = 1


class Cascade:
    """Fewer miner calls per answer: the best-known first, more only when unsure."""

    def __init__(self, client: MinerCalls, stages: Stages) -> None:
        self.client = client
        self.stages = stages
        self.settler = stages.settler

    async def serve(self, plan: Plan) -> Result | LiveStream:
        """The best reply of the stages asked; 502/504 when no miner answered usably."""
        return await kept_alive(plan, self._cascade(plan))

    def _order(self, plan: Plan) -> list[Neuron]:
        stats = self.settler.scoreboard.stats(plan.pool.name)

        def key(n: Neuron) -> tuple[float, float]:
            s = stats.get(n.uid)
            if s is None or not s.requests:
                return (0.0, 0.0)
            return (-s.wins / s.requests, -s.score)

        return sorted(plan.candidates, key=key)

    async def _cascade(self, plan: Plan) -> Result:
        started = time.perf_counter()
        order = self._order(plan)
        until = deadline(plan)
        loop = asyncio.get_running_loop()
        waiter = Waiter(self.stages, replace(plan, candidates=[]), [], self.client)
        asked = 0
        stage = max(FIRST_STAGE, plan.n)
        while True:
            batch = order[asked : asked + stage]
            asked += len(batch)
            waiter.unasked = [n.uid for n in order[asked:]]
            waiter.ask(batch, fan_out(self.client, replace(plan, candidates=batch), until))
            heard = await waiter.hear()  # a stage stops early once no miner can still win
            if heard.stopped in ("confident", "budget") or asked >= len(order):
                break
            if loop.time() >= until:
                break
            replies = heard.replies
            if not any(usable(plan, r) for r in replies):
                stage *= 2
                continue
            ranking = await self.stages.judge.rank(plan, replies)
            winner = replies[best_indexes(ranking.rewards, replies)[0]]
            left_ms = max(until - loop.time(), 0.0) * 1000.0
            if self._risk(plan, winner.neuron.uid, waiter.unasked, left_ms) <= plan.wait_risk:
                heard = replace(heard, ranking=ranking, stopped="confident")
                break
            stage *= 2
        limits = getattr(self.client, "limits", None)  # a test's fake client has none
        if limits is not None:
            for neuron in order[asked:]:  # their slots were reserved by the plan
                limits.unreserve(neuron)
        return await settle_heard(self.stages, plan, waiter, heard, started)

    def _risk(self, plan: Plan, winner: int, rest: list[int], left_ms: float) -> float:
        stats = self.settler.scoreboard.stats(plan.pool.name)
        return change_risk(self.settler.history, plan.pool.name, winner, rest, stats, 0.0, left_ms)
