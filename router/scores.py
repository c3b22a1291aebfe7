"""EMA scores and miner stats: read locally on the request path, written behind to the store."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Literal

from typing_extensions import TypedDict

from router.metagraph import Metagraph
from router.stats import MinerStats, Outcome, ScorePolicy, apply_outcome
from router.store import StateStore

logger = logging.getLogger(__name__)

MAX_PENDING = 20_000
# A sync round slower than this marks the store unhealthy (slow), though it answered.
SLOW_ROUND_S = 1.0
StoreState = Literal["ok", "slow", "down"]


class LeaderboardRow(TypedDict):
    """One miner of a pool as the gateway sees it (`GET /v1/pools/{pool}/miners`)."""

    uid: int
    hotkey: str
    incentive: float
    score: float  # EMA of its rewards
    requests: int
    wins: int
    success_rate: float | None
    p50_latency_ms: float | None
    cooling_down: bool
    cooling_until: float | None  # Unix time the cool-down ends
    serving: bool
    refused: str | None  # why the axon policy will not dial it (None: it may be dialled)
    validator_permit: bool
    weight: float  # this validator's weight on it at the last epoch
    concurrency: float | None  # its learned concurrency limit here (None: never called)
    in_flight: int  # calls to it in flight from this replica


class StatView(Mapping[int, float]):
    """One numeric field of every miner's stats, read on demand."""

    __slots__ = ("_field", "_stats")

    def __init__(self, stats: Mapping[int, MinerStats], field: str) -> None:
        self._stats = stats
        self._field = field

    def __getitem__(self, uid: int) -> float:
        return float(getattr(self._stats[uid], self._field))

    def __iter__(self) -> Iterator[int]:
        return iter(self._stats)

    def __len__(self) -> int:
        return len(self._stats)


class Scoreboard:
    """The replica's view of every pool's miner stats.

    Requests read and update the local view without waiting on the store; a background
    loop writes outcomes to the store in batches and pulls back what every replica wrote.
    A store that fails keeps the outcomes queued (bounded) and is retried each round.
    Each round sends each pool at most one new batch (what was queued when its turn came)
    after any batch to retry, and starts with a different pool, so a slow store cannot
    starve one pool behind another's refilling queue.
    """

    def __init__(
        self,
        store: StateStore,
        policy: ScorePolicy,
        *,
        sync_interval_s: float = 1.0,
        clock: Callable[[], float] = time.time,
        slow_round_s: float = SLOW_ROUND_S,
    ) -> None:
        self.store = store
        self.policy = policy
        self.sync_interval_s = sync_interval_s
        self.clock = clock
        self.slow_round_s = slow_round_s
        self.store_healthy = True
        self.store_state: StoreState = "ok"
        self.last_round_s = 0.0
        self._rounds = 0
        self._local: dict[str, dict[int, MinerStats]] = {}
        self._pending: dict[str, deque[Outcome]] = {}
        self._inflight: dict[str, tuple[str, list[Outcome]]] = {}

    def stats(self, pool: str) -> Mapping[int, MinerStats]:
        """The local view of a pool's miner stats."""
        return self._local.get(pool, {})

    def scores(self, pool: str) -> Mapping[int, float]:
        """Each miner's EMA score (a live view: nothing is copied per request)."""
        return StatView(self.stats(pool), "score")

    def cooling_until(self, pool: str) -> Mapping[int, float]:
        """When each miner may be asked again (0 when it never cooled down)."""
        return StatView(self.stats(pool), "cooling_until")

    def record(self, pool: str, outcomes: Sequence[Outcome]) -> None:
        """Fold outcomes into the local view now and queue them for the store."""
        now = self.clock()
        local = self._local.setdefault(pool, {})
        queue = self._pending.setdefault(pool, deque(maxlen=MAX_PENDING))
        for outcome in outcomes:
            local[outcome.uid] = apply_outcome(local.get(outcome.uid), outcome, self.policy, now)
            queue.append(outcome)

    async def flush(self) -> None:
        """Write each pool's queue as one batch; a failed batch is first resent as it was."""
        for pool in list(self._pending):
            await self._flush_pool(pool)

    async def _flush_pool(self, pool: str) -> None:
        """At most the retried batch and one new one: a queue refilling meanwhile waits."""
        if pool in self._inflight:
            await self._send(pool)
        queue = self._pending.get(pool)
        if queue:
            self._inflight[pool] = (uuid.uuid4().hex, list(queue))
            queue.clear()
            await self._send(pool)

    async def _send(self, pool: str) -> None:
        batch_id, batch = self._inflight[pool]
        await self.store.record(pool, batch, self.policy, self.clock(), batch_id)
        del self._inflight[pool]

    def _unwritten(self, pool: str) -> list[Outcome]:
        inflight = self._inflight.get(pool)
        return (inflight[1] if inflight else []) + list(self._pending.get(pool, ()))

    async def pull(self, pool: str) -> None:
        """Replace the local view with the store's, replaying outcomes not yet written."""
        shared = await self.store.stats(pool)
        now = self.clock()
        for outcome in self._unwritten(pool):
            shared[outcome.uid] = apply_outcome(shared.get(outcome.uid), outcome, self.policy, now)
        self._local[pool] = shared

    def _round_order(self, pools: Sequence[str]) -> list[str]:
        """Every pool with something to write or read, starting one further each round."""
        order = list(dict.fromkeys([*pools, *self._pending, *self._inflight]))
        if not order:
            return order
        turn = self._rounds % len(order)
        return order[turn:] + order[:turn]

    async def sync(self, pools: Sequence[str]) -> None:
        """One round: per pool, write one batch and pull; marks the store ok, slow or down."""
        started = time.perf_counter()
        self._rounds += 1
        read = set(pools)
        try:
            for pool in self._round_order(pools):
                await self._flush_pool(pool)
                if pool in read:
                    await self.pull(pool)
        except Exception as exc:  # any store failure: keep serving from the local view
            if self.store_healthy:
                logger.warning("state store unavailable, serving from local state: %r", exc)
            self._mark("down", started)
            return
        elapsed = time.perf_counter() - started
        slow = elapsed > self.slow_round_s
        if slow and self.store_state == "ok":
            logger.warning("state store is slow: a sync round took %.2f s", elapsed)
        if not slow and self.store_state != "ok":
            logger.info("state store is back")
        self._mark("slow" if slow else "ok", started)

    def _mark(self, state: StoreState, started: float) -> None:
        self.last_round_s = time.perf_counter() - started
        self.store_state = state
        self.store_healthy = state == "ok"

    async def run(self, pools: Callable[[], Sequence[str]]) -> None:
        """Sync forever, every `sync_interval_s`."""
        while True:
            await self.sync(pools())
            await asyncio.sleep(self.sync_interval_s)

    def leaderboard(
        self, pool: str, metagraph: Metagraph, refused: Mapping[int, str] | None = None
    ) -> list[LeaderboardRow]:
        """Every miner of the pool with what the gateway knows of it, best score first;
        `refused` gives why the axon policy will not dial a miner."""
        refused = refused or {}
        stats = self.stats(pool)
        now = self.clock()
        rows: list[LeaderboardRow] = []
        for neuron in metagraph.neurons:
            s = stats.get(neuron.uid)
            if s is not None and s.hotkey != neuron.hotkey:
                s = None
            rows.append(
                {
                    "uid": neuron.uid,
                    "hotkey": neuron.hotkey,
                    "incentive": neuron.incentive,
                    "score": round(s.score, 6) if s else 0.0,
                    "requests": s.requests if s else 0,
                    "wins": s.wins if s else 0,
                    "success_rate": s.success_rate if s else None,
                    "p50_latency_ms": _round(s.p50_latency_ms if s else None),
                    "cooling_down": bool(s and s.cooling_until > now),
                    "cooling_until": s.cooling_until if s and s.cooling_until > now else None,
                    "serving": neuron.serving,
                    "refused": refused.get(neuron.uid),
                    "validator_permit": neuron.validator_permit,
                    "weight": 0.0,
                    "concurrency": None,
                    "in_flight": 0,
                }
            )
        rows.sort(key=lambda r: (-r["score"], -r["incentive"], r["uid"]))
        return rows


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
