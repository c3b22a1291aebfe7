"""Hostile input, second round: no attacker-sized work on the event loop, no charge a miner
invents, the door before the queue, bounded replies (issue 19), against a real gateway."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.integration.hostile import chat_reply, longest_stall, miners, pool_file
from tests.support import GatewayProcess, LoopThread

pytestmark = pytest.mark.integration

STALL_S = 0.25
QUESTION = [{"role": "user", "content": "Call the tool."}]


def post(gateway: GatewayProcess, body: dict[str, Any], **kwargs: Any) -> httpx.Response:
    return httpx.post(gateway.base_url + "/v1/chat/completions", json=body, timeout=60, **kwargs)


def tool(name: str, parameters: dict[str, Any]) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name, "parameters": parameters}}


SCHEMA_FLOODS: dict[str, dict[str, Any]] = {
    "response_format": {
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "x", "schema": {"anyOf": [{}] * 21000}},
        }
    },
    "pattern_repeat": {
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "x", "schema": {"type": "string", "pattern": "a{10000000}"}},
        }
    },
    "three_tools": {
        "tools": [
            tool(f"f{i}", {"type": "object", "properties": {"a": {"anyOf": [{}] * 16300}}})
            for i in range(3)
        ]
    },
}


@pytest.mark.parametrize("flood", list(SCHEMA_FLOODS))
def test_a_schema_that_costs_seconds_to_check_never_stalls_the_gateway(
    loop_thread: LoopThread, tmp_path: Path, flood: str
) -> None:
    # Failed before: jsonschema's check_schema ran outside the budget (7.7 s, 20 s); `regex`
    # wrote out a 20-byte pattern's repeat (5 s, 2.6 GiB).
    with miners(loop_thread, chat_reply({"content": "{}"})) as ports:
        gateway = GatewayProcess("--metagraph", str(pool_file(tmp_path / "p.json", ports)))
        try:
            body = {"model": "sim", "messages": QUESTION, **SCHEMA_FLOODS[flood]}
            resp, stall = longest_stall(gateway.base_url, lambda: post(gateway, body))
        finally:
            gateway.stop()
    assert resp.status_code == 400, resp.text
    assert "too large" in resp.json()["error"]["message"]
    assert stall < STALL_S, f"/healthz waited {stall:.3f} s"


def test_a_tool_call_whose_unique_items_cost_seconds_never_stalls_the_gateway(
    loop_thread: LoopThread, tmp_path: Path
) -> None:
    # Failed before: uniqueItems compared 6,700 numbers and a string pairwise (20 s).
    arguments = orjson.dumps({"xs": [*range(6700), "s"]}).decode()
    call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": arguments}}
    reply = chat_reply({"content": None, "tool_calls": [call]})
    parameters = {"type": "object", "properties": {"xs": {"type": "array", "uniqueItems": True}}}
    body = {"model": "sim", "messages": QUESTION, "tools": [tool("f", parameters)]}
    with miners(loop_thread, reply, reply) as ports:
        gateway = GatewayProcess("--metagraph", str(pool_file(tmp_path / "p.json", ports)))
        try:
            resp, stall = longest_stall(gateway.base_url, lambda: post(gateway, body))
        finally:
            gateway.stop()
    assert resp.status_code == 200, resp.text
    assert stall < STALL_S, f"/healthz waited {stall:.3f} s"


def _rss_mib(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no {field} for {pid}")


def tiny_values(size: int) -> bytes:
    """A JSON array of empty objects, `size` bytes long: ~24x its size once parsed."""
    count = (size - 2) // 3
    return b"[" + b",".join([b"{}"] * count) + b"]"


def test_twenty_hostile_replies_at_once_cost_the_gateway_under_25_mib(
    loop_thread: LoopThread, tmp_path: Path
) -> None:
    # Failed before: each reply was parsed whole (~48 MiB of objects per 2 MiB reply; the
    # peak grew 81 MiB here, the issue saw 819 MiB). Now each is refused after 64 KiB.
    hostile = tiny_values(2 * 1024 * 1024 - 1024)
    with miners(loop_thread, *[hostile] * 20) as ports:
        path = pool_file(tmp_path / "p.json", ports)
        gateway = GatewayProcess("--metagraph", str(path), "--top-k", "20", "--ranker", "filters")
        try:
            pid = gateway.proc.pid
            assert post(gateway, {"model": "sim", "messages": QUESTION}).status_code == 502
            Path(f"/proc/{pid}/clear_refs").write_text("5")  # the peak RSS starts again here
            before = _rss_mib(pid, "VmRSS")
            resp = post(gateway, {"model": "sim", "messages": QUESTION})
            grown = _rss_mib(pid, "VmHWM") - before
        finally:
            gateway.stop()
    assert resp.status_code == 502, resp.text
    assert "invalid" in resp.json()["error"]["message"]
    assert grown < 25, f"the gateway grew {grown:.0f} MiB"


# The densest shapes the reply scanner lets through (tests/unit/router/test_reply_shape.py):
# `[-1e9]` parses to ~13.7x its bytes (a JSON reply may cost 14x), `[1.5]` to ~16x (a stream
# may cost 24x).
DENSE_REPLY = b"[-1e9]"
DENSE_CHUNK = b"[1.5]"
REPLY_BYTES = 2 * 1024 * 1024 - 4096


def dense_reply(uid: int) -> bytes:
    """A valid chat completion that also carries ~2 MiB of the densest accepted JSON."""
    head = chat_reply({"content": f"Paris, says miner {uid}."})[:-1] + b',"x":['
    count = (REPLY_BYTES - len(head) - 2) // (len(DENSE_REPLY) + 1)
    return head + b",".join([DENSE_REPLY] * count) + b"]}"


def dense_stream(uid: int) -> bytes:
    """An event stream of ~2 MiB whose every chunk carries a word and dense JSON."""
    junk = b",".join([DENSE_CHUNK] * 700)

    def event(delta: bytes, finish: bytes) -> bytes:
        choice = b'{"index":0,"delta":' + delta + b',"finish_reason":' + finish + b"}"
        return (
            b'data: {"id":"m","object":"chat.completion.chunk","choices":['
            + choice
            + (b'],"x":[' + junk + b"]}\n\n")
        )

    word = event(b'{"content":"Paris "}', b"null")
    count = (REPLY_BYTES - 2 * len(word)) // len(word)
    last = event(f'{{"content":"says {uid}."}}'.encode(), b'"stop"')
    return word * count + last + b"data: [DONE]\n\n"


def settled(gateway: GatewayProcess, replies: int) -> bool:
    """Wait (10 s at most) until the gateway has counted this many miner replies."""
    for _ in range(100):
        metrics = httpx.get(gateway.base_url + "/metrics").text
        counted = sum(
            float(line.rsplit(" ", 1)[1])
            for line in metrics.splitlines()
            if line.startswith("bitgate_miner_outcomes_total{")
        )
        if counted >= replies:
            return True
        time.sleep(0.1)
    return False


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_twenty_dense_2_mib_replies_at_once_cost_the_gateway_under_100_mib(
    loop_thread: LoopThread, tmp_path: Path, stream: bool
) -> None:
    # Failed before: each reply's parsed objects were kept until the request ended (the peak
    # grew 826 MiB for JSON, 766 MiB for streams). Now a reply keeps its bytes and its answer,
    # its objects live only while it is read (one at a time, on the event loop), and freed
    # buffers go back to the system (gateway/runtime/heap.py; without it: 107 MiB).
    bodies = [(dense_stream if stream else dense_reply)(uid) for uid in range(20)]
    assert all(len(b) <= REPLY_BYTES for b in bodies)
    # A stream is read whole by the live race (every miner streams; all are settled later).
    routing = {"strategy": "race"} if stream else {"wait": "all"}
    body = {"model": "sim", "messages": QUESTION, "stream": stream, "bitgate": routing}
    with miners(loop_thread, *bodies, stream=stream) as ports:
        path = pool_file(tmp_path / "p.json", ports)
        gateway = GatewayProcess("--metagraph", str(path), "--top-k", "20", "--ranker", "filters")
        try:
            pid = gateway.proc.pid
            Path(f"/proc/{pid}/clear_refs").write_text("5")
            before = _rss_mib(pid, "VmRSS")
            resp = post(gateway, body)
            assert settled(gateway, 20)  # a race reads the losers after it answers
            grown = _rss_mib(pid, "VmHWM") - before
        finally:
            gateway.stop()
    assert resp.status_code == 200, resp.text
    if stream:
        assert b"says " in resp.content and resp.content.endswith(b"data: [DONE]\n\n")
        assert resp.content.count(b'"x":[[1.5]') >= 1  # what the miner sent beside its text
    else:
        assert len(resp.json()["bitgate"]["candidates"]) == 20
        assert len(resp.json()["x"]) > 100_000  # what the miner sent beside its text is kept
    assert grown < 100, f"the gateway grew {grown:.0f} MiB"


def _keyless_trickle(port: int) -> socket.socket:
    """A keyless request that declares a 1 MB body and sends a few bytes of it."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b'Content-Length: 1000000\r\n\r\n{"model": "sim", '
    )
    return sock


def test_keyless_sockets_trickling_bodies_never_take_a_keyed_callers_slot(
    loop_thread: LoopThread, tmp_path: Path
) -> None:
    # Failed before: the in-flight slot was taken, and the body read, before the key check.
    env = {"BITGATE_AUTH": "required", "BITGATE_API_KEYS": "sk-good", "BITGATE_MAX_INFLIGHT": "4"}
    keyed = {"authorization": "Bearer sk-good"}
    with miners(loop_thread, chat_reply({"content": "Paris."})) as ports:
        path = pool_file(tmp_path / "p.json", ports)
        gateway = GatewayProcess("--metagraph", str(path), env=env)
        sockets: list[socket.socket] = []
        try:
            sockets = [_keyless_trickle(gateway.port) for _ in range(48)]
            time.sleep(0.5)
            for sock in sockets:
                sock.sendall(b" ")
            statuses = [
                post(gateway, {"model": "sim", "messages": QUESTION}, headers=keyed).status_code
                for _ in range(8)
            ]
            assert statuses == [200] * 8, statuses
            answers = []
            for sock in sockets:
                sock.settimeout(10)
                answers.append(sock.recv(65536))
        finally:
            for sock in sockets:
                sock.close()
            gateway.stop()
    assert all(a.startswith(b"HTTP/1.1 401") for a in answers), {a[:20] for a in answers}
