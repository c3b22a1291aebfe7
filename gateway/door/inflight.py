"""The door of the completion routes: an in-flight slot held to the last byte, a bounded body.

An ASGI middleware rather than code in the route, because only here does a request end
when its response ends: a streamed reply holds its slot until its last chunk is sent. The
body is read here too, whole, under a size cap and a deadline, and its JSON shape checked
as it comes, before any route or middleware parses it: a client that uploads slowly holds
its slot for `body_timeout_s` at most, then gets a 408.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.door.bounds import InputLimits, JsonShape, check_shape
from gateway.errors import BodyTimeout, BodyTooLarge, GatewayError, RateLimited, error_response
from gateway.state import GatewayState

# The routes that fan out to miners: each holds an in-flight slot and has its body read here.
COMPLETION_PATHS = frozenset({"/v1/chat/completions", "/v1/completions", "/v1/responses"})
# The scope key of the caller's check of a whole body (its key's pools and limits,
# gateway.door.access): run here once the body is read, inside the request's slot.
BODY_CHECK = "bitgate.body_check"
# The scope key of the pools the caller's key is limited to (None: every pool).
KEY_POOLS = "bitgate.key_pools"
# The scope key of the body read here (bounded, shape-checked): the route parses these bytes.
BODY = "bitgate.body"
BodyCheck = Callable[[bytes], Awaitable[None]]


async def read_ahead(
    receive: Receive, headers: Headers, limit: int, timeout_s: float, bounds: InputLimits
) -> tuple[Receive, bytes]:
    """Read the whole body: a `receive` of it, and its bytes; 413 past `limit` bytes, 408
    past `timeout_s`, 400 when its JSON nests too deep or holds too many values."""
    declared = headers.get("content-length")
    too_large = BodyTooLarge(f"The request body is over the limit of {limit} bytes.")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large
    messages: deque[Message] = deque()
    shape = JsonShape()
    size = 0
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                message = await receive()
                messages.append(message)
                if message["type"] != "http.request":
                    break  # the client left: the route sees it and answers 499
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    raise too_large
                shape.feed(chunk)
                if not message.get("more_body", False):
                    break
    except TimeoutError:
        raise BodyTimeout(
            f"The request body did not arrive within {timeout_s:g} s; send it at once."
        ) from None
    check_shape(shape, bounds)

    async def replay() -> Message:
        return messages.popleft() if messages else await receive()

    return replay, b"".join(m.get("body", b"") for m in messages if m["type"] == "http.request")


class InFlightGate:
    """Completion requests past the in-flight limit get 429; the rest hold a slot to the end."""

    def __init__(self, app: ASGIApp, gateway: Callable[[], GatewayState]) -> None:
        self.app = app
        self.gateway = gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Admit, read the body, serve, and free the slot once the response has ended."""
        if scope["type"] != "http" or scope["path"] not in COMPLETION_PATHS:
            await self.app(scope, receive, send)
            return
        state = self.gateway()
        settings = state.settings
        try:
            state.admit()
        except RateLimited as exc:
            await self._refuse(state, exc, scope, receive, send)
            return
        try:
            try:
                replay, body = await read_ahead(
                    receive,
                    Headers(scope=scope),
                    settings.limits.max_body_bytes,
                    settings.limits.body_timeout_s,
                    settings.limits.input,
                )
                check: BodyCheck | None = scope.get(BODY_CHECK)
                if check is not None:
                    await check(body)
            except GatewayError as exc:
                await self._refuse(state, exc, scope, receive, send)
                return
            scope[BODY] = body
            await self.app(scope, replay, send)
        finally:
            state.release()

    async def _refuse(
        self, state: GatewayState, exc: GatewayError, scope: Scope, receive: Receive, send: Send
    ) -> None:
        state.count_refusal(exc.status)
        await error_response(exc)(scope, receive, send)
