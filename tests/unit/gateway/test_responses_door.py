"""`POST /v1/responses` passes the same door as chat: key pools, limits, usage, one log line."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import profiles
from tests.unit.gateway.test_access import Pools, bearer, create_key, gateway

RESPONSE = {"model": "sim", "input": "What is the capital of France?"}


@pytest.fixture
def pool(sim_pool: Pools) -> Path:
    _, path = sim_pool(profiles("good", "wrong"))
    return Path(path)


def test_keys_limits_and_pools_hold_for_responses(pool: Path, clean_redis: str) -> None:
    limited = create_key(clean_redis, "alice", rpm=1, tpm=100_000)
    narrow = create_key(clean_redis, "narrow", pools=["other"])
    with gateway(pool, redis_url=clean_redis, auth="required", metrics_key_names=True) as client:
        answers = [
            client.post("/v1/responses", json=RESPONSE, headers=bearer(limited)) for _ in range(2)
        ]
        elsewhere = client.post("/v1/responses", json=RESPONSE, headers=bearer(narrow))
        anonymous = client.post("/v1/responses", json=RESPONSE)
        metrics = client.get("/metrics").text
    assert [a.status_code for a in answers] == [200, 429]
    assert answers[0].headers["x-ratelimit-limit-requests"] == "1"
    assert elsewhere.status_code == 404 and elsewhere.json()["error"]["param"] == "model"
    assert anonymous.status_code == 401
    assert 'bitgate_key_requests_total{key="alice",pool="sim"} 1.0' in metrics


def test_the_body_limit_holds_for_responses(pool: Path) -> None:
    with gateway(pool, max_body_bytes=2048) as client:
        too_big = client.post("/v1/responses", json={**RESPONSE, "input": "x" * 4096})
    assert too_big.status_code == 413
