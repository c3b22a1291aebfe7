"""Reading a miner's event stream line by line, with no line limit a miner can trip."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp

READ_CHUNK = 65536


class StreamTooLarge(Exception):
    """The stream is over the reply cap (however its lines are cut)."""


async def sse_lines(content: aiohttp.StreamReader, max_bytes: int) -> AsyncIterator[bytes]:
    """Each line of the stream (without its end), reading at most `max_bytes` in all.

    aiohttp's own line iterator raises on a line over its buffer limit (512 KiB); this one
    keeps a line up to the cap of the whole reply, which bounds memory just the same.
    """
    size = 0
    pending = bytearray()
    while chunk := await content.read(READ_CHUNK):
        size += len(chunk)
        if size > max_bytes:
            raise StreamTooLarge("stream is over the size cap")
        start = len(pending)
        pending += chunk
        cut = pending.rfind(b"\n", start)
        if cut < 0:
            continue
        for line in bytes(pending[:cut]).split(b"\n"):
            yield line.rstrip(b"\r")
        del pending[: cut + 1]
    if pending:
        yield bytes(pending).rstrip(b"\r")
