"""How a simulated miner fails: errors, hangs, broken JSON, empty replies, cuts, slow drips."""

from __future__ import annotations

import asyncio
import contextlib
from itertools import cycle

from aiohttp import web

from miners.sim.wire import JSON_HEADERS, SSE_HEADERS, StreamPlan, error_body

SERVER_ERROR = error_body("simulated miner failure", "server_error", None, "simulated_failure")
DROP_AFTER_PIECES = 2


def error_response() -> web.Response:
    """A 500 with an OpenAI error body."""
    return web.Response(status=500, body=SERVER_ERROR, headers=JSON_HEADERS)


async def hang() -> None:
    """Never answer; ends only when the client gives up (the handler is cancelled)."""
    await asyncio.get_running_loop().create_future()


def malformed_body(document: bytes) -> web.Response:
    """A 200 whose JSON body stops half way, so it does not parse."""
    return web.Response(body=document[: len(document) // 2], headers=JSON_HEADERS)


def malformed_frames(plan: StreamPlan) -> bytes:
    """A stream whose first content chunk is broken JSON, then [DONE]."""
    broken = b'data: {"id": "broken", "choices": [{"delta": {"content": \n\n'
    return b"".join([*plan.head, broken, plan.tail[-1]])


def empty_body() -> web.Response:
    """A 200 with no body at all."""
    return web.Response(body=b"", headers=JSON_HEADERS)


def empty_stream() -> web.Response:
    """A 200 event stream with no events, not even [DONE]."""
    return web.Response(body=b"", headers=SSE_HEADERS)


def cut(request: web.BaseRequest) -> None:
    """Close the connection after what was written is flushed."""
    transport = request.transport
    if transport is not None:
        transport.close()


async def drop_body(request: web.BaseRequest, document: bytes) -> web.StreamResponse:
    """Announce the whole body, send half of it, then close the connection."""
    response = web.StreamResponse(headers=JSON_HEADERS)
    response.content_length = len(document)
    await response.prepare(request)
    with contextlib.suppress(ConnectionError):
        await response.write(document[: len(document) // 2])
    cut(request)
    return response


async def drop_stream(request: web.BaseRequest, plan: StreamPlan) -> web.StreamResponse:
    """Send the head and half the content chunks (at least two), then close without [DONE]."""
    response = web.StreamResponse(headers=SSE_HEADERS)
    await response.prepare(request)
    with contextlib.suppress(ConnectionError):
        kept = max(DROP_AFTER_PIECES, len(plan.frames) // 2)
        await response.write(b"".join([*plan.head, *plan.frames[:kept]]))
    cut(request)
    return response


async def drip_body(request: web.BaseRequest, interval_s: float) -> web.StreamResponse:
    """A 200 JSON body that sends one blank byte per interval, forever."""
    response = web.StreamResponse(headers=JSON_HEADERS)
    await response.prepare(request)
    with contextlib.suppress(ConnectionError):
        while True:
            await response.write(b" ")
            await asyncio.sleep(interval_s)
    return response


async def drip_stream(
    request: web.BaseRequest, plan: StreamPlan, interval_s: float
) -> web.StreamResponse:
    """A stream that sends one content chunk per interval, cycling the reply, forever."""
    response = web.StreamResponse(headers=SSE_HEADERS)
    await response.prepare(request)
    frames = plan.frames or [plan.tail[0]]
    with contextlib.suppress(ConnectionError):
        await response.write(b"".join(plan.head))
        for frame in cycle(frames):
            await asyncio.sleep(interval_s)
            await response.write(frame)
    return response
