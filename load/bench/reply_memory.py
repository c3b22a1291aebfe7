"""What one miner reply holds in the gateway once read, at a reply cap: JSON and stream.

    python -m load.bench.reply_memory [CAP_BYTES ...]

A fake miner (in process, on loopback) answers with a body just under the cap; the real
MinerClient reads it; tracemalloc counts what the Reply keeps: its bytes (a stream's data
lines) and its answer, about twice its wire size.
"""

from __future__ import annotations

import asyncio
import sys
import tracemalloc

import orjson
from aiohttp import web
from aiohttp.test_utils import TestServer

from router.metagraph import Axon, Neuron
from router.miner_client import MinerClient, open_session

TOKEN = "word "
MIB = 1024 * 1024


def stream_chunk(text: str) -> bytes:
    """One SSE event shaped like vLLM's, with one token."""
    choice = {"index": 0, "delta": {"content": text}, "logprobs": None, "finish_reason": None}
    body = {
        "id": "chatcmpl-0123456789",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "some-org/some-model-8B",
        "choices": [choice],
    }
    return b"data: " + orjson.dumps(body) + b"\n\n"


def bodies(cap: int) -> tuple[bytes, bytes]:
    """A JSON reply and an event stream, each just under `cap` bytes."""
    one = stream_chunk(TOKEN)
    stream = one * ((cap - 100) // len(one)) + b"data: [DONE]\n\n"
    message = {"role": "assistant", "content": TOKEN * ((cap - 400) // len(TOKEN))}
    choice = {"index": 0, "message": message, "finish_reason": "stop"}
    return orjson.dumps({"object": "chat.completion", "choices": [choice]}), stream


async def measure(cap: int) -> list[str]:
    """One line per reply kind: chunks kept and MiB held."""
    json_body, stream_body = bodies(cap)

    async def answer(request: web.Request) -> web.Response:
        if (await request.json()).get("stream"):
            return web.Response(body=stream_body, content_type="text/event-stream")
        return web.Response(body=json_body, content_type="application/json")

    app = web.Application()
    app.router.add_post("/v1/chat/completions", answer)
    server = TestServer(app)
    await server.start_server()
    assert server.port is not None
    session = open_session(10)
    client = MinerClient(session, cap + 1024)
    miner = Neuron(uid=0, hotkey="h", axon=Axon(ip="127.0.0.1", port=server.port))
    deadline = asyncio.get_running_loop().time() + 60
    lines = []
    try:
        for kind, request in (("json", b'{"stream": false}'), ("stream", b'{"stream": true}')):
            tracemalloc.start()
            call = client.stream if kind == "stream" else client.complete
            reply = await call(miner, "chat", request, deadline)
            held, _ = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            lines.append(
                f"cap {cap / MIB:.1f} MiB, {kind:6s}: {reply.status}, "
                f"{len(reply.chunks)} chunks, holds {held / MIB:.1f} MiB"
            )
    finally:
        await session.close()
        await server.close()
    return lines


def main(argv: list[str]) -> int:
    """Print the figures for each cap given (default 1, 2 and 4 MiB)."""
    caps = [int(a) for a in argv] or [MIB, 2 * MIB, 4 * MIB]
    for cap in caps:
        for line in asyncio.run(measure(cap)):
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
