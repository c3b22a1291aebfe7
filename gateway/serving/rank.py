"""Ranking a request's replies: the plan's ranker within its time, a fallback when it fails,
and choosing the best distinct replies from the rewards."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from gateway.runtime.metrics import Metrics
from gateway.serving.candidates import candidate_of
from gateway.serving.plan import Plan
from ranking.base import Candidate, Ranker, Ranking
from ranking.filters import cheap_reasons
from router.miner_client import Reply

logger = logging.getLogger(__name__)

MIN_RANK_S = 2.0


class Judge:
    """Ranks replies with the plan's ranker; any failure of it ranks with the fallback."""

    def __init__(self, metrics: Metrics, fallback: Ranker) -> None:
        self.metrics = metrics
        self.fallback = fallback

    async def _score(self, plan: Plan, candidates: list[Candidate]) -> Ranking:
        """The plan's ranker, bounded in time; any failure falls back to the fallback ranker."""
        try:
            async with asyncio.timeout(max(plan.timeout_s, MIN_RANK_S)):
                return await plan.ranker.score(plan.prompt, candidates)
        except Exception as exc:  # a ranker must never fail a request the miners answered
            name, fallback = plan.ranker.name, self.fallback.name
            logger.warning("ranker %s failed, ranking with %s: %r", name, fallback, exc)
            self.metrics.ranker_fallbacks.labels(plan.ranker.name, type(exc).__name__).inc()
            ranking = await self.fallback.score(plan.prompt, candidates)
            ranking.ranked_by = fallback
            ranking.note = f"{name} failed: {type(exc).__name__}"
            return ranking

    async def rank(self, plan: Plan, replies: Sequence[Reply]) -> Ranking:
        """Rewards for valid replies (0 for the rest), from the plan's ranker."""
        valid = [r for r in replies if r.ok]
        rewards = [0.0] * len(replies)
        reasons: list[list[str]] = [[] for _ in replies]
        if not valid:
            return Ranking(rewards, reasons)
        started = time.perf_counter()
        candidates = [candidate_of(r) for r in valid]
        ranking = await self._score(plan, candidates)
        self.metrics.ranking_latency.labels(plan.pool.name, plan.ranker.name).observe(
            time.perf_counter() - started
        )
        ranked_by = ranking.ranked_by or plan.ranker.name
        self.metrics.rankings.labels(plan.ranker.name, ranked_by).inc()
        by_uid = {c.uid: i for i, c in enumerate(candidates)}
        for i, reply in enumerate(replies):
            j = by_uid.get(reply.neuron.uid)
            if j is not None and reply.ok:
                rewards[i] = ranking.rewards[j]
                reasons[i] = ranking.reasons[j] if ranking.reasons else []
        return Ranking(rewards, reasons, ranked_by, ranking.note)


def usable(plan: Plan, reply: Reply) -> bool:
    """A reply a race may return at once: valid, and passing the cheap filters (empty, echo,
    refusal, and the request's schema and tool checks)."""
    return reply.ok and not cheap_reasons(plan.prompt, candidate_of(reply))


def best_indexes(rewards: Sequence[float], replies: Sequence[Reply], n: int = 1) -> list[int]:
    """The `n` valid replies with the highest rewards (ties: lower latency), none saying
    the same thing as a better one; at least the best one."""
    valid = sorted(
        (i for i, r in enumerate(replies) if r.ok),
        key=lambda i: (-rewards[i], replies[i].latency_ms),
    )
    picked: list[int] = []
    seen: set[str] = set()
    for i in valid:
        said = " ".join(replies[i].text.split())
        if said in seen:
            continue
        seen.add(said)
        picked.append(i)
        if len(picked) == n:
            break
    return picked
