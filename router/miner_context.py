"""Reading the context length (`max_model_len`) miners report on `/v1/models`, as vLLM does."""

from __future__ import annotations

import asyncio
import statistics
from collections.abc import Iterable

import aiohttp
import orjson

MODELS_PATH = "/v1/models"
PROBE_TIMEOUT_S = 2.0
MAX_DOCUMENT_BYTES = 64 * 1024
MIN_CONTEXT = 256  # a claim below this is not believed: it would only starve the pool


async def read_max_model_len(session: aiohttp.ClientSession, base_url: str) -> int | None:
    """The `max_model_len` of the one model a miner lists, or None if it gives no usable one."""
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_S):
            async with session.get(base_url + MODELS_PATH, allow_redirects=False) as resp:
                if resp.status != 200:
                    return None
                raw = await resp.content.read(MAX_DOCUMENT_BYTES + 1)
    except Exception:  # a miner without /v1/models, or a broken one: no claim
        return None
    if len(raw) > MAX_DOCUMENT_BYTES:
        return None
    try:
        listing = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    cards = listing.get("data") if isinstance(listing, dict) else None
    if not isinstance(cards, list) or len(cards) != 1 or not isinstance(cards[0], dict):
        return None
    length = cards[0].get("max_model_len")
    if isinstance(length, bool) or not isinstance(length, int) or length < MIN_CONTEXT:
        return None
    return length


async def pool_context(session: aiohttp.ClientSession, base_urls: Iterable[str]) -> int | None:
    """The context the miners report, by median (what one miner claims cannot move it)."""
    claims = await asyncio.gather(*(read_max_model_len(session, url) for url in base_urls))
    reported = [claim for claim in claims if claim is not None]
    return int(statistics.median_low(reported)) if reported else None
