"""Settling: every reply's reward into the miners' scores and the metrics, at once or, for
replies still out when the answer left, in background tasks this stage owns."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from gateway.door.request_log import settled
from gateway.errors import AllMinersBusy, AllMinersFailed, DeadlinePassed
from gateway.runtime.metrics import Metrics
from gateway.serving.plan import Plan
from gateway.serving.rank import Judge
from gateway.serving.result import failure_error
from gateway.serving.stop_rule import WinHistory
from gateway.serving.strategies.fanout import cancel_all, gather_or_cancel
from ranking.base import Ranking
from router.miner_client import Reply
from router.scores import Scoreboard
from router.stats import Outcome

logger = logging.getLogger(__name__)


class Settler:
    """Feeds rewards into the scores; keeps the settle tasks it starts and stops them."""

    def __init__(self, scoreboard: Scoreboard, metrics: Metrics, judge: Judge) -> None:
        self.scoreboard = scoreboard
        self.metrics = metrics
        self.judge = judge
        # Per-request work, apart from the app's long-lived loops: cancelled on shutdown,
        # and never a sign of the gateway's health.
        self.settling: set[asyncio.Task[None]] = set()
        # Who beat whom, from every settled ranking: adaptive waits read it (stop_rule).
        self.history = WinHistory()

    def settle(
        self, plan: Plan, replies: Sequence[Reply], ranking: Ranking, winner: Reply | None
    ) -> None:
        """Feed every reply's reward into the scores, and count it in the metrics."""
        pool = plan.pool.name
        m = self.metrics
        outcomes = []
        for reply, reward in zip(replies, ranking.rewards, strict=True):
            uid = reply.neuron.uid
            won = winner is not None and reply.neuron.uid == winner.neuron.uid
            outcomes.append(
                Outcome(uid, reply.neuron.hotkey, reply.status, reward, reply.latency_ms, won)
            )
            m.observe_miner(pool, uid, reply.status, reply.latency_ms / 1000.0, won)
            if reply.ok:
                m.rewards.labels(pool, plan.ranker.name).observe(reward)
        self.scoreboard.record(pool, outcomes)
        self.history.record(pool, replies, ranking.rewards)
        settled(plan, replies, winner)

    async def failed(
        self, plan: Plan, replies: Sequence[Reply]
    ) -> AllMinersFailed | AllMinersBusy | DeadlinePassed:
        """Settle a request no miner answered usably, and the error to raise for it."""
        self.settle(plan, replies, await self.judge.rank(plan, replies), None)
        return failure_error(replies)

    def settle_later(
        self,
        plan: Plan,
        tasks: Sequence[asyncio.Task[Reply]],
        winner: Reply,
        on_ranked: Callable[[list[Reply], Ranking], None] | None = None,
    ) -> None:
        """In the background: collect every reply, rank them all (`on_ranked` sees the
        ranking), and settle scores."""

        async def finish() -> None:
            replies = await gather_or_cancel(tasks)
            ranking = await self.judge.rank(plan, replies)
            if on_ranked is not None:
                on_ranked(replies, ranking)
            self.settle(plan, replies, ranking, winner)

        self._in_background(finish())

    def settle_abandoned(self, plan: Plan, tasks: Sequence[asyncio.Task[Reply]]) -> None:
        """The client left: stop the miner calls still running (they owe nothing), and settle
        in the background the replies that were already in."""
        cancel_all(tasks)
        finished = [t.result() for t in tasks if t.done() and not t.cancelled()]
        if not finished:
            settled(plan, [], None)  # nothing to score; the key's held slot is freed
            return

        async def finish() -> None:
            self.settle(plan, finished, await self.judge.rank(plan, finished), None)

        self._in_background(finish())

    def _in_background(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.settling.add(task)
        task.add_done_callback(self._settled)

    def _settled(self, task: asyncio.Task[None]) -> None:
        self.settling.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("background settle failed", exc_info=task.exception())

    async def stop(self) -> None:
        """Cancel the settle tasks still running, and wait for them to unwind."""
        tasks = list(self.settling)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
