"""uvicorn's own limits, from the settings: connections, backlog, keep-alive, header size."""

from __future__ import annotations

from typing import Any

from gateway.config import Settings


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments of `uvicorn.run` that bound what clients can hold open.

    Past `limit_concurrency` connections (or tasks) uvicorn answers 503 before the app runs;
    the app's own in-flight limit (429) sits below it, so keep-alive connections still fit.
    """
    return {
        "host": settings.host,
        "port": settings.port,
        "loop": "uvloop",
        "http": "httptools",
        "access_log": False,
        "limit_concurrency": settings.limit_concurrency or settings.max_inflight * 3 // 2 + 64,
        "backlog": settings.backlog,
        "timeout_keep_alive": settings.keep_alive_s,
        "h11_max_incomplete_event_size": settings.max_header_bytes,
    }
