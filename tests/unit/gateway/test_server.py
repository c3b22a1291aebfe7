"""uvicorn's limits come from the settings."""

from __future__ import annotations

from pathlib import Path

from gateway.config import Settings
from gateway.server import uvicorn_options


def test_uvicorn_limits_sit_above_the_in_flight_limit() -> None:
    options = uvicorn_options(Settings(metagraph=Path("m.json"), max_inflight=100))
    assert options["limit_concurrency"] == 214
    assert options["backlog"] == 2048
    assert options["timeout_keep_alive"] == 5
    assert options["h11_max_incomplete_event_size"] == 64 * 1024


def test_each_uvicorn_limit_can_be_set() -> None:
    settings = Settings(
        metagraph=Path("m.json"),
        limit_concurrency=50,
        backlog=64,
        keep_alive_s=2,
        max_header_bytes=8192,
    )
    options = uvicorn_options(settings)
    assert (options["limit_concurrency"], options["backlog"]) == (50, 64)
    assert (options["timeout_keep_alive"], options["h11_max_incomplete_event_size"]) == (2, 8192)
