"""The miner server over real sockets, in front of sim miners standing in for vLLM."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import orjson
import pytest

from miners.epistula_verify import Verifier
from miners.keys import new_keypair
from miners.server import MinerConfig, MinerServer, start_miner
from miners.signers import SignerPolicy
from miners.sim.pool import SimPool, start_pool
from miners.sim.profiles import MinerProfile
from router.epistula import Signer
from tests.support import free_port

pytestmark = pytest.mark.integration

CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"
QUESTION = "Why is the sky blue?"
CLIENT_LIMIT = aiohttp.ClientTimeout(total=20)


def chat(**extra: Any) -> dict[str, Any]:
    """A chat request body."""
    return {"model": "sn1", "messages": [{"role": "user", "content": QUESTION}], **extra}


@asynccontextmanager
async def upstream(**fields: Any) -> AsyncIterator[SimPool]:
    """One sim miner standing in for vLLM."""
    pool = await start_pool([MinerProfile.model_validate(fields)])
    try:
        yield pool
    finally:
        await pool.stop()


@asynccontextmanager
async def miner(
    upstream_url: str, verifier: Verifier | None = None, **config: Any
) -> AsyncIterator[tuple[str, MinerServer]]:
    """A miner server on a free port forwarding to `upstream_url`."""
    server = MinerServer(MinerConfig(upstream=upstream_url, **config), verifier)
    port = free_port()
    runner = await start_miner(server, "127.0.0.1", port)
    try:
        yield f"http://127.0.0.1:{port}", server
    finally:
        await runner.cleanup()


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    """One client session per test."""
    async with aiohttp.ClientSession(timeout=CLIENT_LIMIT) as session:
        yield session


async def post(
    client: aiohttp.ClientSession,
    url: str,
    body: dict[str, Any] | bytes,
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes, Mapping[str, str]]:
    """POST and return status, raw body and headers."""
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    async with client.post(url, data=data, headers=headers or {}) as resp:
        return resp.status, await resp.read(), resp.headers


def events(raw: bytes) -> list[str]:
    """The data fields of an SSE body."""
    return [part.removeprefix("data: ") for part in raw.decode().split("\n\n") if part]


def error_of(raw: bytes) -> dict[str, Any]:
    """The OpenAI error object of a reply."""
    error: dict[str, Any] = orjson.loads(raw)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


async def test_non_stream_is_forwarded_with_the_served_model(
    client: aiohttp.ClientSession,
) -> None:
    async with upstream() as pool, miner(pool.urls[0], model="served-model") as (url, _):
        status, raw, _ = await post(client, url + CHAT, chat())
        completion_status, completion_raw, _ = await post(
            client, url + COMPLETIONS, {"prompt": QUESTION}
        )
    assert status == 200
    body = orjson.loads(raw)
    assert body["object"] == "chat.completion"
    assert body["model"] == "served-model"
    assert "scatter" in body["choices"][0]["message"]["content"].lower()
    assert completion_status == 200
    assert orjson.loads(completion_raw)["object"] == "text_completion"


async def test_stream_is_piped_to_the_end(client: aiohttp.ClientSession) -> None:
    async with upstream() as pool, miner(pool.urls[0]) as (url, _):
        _, whole, _ = await post(client, url + CHAT, chat())
        status, raw, headers = await post(client, url + CHAT, chat(stream=True))
    assert status == 200
    assert headers["Content-Type"].startswith("text/event-stream")
    data = events(raw)
    assert data[-1] == "[DONE]"
    chunks = [orjson.loads(d) for d in data[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert text == orjson.loads(whole)["choices"][0]["message"]["content"]


async def test_upstream_error_is_a_502(client: aiohttp.ClientSession) -> None:
    async with upstream(failure="error") as pool, miner(pool.urls[0]) as (url, _):
        status, raw, _ = await post(client, url + CHAT, chat())
    assert status == 502
    error = error_of(raw)
    assert error["code"] == "upstream_error"
    assert "500" in error["message"]


async def test_upstream_client_errors_pass_through(client: aiohttp.ClientSession) -> None:
    async with upstream() as pool, miner(pool.urls[0]) as (url, _):
        status, raw, _ = await post(client, url + CHAT, {"messages": []})
    assert status == 400
    assert error_of(raw)["param"] == "messages"


async def test_unreachable_upstream_is_a_502(client: aiohttp.ClientSession) -> None:
    async with miner(f"http://127.0.0.1:{free_port()}") as (url, _):
        status, raw, _ = await post(client, url + CHAT, chat())
        stream_status, stream_raw, _ = await post(client, url + CHAT, chat(stream=True))
        async with client.get(url + "/health") as resp:
            health = resp.status
    assert status == stream_status == 502
    assert error_of(raw)["code"] == error_of(stream_raw)["code"] == "upstream_unreachable"
    assert health == 503


@pytest.mark.parametrize("stream", [False, True])
async def test_hanging_upstream_is_a_504_by_the_deadline(
    client: aiohttp.ClientSession, stream: bool
) -> None:
    async with upstream(failure="hang") as pool, miner(pool.urls[0], timeout_s=0.3) as (url, _):
        status, raw, _ = await post(client, url + CHAT, chat(stream=stream))
    assert status == 504
    error = error_of(raw)
    assert error["type"] == "timeout"
    assert error["code"] == "upstream_timeout"


async def test_dripping_stream_ends_with_an_error_event_at_the_deadline(
    client: aiohttp.ClientSession,
) -> None:
    async with (
        upstream(failure="slow_drip", drip_interval_s=0.02) as pool,
        miner(pool.urls[0], timeout_s=0.3) as (url, _),
    ):
        status, raw, _ = await post(client, url + CHAT, chat(stream=True))
    assert status == 200
    data = events(raw)
    assert "[DONE]" not in data
    assert orjson.loads(data[-1])["error"]["code"] == "upstream_timeout"


async def test_cut_stream_ends_with_an_error_event(client: aiohttp.ClientSession) -> None:
    async with upstream(failure="drop_stream") as pool, miner(pool.urls[0]) as (url, _):
        status, raw, _ = await post(client, url + CHAT, chat(stream=True))
    assert status == 200
    data = events(raw)
    assert "[DONE]" not in data
    assert orjson.loads(data[-1])["error"]["code"] == "upstream_error"


async def test_bad_bodies_are_refused_before_the_upstream(client: aiohttp.ClientSession) -> None:
    async with upstream() as pool, miner(pool.urls[0], max_body_bytes=1024) as (url, _):
        not_json = await post(client, url + CHAT, b"{nope")
        not_object = await post(client, url + CHAT, b"[1]")
        too_large = await post(client, url + CHAT, chat(pad="x" * 2048))
        counts = pool.request_counts()
    assert [r[0] for r in (not_json, not_object, too_large)] == [400, 400, 413]
    assert error_of(too_large[1])["type"] == "invalid_request_error"
    assert counts == [0]


async def test_models_and_health_come_from_the_upstream(client: aiohttp.ClientSession) -> None:
    async with upstream(model="qwen") as pool, miner(pool.urls[0]) as (url, _):
        async with client.get(url + "/v1/models") as resp:
            models = await resp.json()
        async with client.get(url + "/health") as resp:
            health = resp.status
    assert [card["id"] for card in models["data"]] == ["qwen"]
    assert health == 200


async def availability(client: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    """The miner's `/availability` document."""
    async with client.get(url + "/availability") as resp:
        document: dict[str, Any] = await resp.json()
        return document


async def wait_in_flight(client: aiohttp.ClientSession, url: str, count: int) -> None:
    """Poll `/availability` until `count` requests are in flight."""
    while (await availability(client, url))["in_flight"] != count:  # noqa: ASYNC110 (over HTTP)
        await asyncio.sleep(0.01)


async def test_beyond_capacity_is_a_429_with_retry_after(client: aiohttp.ClientSession) -> None:
    async with (
        upstream(failure="hang") as pool,
        miner(pool.urls[0], model="m", max_in_flight=1, retry_after_s=1.5) as (url, _),
    ):
        held = asyncio.create_task(post(client, url + CHAT, chat()))
        await asyncio.wait_for(wait_in_flight(client, url, 1), 10)
        status, raw, headers = await post(client, url + CHAT, chat())
        busy = await availability(client, url)
        held.cancel()
        await asyncio.gather(held, return_exceptions=True)
        await asyncio.wait_for(wait_in_flight(client, url, 0), 10)
    assert status == 429
    assert headers["Retry-After"] == "2"
    assert error_of(raw)["code"] == "miner_at_capacity"
    assert busy == {
        "model": "m",
        "capacity": 1,
        "in_flight": 1,
        "available": 0,
        "saturated": True,
        "refused": 1,
    }


async def test_verifying_miner_refuses_unsigned_and_tampered_requests(
    client: aiohttp.ClientSession,
) -> None:
    validator, hotkey = new_keypair(), new_keypair()
    verifier = Verifier(hotkey.ss58_address, SignerPolicy([validator.ss58_address]))
    signer = Signer(validator)
    body = orjson.dumps(chat())
    async with upstream() as pool, miner(pool.urls[0], verifier) as (url, _):
        unsigned = await post(client, url + CHAT, body)
        tampered = await post(
            client, url + CHAT, body.replace(b"blue", b"red"), signer(body, hotkey.ss58_address)
        )
        signed = await post(client, url + CHAT, body, signer(body, hotkey.ss58_address))
        counts = pool.request_counts()
    assert unsigned[0] == tampered[0] == 401
    assert error_of(unsigned[1])["type"] == "authentication_error"
    assert error_of(unsigned[1])["code"] == "epistula_missing_header"
    assert error_of(tampered[1])["code"] == "epistula_bad_signature"
    assert signed[0] == 200
    assert counts == [1]


async def _raw_request(
    port: int, head: bytes, body: bytes = b""
) -> tuple[bytes, asyncio.StreamWriter]:
    """Send a request head (and maybe part of a body) on a raw socket; the status line back."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head + body)
    await writer.drain()
    async with asyncio.timeout(10):  # a guard against a hang, not a timing assertion
        status = await reader.readline()
    return status, writer


def _head(path: str, length: int, headers: Mapping[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: miner", f"Content-Length: {length}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def test_bad_epistula_headers_are_refused_before_the_body_is_read() -> None:
    hotkey = new_keypair()
    verifier = Verifier(hotkey.ss58_address, SignerPolicy([new_keypair().ss58_address]))
    async with upstream() as pool, miner(pool.urls[0], verifier) as (url, _):
        port = int(url.rsplit(":", 1)[1])
        # Promises a megabyte and sends none of it: only a miner that does not wait answers.
        status, writer = await _raw_request(port, _head(CHAT, 1024 * 1024, {}))
        writer.close()
    assert status.startswith(b"HTTP/1.1 401")


async def test_unverified_bodies_are_capped_in_number() -> None:
    validator, hotkey = new_keypair(), new_keypair()
    verifier = Verifier(hotkey.ss58_address, SignerPolicy([validator.ss58_address]))
    body = orjson.dumps(chat())
    signer = Signer(validator)
    async with (
        upstream() as pool,
        miner(pool.urls[0], verifier, max_unverified=2, unverified_grace_s=60) as (url, srv),
    ):
        port = int(url.rsplit(":", 1)[1])
        slow = []
        for _ in range(2):  # good headers, then a body that never finishes uploading
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(_head(CHAT, len(body), signer(body, hotkey.ss58_address)) + body[:5])
            await writer.drain()
            slow.append(writer)
        for _ in range(200):  # until the server is reading both bodies (bounded)
            if srv.unverified.in_flight == 2:
                break
            await asyncio.sleep(0.01)
        status, writer = await _raw_request(
            port, _head(CHAT, len(body), signer(body, hotkey.ss58_address)), body
        )
        for each in (*slow, writer):
            each.close()
    assert status.startswith(b"HTTP/1.1 429")
