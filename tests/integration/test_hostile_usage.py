"""What a miner reports is a claim: a key is charged for what the gateway received and
returned, and its limits hold however the request is padded or raced (issue 19, item 2)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from tests.integration.hostile import chat_reply, miners, pool_file
from tests.integration.test_keys import create_key, keyed_env
from tests.support import GatewayProcess, LoopThread, eventually

pytestmark = pytest.mark.integration

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
FLUSH_WAIT_S = 0.7  # a little over the access flush interval (gateway.door.access.FLUSH_S)
ANSWER = "Paris is the capital of France, on the Seine, in the north of the country."


def ask(gateway: GatewayProcess, secret: str, **fields: Any) -> httpx.Response:
    body = {"model": "sim", "messages": QUESTION, **fields}
    headers = {"authorization": f"Bearer {secret}"}
    return httpx.post(
        gateway.base_url + "/v1/chat/completions", json=body, headers=headers, timeout=30
    )


def charged(redis_url: str, name: str) -> int:
    """The tokens the key was charged for its returned replies (its usage ledger)."""
    value = redis.Redis.from_url(redis_url).hget(f"bitgate:usage:{name}", "sim|winner_tokens")
    return int(value or 0)


def test_a_miners_usage_claim_is_capped_by_what_it_said(
    loop_thread: LoopThread, tmp_path: Path, clean_redis: str
) -> None:
    # Failed before: the key was charged the 50 M tokens, and its next request got a 429.
    claim = {"prompt_tokens": 50_000_000, "completion_tokens": 50_000_000}
    secret = create_key(clean_redis, "--name", "claimed", "--tpm", "100000")
    with miners(loop_thread, chat_reply({"content": ANSWER}, claim)) as ports:
        path = pool_file(tmp_path / "p.json", ports)
        gateway = GatewayProcess("--metagraph", str(path), env=keyed_env(clean_redis))
        try:
            first = ask(gateway, secret)
            assert eventually(lambda: charged(clean_redis, "claimed") > 0, True)
            second = ask(gateway, secret)
        finally:
            gateway.stop()
    assert first.status_code == 200, first.text
    assert second.status_code == 200, second.text
    # The prompt as sent, the answer as said, and a chat template's worth of each.
    assert charged(clean_redis, "claimed") < 1000


def test_every_returned_choice_is_charged(
    loop_thread: LoopThread, tmp_path: Path, clean_redis: str
) -> None:
    # Failed before: n=3 charged the first choice only (110 tokens, not 310).
    usage = {"prompt_tokens": 10, "completion_tokens": 100, "total_tokens": 110}
    replies = [chat_reply({"content": f"{i}: {ANSWER}"}, usage) for i in range(3)]
    secret = create_key(clean_redis, "--name", "choices")
    with miners(loop_thread, *replies) as ports:
        path = pool_file(tmp_path / "p.json", ports)
        gateway = GatewayProcess("--metagraph", str(path), env=keyed_env(clean_redis))
        try:
            resp = ask(gateway, secret, n=3)
            assert eventually(lambda: charged(clean_redis, "choices") > 0, True)
        finally:
            gateway.stop()
    assert resp.status_code == 200, resp.text
    assert len(resp.json()["choices"]) == 3
    assert charged(clean_redis, "choices") == 10 + 3 * 100


def test_padding_a_body_with_fields_never_forwarded_does_not_pass_the_tpm(
    loop_thread: LoopThread, tmp_path: Path, clean_redis: str
) -> None:
    # Failed before: 100 KB of padding reserved 25,000 tokens, charged the whole limit, and
    # refunded the 25,000: every padded request refilled the key's minute.
    usage = {"prompt_tokens": 20, "completion_tokens": 500, "total_tokens": 520}
    secret = create_key(clean_redis, "--name", "padded", "--tpm", "2000")
    padding = "x" * 100_000
    with miners(loop_thread, chat_reply({"content": ANSWER * 30}, usage)) as ports:
        path = pool_file(tmp_path / "p.json", ports)
        gateway = GatewayProcess("--metagraph", str(path), env=keyed_env(clean_redis))
        try:
            statuses = []
            for _ in range(10):
                statuses.append(ask(gateway, secret, x_padding=padding).status_code)
                time.sleep(FLUSH_WAIT_S)  # the token correction reaches Redis
        finally:
            gateway.stop()
    assert statuses[0] == 200
    assert 429 in statuses, statuses


def test_a_keys_slot_is_held_while_a_races_other_calls_run(
    loop_thread: LoopThread, tmp_path: Path, clean_redis: str
) -> None:
    # Failed before: the key's concurrency was freed when the race answered.
    secret = create_key(clean_redis, "--name", "racer", "--concurrency", "1")
    reply = chat_reply({"content": ANSWER})
    with miners(loop_thread, reply) as fast, miners(loop_thread, reply, delay_s=3.0) as slow:
        path = pool_file(tmp_path / "p.json", fast + slow)
        env = keyed_env(clean_redis)
        gateway = GatewayProcess("--metagraph", str(path), "--strategy", "race", env=env)
        try:
            first = ask(gateway, secret)
            during = ask(gateway, secret)
            after_settle = eventually(lambda: ask(gateway, secret).status_code, 200, timeout=10)
        finally:
            gateway.stop()
    assert first.status_code == 200, first.text
    assert during.status_code == 429, during.text
    assert "requests in flight" in during.json()["error"]["message"]
    assert after_settle


def _two_pools(tmp_path: Path, port: int) -> Path:
    for name in ("sim", "other"):
        pool_file(tmp_path / f"{name}.json", [port], name=name)
    pools = {
        "pools": [{"name": n, "metagraph": str(tmp_path / f"{n}.json")} for n in ("sim", "other")]
    }
    path = tmp_path / "pools.json"
    path.write_text(json.dumps(pools))
    return path


@pytest.mark.parametrize("named", [False, True])
def test_a_key_sees_only_its_pools_and_metrics_name_no_key_unless_asked(
    loop_thread: LoopThread, tmp_path: Path, clean_redis: str, named: bool
) -> None:
    # Failed before: /metrics named every key, and a key limited to `sim` listed `other`
    # in /v1/models and read its leaderboard.
    secret = create_key(clean_redis, "--name", "secret-tenant", "--pools", "sim")
    headers = {"authorization": f"Bearer {secret}"}
    env = keyed_env(clean_redis, BITGATE_METRICS_KEY_NAMES=str(named).lower())
    with miners(loop_thread, chat_reply({"content": ANSWER})) as ports:
        gateway = GatewayProcess("--pools", str(_two_pools(tmp_path, ports[0])), env=env)
        try:
            assert ask(gateway, secret).status_code == 200
            models = httpx.get(gateway.base_url + "/v1/models", headers=headers, timeout=10)
            own = httpx.get(gateway.base_url + "/v1/pools/sim/miners", headers=headers, timeout=10)
            other = httpx.get(
                gateway.base_url + "/v1/pools/other/miners", headers=headers, timeout=10
            )
            metrics = httpx.get(gateway.base_url + "/metrics", timeout=10).text
        finally:
            gateway.stop()
    assert [m["id"] for m in models.json()["data"]] == ["sim"]
    assert own.status_code == 200
    assert other.status_code == 404
    assert other.json()["error"]["message"] == "The pool 'other' does not exist."
    assert ("secret-tenant" in metrics) is named
    assert 'bitgate_key_requests_total{key="all",pool="sim"}' in metrics or named
