"""The pool of unverified body readers: a deadline, and eviction of squatters past the grace."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from miners.body_gate import UnverifiedBodies

pytestmark = pytest.mark.integration


async def _server(bodies: UnverifiedBodies) -> TestServer:
    async def read(request: web.Request) -> web.StreamResponse:
        raw = await bodies.read(request)
        return raw if isinstance(raw, web.Response) else web.Response(body=raw)

    app = web.Application()
    app.router.add_post("/", read)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server


@pytest.fixture
async def squatter() -> AsyncIterator[list[asyncio.StreamWriter]]:
    """Writers of connections that never finish their bodies, closed at the end."""
    writers: list[asyncio.StreamWriter] = []
    yield writers
    for writer in writers:
        writer.close()


def _close(writers: list[asyncio.StreamWriter]) -> None:
    for writer in writers:
        writer.close()


async def _squat(server: TestServer, writers: list[asyncio.StreamWriter]) -> asyncio.StreamReader:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"POST / HTTP/1.1\r\nHost: m\r\nContent-Length: 100\r\n\r\nabc")
    await writer.drain()
    writers.append(writer)
    return reader


async def test_a_body_not_finished_by_the_deadline_is_a_408(
    squatter: list[asyncio.StreamWriter],
) -> None:
    bodies = UnverifiedBodies(limit=4, deadline_s=0.3)
    server = await _server(bodies)
    try:
        reader = await _squat(server, squatter)
        status = await asyncio.wait_for(reader.readline(), 5)
    finally:
        _close(squatter)
        await server.close()
    assert status.startswith(b"HTTP/1.1 408")
    assert bodies.timed_out == 1 and bodies.in_flight == 0


async def test_a_newcomer_evicts_the_oldest_squatter_past_the_grace(
    squatter: list[asyncio.StreamWriter],
) -> None:
    bodies = UnverifiedBodies(limit=2, deadline_s=3, grace_s=0.2)
    server = await _server(bodies)
    try:
        first = await _squat(server, squatter)
        await _squat(server, squatter)
        for _ in range(100):  # until both are being read (bounded)
            if bodies.in_flight == 2:
                break
            await asyncio.sleep(0.01)
        fresh = await _squat(server, squatter)  # both squatters are younger than the grace
        refused = await asyncio.wait_for(fresh.readline(), 5)
        await asyncio.sleep(0.3)
        async with asyncio.timeout(5):
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"POST / HTTP/1.1\r\nHost: m\r\nContent-Length: 2\r\n\r\nok")
            served = await reader.readline()
            writer.close()
            evicted = await first.readline()
    finally:
        _close(squatter)
        await server.close()
    assert refused.startswith(b"HTTP/1.1 429")
    assert served.startswith(b"HTTP/1.1 200") and evicted.startswith(b"HTTP/1.1 408")
    assert bodies.evicted == 1
