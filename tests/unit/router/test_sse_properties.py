"""Property tests of the miner client's stream reading: any bytes a miner sends end as a reply."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from router.metagraph import Axon, Neuron
from router.miner_client import MinerClient, Reply, open_session
from tests.support import LoopThread

CAP = 4096
BODY = orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True})


@dataclass
class Scripted:
    """A miner whose next stream is whatever the current example says, in its pieces."""

    pieces: list[bytes] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        for piece in self.pieces:
            await resp.write(piece)
        await resp.write_eof()
        return resp


@dataclass
class Rig:
    """The scripted miner on a loopback port and a miner client, on a loop in a thread."""

    thread: LoopThread
    miner: Scripted
    neuron: Neuron
    client: MinerClient

    def stream(self) -> tuple[Reply, list[Any]]:
        seen: list[Any] = []

        async def call() -> Reply:
            until = asyncio.get_running_loop().time() + 5.0
            return await self.client.stream(
                self.neuron,
                "chat",
                BODY,
                until,
                sink=lambda _uid, data: seen.append(orjson.loads(data)),
            )

        return self.thread.run(call(), timeout=10.0), seen


@pytest.fixture(scope="module")
def rig() -> Iterator[Rig]:
    thread = LoopThread()
    miner = Scripted()
    app = web.Application()
    app.router.add_post("/v1/chat/completions", miner.handle)
    runner = web.AppRunner(app)
    thread.run(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    thread.run(site.start())
    port = runner.addresses[0][1]

    async def client() -> MinerClient:
        return MinerClient(open_session(16), CAP)

    miner_client = thread.run(client())
    neuron = Neuron(uid=1, hotkey="5Fuzz", axon=Axon(ip="127.0.0.1", port=port))
    try:
        yield Rig(thread, miner, neuron, miner_client)
    finally:
        thread.run(miner_client.session.close())
        thread.run(runner.cleanup())
        thread.close()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**60), 2**60) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)
chunks = st.fixed_dictionaries(
    {},
    optional={
        "choices": st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "delta": json_values,
                    "text": json_values,
                    "finish_reason": json_values,
                    "index": json_values,
                },
            )
            | json_values,
            max_size=3,
        )
        | json_values,
        "id": json_values,
        "model": json_values,
    },
)
lines = st.one_of(
    chunks.map(lambda c: b"data: " + orjson.dumps(c)),
    json_values.map(lambda v: b"data: " + orjson.dumps(v)),
    st.just(b"data: [DONE]"),
    st.just(b": keep-alive"),
    st.binary(max_size=64),
)
streams = st.lists(lines, max_size=12).map(lambda ls: b"\n\n".join(ls))


def reference(stream: bytes) -> tuple[str, str | None]:
    """What a reply to `stream` must be, read the plain way: the whole stream split in lines."""
    parts: list[str] = []
    for line in stream.split(b"\n"):
        line = line.rstrip(b"\r")
        if not line.startswith(b"data:"):
            continue
        data = line[5:].strip()
        if data == b"[DONE]":
            return "ok", "".join(parts)
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            return "invalid", None
        choices = chunk.get("choices") if isinstance(chunk, dict) else None
        if not isinstance(choices, list) or (choices and not isinstance(choices[0], dict)):
            return "invalid", None
        delta = choices[0].get("delta") if choices else None
        text = delta.get("content") if isinstance(delta, dict) else None
        if isinstance(delta, dict) and delta.get("tool_calls") and not text:
            text = orjson.dumps(delta["tool_calls"]).decode()
        parts.append(text if isinstance(text, str) else "")
    return "invalid", None


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(streams, st.lists(st.integers(1, 200), max_size=6))
def test_any_stream_ends_as_a_reply_never_an_exception(
    rig: Rig, stream: bytes, cuts: list[int]
) -> None:
    pieces, rest = [], stream
    for cut in cuts:
        pieces.append(rest[:cut])
        rest = rest[cut:]
    rig.miner.pieces = [*pieces, rest]
    reply, seen = rig.stream()
    status, text = reference(stream)
    # The miner answered 200 at once: the reply is what its bytes say, never `error`.
    # Past the cap, the reply is invalid unless [DONE] was read before the cap was.
    assert reply.status == status or (len(stream) > CAP and reply.status == "invalid")
    assert all(isinstance(chunk, dict) for chunk in seen)
    if reply.ok:
        assert reply.text == text
    else:
        assert reply.error
