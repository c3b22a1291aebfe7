"""What every strategy shares: ranking with a fallback, the result and its block, settling."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from gateway.candidates import candidate_of
from gateway.errors import AllMinersBusy, AllMinersFailed, DeadlinePassed
from gateway.metrics import Metrics
from gateway.plan import Plan
from gateway.protocol import BitgateBlock, CandidateBlock, MinerRef, StopReason
from gateway.request_log import settled
from gateway.stop_rule import WinHistory
from gateway.usage import fanout_tokens
from ranking.base import Candidate, Ranker, Ranking
from ranking.filters import cheap_reasons
from router.metagraph import Neuron
from router.miner_client import Reply
from router.scores import Scoreboard
from router.stats import Outcome

logger = logging.getLogger(__name__)

MIN_RANK_S = 2.0


@dataclass(slots=True)
class Result:
    """The chosen reply of one request, with what every candidate did."""

    plan: Plan
    winner: Reply
    replies: list[Reply]
    rewards: dict[int, float] = field(default_factory=dict)
    reasons: dict[int, list[str]] = field(default_factory=dict)
    overhead_ms: float = 0.0
    pending: list[Neuron] = field(default_factory=list)
    ranker: str = ""  # the ranker that actually ranked, as `Ranking.label` gives it
    # With n > 1, the replies returned as choices 0..n-1 (the winner first).
    choices: list[Reply] = field(default_factory=list)
    # Why waiting stopped (None: every reply was in, or the deadline took the rest).
    stopped: StopReason | None = None

    @property
    def chosen(self) -> list[Reply]:
        """The replies sent back, one per choice."""
        return self.choices or [self.winner]

    def block(self) -> BitgateBlock:
        """The `bitgate` block of the response."""
        plan = self.plan
        block: BitgateBlock = {
            "pool": plan.pool.name,
            "strategy": plan.strategy,
            "ranker": self.ranker or plan.ranker.name,
            "miner": miner_ref(self.winner),
            "candidates": [self._candidate(r) for r in self.replies]
            + [{"uid": n.uid, "hotkey": n.hotkey, "status": "pending"} for n in self.pending],
            "overhead_ms": round(self.overhead_ms, 3),
            "fanout_usage": fanout_tokens(self.replies, plan.prompt.text).block(len(self.replies)),
        }
        block["width"] = {
            "asked": len(plan.candidates),
            "sample": plan.sample,
            "why": plan.width_why,
        }
        block["wait"] = {
            "mode": plan.wait,
            "replies": len(self.replies),
            "stopped": self.stopped or stop_reason(self.replies),
            "queue_ms": plan.queue_ms,
        }
        if plan.n > 1:
            block["choices"] = [{"index": i, **miner_ref(r)} for i, r in enumerate(self.chosen)]
        return block

    def _candidate(self, reply: Reply) -> CandidateBlock:
        uid = reply.neuron.uid
        entry: CandidateBlock = {
            "uid": uid,
            "hotkey": reply.neuron.hotkey,
            "status": reply.status,
            "latency_ms": round(reply.latency_ms, 3),
            "reward": self.rewards.get(uid),
        }
        if reply.error:
            entry["error"] = reply.error
        if self.reasons.get(uid):
            entry["reasons"] = self.reasons[uid]
        return entry

    def headers(self) -> dict[str, str]:
        """The `x-bitgate-*` response headers."""
        return {
            "x-bitgate-miner-uid": str(self.winner.neuron.uid),
            "x-bitgate-overhead-ms": f"{self.overhead_ms:.3f}",
        }


def stop_reason(replies: Sequence[Reply]) -> StopReason:
    """Why a wait that heard every miner ended: `deadline` if it took one, else `all`."""
    return "deadline" if any(r.status == "timeout" for r in replies) else "all"


def miner_ref(reply: Reply) -> MinerRef:
    """Who answered: uid, hotkey, and the model the miner reported."""
    model = reply.body.get("model") if reply.body else None
    if model is None and reply.chunks:
        model = reply.chunks[0].get("model")
    return {"uid": reply.neuron.uid, "hotkey": reply.neuron.hotkey, "model": model}


def failure_error(
    replies: Sequence[Reply],
) -> AllMinersFailed | AllMinersBusy | DeadlinePassed:
    """504 when the deadline took every miner, else 502."""
    statuses = ", ".join(f"uid {r.neuron.uid}: {r.status}" for r in replies)
    if replies and all(r.status == "timeout" for r in replies):
        return DeadlinePassed(f"No miner answered before the deadline ({statuses}).")
    if replies and all(r.status == "busy" for r in replies):
        busy = f"Every miner asked is busy ({statuses}); retry shortly."
        return AllMinersBusy(busy, headers={"Retry-After": "1"})
    return AllMinersFailed(f"No miner gave a usable reply ({statuses}).")


def usable(plan: Plan, reply: Reply) -> bool:
    """A reply a race may return at once: valid, and passing the cheap filters (empty, echo,
    refusal, and the request's schema and tool checks)."""
    return reply.ok and not cheap_reasons(plan.prompt, candidate_of(reply, plan.kind))


def _said(reply: Reply) -> str:
    """What a reply says, for telling two replies apart."""
    return " ".join(reply.text.split())


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
        said = _said(replies[i])
        if said in seen:
            continue
        seen.add(said)
        picked.append(i)
        if len(picked) == n:
            break
    return picked


def cancel_all(tasks: Iterable[asyncio.Task[Reply]]) -> None:
    """Cancel every miner call."""
    for task in tasks:
        task.cancel()


async def gather_or_cancel(tasks: Sequence[asyncio.Task[Reply]]) -> list[Reply]:
    """Every task's reply; if the caller is cancelled, the miner calls are cancelled too."""
    try:
        return list(await asyncio.gather(*tasks))
    except asyncio.CancelledError:
        cancel_all(tasks)
        raise


class Settler:
    """Ranks replies, builds results and settles scores; keeps the settle tasks it starts."""

    def __init__(self, scoreboard: Scoreboard, metrics: Metrics, fallback: Ranker) -> None:
        self.scoreboard = scoreboard
        self.metrics = metrics
        self.fallback = fallback
        # Per-request work, apart from the app's long-lived loops: cancelled on shutdown,
        # and never a sign of the gateway's health.
        self.settling: set[asyncio.Task[None]] = set()
        # Who beat whom, from every settled ranking: adaptive waits read it (gateway.stop_rule).
        self.history = WinHistory()

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
        # Bounded in size (gateway.candidates), with their tool calls and token counts.
        candidates: list[Candidate] = [candidate_of(r, plan.kind) for r in valid]
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

    def result(
        self,
        plan: Plan,
        winner: Reply,
        replies: list[Reply],
        ranking: Ranking,
        started: float,
        choices: list[Reply] | None = None,
    ) -> Result:
        """The result once every reply is in; overhead is what came after the slowest."""
        uids = [r.neuron.uid for r in replies]
        result = Result(
            plan,
            winner,
            replies,
            choices=choices or [],
            rewards={
                u: round(w, 6)
                for u, w, r in zip(uids, ranking.rewards, replies, strict=True)
                if r.ok
            },
            reasons={u: rs for u, rs in zip(uids, ranking.reasons, strict=True) if rs},
            ranker=ranking.label(plan.ranker.name),
        )
        slowest_ms = max(r.latency_ms for r in replies)
        result.overhead_ms = max((time.perf_counter() - started) * 1000.0 - slowest_ms, 0.0)
        self.metrics.overhead.labels(plan.pool.name).observe(result.overhead_ms / 1000.0)
        return result

    def early_result(
        self,
        plan: Plan,
        winner: Reply,
        tasks: Sequence[asyncio.Task[Reply]],
        started: float,
        choices: list[Reply] | None = None,
    ) -> Result:
        """A race's result before the others finish: they show as `pending`."""
        done = [t.result() for t in tasks if t.done() and not t.cancelled()]
        pending = [n for n, t in zip(plan.candidates, tasks, strict=True) if not t.done()]
        result = Result(plan, winner, done, pending=pending, choices=choices or [], stopped="first")
        result.overhead_ms = max((time.perf_counter() - started) * 1000.0 - winner.latency_ms, 0.0)
        self.metrics.overhead.labels(plan.pool.name).observe(result.overhead_ms / 1000.0)
        return result

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
        self.settle(plan, replies, await self.rank(plan, replies), None)
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
            ranking = await self.rank(plan, replies)
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
            return

        async def finish() -> None:
            self.settle(plan, finished, await self.rank(plan, finished), None)

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
