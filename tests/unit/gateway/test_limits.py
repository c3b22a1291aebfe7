"""Per-key limits against a real redis-server: GCRA, tokens, concurrency, the fallback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from gateway.door.auth import Identity
from gateway.door.limits import Limiter, duration
from tests.support import RedisServer, free_port


@pytest.fixture
async def redis(clean_redis: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(clean_redis)
    yield client
    await client.aclose()


def limiter(redis: aioredis.Redis | None, share: float = 1.0) -> Limiter:
    return Limiter(redis, fallback_share=share, lease_ttl_s=60)


async def test_requests_per_minute_admit_the_limit_then_refuse_with_a_retry_time(
    redis: aioredis.Redis,
) -> None:
    key = Identity("alice", rpm=3)
    answers = [await limiter(redis).admit(key, 0) for _ in range(5)]
    assert [a.refused for a in answers] == [None, None, None, "requests", "requests"]
    first, last = answers[0].headers(), answers[-1].headers()
    assert first["x-ratelimit-limit-requests"] == "3"
    assert first["x-ratelimit-remaining-requests"] == "2"
    assert last["x-ratelimit-remaining-requests"] == "0"
    # GCRA refills one request every 20 s: the refused one may retry in (0, 20] s.
    assert 0 < answers[-1].retry_after_s <= 20
    assert 1 <= int(last["retry-after"]) <= 20
    assert "x-ratelimit-limit-tokens" not in first


async def test_two_replicas_together_allow_the_limit_not_twice_it(redis: aioredis.Redis) -> None:
    key = Identity("shared", rpm=4)
    one, two = limiter(redis), limiter(redis)
    answers = [await (one if i % 2 else two).admit(key, 0) for i in range(8)]
    assert sum(a.refused is None for a in answers) == 4


async def test_tokens_are_reserved_then_settled_to_what_was_used(redis: aioredis.Redis) -> None:
    key = Identity("bob", tpm=1000)
    limits = limiter(redis)
    big = await limits.admit(key, 800)
    assert big.refused is None
    assert big.headers()["x-ratelimit-remaining-tokens"] == "200"
    assert (await limits.admit(key, 800)).refused == "tokens"
    # The request really used 100 tokens: the other 700 come back.
    limits.settle(big, 100)
    await limits.flush()
    again = await limits.admit(key, 800)
    assert again.refused is None, again.headers()


async def test_an_estimate_over_the_whole_limit_is_charged_the_limit(
    redis: aioredis.Redis,
) -> None:
    key = Identity("huge", tpm=100)
    limits = limiter(redis)
    assert (await limits.admit(key, 10_000)).refused is None
    assert (await limits.admit(key, 1)).refused == "tokens"


async def test_concurrency_cap_holds_until_a_request_ends(redis: aioredis.Redis) -> None:
    key = Identity("carol", concurrency=2)
    one, two = limiter(redis), limiter(redis)
    first, second = await one.admit(key, 0), await two.admit(key, 0)
    third = await one.admit(key, 0)
    assert (first.refused, second.refused, third.refused) == (None, None, "concurrency")
    await two.release(second)
    assert (await one.admit(key, 0)).refused is None


async def test_unreachable_redis_falls_back_to_each_replicas_share() -> None:
    dead = aioredis.Redis.from_url(
        f"redis://127.0.0.1:{free_port()}/0", socket_timeout=0.2, socket_connect_timeout=0.2
    )
    limits = limiter(dead, share=0.5)
    key = Identity("dave", rpm=6)
    answers = [await limits.admit(key, 0) for _ in range(5)]
    assert [a.refused for a in answers] == [None, None, None, "requests", "requests"]
    assert all(a.local for a in answers)
    assert answers[0].headers()["x-ratelimit-limit-requests"] == "6"
    await dead.aclose()


async def test_local_concurrency_is_released_too() -> None:
    limits = limiter(None)
    key = Identity("erin", concurrency=1)
    first = await limits.admit(key, 0)
    assert (await limits.admit(key, 0)).refused == "concurrency"
    await limits.release(first)
    assert (await limits.admit(key, 0)).refused is None


@pytest.mark.parametrize(
    ("seconds", "text"), [(0.02, "20ms"), (1.5, "1.5s"), (360, "6m0s"), (-1, "0ms")]
)
def test_reset_times_are_written_as_openai_does(seconds: float, text: str) -> None:
    assert duration(seconds) == text


async def test_a_fallback_starts_from_the_minute_the_key_spent_in_redis(tmp_path: Path) -> None:
    # Each replica used to start its fallback with a fresh minute: a key that had spent its
    # limit got share x replicas of it again at once when Redis failed (make chaos saw 66%).
    server = RedisServer(tmp_path)
    client = aioredis.Redis.from_url(server.url, socket_timeout=0.2, socket_connect_timeout=0.2)
    try:
        limits = limiter(client, share=0.5)
        key = Identity("frank", rpm=6)
        answers = [await limits.admit(key, 0) for _ in range(6)]
        assert [a.refused for a in answers] == [None] * 6
        server.stop()
        after = [await limits.admit(key, 0) for _ in range(3)]
        assert all(a.local for a in after)
        assert [a.refused for a in after] == ["requests"] * 3
    finally:
        await client.aclose()
        server.stop()
