"""Response classes: JSON rendered by orjson, and OpenAI server-sent events."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

SSE_DONE = b"data: [DONE]\n\n"
# An SSE comment: clients ignore it, proxies and idle timers see traffic.
SSE_KEEPALIVE = b": keep-alive\n\n"
# Response headers of the gateway's own event streams: no caching, no proxy buffering.
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class JSONBytes(Response):
    """JSON rendered with orjson."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        """Serialise `content`."""
        return orjson.dumps(content)


def sse_event(payload: Any) -> bytes:
    """One `data:` event of an OpenAI stream."""
    return b"data: " + orjson.dumps(payload) + b"\n\n"
