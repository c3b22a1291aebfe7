"""Tests for router.scores.Scoreboard: local view, write-behind sync, Redis outages."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path

import pytest

from router.metagraph import Axon, Metagraph, Neuron
from router.scores import Scoreboard
from router.stats import Outcome, ScorePolicy, Status
from router.store import MemoryStore, RedisStore
from tests.support import RedisServer, free_port

POOL = "sn1"
NOW = 1_000.0
POLICY = ScorePolicy(alpha=0.5, cooldown_after=2, cooldown_s=30.0)


def outcome(
    uid: int, status: Status = "ok", reward: float = 1.0, *, hotkey: str | None = None
) -> Outcome:
    """An outcome for `uid`, hotkey `hk{uid}` unless given."""
    return Outcome(
        uid=uid, hotkey=hotkey or f"hk{uid}", status=status, reward=reward, latency_ms=100.0
    )


def scoreboard(store: MemoryStore | RedisStore) -> Scoreboard:
    """A scoreboard on `store` with a fixed clock."""
    return Scoreboard(store, POLICY, sync_interval_s=0.01, clock=lambda: NOW)


def neuron(
    uid: int, incentive: float, *, hotkey: str | None = None, ip: str = "10.0.0.1"
) -> Neuron:
    """A miner of the test metagraph."""
    return Neuron(
        uid=uid,
        hotkey=hotkey or f"hk{uid}",
        axon=Axon(ip=ip, port=9000 + uid),
        incentive=incentive,
    )


@pytest.fixture
async def two_replicas(clean_redis: str) -> AsyncIterator[tuple[Scoreboard, Scoreboard]]:
    """Two scoreboards, each with its own RedisStore on one Redis, like two gateway replicas."""
    a, b = scoreboard(RedisStore(clean_redis)), scoreboard(RedisStore(clean_redis))
    yield a, b
    await a.store.close()
    await b.store.close()


@pytest.fixture
def late_redis() -> Iterator[tuple[int, list[RedisServer]]]:
    """A free port for a Redis the test starts later; stopped at the end if started."""
    started: list[RedisServer] = []
    yield free_port(), started
    for server in started:
        server.stop()


# --- the local view ---


def test_record_updates_the_local_view_at_once() -> None:
    board = scoreboard(MemoryStore())
    board.record(POOL, [outcome(0, reward=0.8), outcome(1, "error")])
    assert dict(board.scores(POOL)) == {0: pytest.approx(0.4), 1: 0.0}
    assert board.stats(POOL)[1].failures == 1
    assert board.stats("other") == {}


def test_cooling_until_lists_only_cooling_miners() -> None:
    board = scoreboard(MemoryStore())
    board.record(POOL, [outcome(0), outcome(1, "timeout"), outcome(1, "timeout")])
    assert dict(board.cooling_until(POOL)) == {0: 0.0, 1: NOW + 30.0}


# --- sync with a working store ---


async def test_sync_flushes_outcomes_to_the_store_and_pulls_them_back() -> None:
    store = MemoryStore()
    board = scoreboard(store)
    board.record(POOL, [outcome(0, reward=0.6), outcome(0, "error")])
    assert await store.stats(POOL) == {}  # written behind, not on the request path
    await board.sync([POOL])
    shared = await store.stats(POOL)
    assert shared[0].requests == 2
    assert dict(board.stats(POOL)) == shared
    assert board.store_healthy is True


async def test_repeated_syncs_write_each_outcome_once() -> None:
    store = MemoryStore()
    board = scoreboard(store)
    board.record(POOL, [outcome(0)])
    for _ in range(3):
        await board.sync([POOL])
    assert (await store.stats(POOL))[0].requests == 1
    assert board.stats(POOL)[0].requests == 1


async def test_two_replicas_see_each_others_outcomes(
    two_replicas: tuple[Scoreboard, Scoreboard],
) -> None:
    a, b = two_replicas
    a.record(POOL, [outcome(0, reward=1.0), outcome(1, "error")])
    b.record(POOL, [outcome(0, reward=1.0), outcome(2)])
    assert 2 not in a.stats(POOL)
    await a.sync([POOL])
    await b.sync([POOL])
    await a.sync([POOL])
    for board in (a, b):
        stats = board.stats(POOL)
        assert sorted(stats) == [0, 1, 2]
        assert stats[0].requests == 2
        assert stats[0].score == pytest.approx(0.75)  # 0.5 then 0.75, whichever came first


class SignallingStore(MemoryStore):
    """A MemoryStore that sets `written` whenever outcomes are recorded."""

    def __init__(self) -> None:
        super().__init__()
        self.written = asyncio.Event()

    async def record(
        self,
        pool: str,
        outcomes: Sequence[Outcome],
        policy: ScorePolicy,
        now: float,
        batch_id: str | None = None,
    ) -> None:
        """Record, then signal."""
        await super().record(pool, outcomes, policy, now, batch_id)
        self.written.set()


async def test_run_keeps_syncing_in_the_background() -> None:
    store = SignallingStore()
    board = scoreboard(store)
    task = asyncio.create_task(board.run(lambda: [POOL]))
    try:
        board.record(POOL, [outcome(0)])
        async with asyncio.timeout(2):
            await store.written.wait()
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert (await store.stats(POOL))[0].requests == 1


# --- the store fails, then comes back ---


async def test_outage_serves_locally_and_delivers_queued_outcomes_on_recovery(
    late_redis: tuple[int, list[RedisServer]], tmp_path: Path
) -> None:
    port, started = late_redis
    store = RedisStore(f"redis://127.0.0.1:{port}/0", timeout_s=0.2)
    board = scoreboard(store)
    try:
        board.record(POOL, [outcome(0, reward=0.8)])
        await board.sync([POOL])
        assert board.store_healthy is False
        board.record(POOL, [outcome(0, "error"), outcome(1)])
        await board.sync([POOL])
        assert board.store_healthy is False
        local = board.stats(POOL)
        assert local[0].requests == 2  # still serving from, and updating, the local view
        assert local[1].requests == 1

        started.append(RedisServer(tmp_path, port))
        await board.sync([POOL])
        assert board.store_healthy is True
        shared = await store.stats(POOL)
        assert shared[0].requests == 2
        assert shared[0].score == pytest.approx(0.2)  # 0.4, then halved by the error
        assert shared[1].requests == 1
        assert board.stats(POOL)[0].requests == 2  # pulled, not replayed twice
    finally:
        await store.close()


async def test_outage_then_swapped_in_store_gets_the_queue(clean_redis: str) -> None:
    dead = RedisStore(f"redis://127.0.0.1:{free_port()}/0", timeout_s=0.2)
    board = scoreboard(dead)
    board.record(POOL, [outcome(3), outcome(3)])
    await board.sync([POOL])
    assert board.store_healthy is False
    await dead.close()
    board.store = RedisStore(clean_redis)
    try:
        await board.sync([POOL])
        assert board.store_healthy is True
        assert (await board.store.stats(POOL))[3].requests == 2
    finally:
        await board.store.close()


# --- leaderboard ---


def test_leaderboard_is_sorted_by_score() -> None:
    board = scoreboard(MemoryStore())
    metagraph = Metagraph(
        netuid=1,
        neurons=[neuron(0, 0.5), neuron(1, 0.1), neuron(2, 0.3), neuron(3, 0.2, ip="0.0.0.0")],
    )
    board.record(POOL, [outcome(1, reward=0.9), outcome(2, reward=0.2), outcome(0, "error")])
    rows = board.leaderboard(POOL, metagraph)
    # scores: uid 1 0.45, uid 2 0.1, then the unscored by incentive: uid 0, uid 3
    assert [r["uid"] for r in rows] == [1, 2, 0, 3]
    assert rows[0]["score"] == pytest.approx(0.45)
    assert rows[0]["requests"] == 1
    assert rows[0]["success_rate"] == 1.0
    assert rows[0]["p50_latency_ms"] == 100.0
    assert rows[3]["serving"] is False
    assert rows[3]["requests"] == 0


def test_leaderboard_ignores_stats_of_a_previous_hotkey() -> None:
    board = scoreboard(MemoryStore())
    board.record(POOL, [outcome(0, reward=1.0, hotkey="old-hotkey")])
    metagraph = Metagraph(netuid=1, neurons=[neuron(0, 0.5, hotkey="new-hotkey")])
    (row,) = board.leaderboard(POOL, metagraph)
    assert row["hotkey"] == "new-hotkey"
    assert (row["score"], row["requests"], row["success_rate"]) == (0.0, 0, None)


def test_leaderboard_shows_cool_downs() -> None:
    board = scoreboard(MemoryStore())
    board.record(POOL, [outcome(0, "timeout"), outcome(0, "timeout")])
    (row,) = board.leaderboard(POOL, Metagraph(netuid=1, neurons=[neuron(0, 0.5)]))
    assert row["cooling_down"] is True
    assert row["cooling_until"] == NOW + 30.0


# --- a slow store ---


class SlowStore(MemoryStore):
    """The memory store, slow to write; while a write waits, `during_write` runs."""

    def __init__(self, delay_s: float, during_write: Callable[[], None]) -> None:
        super().__init__()
        self.delay_s = delay_s
        self.during_write = during_write
        self.writes: list[str] = []

    async def record(
        self,
        pool: str,
        outcomes: Sequence[Outcome],
        policy: ScorePolicy,
        now: float,
        batch_id: str | None = None,
    ) -> None:
        self.writes.append(pool)
        self.during_write()
        await asyncio.sleep(self.delay_s)
        await super().record(pool, outcomes, policy, now, batch_id)


async def test_a_refilling_queue_does_not_starve_other_pools() -> None:
    board: Scoreboard

    def traffic() -> None:  # a busy pool whose queue refills during every write
        board.record("busy", [outcome(0)])

    store = SlowStore(0.01, traffic)
    board = Scoreboard(store, POLICY, clock=lambda: NOW)
    board.record("busy", [outcome(0)])
    board.record("quiet", [outcome(1)])
    await asyncio.wait_for(board.sync(["busy", "quiet"]), 5.0)
    assert store.writes.count("busy") == 1
    assert (await store.stats("quiet"))[1].requests == 1
    await board.sync(["busy", "quiet"])
    assert store.writes.count("busy") == 2  # one batch a round; the refill waits its turn


async def test_a_slow_round_marks_the_store_slow_then_ok() -> None:
    store = SlowStore(0.05, lambda: None)
    board = Scoreboard(store, POLICY, clock=lambda: NOW, slow_round_s=0.02)
    board.record(POOL, [outcome(0)])
    await board.sync([POOL])
    assert (board.store_state, board.store_healthy) == ("slow", False)
    board.slow_round_s = 10.0
    board.record(POOL, [outcome(0)])
    await board.sync([POOL])
    assert (board.store_state, board.store_healthy) == ("ok", True)
    assert (await store.stats(POOL))[0].requests == 2
