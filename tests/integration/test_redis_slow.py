"""A Redis that is slow, not down: paused clients and a sleeping server, under load.

Promise: scores keep being served from the local view; every pool gets its batch each
round however slow Redis is; the store reports `slow` or `down`; and once Redis answers
again the shared state holds every outcome within two sync rounds.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Iterator

import pytest
import redis

from router.scores import Scoreboard
from router.stats import Outcome, ScorePolicy
from router.store import RedisStore
from tests.support import RedisServer

pytestmark = pytest.mark.integration

POOLS = ["alpha", "beta"]
POLICY = ScorePolicy(alpha=0.1, cooldown_after=1000)
TIMEOUT_S = 0.2  # the store's socket timeout: a command slower than this fails
CONVERGE_ROUNDS = 2


@pytest.fixture(scope="module")
def debug_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """Our own redis-server, with DEBUG enabled (nobody else's Redis is paused or slept)."""
    server = RedisServer(
        tmp_path_factory.mktemp("redis-slow"), None, "--enable-debug-command", "yes"
    )
    yield server
    server.stop()


@pytest.fixture
async def board(debug_redis: RedisServer) -> AsyncIterator[Scoreboard]:
    """A scoreboard on the debug Redis, wiped first."""
    with redis.Redis.from_url(debug_redis.url) as client:
        client.flushall()
    store = RedisStore(debug_redis.url, timeout_s=TIMEOUT_S)
    yield Scoreboard(store, POLICY, sync_interval_s=0.05)
    await store.close()


class Load:
    """Outcomes recorded on every pool as requests would, counted."""

    def __init__(self, board: Scoreboard) -> None:
        self.board = board
        self.sent = 0

    async def run(self) -> None:
        """Record one outcome per pool every millisecond or so, until cancelled."""
        while True:
            for pool in POOLS:
                self.board.record(pool, [Outcome(self.sent % 4, "hk", "ok", 0.5, 10.0)])
            self.sent += 1
            await asyncio.sleep(0.001)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Run the load for the block's duration."""
        task = asyncio.get_running_loop().create_task(self.run())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def stored_total(board: Scoreboard, pool: str) -> int:
    """Outcomes the store holds for a pool (read with a patient client of its own)."""
    assert isinstance(board.store, RedisStore)
    reader = RedisStore(board.store.url, timeout_s=5.0)
    try:
        return sum(s.requests for s in (await reader.stats(pool)).values())
    finally:
        await reader.close()


async def rounds_to_converge(board: Scoreboard, load: Load) -> int:
    """Sync rounds until the store holds every outcome of every pool (bounded)."""
    for rounds in range(1, 11):
        await board.sync(POOLS)
        totals = [await stored_total(board, pool) for pool in POOLS]
        if totals == [load.sent] * len(POOLS) and board.store_state == "ok":
            return rounds
    return 99


async def sync_while(board: Scoreboard, busy: asyncio.Task[object]) -> list[str]:
    """Sync rounds until `busy` ends; the store states seen (at most 50 rounds)."""
    states = []
    for _ in range(50):
        if busy.done():
            break
        await board.sync(POOLS)
        states.append(board.store_state)
        await asyncio.sleep(0.05)
    await busy
    return states


async def test_client_pause_is_survived_and_converges(
    board: Scoreboard, debug_redis: RedisServer
) -> None:
    load = Load(board)
    async with load.running():
        await board.sync(POOLS)
        with redis.Redis.from_url(debug_redis.url) as admin:
            admin.execute_command("CLIENT", "PAUSE", 1000, "ALL")
        paused = asyncio.get_running_loop().create_task(asyncio.sleep(1.0))
        states = await sync_while(board, paused)
        local = sum(s.requests for s in board.stats("alpha").values())
    assert "down" in states
    assert local == load.sent  # served from, and kept in, the local view meanwhile
    assert await rounds_to_converge(board, load) <= CONVERGE_ROUNDS


async def test_debug_sleep_is_survived_and_converges(
    board: Scoreboard, debug_redis: RedisServer
) -> None:
    def sleep_redis() -> None:
        with redis.Redis.from_url(debug_redis.url, socket_timeout=5) as admin:
            admin.execute_command("DEBUG", "SLEEP", 1.0)

    load = Load(board)
    async with load.running():
        await board.sync(POOLS)
        sleeping = asyncio.get_running_loop().create_task(asyncio.to_thread(sleep_redis))
        states = await sync_while(board, sleeping)
    assert "down" in states
    assert await rounds_to_converge(board, load) <= CONVERGE_ROUNDS


async def test_slow_redis_writes_every_pool_each_round(
    board: Scoreboard, debug_redis: RedisServer
) -> None:
    stop, sleeping = threading.Event(), threading.Event()

    def slow_redis() -> None:  # commands wait behind 60 ms sleeps: slow, not down
        with redis.Redis.from_url(debug_redis.url, socket_timeout=5) as admin:
            for _ in range(300):
                if stop.is_set():
                    return
                sleeping.set()
                admin.execute_command("DEBUG", "SLEEP", 0.06)
                stop.wait(0.002)  # let the queued commands of the store through

    board.slow_round_s = 0.05
    load = Load(board)
    async with load.running():
        slowing = asyncio.get_running_loop().create_task(asyncio.to_thread(slow_redis))
        try:
            await asyncio.to_thread(sleeping.wait, 10)
            before = [await stored_total(board, pool) for pool in POOLS]
            states = []
            for _ in range(30):  # until a round has seen Redis slow (bounded)
                await board.sync(POOLS)
                states.append(board.store_state)
                if states.count("slow") >= 3:
                    break
            after = [await stored_total(board, pool) for pool in POOLS]
        finally:
            stop.set()
            await slowing
    assert states.count("slow") >= 3
    assert all(b < a for b, a in zip(before, after, strict=True))  # neither pool starved
    assert await rounds_to_converge(board, load) <= CONVERGE_ROUNDS
