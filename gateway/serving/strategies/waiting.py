"""The adaptive wait of best_of and cascade: hear replies until the stop rule says enough.

Replies are ranked as they come only when the stop rule could act on it (as many usable
replies are in as choices asked for, and the best-known miner in hand could already be a
credible winner). With n > 1 the reply the stop rule weighs is the n-th best in hand: a
miner still out that beats it would change the choices. Once waiting stops,
the chosen reply goes back at once; the miners still out keep running, and their replies are
ranked with all the others and settled off the request path, as a race's are.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from gateway.protocol import StopReason
from gateway.serving.plan import Plan
from gateway.serving.rank import best_indexes, usable
from gateway.serving.result import Result, stop_reason
from gateway.serving.settle import Settler
from gateway.serving.stop_rule import BUDGET_RISK, MARGIN, budget_end, change_risk
from gateway.serving.strategies.base import Stages
from gateway.serving.strategies.fanout import cancel_all
from ranking.base import Ranking
from router.metagraph import Neuron
from router.miner_client import MinerCalls, Reply


@dataclass(slots=True)
class Heard:
    """What a wait heard: the replies in, their ranking, the winner, and why it stopped."""

    replies: list[Reply]
    ranking: Ranking | None
    winner: int | None  # index into replies
    stopped: StopReason


class Waiter:
    """One request's wait over its miner calls."""

    def __init__(
        self,
        stages: Stages,
        plan: Plan,
        tasks: Sequence[asyncio.Task[Reply]],
        client: MinerCalls | None = None,
    ) -> None:
        self.stages = stages
        self.settler = stages.settler
        self.plan = plan
        self.tasks = list(tasks)
        self.asked = list(plan.candidates)
        self.client = client
        self.spares = list(plan.spares)
        self.loop = asyncio.get_running_loop()
        self.start = self.loop.time()
        self.until = self.start + plan.timeout_s
        self.arrived: dict[int, float] = {}  # uid -> loop time its reply came
        self.heard: set[asyncio.Task[Reply]] = set()
        self.replies: list[Reply] = []
        self.unasked: list[int] = []  # miners a cascade may still ask: they can win too

    def ask(self, neurons: Sequence[Neuron], tasks: Sequence[asyncio.Task[Reply]]) -> None:
        """Add calls to the wait (a cascade's next stage)."""
        self.asked += neurons
        self.tasks += tasks

    def _risk(self, winner_uid: int, outstanding: list[int]) -> float:
        now = self.loop.time()
        history, pool = self.settler.history, self.plan.pool.name
        stats = self.settler.scoreboard.stats(pool)
        left_ms = max(self.until - now, 0.0) * 1000.0
        waited_ms = (now - self.start) * 1000.0
        risk = change_risk(history, pool, winner_uid, outstanding, stats, waited_ms, left_ms)
        if not self.unasked:
            return risk
        later = change_risk(history, pool, winner_uid, self.unasked, stats, 0.0, left_ms)
        return 1.0 - (1.0 - risk) * (1.0 - later)

    async def hear(self) -> Heard:
        """Wait until every reply asked for is in, the deadline, or the stop rule says stop."""
        pending: set[asyncio.Task[Reply]] = {t for t in self.tasks if t not in self.heard}
        replies = self.replies
        ranking: Ranking | None = None
        ranked_count = -1
        winner: int | None = None
        budget_at = math.inf
        try:
            while pending:
                timeout = None if math.isinf(budget_at) else max(budget_at - self.loop.time(), 0)
                done, pending = await asyncio.wait(
                    pending, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
                if not done:
                    return self._heard(replies, ranking, ranked_count, winner, "budget")
                for task in done:
                    self.heard.add(task)
                    reply = task.result()
                    self.arrived[reply.neuron.uid] = self.loop.time()
                    replies.append(reply)
                    if reply.status == "busy":
                        pending |= self._stand_in()
                if not pending:
                    break
                if not any(usable(self.plan, t.result()) for t in done):
                    continue
                out = self._outstanding(pending)
                hopeful = [r for r in replies if usable(self.plan, r)]
                if len(hopeful) < self.plan.n:
                    continue
                if min(self._risk(r.neuron.uid, out) for r in hopeful) > BUDGET_RISK:
                    continue  # not even the best-known reply in hand could stop the wait
                ranking = await self.stages.judge.rank(self.plan, replies)
                ranked_count = len(replies)
                chosen = best_indexes(ranking.rewards, replies, self.plan.n)
                if len(chosen) < self.plan.n:
                    continue  # fewer distinct replies than choices
                winner = chosen[0]
                weakest = replies[chosen[-1]]
                risk = self._risk(weakest.neuron.uid, out)
                if risk <= self.plan.wait_risk:
                    return self._heard(replies, ranking, ranked_count, winner, "confident")
                budget_at = math.inf
                if risk <= BUDGET_RISK:
                    came = self.arrived[weakest.neuron.uid]
                    budget_at = budget_end(came, weakest.latency_ms, self.plan.wait_budget)
        except asyncio.CancelledError:
            cancel_all(self.tasks)
            raise
        return self._heard(replies, ranking, ranked_count, winner, stop_reason(replies))

    def _stand_in(self) -> set[asyncio.Task[Reply]]:
        """Ask a spare miner with room in place of one that said it is busy."""
        client = self.client
        limits = getattr(client, "limits", None)  # a test's fake client has none
        held = getattr(client, "backpressure", None)
        while client is not None and self.spares and self.loop.time() < self.until:
            neuron = self.spares.pop(0)
            if limits is not None and limits.room(neuron) <= 0:
                continue
            if held is not None and held.held(neuron, time.time()):
                continue
            call = client.complete(neuron, self.plan.kind, self.plan.body, self.until)
            task = self.loop.create_task(call)
            self.tasks.append(task)
            self.asked.append(neuron)
            return {task}
        return set()

    def _outstanding(self, pending: set[asyncio.Task[Reply]]) -> list[int]:
        return [n.uid for n, t in zip(self.asked, self.tasks, strict=True) if t in pending]

    def _heard(
        self,
        replies: list[Reply],
        ranking: Ranking | None,
        ranked_count: int,
        winner: int | None,
        stopped: StopReason,
    ) -> Heard:
        if ranked_count != len(replies):
            ranking, winner = None, None  # replies came since the last ranking
        return Heard(replies, ranking, winner, stopped)


async def settle_heard(
    stages: Stages, plan: Plan, waiter: Waiter, heard: Heard, started: float
) -> Result:
    """The result of a wait: the best reply heard (502/504 when none); the replies still
    out are ranked with every other and settled later."""
    replies = heard.replies
    plan = replace(plan, candidates=waiter.asked) if waiter.asked != plan.candidates else plan
    settler = stages.settler
    if not any(r.ok for r in replies):  # a wait stops early only once a reply is usable
        raise await settler.failed(plan, replies)
    ranking = heard.ranking or await stages.judge.rank(plan, replies)
    chosen = [replies[i] for i in best_indexes(ranking.rewards, replies, plan.n)]
    result = stages.results.ranked(
        plan, chosen[0], replies, ranking, started, chosen, heard.stopped
    )
    if len(replies) == len(waiter.tasks):
        settler.settle(plan, replies, ranking, chosen[0])
    else:
        result.pending = [
            n for n, t in zip(waiter.asked, waiter.tasks, strict=True) if t not in waiter.heard
        ]
        settler.settle_later(plan, waiter.tasks, chosen[0], agreement(settler, plan, chosen[0]))
    return result


def agreement(
    settler: Settler, plan: Plan, chosen: Reply
) -> Callable[[list[Reply], Ranking], None]:
    """Once every reply is ranked: count whether hearing them all would pick the same."""

    def compare(replies: list[Reply], ranking: Ranking) -> None:
        best = best_indexes(ranking.rewards, replies)[0]
        mine = next(i for i, r in enumerate(replies) if r.neuron.uid == chosen.neuron.uid)
        same = "true" if best == mine else "false"
        if same == "false" and ranking.rewards[best] - ranking.rewards[mine] <= MARGIN:
            same = "tied"  # as good, within the stop rule's margin
        settler.metrics.fanout.agreement.labels(plan.pool.name, same).inc()

    return compare
