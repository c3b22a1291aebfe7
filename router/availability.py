"""Reading the `/availability` of miners that asked for a pause, to call them back sooner."""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import orjson

from router.backpressure import Backpressure

logger = logging.getLogger(__name__)

AVAILABILITY_PATH = "/availability"
PROBE_TIMEOUT_S = 1.0
MAX_DOCUMENT_BYTES = 4096
POLL_S = 2.0


async def has_room(session: aiohttp.ClientSession, base_url: str) -> bool | None:
    """Whether the miner says it has a free slot; None when it offers no usable answer."""
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_S):
            async with session.get(base_url + AVAILABILITY_PATH, allow_redirects=False) as resp:
                if resp.status != 200:
                    return None
                raw = await resp.content.read(MAX_DOCUMENT_BYTES + 1)
    except Exception:  # a miner without /availability, or a broken one: keep its Retry-After
        return None
    if len(raw) > MAX_DOCUMENT_BYTES:
        return None
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(document, dict) or not isinstance(document.get("saturated"), bool):
        return None
    return not document["saturated"]


async def poll_held(backpressure: Backpressure, session: aiohttp.ClientSession) -> int:
    """Ask every held miner whether it has room; release those that do. How many were."""
    held = backpressure.waiting()
    answers = await asyncio.gather(*(has_room(session, url) for url in held))
    released = 0
    for url, room in zip(held, answers, strict=True):
        if room:
            backpressure.release_url(url)
            released += 1
    return released


async def watch_availability(
    backpressure: Backpressure, session: aiohttp.ClientSession, interval_s: float = POLL_S
) -> None:
    """Forever: poll the held miners' `/availability` every `interval_s`."""
    while True:
        await asyncio.sleep(interval_s)
        released = await poll_held(backpressure, session)
        if released:
            logger.info("%d paused miners say they have room again", released)
