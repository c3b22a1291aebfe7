"""Tests for router.availability: a paused miner that says it has room is called again."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from router.availability import poll_held
from router.backpressure import Backpressure
from router.metagraph import Axon, Neuron
from router.miner_client import open_session

Start = Callable[[web.Response | None], Awaitable[Neuron]]


@pytest.fixture
async def miner() -> AsyncIterator[Start]:
    """Start a miner whose `/availability` answers with the given response (None: no route)."""
    servers: list[TestServer] = []

    async def start(answer: web.Response | None) -> Neuron:
        app = web.Application()
        if answer is not None:

            async def availability(request: web.Request) -> web.Response:
                return answer

            app.router.add_get("/availability", availability)
        server = TestServer(app)
        servers.append(server)
        await server.start_server()
        assert server.port is not None
        return Neuron(uid=len(servers), hotkey="h", axon=Axon(ip="127.0.0.1", port=server.port))

    yield start
    for server in servers:
        await server.close()


@pytest.mark.parametrize(
    ("answer", "released"),
    [
        (web.json_response({"saturated": False, "available": 3}), True),
        (web.json_response({"saturated": True, "available": 0}), False),
        (web.json_response({"saturated": "no"}), False),
        (web.Response(body=b"{" * 10_000), False),
        (web.HTTPFound("/elsewhere"), False),
        (None, False),  # a miner with no /availability keeps its Retry-After
    ],
)
async def test_a_held_miner_is_released_only_when_it_says_it_has_room(
    miner: Start, answer: web.Response | None, released: bool
) -> None:
    neuron = await miner(answer)
    backpressure = Backpressure()
    backpressure.hold(neuron, 300.0)
    session = open_session(10)
    try:
        count = await poll_held(backpressure, session)
    finally:
        await session.close()
    assert count == int(released)
    assert backpressure.waiting() == ([] if released else [neuron.base_url])
