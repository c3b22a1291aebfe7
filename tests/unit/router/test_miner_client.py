"""Tests for router.miner_client.MinerClient against fake miners on aiohttp test servers."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from router.axon_policy import AxonPolicy
from router.backpressure import Backpressure
from router.concurrency import MIN_LIMIT, TIMEOUT_BACKOFF, ConcurrencyLimits
from router.metagraph import Axon, Neuron
from router.miner_client import MinerClient, Reply, open_session
from tests.support import free_port

CAP = 4096
SLACK_S = 0.15
CHAT_BODY = orjson.dumps({"model": "sn1", "messages": [{"role": "user", "content": "hi"}]})
COMPLETION_BODY = orjson.dumps({"model": "sn1", "prompt": "Once upon"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Serve = Callable[..., Awaitable[Neuron]]


def chat_reply(content: str, finish: str = "stop") -> dict[str, Any]:
    """An OpenAI chat completion body."""
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": finish,
            }
        ],
    }


def chat_chunk(content: str | None, finish: str | None = None) -> dict[str, Any]:
    """An OpenAI chat stream chunk."""
    delta = {} if content is None else {"content": content}
    return {
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def sse(*events: dict[str, Any] | str) -> list[bytes]:
    """Server-sent events: dicts as JSON, strings as they are."""
    return [
        b"data: " + (e.encode() if isinstance(e, str) else orjson.dumps(e)) + b"\n\n"
        for e in events
    ]


def replying(payload: Any, status: int = 200) -> Handler:
    """A miner that answers every request with `payload` as JSON."""

    async def handler(request: web.Request) -> web.StreamResponse:
        return web.json_response(payload, status=status)

    return handler


def replying_text(text: str) -> Handler:
    """A miner that answers every request with `text` as text/plain."""

    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(text=text)

    return handler


def streaming(events: list[bytes], status: int = 200, pause_s: float = 0.0) -> Handler:
    """A miner that writes `events` as an SSE stream, `pause_s` apart."""

    async def handler(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(status=status, headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for event in events:
            await resp.write(event)
            await asyncio.sleep(pause_s)
        return resp

    return handler


def dripping(content_length: int | None) -> Handler:
    """A miner that writes one byte every 50 ms for ever (until the client leaves)."""

    async def handler(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        if content_length is not None:
            resp.content_length = content_length
        await resp.prepare(request)
        for _ in range(200):
            await resp.write(b" ")
            await asyncio.sleep(0.05)
        return resp

    return handler


async def sleeping(request: web.Request) -> web.StreamResponse:
    """A miner that takes ten seconds to answer."""
    await asyncio.sleep(10)
    return web.json_response(chat_reply("too late"))


def miner_at(port: int, uid: int = 0) -> Neuron:
    """A neuron whose axon is the loopback `port`."""
    return Neuron(uid=uid, hotkey=f"hk{uid}", axon=Axon(ip="127.0.0.1", port=port))


def deadline_in(seconds: float) -> float:
    """An event-loop deadline `seconds` from now."""
    return asyncio.get_running_loop().time() + seconds


@pytest.fixture
async def client() -> AsyncIterator[MinerClient]:
    """A MinerClient on one session, capped at CAP bytes per reply."""
    session = open_session(100)
    yield MinerClient(session, max_reply_bytes=CAP)
    await session.close()


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Start fake miners: `await serve(handler)` gives a neuron pointing at a new server."""
    servers: list[TestServer] = []

    async def start(handler: Handler, port: int | None = None, uid: int = 0) -> Neuron:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", handler)
        app.router.add_post("/v1/completions", handler)
        server = TestServer(app, port=port)
        servers.append(server)
        await server.start_server()
        assert server.port is not None
        return miner_at(server.port, uid)

    yield start
    for server in servers:
        await server.close()


async def complete(client: MinerClient, miner: Neuron, within_s: float = 2.0) -> Reply:
    """A non-streaming chat call with a deadline `within_s` from now."""
    return await client.complete(miner, "chat", CHAT_BODY, deadline_in(within_s))


# --- non-streaming ---


async def test_ok_chat_reply(client: MinerClient, serve: Serve) -> None:
    seen: list[tuple[str, Any]] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        seen.append((request.path, await request.json()))
        return web.json_response(chat_reply("Canberra."))

    miner = await serve(handler, uid=7)
    reply = await complete(client, miner)
    assert reply.ok
    assert (reply.text, reply.finish_reason, reply.error) == ("Canberra.", "stop", None)
    assert reply.neuron.uid == 7
    assert reply.document() == chat_reply("Canberra.")
    assert 0 < reply.latency_ms < 2000
    assert seen == [("/v1/chat/completions", orjson.loads(CHAT_BODY))]


async def test_ok_completion_reply(client: MinerClient, serve: Serve) -> None:
    seen: list[str] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        seen.append(request.path)
        return web.json_response({"choices": [{"text": " a time", "finish_reason": "length"}]})

    miner = await serve(handler)
    reply = await client.complete(miner, "completion", COMPLETION_BODY, deadline_in(2))
    assert (reply.status, reply.text, reply.finish_reason) == ("ok", " a time", "length")
    assert seen == ["/v1/completions"]


async def test_http_500_is_an_error(client: MinerClient, serve: Serve) -> None:
    reply = await complete(client, await serve(replying({"error": "boom"}, status=500)))
    assert (reply.status, reply.error) == ("error", "HTTP 500")
    assert not reply.ok


@pytest.mark.parametrize(
    "handler",
    [
        pytest.param(replying_text("<html>oops</html>"), id="not-json"),
        pytest.param(replying({"id": "x", "object": "chat.completion"}), id="no-choices"),
        pytest.param(replying({"choices": []}), id="empty-choices"),
        pytest.param(replying([chat_reply("hi")]), id="json-array"),
        pytest.param(replying({"choices": [{"message": {"content": None}}]}), id="no-text"),
    ],
)
async def test_unusable_replies_are_invalid(
    client: MinerClient, serve: Serve, handler: Handler
) -> None:
    reply = await complete(client, await serve(handler))
    assert reply.status == "invalid"
    assert reply.error


async def test_body_over_the_cap_with_content_length_is_invalid(
    client: MinerClient, serve: Serve
) -> None:
    reply = await complete(client, await serve(replying(chat_reply("x" * CAP))))
    assert reply.status == "invalid"
    assert "cap" in (reply.error or "")


async def test_chunked_body_over_the_cap_is_invalid(client: MinerClient, serve: Serve) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        body = orjson.dumps(chat_reply("x" * CAP))
        for start in range(0, len(body), 500):
            await resp.write(body[start : start + 500])
        return resp

    reply = await complete(client, await serve(handler))
    assert reply.status == "invalid"
    assert "cap" in (reply.error or "")


async def test_chunked_body_under_the_cap_is_read_whole(client: MinerClient, serve: Serve) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        body = orjson.dumps(chat_reply("y" * 1000))
        for start in range(0, len(body), 100):
            await resp.write(body[start : start + 100])
        return resp

    reply = await complete(client, await serve(handler))
    assert (reply.status, reply.text) == ("ok", "y" * 1000)


async def test_compressed_body_over_the_cap_is_invalid(client: MinerClient, serve: Serve) -> None:
    # A small gzip body (Content-Length well under the cap) that inflates far past it.
    packed = gzip.compress(orjson.dumps(chat_reply("z" * (CAP * 50))))
    assert len(packed) < CAP

    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(
            body=packed,
            headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
        )

    reply = await complete(client, await serve(handler))
    assert reply.status == "invalid"


async def test_slow_miner_times_out_at_the_deadline(client: MinerClient, serve: Serve) -> None:
    miner = await serve(sleeping)
    started = time.monotonic()
    reply = await complete(client, miner, within_s=0.3)
    elapsed = time.monotonic() - started
    assert reply.status == "timeout"
    assert 0.3 - 0.02 <= elapsed < 0.3 + SLACK_S
    assert reply.latency_ms == pytest.approx(elapsed * 1000, abs=50)


@pytest.mark.parametrize("content_length", [None, 1000], ids=["chunked", "content-length"])
async def test_slow_drip_is_cut_at_the_deadline(
    client: MinerClient, serve: Serve, content_length: int | None
) -> None:
    miner = await serve(dripping(content_length))
    started = time.monotonic()
    reply = await complete(client, miner, within_s=0.3)
    assert reply.status == "timeout"
    assert time.monotonic() - started < 0.3 + SLACK_S


async def test_connection_refused_is_an_error_after_one_retry(client: MinerClient) -> None:
    reply = await complete(client, miner_at(free_port()))
    assert reply.status == "error"
    assert reply.error == "cannot connect"
    assert 40 <= reply.latency_ms < 1000  # the one retry waits 50 ms


async def test_connect_is_retried_once(client: MinerClient, serve: Serve) -> None:
    port = free_port()

    async def start_late() -> Neuron:
        await asyncio.sleep(0.02)
        return await serve(replying(chat_reply("made it")), port=port)

    late = asyncio.create_task(start_late())
    reply = await complete(client, miner_at(port))
    await late
    assert (reply.status, reply.text) == ("ok", "made it")


async def test_a_past_deadline_times_out_at_once(client: MinerClient, serve: Serve) -> None:
    miner = await serve(replying(chat_reply("hi")))
    reply = await client.complete(miner, "chat", CHAT_BODY, deadline_in(-1))
    assert reply.status == "timeout"


async def test_one_session_serves_concurrent_miners(client: MinerClient, serve: Serve) -> None:
    miners = [await serve(replying(chat_reply(f"miner {uid}")), uid=uid) for uid in range(5)]
    miners.append(await serve(sleeping, uid=5))
    replies = await asyncio.gather(*(complete(client, m, within_s=0.5) for m in miners))
    assert [r.text for r in replies[:5]] == [f"miner {uid}" for uid in range(5)]
    assert replies[5].status == "timeout"


# --- streaming ---


async def stream(
    client: MinerClient, miner: Neuron, within_s: float = 2.0
) -> tuple[Reply, list[tuple[int, dict[str, Any]]]]:
    """A streaming chat call; also returns what reached the sink."""
    sunk: list[tuple[int, dict[str, Any]]] = []
    reply = await client.stream(
        miner,
        "chat",
        CHAT_BODY,
        deadline_in(within_s),
        sink=lambda uid, data: sunk.append((uid, orjson.loads(data))),
    )
    return reply, sunk


async def test_stream_chunks_reach_the_sink_in_order(client: MinerClient, serve: Serve) -> None:
    chunks = [
        chat_chunk(None),
        chat_chunk("Hello"),
        chat_chunk(", "),
        chat_chunk("world", finish="stop"),
        {"object": "chat.completion.chunk", "choices": [], "usage": {"total_tokens": 9}},
    ]
    miner = await serve(streaming(sse(*chunks, "[DONE]"), pause_s=0.01), uid=3)
    reply, sunk = await stream(client, miner)
    assert reply.status == "ok"
    assert reply.text == "Hello, world"
    assert reply.finish_reason == "stop"
    assert list(reply.chunks) == chunks
    assert sunk == [(3, c) for c in chunks]
    assert reply.latency_ms > 0


async def test_completion_stream_concatenates_text(client: MinerClient, serve: Serve) -> None:
    chunks = [
        {"choices": [{"text": t, "finish_reason": None}]} for t in ("Once", " upon", " a time")
    ]
    miner = await serve(streaming(sse(*chunks, "[DONE]")))
    reply = await client.stream(miner, "completion", COMPLETION_BODY, deadline_in(2))
    assert (reply.status, reply.text) == ("ok", "Once upon a time")


async def test_stream_ignores_comments_and_other_fields(client: MinerClient, serve: Serve) -> None:
    events = [b": keep-alive\n\n", b"event: message\n", *sse(chat_chunk("ok"), "[DONE]")]
    reply, _ = await stream(client, await serve(streaming(events)))
    assert (reply.status, reply.text) == ("ok", "ok")


async def test_stream_without_done_is_invalid(client: MinerClient, serve: Serve) -> None:
    miner = await serve(streaming(sse(chat_chunk("cut"), chat_chunk(" short"))))
    reply, sunk = await stream(client, miner)
    assert reply.status == "invalid"
    assert "[DONE]" in (reply.error or "")
    assert len(sunk) == 2  # what arrived was passed on before the stream broke


async def test_non_200_stream_is_an_error(client: MinerClient, serve: Serve) -> None:
    reply, sunk = await stream(client, await serve(replying({"error": "busy"}, status=503)))
    assert reply.status == "error"
    assert sunk == []


@pytest.mark.parametrize(
    "events",
    [
        pytest.param(sse("{not json", "[DONE]"), id="not-json"),
        pytest.param(sse("[1, 2]", "[DONE]"), id="not-an-object"),
        pytest.param(sse({"object": "chat.completion.chunk"}, "[DONE]"), id="no-choices"),
    ],
)
async def test_bad_stream_chunks_are_invalid(
    client: MinerClient, serve: Serve, events: list[bytes]
) -> None:
    reply, _ = await stream(client, await serve(streaming(events)))
    assert reply.status == "invalid"


async def test_stream_over_the_cap_is_invalid(client: MinerClient, serve: Serve) -> None:
    events = sse(*(chat_chunk("x" * 200) for _ in range(CAP // 200 + 1)), "[DONE]")
    reply, _ = await stream(client, await serve(streaming(events)))
    assert reply.status == "invalid"
    assert "cap" in (reply.error or "")


async def test_stalled_stream_times_out_at_the_deadline(client: MinerClient, serve: Serve) -> None:
    events = sse(*(chat_chunk("tick") for _ in range(100)), "[DONE]")
    miner = await serve(streaming(events, pause_s=0.05))
    started = time.monotonic()
    reply, sunk = await stream(client, miner, within_s=0.3)
    assert reply.status == "timeout"
    assert time.monotonic() - started < 0.3 + SLACK_S
    assert 1 <= len(sunk) < 100


async def test_stream_connection_refused_is_an_error(client: MinerClient) -> None:
    reply, _ = await stream(client, miner_at(free_port()))
    assert reply.status == "error"


# --- hostile miners ---


async def test_a_redirect_is_an_error_and_never_followed(client: MinerClient, serve: Serve) -> None:
    hits: list[str] = []

    async def internal(request: web.Request) -> web.StreamResponse:
        hits.append(request.path)
        return web.json_response(chat_reply("internal service"))

    target = await serve(internal)

    async def redirect(request: web.Request) -> web.StreamResponse:
        raise web.HTTPTemporaryRedirect(f"{target.base_url}/v1/chat/completions")

    miner = await serve(redirect, uid=1)
    reply = await complete(client, miner)
    streamed, _ = await stream(client, miner)
    assert (reply.status, streamed.status) == ("error", "error")
    assert "redirect" in (reply.error or "")
    assert hits == []


@pytest.mark.parametrize(
    ("status", "retry_after", "outcome"),
    [(429, "7", "busy"), (429, None, "busy"), (503, "7", "busy"), (503, None, "error")],
)
async def test_back_pressure_is_busy_and_holds_the_miner(
    serve: Serve, status: int, retry_after: str | None, outcome: str
) -> None:
    async def busy(request: web.Request) -> web.StreamResponse:
        headers = {"Retry-After": retry_after} if retry_after else {}
        return web.json_response({"error": "busy"}, status=status, headers=headers)

    miner = await serve(busy)
    session = open_session(10)
    client = MinerClient(session, CAP)
    try:
        reply = await complete(client, miner)
    finally:
        await session.close()
    assert reply.status == outcome
    assert client.backpressure.held(miner, time.time()) is (outcome == "busy")
    if retry_after:
        assert not client.backpressure.held(miner, time.time() + float(retry_after) + 1)


async def test_a_600_kib_sse_line_is_read_when_under_the_reply_cap(serve: Serve) -> None:
    events = sse(chat_chunk("x" * 600 * 1024), "[DONE]")
    miner = await serve(streaming(events))
    session = open_session(10)
    try:
        reply, _ = await stream(MinerClient(session, 2 * 1024 * 1024), miner)
    finally:
        await session.close()
    assert reply.status == "ok"
    assert len(reply.text) == 600 * 1024


async def test_one_sse_line_over_the_cap_is_invalid(client: MinerClient, serve: Serve) -> None:
    reply, sunk = await stream(client, await serve(streaming([b"data: " + b"x" * CAP * 3])))
    assert reply.status == "invalid"
    assert "cap" in (reply.error or "")
    assert sunk == []


async def test_a_refused_address_is_never_dialled(serve: Serve) -> None:
    miner = await serve(replying(chat_reply("should not be read")))
    heard: list[tuple[str, str | None]] = []
    session = open_session(10, AxonPolicy(), lambda host, reason: heard.append((host, reason)))
    try:
        # The literal address is refused before any connect; and were it a name, the socket
        # factory would refuse the address it resolved to.
        refused = await complete(MinerClient(session, CAP, policy=AxonPolicy()), miner)
        dialled = await complete(MinerClient(session, CAP), miner)
    finally:
        await session.close()
    assert (refused.status, refused.error) == ("error", "address refused by the axon policy")
    assert (dialled.status, dialled.error) == ("error", "address refused by the axon policy")
    assert heard == [("127.0.0.1", "loopback")]  # refused once, not retried


async def test_an_unexpected_exception_is_the_replys_error(serve: Serve) -> None:
    miner = await serve(replying(chat_reply("fine")))
    session = open_session(10)

    def broken_signer(body: bytes, hotkey: str) -> dict[str, str]:
        return {"X-Bad": "line\r\nbreak"}  # aiohttp refuses to send it

    try:
        reply = await complete(MinerClient(session, CAP, broken_signer), miner)
    finally:
        await session.close()
    assert reply.status == "error"
    assert "\n" not in (reply.error or "") and "X-Bad" not in (reply.error or "")


async def test_a_signer_that_fails_is_the_replys_error(serve: Serve) -> None:
    miner = await serve(replying(chat_reply("fine")))
    session = open_session(10)

    def failing_signer(body: bytes, hotkey: str) -> dict[str, str]:
        raise RuntimeError("keyring locked: /secret/path")

    try:
        client = MinerClient(session, CAP, failing_signer)
        replies = [await complete(client, miner), (await stream(client, miner))[0]]
    finally:
        await session.close()
    for reply in replies:
        assert (reply.status, reply.error) == ("error", "unexpected failure")


# --- what each call sends and says ---


def recording(handler: Handler, seen: list[tuple[bytes, dict[str, str]]]) -> Handler:
    """`handler`, noting each request's body and headers first."""

    async def record(request: web.Request) -> web.StreamResponse:
        seen.append((await request.read(), dict(request.headers)))
        return await handler(request)

    return record


def signature(body: bytes, hotkey: str) -> dict[str, str]:
    """A signer's headers: the hotkey and a digest of the exact body."""
    return {"X-Signature": f"{hotkey}:{hashlib.sha256(body).hexdigest()}"}


async def test_a_call_sends_the_body_with_its_headers_signed_for_the_miner(serve: Serve) -> None:
    seen: list[tuple[bytes, dict[str, str]]] = []
    answering = await serve(recording(replying(chat_reply("hi")), seen), uid=3)
    events = sse(chat_chunk("hi", "stop"), "[DONE]")
    flowing = await serve(recording(streaming(events), seen), uid=4)
    session = open_session(10)
    try:
        client = MinerClient(session, CAP, signature)
        replies = [await complete(client, answering), (await stream(client, flowing))[0]]
    finally:
        await session.close()
    assert [reply.status for reply in replies] == ["ok", "ok"]
    assert [body for body, _ in seen] == [CHAT_BODY, CHAT_BODY]
    digest = hashlib.sha256(CHAT_BODY).hexdigest()
    wanted = [("hk3", "application/json"), ("hk4", "text/event-stream")]
    for (_, headers), (hotkey, accept) in zip(seen, wanted, strict=True):
        assert headers["X-Signature"] == f"{hotkey}:{digest}"
        assert (headers["Content-Type"], headers["Accept"]) == ("application/json", accept)


async def test_the_connect_retry_sends_the_same_request(client: MinerClient) -> None:
    port = free_port()
    seen: list[tuple[bytes, dict[str, str]]] = []
    servers: list[TestServer] = []

    async def start_late() -> None:
        await asyncio.sleep(0.02)
        app = web.Application()
        app.router.add_post("/v1/chat/completions", recording(replying(chat_reply("ok")), seen))
        servers.append(TestServer(app, port=port))
        await servers[0].start_server()

    late = asyncio.create_task(start_late())
    try:
        reply = await complete(client, miner_at(port))
        await late
    finally:
        for server in servers:
            await server.close()
    assert reply.status == "ok"
    [(body, headers)] = seen
    assert body == CHAT_BODY
    assert (headers["Content-Type"], headers["Accept"]) == ("application/json", "application/json")


async def test_a_call_counts_in_flight_and_teaches_the_limits_its_outcome(serve: Serve) -> None:
    gate = asyncio.Event()

    async def held(request: web.Request) -> web.StreamResponse:
        await gate.wait()
        return web.json_response(chat_reply("hi"))

    async def busy(request: web.Request) -> web.StreamResponse:
        return web.json_response({"error": "busy"}, status=429)

    answering = await serve(held, uid=1)
    slow = await serve(sleeping, uid=2)
    crowded = await serve(busy, uid=3)
    limits = ConcurrencyLimits(initial=4)
    session = open_session(10)
    try:
        client = MinerClient(session, CAP, limits=limits)
        call = asyncio.create_task(complete(client, answering))
        await asyncio.sleep(0.1)
        assert limits.inflight(answering) == 1
        gate.set()
        assert (await call).status == "ok"
        assert (await complete(client, slow, within_s=0.2)).status == "timeout"
        assert (await complete(client, crowded)).status == "busy"
    finally:
        await session.close()
    assert [limits.inflight(m) for m in (answering, slow, crowded)] == [0, 0, 0]
    assert limits.limit(slow) == pytest.approx(4 * TIMEOUT_BACKOFF)  # a timeout backs off
    assert limits.limit(crowded) == MIN_LIMIT  # busy with none other in flight


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (300, "HTTP 300 (redirects are not followed)"),
        (399, "HTTP 399 (redirects are not followed)"),
        (400, "HTTP 400"),
        (500, "HTTP 500"),
    ],
)
async def test_a_status_other_than_200_says_which(
    client: MinerClient, serve: Serve, status: int, error: str
) -> None:
    miner = await serve(replying({"error": "no"}, status=status))
    for reply in [await complete(client, miner), (await stream(client, miner))[0]]:
        assert (reply.neuron, reply.status, reply.error) == (miner, "error", error)


@pytest.mark.parametrize("streamed", [False, True], ids=["complete", "stream"])
async def test_back_pressure_holds_the_miner_in_the_clients_shared_record(
    serve: Serve, streamed: bool
) -> None:
    async def busy(request: web.Request) -> web.StreamResponse:
        return web.json_response({"error": "busy"}, status=503, headers={"Retry-After": "7"})

    miner = await serve(busy)
    shared = Backpressure()
    session = open_session(10)
    try:
        client = MinerClient(session, CAP, backpressure=shared)
        reply, _ = await (stream(client, miner) if streamed else complete_only(client, miner))
    finally:
        await session.close()
    assert (reply.neuron, reply.status, reply.error) == (miner, "busy", "HTTP 503, retry after 7 s")
    assert shared.held(miner, time.time())
    assert not shared.held(miner, time.time() + 8)


async def complete_only(client: MinerClient, miner: Neuron) -> tuple[Reply, list[Any]]:
    """`complete`, shaped like `stream`'s answer."""
    return await complete(client, miner), []


def json_body(size: int) -> bytes:
    """A chat reply's JSON of exactly `size` bytes."""
    bare = len(orjson.dumps(chat_reply("")))
    return orjson.dumps(chat_reply("x" * (size - bare)))


def sized(size: int, chunked: bool) -> Handler:
    """A miner whose reply is `size` bytes of JSON, chunked in two reads or with a length."""

    async def handler(request: web.Request) -> web.StreamResponse:
        body = json_body(size)
        if not chunked:
            return web.Response(body=body, content_type="application/json")
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        await resp.write(body[:1000])
        await asyncio.sleep(0.05)  # the rest arrives in a later read
        await resp.write(body[1000:])
        return resp

    return handler


@pytest.mark.parametrize(
    ("chunked", "over"),
    [(False, f"reply of {CAP + 1} bytes is over the cap"), (True, "reply is over the size cap")],
    ids=["content-length", "chunked"],
)
async def test_a_reply_of_exactly_the_cap_is_read_and_one_byte_more_is_not(
    client: MinerClient, serve: Serve, chunked: bool, over: str
) -> None:
    at_cap = await complete(client, await serve(sized(CAP, chunked)))
    assert (at_cap.status, at_cap.raw) == ("ok", json_body(CAP))
    past = await complete(client, await serve(sized(CAP + 1, chunked)))
    assert (past.status, past.error) == ("invalid", over)


async def test_a_compressed_reply_is_read_inflated(client: MinerClient, serve: Serve) -> None:
    packed = gzip.compress(orjson.dumps(chat_reply("squeezed")))

    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(
            body=packed,
            headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
        )

    reply = await complete(client, await serve(handler))
    assert (reply.status, reply.text) == ("ok", "squeezed")


async def test_a_data_line_without_a_space_after_the_colon_is_read(
    client: MinerClient, serve: Serve
) -> None:
    events = [b"data:" + orjson.dumps(chat_chunk("tight", "stop")) + b"\n\n", b"data:[DONE]\n\n"]
    reply, _ = await stream(client, await serve(streaming(events)))
    assert (reply.status, reply.text) == ("ok", "tight")


async def test_a_failed_call_names_its_miner_and_says_why_in_fixed_words(
    client: MinerClient, serve: Serve
) -> None:
    late = await serve(sleeping, uid=1)
    garbled = await serve(replying_text("<html>oops</html>"), uid=2)
    broken = await serve(streaming(sse("{not json", "[DONE]")), uid=3)
    cut = await serve(streaming(sse(chat_chunk("cut"))), uid=4)
    flood = sse(*(chat_chunk("x" * 200) for _ in range(CAP // 200 + 1)), "[DONE]")
    flooding = await serve(streaming(flood), uid=5)
    closed = miner_at(free_port(), uid=6)
    replies = [
        (late, await complete(client, late, within_s=0.2)),
        (garbled, await complete(client, garbled)),
        (broken, (await stream(client, broken))[0]),
        (cut, (await stream(client, cut))[0]),
        (flooding, (await stream(client, flooding))[0]),
        (closed, await complete(client, closed)),
    ]
    assert [(r.neuron, r.status, r.error) for _, r in replies] == [
        (late, "timeout", "deadline passed"),
        (garbled, "invalid", "reply is not JSON"),
        (broken, "invalid", "stream chunk is not JSON"),
        (cut, "invalid", "stream ended without [DONE]"),
        (flooding, "invalid", "stream is over the size cap"),
        (closed, "error", "cannot connect"),
    ]


async def test_a_refused_or_unexpected_failure_names_its_miner(serve: Serve) -> None:
    miner = await serve(replying(chat_reply("fine")))

    def failing_signer(body: bytes, hotkey: str) -> dict[str, str]:
        raise RuntimeError("keyring locked")

    session = open_session(10)
    try:
        refused = await complete(MinerClient(session, CAP, policy=AxonPolicy()), miner)
        failed = await complete(MinerClient(session, CAP, failing_signer), miner)
    finally:
        await session.close()
    assert (refused.neuron, refused.error) == (miner, "address refused by the axon policy")
    assert (failed.neuron, failed.error) == (miner, "unexpected failure")
