"""The context miners report on /v1/models: one usable claim each, the pool's by median."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from router.miner_context import pool_context, read_max_model_len

pytestmark = pytest.mark.integration


@asynccontextmanager
async def miner(listing: Any, status: int = 200) -> AsyncIterator[str]:
    """A miner whose /v1/models answers `listing`."""

    async def models(request: web.Request) -> web.Response:
        return web.json_response(listing, status=status)

    app = web.Application()
    app.router.add_get("/v1/models", models)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        await server.close()


def card(length: Any) -> dict[str, Any]:
    """A vLLM model listing with one model of this context."""
    return {"object": "list", "data": [{"id": "m", "max_model_len": length}]}


@pytest.mark.parametrize(
    ("listing", "status", "expected"),
    [
        (card(8192), 200, 8192),
        (card(8192), 500, None),
        (card(True), 200, None),
        (card(16), 200, None),
        (card("8192"), 200, None),
        ({"data": [{"id": "a", "max_model_len": 1}, {"id": "b", "max_model_len": 2}]}, 200, None),
        ([1, 2, 3], 200, None),
    ],
)
async def test_one_usable_claim_or_none(listing: Any, status: int, expected: int | None) -> None:
    async with miner(listing, status) as url, aiohttp.ClientSession() as session:
        assert await read_max_model_len(session, url) == expected


async def test_the_pool_context_is_the_median_claim() -> None:
    async with (
        miner(card(8192)) as a,
        miner(card(8192)) as b,
        miner(card(300)) as liar,
        aiohttp.ClientSession() as session,
    ):
        assert await pool_context(session, [a, b, liar]) == 8192
        assert await pool_context(session, ["http://127.0.0.1:1"]) is None
