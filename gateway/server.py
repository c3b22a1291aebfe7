"""uvicorn's own limits, from the settings: connections, backlog, keep-alive, header size."""

from __future__ import annotations

from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway.config import Settings
from gateway.errors import error_body

HEAD_TOO_LARGE = orjson.dumps(
    error_body(
        "The request's headers are over the gateway's limit.",
        "invalid_request_error",
        None,
        "headers_too_large",
    )
)


class BoundedHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol with a cap on a request's head.

    uvicorn caps the head only under h11 (`h11_max_incomplete_event_size`); httptools
    buffers headers without end. This counts the bytes that arrive before a head is
    complete and answers 431 past the same cap (at most one read past it is buffered).
    """

    _head_bytes = 0
    _in_body = False

    def data_received(self, data: bytes) -> None:
        """Parse `data`; 431 and close once the head so far is over the cap."""
        if self.transport.is_closing():
            return
        super().data_received(data)
        if self._in_body or self.transport.is_closing():
            return
        self._head_bytes += len(data)
        limit = self.config.h11_max_incomplete_event_size
        if limit is not None and self._head_bytes > limit:
            self.transport.write(
                b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
                b"content-type: application/json\r\nconnection: close\r\n"
                + f"content-length: {len(HEAD_TOO_LARGE)}\r\n\r\n".encode()
                + HEAD_TOO_LARGE
            )
            self.transport.close()

    def on_headers_complete(self) -> None:
        """The head is whole: what follows is the body."""
        self._in_body, self._head_bytes = True, 0
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        """The next bytes on this connection start a new head."""
        self._in_body = False
        super().on_message_complete()


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments of `uvicorn.run` that bound what clients can hold open.

    Past `limit_concurrency` connections (or tasks) uvicorn answers 503 before the app runs;
    the app's own in-flight limit (429) sits below it, so keep-alive connections still fit.
    """
    return {
        "host": settings.host,
        "port": settings.port,
        "loop": "uvloop",
        "http": BoundedHttpTools,
        "access_log": False,
        "limit_concurrency": settings.limit_concurrency or settings.max_inflight * 3 // 2 + 64,
        "backlog": settings.backlog,
        "timeout_keep_alive": settings.keep_alive_s,
        "h11_max_incomplete_event_size": settings.max_header_bytes,
    }
