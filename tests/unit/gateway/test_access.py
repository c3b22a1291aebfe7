"""Keys, limits, usage and request ids through the app (TestClient) with a real Redis."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis

from gateway.door.keys import KeyStore
from gateway.door.usage import read_usage
from tests.support import eventually, gateway, profiles

CHAT = {"model": "sim", "messages": [{"role": "user", "content": "What is the capital of France?"}]}
Pools = Callable[..., Any]


def create_key(redis_url: str, name: str, **limits: Any) -> str:
    async def create() -> str:
        client = aioredis.Redis.from_url(redis_url)
        try:
            _, secret = await KeyStore(client).create(name, **limits)
        finally:
            await client.aclose()
        return secret

    return asyncio.run(create())


def bearer(secret: str) -> dict[str, str]:
    return {"authorization": f"Bearer {secret}"}


@pytest.fixture
def pool(sim_pool: Pools) -> Path:
    _, path = sim_pool(profiles("good", "wrong", "off_topic"))
    return Path(path)


def test_every_response_carries_a_request_id(pool: Path) -> None:
    with gateway(pool) as client:
        fresh = client.get("/healthz")
        given = client.post("/v1/chat/completions", json=CHAT, headers={"x-request-id": "job-7"})
        odd = client.get("/healthz", headers={"x-request-id": "not ok" + "x" * 200})
        missing = client.get("/nowhere")
    assert len(fresh.headers["x-request-id"]) == 32
    assert given.headers["x-request-id"] == "job-7"
    assert len(odd.headers["x-request-id"]) == 32
    assert missing.status_code == 404 and missing.headers["x-request-id"]


def test_stored_keys_are_required_and_refusals_are_openai_401s(
    pool: Path, clean_redis: str
) -> None:
    secret = create_key(clean_redis, "alice")
    with gateway(pool, redis_url=clean_redis, auth="required") as client:
        missing = client.post("/v1/chat/completions", json=CHAT)
        unknown = client.get("/v1/models", headers=bearer("bg-unknown"))
        right = client.post("/v1/chat/completions", json=CHAT, headers=bearer(secret))
        health = client.get("/healthz")
        metrics = client.get("/metrics").text
    for refused in (missing, unknown):
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "invalid_api_key"
        assert refused.headers["x-request-id"]
    assert right.status_code == 200 and health.status_code == 200
    assert 'bitgate_auth_failures_total{reason="missing"} 1.0' in metrics
    assert 'bitgate_auth_failures_total{reason="unknown"} 1.0' in metrics
    assert secret not in metrics


def test_a_key_over_its_limit_gets_429_with_openai_headers(pool: Path, clean_redis: str) -> None:
    secret = create_key(clean_redis, "alice", rpm=2, tpm=100_000)
    with gateway(pool, redis_url=clean_redis, auth="required", metrics_key_names=True) as client:
        answers = [
            client.post("/v1/chat/completions", json=CHAT, headers=bearer(secret)) for _ in range(3)
        ]
        metrics = client.get("/metrics").text
    assert [a.status_code for a in answers] == [200, 200, 429]
    first, refused = answers[0].headers, answers[2]
    assert first["x-ratelimit-limit-requests"] == "2"
    assert first["x-ratelimit-remaining-requests"] == "1"
    assert first["x-ratelimit-reset-requests"].endswith("s")
    assert first["x-ratelimit-limit-tokens"] == "100000"
    assert int(first["x-ratelimit-remaining-tokens"]) < 100_000
    assert refused.json()["error"]["type"] == "rate_limit_error"
    assert 1 <= int(refused.headers["retry-after"]) <= 30
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert 'bitgate_ratelimit_rejections_total{key="alice",limit="requests"} 1.0' in metrics


def test_a_key_held_to_some_pools_cannot_use_others(pool: Path, clean_redis: str) -> None:
    secret = create_key(clean_redis, "narrow", pools=["other"])
    with gateway(pool, redis_url=clean_redis, auth="required") as client:
        refused = client.post("/v1/chat/completions", json=CHAT, headers=bearer(secret))
    assert refused.status_code == 404
    assert refused.json()["error"]["param"] == "model"


def test_usage_counts_the_winner_and_every_miner_call(pool: Path, clean_redis: str) -> None:
    secret = create_key(clean_redis, "alice", tpm=100_000)
    with gateway(pool, redis_url=clean_redis, auth="required", metrics_key_names=True) as client:
        # Every miner heard, so the block's fan-out is the whole fan-out the key is charged.
        every = {**CHAT, "bitgate": {"wait": "all"}}
        body = client.post("/v1/chat/completions", json=every, headers=bearer(secret)).json()
        metrics = client.get("/metrics").text
    winner = body["usage"]["total_tokens"]
    fanout = body["bitgate"]["fanout_usage"]
    assert fanout["calls"] == 3 and fanout["total_tokens"] > winner > 0
    series = 'bitgate_key_tokens_total{key="alice",pool="sim",scope="%s"} %d.0'
    assert series % ("winner", winner) in metrics
    assert series % ("fanout", fanout["total_tokens"]) in metrics
    assert 'bitgate_key_requests_total{key="alice",pool="sim"} 1.0' in metrics

    async def stored() -> dict[str, Any]:
        client = aioredis.Redis.from_url(clean_redis)
        try:
            return await read_usage(client, "alice")
        finally:
            await client.aclose()

    expected = {
        "sim": {"requests": 1, "winner_tokens": winner, "fanout_tokens": fanout["total_tokens"]}
    }
    assert eventually(lambda: asyncio.run(stored()).get("alice"), expected)


def test_one_json_line_per_request_without_the_prompt(
    pool: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bitgate.requests")
    with gateway(pool) as client:
        client.post("/v1/chat/completions", json=CHAT, headers={"x-request-id": "r-1"})
    lines = [orjson.loads(r.getMessage()) for r in caplog.records if r.name == "bitgate.requests"]
    assert len(lines) == 1
    line = lines[0]
    assert line["request_id"] == "r-1" and line["status"] == 200
    assert (line["key"], line["pool"], line["strategy"], line["miner"]) == (
        "anonymous",
        "sim",
        "best_of",
        0,
    )
    assert sorted(c["uid"] for c in line["candidates"]) == [0, 1, 2]
    assert line["latency_ms"] > 0 and line["fanout_tokens"] > line["winner_tokens"] > 0
    assert "prompt" not in line and "France" not in caplog.text


def test_the_prompt_is_logged_only_when_asked(pool: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="bitgate.requests")
    with gateway(pool, log_prompts=True) as client:
        client.post("/v1/chat/completions", json=CHAT)
    lines = [orjson.loads(r.getMessage()) for r in caplog.records if r.name == "bitgate.requests"]
    assert "France" in lines[0]["prompt"]


def test_a_race_is_logged_and_counted_once_every_miner_has_answered(
    pool: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bitgate.requests")
    race = {**CHAT, "bitgate": {"strategy": "race"}}
    with gateway(pool) as client:
        body = client.post("/v1/chat/completions", json=race).json()

        def logged() -> list[dict[str, Any]]:
            return [
                orjson.loads(r.getMessage()) for r in caplog.records if r.name == "bitgate.requests"
            ]

        assert eventually(lambda: len(logged()), 1)
        metrics = client.get("/metrics").text
    line = logged()[0]
    assert line["strategy"] == "race" and line["miner"] == body["bitgate"]["miner"]["uid"]
    assert sorted(c["uid"] for c in line["candidates"]) == [0, 1, 2]
    assert f'scope="fanout"}} {line["fanout_tokens"]}.0' in metrics
