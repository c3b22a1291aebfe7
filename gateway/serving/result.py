"""A request's result: the chosen reply, what every candidate did, the `bitgate` block, and
the gateway's own overhead."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from gateway.door.request_log import CURRENT, chose
from gateway.door.usage import fanout_tokens
from gateway.errors import AllMinersBusy, AllMinersFailed, DeadlinePassed
from gateway.protocol import BitgateBlock, CandidateBlock, MinerRef, StopReason
from gateway.runtime.metrics import Metrics
from gateway.serving.plan import Plan
from ranking.base import Ranking
from router.metagraph import Neuron
from router.miner_client import Reply


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
            "fanout_usage": fanout_tokens(self.replies, plan.prompt.text, len(plan.body)).block(
                len(self.replies)
            ),
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
    return {"uid": reply.neuron.uid, "hotkey": reply.neuron.hotkey, "model": reply.answer.model}


def failure_error(
    replies: Sequence[Reply],
) -> AllMinersFailed | AllMinersBusy | DeadlinePassed:
    """504 when the deadline took every miner, 503 when every one was busy, else 502."""
    statuses = ", ".join(f"uid {r.neuron.uid}: {r.status}" for r in replies)
    if replies and all(r.status == "timeout" for r in replies):
        return DeadlinePassed(f"No miner answered before the deadline ({statuses}).")
    if replies and all(r.status == "busy" for r in replies):
        busy = f"Every miner asked is busy ({statuses}); retry shortly."
        return AllMinersBusy(busy, headers={"Retry-After": "1"})
    return AllMinersFailed(f"No miner gave a usable reply ({statuses}).")


class Results:
    """Builds results and counts the gateway's overhead in each."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def ranked(
        self,
        plan: Plan,
        winner: Reply,
        replies: list[Reply],
        ranking: Ranking,
        started: float,
        choices: list[Reply] | None = None,
        stopped: StopReason | None = None,
    ) -> Result:
        """The result once the replies waited for are in; overhead is what came after the
        slowest of them."""
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
            stopped=stopped,
        )
        slowest_ms = max(r.latency_ms for r in replies)
        return self._timed(result, started, slowest_ms)

    def early(
        self,
        plan: Plan,
        winner: Reply,
        tasks: Sequence[asyncio.Task[Reply]],
        started: float,
        choices: list[Reply] | None = None,
    ) -> Result:
        """A result before every miner is in (a race): the others show as `pending`."""
        done = [t.result() for t in tasks if t.done() and not t.cancelled()]
        pending = [n for n, t in zip(plan.candidates, tasks, strict=True) if not t.done()]
        result = Result(plan, winner, done, pending=pending, choices=choices or [], stopped="first")
        return self._timed(result, started, winner.latency_ms)

    def _timed(self, result: Result, started: float, waited_ms: float) -> Result:
        result.overhead_ms = max((time.perf_counter() - started) * 1000.0 - waited_ms, 0.0)
        self.metrics.overhead.labels(result.plan.pool.name).observe(result.overhead_ms / 1000.0)
        chose(result.chosen)  # what the request's key is charged for
        self._count_wait(result)
        return result

    def _count_wait(self, result: Result) -> None:
        """Count and log how many replies the answer waited for and why waiting stopped."""
        plan = result.plan
        stopped = result.stopped or stop_reason(result.replies)
        fanout = self.metrics.fanout
        fanout.waited.labels(plan.pool.name, plan.strategy).observe(len(result.replies))
        fanout.stops.labels(plan.pool.name, plan.strategy, stopped).inc()
        record = CURRENT.get()
        if record is not None:
            record.fanout.update({"replies": len(result.replies), "stopped": stopped})
