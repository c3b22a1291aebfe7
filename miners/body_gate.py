"""Reading bodies whose signature is not yet checked: few at once, each by a deadline.

Every Epistula header can be forged from public data, so a body is unverified until it has
been read and its signature checked. Its readers get a pool of their own, apart from the
miner's in-flight slots: at most `limit` at a time, each for at most `deadline_s`. When every
slot is taken, a newcomer takes the slot of the oldest reader that has held one past `grace_s`
(a signer's body comes with its headers; one still trickling in is holding a slot, not using
it), so connections that never finish their bodies cannot keep signed requests out.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from miners.sim.wire import JSON_HEADERS, error_body

DEFAULT_LIMIT = 64
DEFAULT_DEADLINE_S = 10.0
DEFAULT_GRACE_S = 0.5


class UnverifiedBodies:
    """The slot pool and deadline for bodies read before their signature is checked."""

    def __init__(
        self,
        limit: int = DEFAULT_LIMIT,
        deadline_s: float = DEFAULT_DEADLINE_S,
        grace_s: float = DEFAULT_GRACE_S,
        retry_after_s: float = 1.0,
    ) -> None:
        if limit < 1 or deadline_s <= 0 or grace_s < 0:
            raise ValueError("limit must be positive, deadline_s positive, grace_s not negative")
        self.limit = limit
        self.deadline_s = deadline_s
        self.grace_s = grace_s
        self.retry_after_s = retry_after_s
        # Readers by start time, oldest first (dicts keep insertion order).
        self._readers: dict[object, tuple[float, asyncio.Event]] = {}
        self.refused = 0
        self.evicted = 0
        self.timed_out = 0

    @property
    def in_flight(self) -> int:
        """Bodies being read now."""
        return len(self._readers)

    async def read(self, request: web.Request) -> bytes | web.Response:
        """The whole body, or the 408 (late or evicted) or 429 (no slot) to answer instead."""
        loop = asyncio.get_running_loop()
        if len(self._readers) >= self.limit and not self._evict_oldest(loop.time()):
            self.refused += 1
            return self._busy()
        token, evicted = object(), asyncio.Event()
        self._readers[token] = (loop.time(), evicted)
        reading = asyncio.ensure_future(request.read())
        displaced = asyncio.ensure_future(evicted.wait())
        try:
            await asyncio.wait(
                (reading, displaced), timeout=self.deadline_s, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            self._readers.pop(token, None)
            displaced.cancel()
            if not reading.done():
                reading.cancel()
            await asyncio.gather(reading, displaced, return_exceptions=True)
        if not reading.cancelled():
            try:
                return reading.result()  # a body over the size cap raises its 413 here
            except (OSError, HttpProcessingError):
                return self._late()  # the client broke off mid-body
        if not evicted.is_set():
            self.timed_out += 1
        return self._late()

    def _evict_oldest(self, now: float) -> bool:
        """Free the oldest reader's slot if it has held it past the grace; whether one was."""
        token = next(iter(self._readers))
        started, evicted = self._readers[token]
        if now - started < self.grace_s:
            return False
        del self._readers[token]
        evicted.set()
        self.evicted += 1
        return True

    def _late(self) -> web.Response:
        body = error_body(
            f"request body not received within {self.deadline_s:g} s",
            "invalid_request_error",
            None,
            "body_timeout",
        )
        response = web.Response(status=408, body=body, headers=JSON_HEADERS)
        response.force_close()  # the rest of the body is never read
        return response

    def _busy(self) -> web.Response:
        body = error_body(
            f"miner is reading {self.limit} unverified bodies; retry later",
            "rate_limit_error",
            None,
            "miner_at_capacity",
        )
        headers = {**JSON_HEADERS, "Retry-After": str(max(1, math.ceil(self.retry_after_s)))}
        response = web.Response(status=429, body=body, headers=headers)
        response.force_close()
        return response

    def stats(self) -> dict[str, Any]:
        """Counts for logs and tests."""
        return {
            "in_flight": self.in_flight,
            "refused": self.refused,
            "evicted": self.evicted,
            "timed_out": self.timed_out,
        }
