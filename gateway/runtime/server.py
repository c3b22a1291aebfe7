"""uvicorn's own limits, from the settings: connections, backlog, keep-alive, header size."""

from __future__ import annotations

from typing import Any

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


class HeadTooLarge(Exception):
    """A request's head passed the cap (raised inside a parser callback)."""


class BoundedHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol with a cap on a request's head.

    uvicorn caps the head only under h11 (`h11_max_incomplete_event_size`); httptools
    buffers headers without end. This counts the URL and headers as the parser hands them
    over, and the bytes of a head still incomplete after a read (one endless header), and
    answers 431 past the same cap.
    """

    _in_head = False
    _head_bytes = 0
    _pending = 0
    _head_over = False

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
        self.transport.write(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
            b"content-type: application/json\r\nconnection: close\r\n"
            + f"content-length: {len(HEAD_TOO_LARGE)}\r\n\r\n".encode()
            + HEAD_TOO_LARGE
        )
        self.transport.close()


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments of `uvicorn.run` that bound what clients can hold open.

    Past `limit_concurrency` connections (or tasks) uvicorn answers 503 before the app runs;
    the app's own in-flight limit (429) sits below it, so keep-alive connections still fit.
    """
    server = settings.server
    return {
        "host": server.host,
        "port": server.port,
        "loop": "uvloop",
        "http": BoundedHttpTools,
        "access_log": False,
        "limit_concurrency": server.limit_concurrency or server.max_inflight * 3 // 2 + 64,
        "backlog": server.backlog,
        "timeout_keep_alive": server.keep_alive_s,
        "h11_max_incomplete_event_size": server.max_header_bytes,
    }
