"""Tests for router.store: one contract for MemoryStore and RedisStore (a real Redis)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence

import orjson
import pytest
import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from router.stats import MinerStats, Outcome, ScorePolicy, Status
from router.store import (
    MemoryStore,
    RedisStore,
    StateStore,
    batch_key,
    open_store,
    stats_key,
)
from tests.support import free_port

POOL = "sn1"
POLICY = ScorePolicy(alpha=0.3, cooldown_after=3, cooldown_s=30.0, latency_window=4)
# A realistic wall-clock time, so cool-down times have as many digits as in production.
NOW = 1_700_000_000.123456


def outcome(
    uid: int,
    status: Status = "ok",
    reward: float = 0.5,
    latency_ms: float = 100.0,
    *,
    hotkey: str | None = None,
    won: bool = False,
) -> Outcome:
    """An outcome for `uid`, hotkey `hk{uid}` unless given."""
    return Outcome(
        uid=uid,
        hotkey=hotkey or f"hk{uid}",
        status=status,
        reward=reward,
        latency_ms=latency_ms,
        won=won,
    )


# Every branch of the rule: ok, wins, each failure kind, a cool-down, the latency window,
# and a hotkey change (a new miner registered on uid 1).
SEQUENCE: list[Outcome] = [
    outcome(0, reward=0.8123456789, latency_ms=101.5, won=True),
    outcome(0, "timeout", reward=0.9, latency_ms=5000.0),
    outcome(1, reward=0.3, latency_ms=250.25),
    outcome(0, "error", latency_ms=3.0),
    outcome(0, "invalid", latency_ms=40.0),  # third failure in a row: cool-down
    outcome(1, reward=0.61, latency_ms=230.0, won=True),
    *(outcome(0, reward=r / 7, latency_ms=90.0 + r) for r in range(6)),  # window overflow
    outcome(1, "error"),
    outcome(1, "ok", reward=0.9, latency_ms=80.0, hotkey="hk1-new"),
    outcome(2, "timeout"),
]


def assert_same_stats(actual: dict[int, MinerStats], expected: dict[int, MinerStats]) -> None:
    """Equal stats, floats to 12 significant digits (Lua's cjson keeps 14)."""
    assert actual.keys() == expected.keys()
    for uid, want in expected.items():
        got = actual[uid].to_json()
        for name, value in want.to_json().items():
            if isinstance(value, str):
                assert got[name] == value, f"uid {uid} {name}"
            else:
                assert got[name] == pytest.approx(value, rel=1e-12), f"uid {uid} {name}"


@pytest.fixture
async def redis_store(clean_redis: str) -> AsyncIterator[RedisStore]:
    """A RedisStore on the test Redis."""
    store = RedisStore(clean_redis)
    yield store
    await store.close()


async def record_each(store: StateStore, outcomes: Sequence[Outcome]) -> None:
    """Record outcomes one call each, a second apart."""
    for i, o in enumerate(outcomes):
        await store.record(POOL, [o], POLICY, NOW + i)


# --- the contract, for both stores ---


async def test_record_then_stats(store: StateStore) -> None:
    await store.record(POOL, [outcome(3, reward=1.0, latency_ms=80.0, won=True)], POLICY, NOW)
    await store.record(POOL, [outcome(3, "timeout"), outcome(4, reward=0.5)], POLICY, NOW)
    stats = await store.stats(POOL)
    assert sorted(stats) == [3, 4]
    assert stats[3].requests == 2
    assert (stats[3].successes, stats[3].failures, stats[3].wins) == (1, 1, 1)
    assert stats[3].score == pytest.approx(0.21)  # 0.7 * 0.3
    assert stats[3].latencies == [80.0]
    assert stats[4].hotkey == "hk4"


async def test_stats_of_an_unknown_pool_are_empty(store: StateStore) -> None:
    assert await store.stats("nope") == {}


async def test_pools_are_kept_apart(store: StateStore) -> None:
    await store.record("sn1", [outcome(0)], POLICY, NOW)
    await store.record("sn9", [outcome(0, "error")], POLICY, NOW)
    assert (await store.stats("sn1"))[0].successes == 1
    assert (await store.stats("sn9"))[0].failures == 1


async def test_stats_are_a_snapshot(store: StateStore) -> None:
    await store.record(POOL, [outcome(0)], POLICY, NOW)
    snapshot = await store.stats(POOL)
    await store.record(POOL, [outcome(0)], POLICY, NOW)
    assert snapshot[0].requests == 1


async def test_failure_streak_cools_the_miner_down(store: StateStore) -> None:
    failures = [outcome(0, "error"), outcome(0, "timeout"), outcome(0, "invalid")]
    await store.record(POOL, failures, POLICY, NOW)
    stats = (await store.stats(POOL))[0]
    assert stats.cooling_until == pytest.approx(NOW + 30.0, abs=1e-3)
    assert stats.consecutive_failures == 0


async def test_metagraph_save_and_load(store: StateStore) -> None:
    assert await store.load_metagraph(POOL) is None
    await store.save_metagraph(POOL, b'{"netuid": 1, "neurons": []}')
    await store.save_metagraph("other", b'{"netuid": 2, "neurons": []}')
    assert await store.load_metagraph(POOL) == b'{"netuid": 1, "neurons": []}'
    await store.save_metagraph(POOL, b'{"netuid": 1, "block": 7, "neurons": []}')
    assert await store.load_metagraph(POOL) == b'{"netuid": 1, "block": 7, "neurons": []}'


async def test_ping_answers(store: StateStore) -> None:
    assert await store.ping() is True


# --- Lua and Python agree ---


async def test_lua_and_python_rules_agree_one_call_each(redis_store: RedisStore) -> None:
    memory = MemoryStore()
    await record_each(memory, SEQUENCE)
    await record_each(redis_store, SEQUENCE)
    expected = await memory.stats(POOL)
    assert expected[1].hotkey == "hk1-new"  # the sequence does reach every branch
    assert expected[0].cooling_until > NOW
    assert len(expected[0].latencies) == POLICY.latency_window
    assert_same_stats(await redis_store.stats(POOL), expected)


async def test_lua_and_python_rules_agree_in_one_batch(redis_store: RedisStore) -> None:
    memory = MemoryStore()
    await memory.record(POOL, SEQUENCE, POLICY, NOW)
    await redis_store.record(POOL, SEQUENCE, POLICY, NOW)
    assert_same_stats(await redis_store.stats(POOL), await memory.stats(POOL))


async def test_lua_reads_stats_python_wrote_the_shape_of(redis_store: RedisStore) -> None:
    # A miner whose stored latencies are `{}` (cjson's empty list) still gets new ones.
    await redis_store.record(POOL, [outcome(0, "error")], POLICY, NOW)
    await redis_store.record(POOL, [outcome(0, latency_ms=55.0)], POLICY, NOW)
    assert (await redis_store.stats(POOL))[0].latencies == [55.0]


# --- replicas racing on one miner ---


async def test_concurrent_records_from_replicas_lose_no_update(clean_redis: str) -> None:
    replicas = [RedisStore(clean_redis, timeout_s=5.0) for _ in range(4)]
    per_replica = 50
    try:
        await asyncio.gather(
            *(
                replica.record(POOL, [outcome(0, won=i % 2 == 0), outcome(1, "error")], POLICY, NOW)
                for replica in replicas
                for i in range(per_replica)
            )
        )
        stats = await replicas[0].stats(POOL)
    finally:
        for replica in replicas:
            await replica.close()
    total = len(replicas) * per_replica
    assert stats[0].requests == total
    assert stats[0].successes == total
    assert stats[0].wins == total // 2
    assert stats[1].requests == total
    assert stats[1].failures == total


async def test_records_land_in_the_pools_hash(redis_store: RedisStore, clean_redis: str) -> None:
    await redis_store.record(POOL, [outcome(5)], POLICY, NOW)
    client = aioredis.Redis.from_url(clean_redis)
    try:
        assert await client.hkeys(stats_key(POOL)) == [b"5"]
    finally:
        await client.aclose()


# --- Redis down ---


async def test_dead_redis_pings_false_and_calls_raise() -> None:
    store = RedisStore(f"redis://127.0.0.1:{free_port()}/0", timeout_s=0.2)
    try:
        started = time.monotonic()
        assert await store.ping() is False
        with pytest.raises(RedisError):
            await store.record(POOL, [outcome(0)], POLICY, NOW)
        with pytest.raises(RedisError):
            await store.stats(POOL)
        with pytest.raises(RedisError):
            await store.save_metagraph(POOL, b"{}")
        with pytest.raises(RedisError):
            await store.load_metagraph(POOL)
        assert time.monotonic() - started < 5.0  # fails fast, a request is never held up long
    finally:
        await store.close()


def test_open_store_picks_redis_only_with_a_url() -> None:
    assert isinstance(open_store(None), MemoryStore)
    assert isinstance(open_store(""), MemoryStore)


async def test_open_store_with_a_url_is_redis(clean_redis: str) -> None:
    store = open_store(clean_redis)
    try:
        assert store.name == "redis"
        assert await store.ping() is True
    finally:
        await store.close()


async def test_a_batch_written_twice_counts_once(store: StateStore) -> None:
    """A flush retried after a lost reply must not double the miner's counts."""
    batch = [outcome(0), outcome(1, "error")]
    await store.record(POOL, batch, POLICY, NOW, batch_id="b-1")
    await store.record(POOL, batch, POLICY, NOW, batch_id="b-1")
    await store.record(POOL, batch, POLICY, NOW, batch_id="b-2")
    stats = await store.stats(POOL)
    assert (stats[0].requests, stats[1].requests) == (2, 2)


# --- back-pressure and hostile batches ---


async def test_a_busy_miner_keeps_its_score(store: StateStore) -> None:
    await store.record(POOL, [outcome(0, reward=1.0)], POLICY, NOW)
    before = (await store.stats(POOL))[0]
    await store.record(POOL, [outcome(0, "busy")] * 5, POLICY, NOW)
    after = (await store.stats(POOL))[0]
    assert (after.score, after.requests, after.failures) == (before.score, 1, 0)
    assert after.cooling_until == 0.0


def _payload(*outcomes: dict[str, object]) -> bytes:
    base = {"hotkey": "hk", "status": "ok", "reward": 0.5, "latency_ms": 10.0, "won": False}
    return orjson.dumps([{**base, **o} for o in outcomes])


async def _run_script(store: RedisStore, payload: bytes, batch_id: str) -> object:
    args = [POLICY.alpha, POLICY.cooldown_after, POLICY.cooldown_s, NOW, 4, payload, batch_id]
    keys = [stats_key(POOL), batch_key(POOL, batch_id)]
    return await store._record(keys=keys, args=args)


@pytest.mark.parametrize(
    "bad",
    [{"uid": 2.5}, {"uid": -1}, {"uid": "1"}, {"hotkey": 5}, {"status": "great"}, {"reward": None}],
)
async def test_a_bad_outcome_leaves_the_whole_batch_unwritten(
    redis_store: RedisStore, clean_redis: str, bad: dict[str, object]
) -> None:
    with pytest.raises(ResponseError, match="malformed"):
        await _run_script(redis_store, _payload({"uid": 1}, {"uid": 2, **bad}), "b1")
    client = aioredis.Redis.from_url(clean_redis)
    try:
        assert await client.exists(stats_key(POOL), batch_key(POOL, "b1")) == 0
    finally:
        await client.aclose()


async def test_uids_are_written_as_integers(redis_store: RedisStore, clean_redis: str) -> None:
    await _run_script(redis_store, _payload({"uid": 7.0}, {"uid": 1e3}), "b2")
    client = aioredis.Redis.from_url(clean_redis)
    try:
        assert sorted(await client.hkeys(stats_key(POOL))) == [b"1000", b"7"]
    finally:
        await client.aclose()


async def test_a_corrupt_stored_entry_is_replaced_not_fatal(
    redis_store: RedisStore, clean_redis: str
) -> None:
    client = aioredis.Redis.from_url(clean_redis)
    try:
        await client.hset(stats_key(POOL), mapping={"0": b"{not json", "x": b"{}"})
    finally:
        await client.aclose()
    assert await redis_store.stats(POOL) == {}  # unreadable entries are skipped
    await redis_store.record(POOL, [outcome(0), outcome(1)], POLICY, NOW)
    stats = await redis_store.stats(POOL)
    assert (stats[0].requests, stats[1].requests) == (1, 1)
