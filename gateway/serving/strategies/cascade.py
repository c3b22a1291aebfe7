"""`cascade`: ask the best-known miners first, widen only while the ranking is not confident.

FrugalGPT's cascade over a pool: the plan's candidates are ordered by win rate (then EMA
score), the first stage asks one, each further stage twice as many. After a stage
is in, the stop rule (gateway.serving.stop_rule) weighs the miners not yet asked as if they were
still out: when they are unlikely to beat the winner, no more are asked (`confident`).
Cold, with no history, it widens to every candidate, as best_of would.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

from gateway.protocol import StopReason
from gateway.serving.plan import Plan
from gateway.serving.rank import best_indexes, usable
from gateway.serving.result import Result, stop_reason
from gateway.serving.stop_rule import change_risk
from gateway.serving.strategies.base import LiveStream, Stages, kept_alive
from gateway.serving.strategies.fanout import deadline, fan_out, gather_or_cancel
from router.metagraph import Neuron
from router.miner_client import MinerCalls, Reply

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
        replies: list[Reply] = []
        asked = 0
        stage = max(FIRST_STAGE, plan.n)
        stopped: StopReason = "all"
        while asked < len(order):
            batch = order[asked : asked + stage]
            asked += len(batch)
            staged = replace(plan, candidates=batch)
            replies += await gather_or_cancel(fan_out(self.client, staged, until))
            if asked >= len(order) or loop.time() >= until:
                break
            if not any(usable(plan, r) for r in replies):
                stage *= 2
                continue
            ranking = await self.stages.judge.rank(plan, replies)
            winner = replies[best_indexes(ranking.rewards, replies)[0]]
            left_ms = max(until - loop.time(), 0.0) * 1000.0
            rest = [n.uid for n in order[asked:]]
            risk = self._risk(plan, winner.neuron.uid, rest, left_ms)
            if risk <= plan.wait_risk:
                stopped = "confident"
                break
            stage *= 2
        limits = getattr(self.client, "limits", None)  # a test's fake client has none
        if limits is not None:
            for neuron in order[asked:]:  # their slots were reserved by the plan
                limits.unreserve(neuron)
        heard = replace(plan, candidates=order[:asked])
        if not any(r.ok for r in replies):
            raise await self.settler.failed(heard, replies)
        ranking = await self.stages.judge.rank(heard, replies)
        chosen = [replies[i] for i in best_indexes(ranking.rewards, replies, plan.n)]
        why = stopped if stopped == "confident" else stop_reason(replies)
        result = self.stages.results.ranked(
            heard, chosen[0], replies, ranking, started, chosen, why
        )
        self.settler.settle(heard, replies, ranking, chosen[0])
        return result

    def _risk(self, plan: Plan, winner: int, rest: list[int], left_ms: float) -> float:
        stats = self.settler.scoreboard.stats(plan.pool.name)
        return change_risk(self.settler.history, plan.pool.name, winner, rest, stats, 0.0, left_ms)
