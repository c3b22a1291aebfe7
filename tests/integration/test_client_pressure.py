"""Back-pressure that holds: streams, background race calls and slow uploads keep their slots."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.support import GatewayProcess, eventually, profiles

pytestmark = pytest.mark.integration

CHAT = {"model": "sim", "messages": [{"role": "user", "content": "What is the capital of France?"}]}
ONE_SLOT = {"BITGATE_MAX_INFLIGHT": "1"}


def post(gateway: GatewayProcess, body: dict[str, Any] = CHAT) -> httpx.Response:
    return httpx.post(gateway.base_url + "/v1/chat/completions", json=body, timeout=30)


def load(gateway: GatewayProcess) -> dict[str, int]:
    report: dict[str, int] = httpx.get(gateway.base_url + "/readyz", timeout=5).json()["load"]
    return report


def test_a_stream_holds_its_slot_until_its_last_chunk(sim_pool: Callable[..., Any]) -> None:
    # About 4 s of tokens: the stream is still sending when the second request comes.
    _, path = sim_pool(profiles({"quality": "rambling", "latency": {"tokens_per_s": 20}}))
    gateway = GatewayProcess("--metagraph", str(path), "--strategy", "race", env=ONE_SLOT)
    try:
        streamed = {**CHAT, "stream": True}
        with httpx.stream(
            "POST", gateway.base_url + "/v1/chat/completions", json=streamed, timeout=30
        ) as stream:
            assert stream.status_code == 200
            lines = stream.iter_lines()
            assert next(line for line in lines if line.startswith("data: {"))
            during = post(gateway)
            rest = list(lines)
        assert [line for line in rest if line][-1] == "data: [DONE]"
        assert eventually(lambda: load(gateway)["inflight"], 0)
        after = post(gateway)
    finally:
        gateway.stop()
    assert during.status_code == 429, during.text
    assert during.json()["error"]["code"] == "rate_limit_exceeded"
    assert after.status_code == 200


def test_a_race_s_background_calls_count_against_the_limit(sim_pool: Callable[..., Any]) -> None:
    _, path = sim_pool(profiles({"quality": "good"}, {"quality": "good", "latency": 3000}))
    gateway = GatewayProcess("--metagraph", str(path), "--strategy", "race", env=ONE_SLOT)
    try:
        first = post(gateway)
        during = post(gateway)
        settling = load(gateway)["settling"]
        assert eventually(lambda: load(gateway)["settling"], 0, timeout=10)
        after = post(gateway)
    finally:
        gateway.stop()
    assert first.status_code == 200
    assert [c["status"] for c in first.json()["bitgate"]["candidates"]].count("pending") == 1
    assert settling == 1
    assert during.status_code == 429, during.text
    assert after.status_code == 200


def _slow_upload(port: int, answers: list[bytes]) -> None:
    """Declare a body, send a tenth of it, then wait for whatever the gateway says."""
    body = json.dumps(CHAT).encode()
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
            + f"\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body[: len(body) // 10]
        )
        sock.settimeout(20)
        answer = b""
        for _ in range(10):  # the head and the body may come apart; the gateway then closes
            part = sock.recv(65536)
            answer += part
            if not part or answer.endswith(b"}"):
                break
        answers.append(answer)


def test_a_slow_upload_gets_408_and_frees_its_slot(sim_pool: Callable[..., Any]) -> None:
    _, path = sim_pool(profiles("good"))
    env = {**ONE_SLOT, "BITGATE_BODY_TIMEOUT_S": "1"}
    gateway = GatewayProcess("--metagraph", str(path), env=env)
    answers: list[bytes] = []
    try:
        uploader = threading.Thread(target=_slow_upload, args=(gateway.port, answers))
        uploader.start()
        assert eventually(lambda: load(gateway)["inflight"], 1)
        during = post(gateway)
        uploader.join(30)
        after = post(gateway)
    finally:
        out = gateway.stop()
    assert during.status_code == 429
    assert answers and answers[0].startswith(b"HTTP/1.1 408"), answers
    assert b"request_timeout" in answers[0]
    assert after.status_code == 200
    assert "Traceback" not in out
