"""Keys and limits across gateway processes sharing a real Redis."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.support import ROOT, GatewayProcess, RedisServer, eventually, free_port, profiles

pytestmark = pytest.mark.integration

CHAT = {"model": "sim", "messages": [{"role": "user", "content": "What is 2 + 2?"}]}


def bitgate(*argv: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run the `bitgate` command as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "gateway", *argv],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def create_key(redis_url: str, *argv: str) -> str:
    """`bitgate keys create …`; the secret is the last line it prints."""
    done = bitgate("keys", "create", *argv, env={"BITGATE_REDIS_URL": redis_url})
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def ask(gateway: GatewayProcess, secret: str) -> httpx.Response:
    """One chat request with `secret` as the bearer key."""
    headers = {"authorization": f"Bearer {secret}"}
    return httpx.post(
        gateway.base_url + "/v1/chat/completions", json=CHAT, headers=headers, timeout=10
    )


def keyed_env(redis_url: str, **extra: str) -> dict[str, str]:
    return {"BITGATE_REDIS_URL": redis_url, "BITGATE_AUTH": "required", **extra}


def test_two_gateways_together_allow_a_keys_limit_not_twice_it(
    sim_pool: Callable[..., Any], clean_redis: str
) -> None:
    _, path = sim_pool(profiles("good", "partial"))
    secret = create_key(clean_redis, "--name", "shared", "--rpm", "3")
    env = keyed_env(clean_redis)
    first = GatewayProcess("--metagraph", str(path), env=env)
    second = GatewayProcess("--metagraph", str(path), env=env)
    try:
        statuses = [ask(first if i % 2 else second, secret).status_code for i in range(8)]
        client = openai.OpenAI(base_url=first.base_url + "/v1", api_key=secret, max_retries=0)
        with pytest.raises(openai.RateLimitError):
            client.chat.completions.create(model="sim", messages=CHAT["messages"])
    finally:
        logs = first.stop() + second.stop()
    assert sorted(statuses) == [200] * 3 + [429] * 5
    lines = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    assert {line["key"] for line in lines} == {"shared"}
    assert sum(line["status"] == 200 for line in lines) == 3
    assert secret not in logs


def test_a_revoked_key_is_refused_by_every_gateway_within_5_s(
    sim_pool: Callable[..., Any], clean_redis: str
) -> None:
    _, path = sim_pool(profiles("good"))
    secret = create_key(clean_redis, "--name", "leaving")
    env = keyed_env(clean_redis)
    first = GatewayProcess("--metagraph", str(path), env=env)
    second = GatewayProcess("--metagraph", str(path), env=env)
    try:
        assert (ask(first, secret).status_code, ask(second, secret).status_code) == (200, 200)
        done = bitgate("keys", "revoke", "leaving", env={"BITGATE_REDIS_URL": clean_redis})
        assert done.returncode == 0, done.stderr

        def both() -> tuple[int, int]:
            return ask(first, secret).status_code, ask(second, secret).status_code

        assert eventually(both, (401, 401), timeout=5.0)
        refused = ask(first, secret).json()["error"]
        assert refused["code"] == "invalid_api_key" and "revoked" in refused["message"]
    finally:
        first.stop()
        second.stop()


def test_with_redis_gone_each_gateway_applies_its_fallback_limit_and_serves(
    sim_pool: Callable[..., Any], tmp_path: Path
) -> None:
    _, path = sim_pool(profiles("good"))
    server = RedisServer(tmp_path)
    secret = create_key(server.url, "--name", "steady", "--rpm", "4")
    env = keyed_env(server.url, BITGATE_LIMITS_FALLBACK_SHARE="0.5")
    gateway = GatewayProcess("--metagraph", str(path), env=env)
    try:
        assert ask(gateway, secret).status_code == 200
        server.stop()
        answers = [ask(gateway, secret) for _ in range(4)]
    finally:
        gateway.stop()
        server.stop()
    # Half of rpm 4 on this replica alone, counted from the minute Redis last saw (one request
    # spent): one more served, the rest refused, none failed.
    assert [a.status_code for a in answers] == [200, 429, 429, 429]
    assert answers[0].headers["x-ratelimit-limit-requests"] == "4"
    assert int(answers[3].headers["retry-after"]) >= 1


def test_a_stream_holds_its_keys_slot_until_its_last_chunk(
    sim_pool: Callable[..., Any], clean_redis: str
) -> None:
    _, path = sim_pool(profiles({"quality": "good", "latency": {"tokens_per_s": 8}}))
    secret = create_key(clean_redis, "--name", "one-at-a-time", "--concurrency", "1")
    gateway = GatewayProcess("--metagraph", str(path), env=keyed_env(clean_redis))
    streamed = {**CHAT, "stream": True, "bitgate": {"strategy": "race"}}
    headers = {"authorization": f"Bearer {secret}"}
    try:
        with httpx.stream(
            "POST", gateway.base_url + "/v1/chat/completions", json=streamed, headers=headers
        ) as stream:
            assert stream.status_code == 200
            meanwhile = ask(gateway, secret)
            body = stream.read()
        assert body.endswith(b"data: [DONE]\n\n")
        assert eventually(lambda: ask(gateway, secret).status_code, 200)
    finally:
        gateway.stop()
    assert meanwhile.status_code == 429
    assert "in flight" in meanwhile.json()["error"]["message"]


def test_serve_refuses_an_open_api_on_a_public_bind(sim_pool: Callable[..., Any]) -> None:
    _, path = sim_pool(profiles("good"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("BITGATE_")}
    serve = ["serve", "--metagraph", str(path), "--host", "0.0.0.0", "--port", str(free_port())]
    done = subprocess.run(
        [sys.executable, "-m", "gateway", *serve],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "BITGATE_AUTH" in done.stderr
