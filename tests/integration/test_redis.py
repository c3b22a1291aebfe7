"""Gateways sharing a real Redis: shared scores, and serving on when Redis goes away."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from tests.support import GatewayProcess, RedisServer, eventually, profiles

pytestmark = pytest.mark.integration

CHAT = {
    "model": "sim",
    "messages": [{"role": "user", "content": "What is the boiling point of water?"}],
}
FAST_SYNC = {"BITGATE_STORE_SYNC_S": "0.1"}


def ask(gateway: GatewayProcess) -> httpx.Response:
    """One chat request to the gateway."""
    return httpx.post(gateway.base_url + "/v1/chat/completions", json=CHAT, timeout=10)


def requests_of(gateway: GatewayProcess) -> dict[int, int]:
    """Requests per miner uid, from the gateway's leaderboard."""
    board = httpx.get(gateway.base_url + "/v1/pools/sim/miners", timeout=5).json()["data"]
    return {row["uid"]: row["requests"] for row in board}


def stored_requests(url: str) -> dict[int, int]:
    """Requests per miner uid, as Redis holds them."""
    with redis.Redis.from_url(url) as client:
        stats = client.hgetall("bitgate:sim:miners")
    return {int(uid): json.loads(doc)["requests"] for uid, doc in stats.items()}


def store_healthy(gateway: GatewayProcess) -> bool:
    """What /readyz says of the state store."""
    return bool(httpx.get(gateway.base_url + "/readyz", timeout=5).json()["store"]["healthy"])


def test_replicas_share_scores_through_redis(
    sim_pool: Callable[..., Any], clean_redis: str
) -> None:
    _, path = sim_pool(profiles("good", "partial"))
    env = {"BITGATE_REDIS_URL": clean_redis, **FAST_SYNC}
    first = GatewayProcess("--metagraph", str(path), env=env)
    second = GatewayProcess("--metagraph", str(path), env=env)
    try:
        for _ in range(3):
            assert ask(first).status_code == 200
        assert ask(second).status_code == 200
        assert eventually(lambda: requests_of(second), {0: 4, 1: 4})
        assert eventually(lambda: requests_of(first), {0: 4, 1: 4})
    finally:
        first.stop()
        second.stop()


def test_requests_succeed_while_redis_is_down_and_state_catches_up(
    sim_pool: Callable[..., Any], tmp_path: Path
) -> None:
    _, path = sim_pool(profiles("good", "off_topic"))
    redis_server = RedisServer(tmp_path)
    env = {"BITGATE_REDIS_URL": redis_server.url, **FAST_SYNC}
    gateway = GatewayProcess("--metagraph", str(path), env=env)
    try:
        assert ask(gateway).status_code == 200
        assert eventually(lambda: stored_requests(redis_server.url), {0: 1, 1: 1})
        redis_server.stop()
        for _ in range(5):
            resp = ask(gateway)
            assert resp.status_code == 200
            assert resp.json()["bitgate"]["miner"]["uid"] == 0
        assert eventually(lambda: store_healthy(gateway), False)
        assert requests_of(gateway) == {0: 6, 1: 6}
        redis_server.start()
        assert eventually(lambda: store_healthy(gateway), True)
        # Outcomes queued while Redis was down were written once it came back (its data is
        # gone, so Redis now holds exactly those five requests plus any after).
        assert eventually(lambda: stored_requests(redis_server.url), {0: 5, 1: 5})
        assert eventually(lambda: requests_of(gateway), {0: 5, 1: 5})
        assert ask(gateway).status_code == 200
        assert eventually(lambda: requests_of(gateway), {0: 6, 1: 6})
    finally:
        out = gateway.stop()
        redis_server.stop()
    assert "Traceback" not in out


def test_gateway_starts_with_redis_down(sim_pool: Callable[..., Any]) -> None:
    _, path = sim_pool(profiles("good"))
    env = {"BITGATE_REDIS_URL": "redis://127.0.0.1:1/0", **FAST_SYNC}
    gateway = GatewayProcess("--metagraph", str(path), env=env)
    try:
        assert ask(gateway).status_code == 200
        ready = httpx.get(gateway.base_url + "/readyz", timeout=5).json()
        assert ready["ready"] is True
        assert ready["store"]["kind"] == "redis"
        assert (ready["store"]["healthy"], ready["store"]["state"]) == (False, "down")
    finally:
        gateway.stop()
