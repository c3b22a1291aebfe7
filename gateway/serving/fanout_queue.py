"""The bounded queue a request waits in while no miner of its pool has room.

Fair across keys: a freed slot wakes the first waiter of the next key in turn, so one key's
burst cannot hold the others back. A request waits at most its pool's `queue_s` (and never
past its own deadline); past that, or when `queue_limit` requests already wait, it gets the
503 with Retry-After it would have got at once. New requests join behind waiting ones.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any, TypeVar

from gateway.door.request_log import CURRENT
from gateway.errors import AllMinersBusy, PoolFull
from gateway.protocol import SamplingFields
from gateway.runtime.metrics import Metrics
from gateway.serving.plan import Plan, Planner
from router.concurrency import ConcurrencyLimits
from router.metagraph import Metagraph
from router.miner_client import Kind
from router.scores import LeaderboardRow

# How often a request whose every miner said busy is planned again.
BUSY_RETRIES = 2
T = TypeVar("T")
# A waiter also retries this often: a hold (Retry-After) ends without any call ending.
RECHECK_S = 0.05


class FanoutQueue:
    """Requests waiting for a miner slot, per key, woken in turn."""

    def __init__(self) -> None:
        self._keys: OrderedDict[str, deque[asyncio.Future[None]]] = OrderedDict()
        self.waiting = 0

    def wake(self) -> None:
        """A slot may be free: wake the first waiter of the next key in turn."""
        while self._keys:
            key, waiters = next(iter(self._keys.items()))
            self._keys.move_to_end(key)
            while waiters:
                future = waiters.popleft()
                if not future.done():
                    future.set_result(None)
                    if not waiters:
                        del self._keys[key]
                    return
            del self._keys[key]

    async def _wait_turn(self, key: str, timeout_s: float, front: bool) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiters = self._keys.setdefault(key, deque())
        if front:
            waiters.appendleft(future)
        else:
            waiters.append(future)
        try:
            await asyncio.wait_for(asyncio.shield(future), timeout_s)
        except TimeoutError:
            pass
        finally:
            if not future.done():
                future.cancel()

    async def plan(self, make: Callable[[], Plan], key: str, limit: int, wait_s: float) -> Plan:
        """`make()` once a miner has room; PoolFull past `wait_s` or with `limit` waiting."""
        if not self.waiting:
            try:
                return make()
            except PoolFull:
                pass
        if self.waiting >= limit or wait_s <= 0:
            return make()  # raises PoolFull when still full
        started = time.perf_counter()
        self.waiting += 1
        front = False
        try:
            while (left := wait_s - (time.perf_counter() - started)) > 0:
                await self._wait_turn(key, min(left, RECHECK_S), front)
                front = True
                try:
                    plan = make()
                except PoolFull:
                    continue
                return replace(plan, queue_ms=round((time.perf_counter() - started) * 1e3, 3))
        finally:
            self.waiting -= 1
        return make()


async def plan_queued(
    planner: Planner,
    queue: FanoutQueue,
    metrics: Metrics,
    kind: Kind,
    raw: dict[str, Any],
    request: SamplingFields,
) -> Plan:
    """The request's plan, after waiting in the pool's queue while no miner has room."""
    config = planner.pool(request.model).config
    record = CURRENT.get()
    key = (record.key if record is not None else None) or "anonymous"
    fanout = metrics.fanout
    try:
        plan = await queue.plan(
            lambda: planner.plan(kind, raw, request, queue.waiting),
            key,
            config.queue_limit,
            config.queue_s,
        )
    except PoolFull:
        fanout.queue_refusals.labels(request.model).inc()
        raise
    pool = plan.pool.name
    fanout.width.labels(pool, plan.width_why).observe(len(plan.candidates))
    fanout.queue_wait.labels(pool).observe(plan.queue_ms / 1000.0)
    if planner.limits is not None:
        for neuron in plan.candidates:
            fanout.concurrency.labels(pool, str(neuron.uid)).set(planner.limits.limit(neuron))
    if record is not None:
        record.fanout = {
            "width": len(plan.candidates),
            "sample": plan.sample,
            "width_why": plan.width_why,
            "queue_ms": plan.queue_ms,
        }
    return plan


async def serve_queued(
    planner: Planner,
    queue: FanoutQueue,
    metrics: Metrics,
    serve: Callable[[Plan], Awaitable[T]],
    kind: Kind,
    raw: dict[str, Any],
    request: SamplingFields,
) -> tuple[Plan, T]:
    """Plan (queued) and serve; a request whose every miner said it is busy is planned
    again, through the queue, rather than failed: a full miner is not a lost one."""
    for attempt in range(BUSY_RETRIES + 1):
        plan = await plan_queued(planner, queue, metrics, kind, raw, request)
        try:
            return plan, await serve(plan)
        except AllMinersBusy:
            if attempt == BUSY_RETRIES:
                raise
    raise AssertionError("unreachable")


def add_concurrency(
    rows: list[LeaderboardRow], metagraph: Metagraph, limits: ConcurrencyLimits | None
) -> None:
    """Give each leaderboard row its miner's learned concurrency limit and calls in flight."""
    if limits is None:
        return
    known = limits.snapshot()
    by_uid = {n.uid: n for n in metagraph.neurons}
    for row in rows:
        neuron = by_uid.get(row["uid"])
        if neuron is not None and neuron.base_url in known:
            limit, inflight = known[neuron.base_url]
            row["concurrency"], row["in_flight"] = round(limit, 2), inflight
