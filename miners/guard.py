"""What stands before a miner's handlers: the Epistula check (401) and its capacity (429)."""

from __future__ import annotations

import logging
import math
from typing import Any

from aiohttp import web

from miners.body_gate import UnverifiedBodies
from miners.epistula_verify import EpistulaError, Verifier
from miners.sim.wire import JSON_HEADERS, error_body

logger = logging.getLogger(__name__)


async def refuse_unsigned(
    verifier: Verifier | None, request: web.Request, bodies: UnverifiedBodies | None = None
) -> web.Response | None:
    """None if the request may go on (or nothing is checked), else the 401 (408, 429) to answer.

    The headers are checked before a byte of the body is read, and the body is read through
    `bodies`, the pool of unverified readers (few at once, each by a deadline): a client
    with forged headers cannot make the miner buffer many bodies or wait on them.
    """
    if verifier is None:
        return None
    try:
        signed = verifier.check_headers(request.headers)
    except EpistulaError as exc:
        return _unauthorized(request, exc)
    raw = await (bodies.read(request) if bodies is not None else request.read())
    if isinstance(raw, web.Response):
        return raw
    try:
        verifier.verify_body(signed, raw)
    except EpistulaError as exc:
        return _unauthorized(request, exc)
    return None


def _unauthorized(request: web.Request, exc: EpistulaError) -> web.Response:
    logger.info("refused a request from %s: %s", request.remote, exc.code)
    body = error_body(f"Epistula: {exc}", "authentication_error", None, exc.code)
    return web.Response(status=401, body=body, headers=JSON_HEADERS)


class Capacity:
    """At most `limit` requests in flight (None: no limit); beyond that, 429 with Retry-After."""

    def __init__(self, limit: int | None, retry_after_s: float = 1.0) -> None:
        self.limit = limit
        self.retry_after_s = retry_after_s
        self.in_flight = 0
        self.refused = 0

    @property
    def saturated(self) -> bool:
        """Whether a new request would be refused now."""
        return self.limit is not None and self.in_flight >= self.limit

    def try_enter(self) -> bool:
        """Take a slot if one is free; the caller must `leave()` when done."""
        if self.saturated:
            self.refused += 1
            return False
        self.in_flight += 1
        return True

    def leave(self) -> None:
        """Give a slot back."""
        self.in_flight -= 1

    def busy(self) -> web.Response:
        """The 429 a request gets when every slot is taken."""
        body = error_body(
            f"miner is at capacity ({self.limit} requests in flight); retry later",
            "rate_limit_error",
            None,
            "miner_at_capacity",
        )
        headers = {**JSON_HEADERS, "Retry-After": str(max(1, math.ceil(self.retry_after_s)))}
        return web.Response(status=429, body=body, headers=headers)

    def availability(self, model: str) -> dict[str, Any]:
        """The `GET /availability` document: model, capacity and load."""
        free = None if self.limit is None else max(self.limit - self.in_flight, 0)
        return {
            "model": model,
            "capacity": self.limit,
            "in_flight": self.in_flight,
            "available": free,
            "saturated": self.saturated,
            "refused": self.refused,
        }
