"""Edges a production gateway meets: clients that leave, overload, and tool-calling miners."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from router.metagraph import Axon, Metagraph, Neuron
from tests.support import GatewayProcess, LoopThread, eventually, profiles

pytestmark = pytest.mark.integration

CHAT = {"model": "sim", "messages": [{"role": "user", "content": "What is the capital of France?"}]}


def metric(gateway: GatewayProcess, line_start: str) -> float:
    """The value of the first /metrics line starting with `line_start`, 0 if absent."""
    text = httpx.get(gateway.base_url + "/metrics", timeout=5).text
    for line in text.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_a_client_that_leaves_cancels_its_request_cleanly(sim_pool: Callable[..., Any]) -> None:
    # The miner would answer after 3 s; the client leaves once the miner is asked.
    pool, path = sim_pool(profiles({"quality": "good", "latency": 3000}))
    gateway = GatewayProcess("--metagraph", str(path))
    try:
        body = json.dumps(CHAT).encode()
        with socket.create_connection(("127.0.0.1", gateway.port)) as sock:
            sock.sendall(
                b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                + f"\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            assert eventually(pool.in_flight, [1], timeout=5.0)
        # The miner saw its caller hang up: a call run to its end is never counted so.
        assert eventually(pool.cancelled_counts, [1], timeout=2.0)
        assert pool.in_flight() == [0]
        closed = 'bitgate_requests_total{pool="sim",status="499"'
        assert eventually(lambda: metric(gateway, closed), 1.0, timeout=2.0)
        assert httpx.post(
            gateway.base_url + "/v1/chat/completions", json=CHAT, timeout=10
        ).is_success
    finally:
        out = gateway.stop()
    assert "Traceback" not in out and "unexpected error" not in out


def test_past_the_in_flight_limit_requests_get_429_with_retry_after(
    sim_pool: Callable[..., Any],
) -> None:
    _, path = sim_pool(profiles({"quality": "good", "latency": 1500}))
    gateway = GatewayProcess("--metagraph", str(path), env={"BITGATE_MAX_INFLIGHT": "1"})
    first: list[httpx.Response] = []
    try:
        slow = threading.Thread(
            target=lambda: first.append(
                httpx.post(gateway.base_url + "/v1/chat/completions", json=CHAT, timeout=10)
            )
        )
        slow.start()
        time.sleep(0.5)
        refused = httpx.post(gateway.base_url + "/v1/chat/completions", json=CHAT, timeout=10)
        slow.join(10)
    finally:
        gateway.stop()
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "1"
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert first and first[0].status_code == 200


TOOL_CALL = {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{}"}}


async def _tool_miner(request: web.Request) -> web.Response:
    """A miner that answers every chat with a tool call and no text."""
    await request.read()
    message = {"role": "assistant", "content": None, "tool_calls": [TOOL_CALL]}
    return web.json_response(
        {
            "id": "chatcmpl-tool",
            "object": "chat.completion",
            "created": 1,
            "model": "m",
            "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}],
        }
    )


@pytest.fixture
def tool_pool(loop_thread: LoopThread, tmp_path: Path) -> Iterator[Path]:
    """One tool-calling miner on a loopback port, and its metagraph."""
    app = web.Application()
    app.router.add_post("/v1/chat/completions", _tool_miner)
    runner = web.AppRunner(app)
    loop_thread.run(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop_thread.run(site.start())
    port = runner.addresses[0][1]
    neuron = Neuron(uid=0, hotkey="5Tool", axon=Axon(ip="127.0.0.1", port=port), incentive=1.0)
    path = tmp_path / "tools.json"
    path.write_text(Metagraph(name="sim", neurons=[neuron]).model_dump_json())
    yield path
    loop_thread.run(runner.cleanup())


def test_tool_calls_come_back_whole_in_json_and_in_streams(tool_pool: Path) -> None:
    gateway = GatewayProcess("--metagraph", str(tool_pool))
    tools = [{"type": "function", "function": {"name": "weather", "parameters": {}}}]
    try:
        url = gateway.base_url + "/v1/chat/completions"
        plain = httpx.post(url, json={**CHAT, "tools": tools}, timeout=10)
        streamed = httpx.post(url, json={**CHAT, "tools": tools, "stream": True}, timeout=10)
    finally:
        gateway.stop()
    assert plain.status_code == 200
    assert plain.json()["choices"][0]["message"]["tool_calls"] == [TOOL_CALL]
    events = [
        json.loads(line[6:]) for line in streamed.text.splitlines() if line.startswith("data: {")
    ]
    deltas = [c["choices"][0]["delta"] for c in events if c.get("choices")]
    assert deltas[0]["tool_calls"] == [{"index": 0, **TOOL_CALL}]
    assert events[-1]["choices"][0]["finish_reason"] == "tool_calls"
