"""The queue a request waits in while no miner has room: fair across keys, bounded."""

from __future__ import annotations

import asyncio
import time

import pytest

from gateway.errors import PoolFull
from gateway.serving.fanout_queue import FanoutQueue
from tests.unit.gateway.strategies.fakes import plan


class Pool:
    """Room for `free` requests; `make` plans one or raises PoolFull, noting who got in."""

    def __init__(self) -> None:
        self.free = 0
        self.served: list[str] = []

    def maker(self, who: str):  # type: ignore[no-untyped-def]
        def make():  # type: ignore[no-untyped-def]
            if self.free <= 0:
                raise PoolFull("full")
            self.free -= 1
            self.served.append(who)
            return plan("best_of", [0])

        return make


async def test_freed_slots_go_to_keys_in_turn_not_in_arrival_order() -> None:
    queue, pool = FanoutQueue(), Pool()
    arrivals = [("a", "a1"), ("a", "a2"), ("a", "a3"), ("b", "b1")]
    waiting = []
    for key, who in arrivals:
        waiting.append(asyncio.ensure_future(queue.plan(pool.maker(who), key, 10, 5.0)))
        await asyncio.sleep(0)
    await asyncio.sleep(0)
    for _ in range(4):
        pool.free += 1
        queue.wake()
        for _ in range(5):
            await asyncio.sleep(0)
    await asyncio.gather(*waiting)
    assert pool.served == ["a1", "b1", "a2", "a3"]
    assert all(p.queue_ms > 0 for p in (w.result() for w in waiting))


async def test_a_full_queue_refuses_at_once() -> None:
    queue, pool = FanoutQueue(), Pool()
    first = asyncio.ensure_future(queue.plan(pool.maker("x"), "k", 1, 5.0))
    await asyncio.sleep(0)
    started = time.perf_counter()
    with pytest.raises(PoolFull):
        await queue.plan(pool.maker("y"), "k", 1, 5.0)
    assert time.perf_counter() - started < 0.5
    first.cancel()
    await asyncio.gather(first, return_exceptions=True)


async def test_a_request_waits_at_most_the_queue_time_then_gets_the_503() -> None:
    queue, pool = FanoutQueue(), Pool()
    started = time.perf_counter()
    with pytest.raises(PoolFull) as refused:
        await queue.plan(pool.maker("x"), "k", 10, 0.2)
    assert 0.15 < time.perf_counter() - started < 2.0
    assert refused.value.status == 503 and queue.waiting == 0


async def test_new_requests_join_behind_waiting_ones() -> None:
    queue, pool = FanoutQueue(), Pool()
    early = asyncio.ensure_future(queue.plan(pool.maker("early"), "a", 10, 5.0))
    await asyncio.sleep(0)
    pool.free = 1
    late = asyncio.ensure_future(queue.plan(pool.maker("late"), "b", 10, 5.0))
    queue.wake()
    await early
    assert pool.served == ["early"]
    pool.free = 1
    queue.wake()
    await late
    assert pool.served == ["early", "late"]
