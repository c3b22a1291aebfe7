"""uvicorn's own limits, from the settings: connections, backlog, keep-alive, the head's
size, and how long and how many heads may be awaited."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from typing import Any, ClassVar

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway.config import Settings
from gateway.errors import error_body

DEFAULT_HEAD_LIMIT = 64 * 1024
HEAD_TOO_LARGE = orjson.dumps(
    error_body(
        "The request's headers are over the gateway's limit.",
        "invalid_request_error",
        None,
        "headers_too_large",
    )
)


HEAD_TIMED_OUT = orjson.dumps(
    error_body(
        "The request's headers did not arrive in time.",
        "invalid_request_error",
        None,
        "headers_timeout",
    )
)


class HeadTooLarge(Exception):
    """A request's head passed the cap (raised inside a parser callback)."""


class BoundedHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol with a cap on a request's head.

    uvicorn caps the head only under h11 (`h11_max_incomplete_event_size`); httptools
    buffers headers without end. This counts the URL and headers as the parser hands them
    over, and the bytes of a head still incomplete after a read (one endless header), and
    answers 431 past the same cap.

    uvicorn also waits for a head without end, and counts such a connection against
    `limit_concurrency`: sockets that trickle headers made every other caller's request a 503.
    A head is awaited `head_timeout_s` at most (from the connection, or the last response),
    then 408; and at most `max_pending_heads` at once, past which the longest awaited is
    closed (a real client's head arrives within milliseconds, so it is never the oldest).
    """

    head_timeout_s: ClassVar[float] = 10.0
    max_pending_heads: ClassVar[int] = 1024
    # The connections whose next head is awaited, oldest first (one mapping per server class).
    awaiting: ClassVar[OrderedDict[BoundedHttpTools, None]] = OrderedDict()

    _in_head = False
    _head_bytes = 0
    _pending = 0
    _head_over = False
    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """A connection: its first head is awaited from now."""
        super().connection_made(transport)
        self._await_head()

    def connection_lost(self, exc: Exception | None) -> None:
        """Gone: no head is awaited from it any more."""
        self._head_arrived()
        super().connection_lost(exc)

    def on_response_complete(self) -> None:
        """A response sent: the next head on this connection is awaited from now."""
        super().on_response_complete()
        idle = self.cycle is None or self.cycle.response_complete  # not a pipelined request
        if idle and not self.transport.is_closing():
            self._await_head()

    def data_received(self, data: bytes) -> None:
        """Parse `data`; 431 and close once the head so far is over the cap."""
        if self.transport.is_closing():
            return
        super().data_received(data)
        if not self._in_head or self.transport.is_closing():
            return  # no head begun, or it ended within `data`
        self._pending += len(data)
        if self._pending > self._limit():
            self._refuse()

    def on_message_begin(self) -> None:
        """A request's head begins."""
        self._in_head, self._head_bytes, self._pending = True, 0, 0
        super().on_message_begin()

    def on_url(self, url: bytes) -> None:
        """Count the URL into the head."""
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        """Count one header into the head."""
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        """The head is whole: what follows is the body."""
        self._in_head = False
        self._head_arrived()
        super().on_headers_complete()

    def send_400_response(self, msg: str) -> None:
        """A head over the cap is a 431; any other unparsable request, uvicorn's 400."""
        if self._head_over:
            self._refuse()
        else:
            super().send_400_response(msg)

    def _limit(self) -> int:
        limit = self.config.h11_max_incomplete_event_size
        return limit if limit is not None else DEFAULT_HEAD_LIMIT

    def _count(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > self._limit():
            self._head_over = True
            raise HeadTooLarge  # the parser stops; uvicorn calls send_400_response

    def _refuse(self) -> None:
        self._close_with(b"431 Request Header Fields Too Large", HEAD_TOO_LARGE)

    def _await_head(self) -> None:
        awaiting = type(self).awaiting
        awaiting[self] = None
        self._head_timer = self.loop.call_later(self.head_timeout_s, self._head_late)
        while len(awaiting) > self.max_pending_heads:
            oldest, _ = awaiting.popitem(last=False)
            oldest._head_late()

    def _head_arrived(self) -> None:
        type(self).awaiting.pop(self, None)
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_late(self) -> None:
        """The head took too long (or too many are awaited): 408 if it had begun, then close."""
        self._head_arrived()
        if self.transport.is_closing():
            return
        if self._in_head:
            self._close_with(b"408 Request Timeout", HEAD_TIMED_OUT)
        else:
            self.transport.close()

    def _close_with(self, status: bytes, body: bytes) -> None:
        self.transport.write(
            b"HTTP/1.1 " + status + b"\r\n"
            b"content-type: application/json\r\nconnection: close\r\n"
            + f"content-length: {len(body)}\r\n\r\n".encode()
            + body
        )
        self.transport.close()


def bounded_http(settings: Settings) -> type[BoundedHttpTools]:
    """The protocol class of one server: its head limits, and its own awaited heads."""
    server = settings.server
    attributes = {
        "head_timeout_s": server.head_timeout_s,
        "max_pending_heads": server.max_pending_heads,
        "awaiting": OrderedDict(),
    }
    return type("BoundedHttpTools", (BoundedHttpTools,), attributes)


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments of `uvicorn.run` that bound what clients can hold open.

    Past `limit_concurrency` connections (or tasks) uvicorn answers 503 before the app runs;
    the app's own in-flight limit (429) sits below it, so keep-alive connections still fit,
    and so do the heads still awaited (`max_pending_heads`), which uvicorn counts too.
    """
    server = settings.server
    concurrency = server.max_inflight * 3 // 2 + 64 + server.max_pending_heads
    return {
        "host": server.host,
        "port": server.port,
        "loop": "uvloop",
        "http": bounded_http(settings),
        "access_log": False,
        "limit_concurrency": server.limit_concurrency or concurrency,
        "backlog": server.backlog,
        "timeout_keep_alive": server.keep_alive_s,
        "h11_max_incomplete_event_size": server.max_header_bytes,
    }
