"""uvicorn's limits come from the settings, and the head cap holds under httptools too."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from gateway.config import Settings
from gateway.runtime.server import uvicorn_options
from tests.support import eventually, free_port


def test_uvicorn_limits_sit_above_the_in_flight_limit() -> None:
    options = uvicorn_options(Settings(metagraph=Path("m.json"), max_inflight=100))
    assert options["limit_concurrency"] == 214 + 1024  # and the heads still awaited
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


async def _echo_size(scope: Any, receive: Any, send: Any) -> None:
    """An ASGI app that answers with the size of the body it read."""
    if scope["type"] != "http":
        return
    size, more = 0, True
    while more:
        message = await receive()
        size += len(message.get("body", b""))
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": str(size).encode()})


@pytest.fixture
def capped_server() -> Iterator[int]:
    """uvicorn with the options the gateway serves with and an 8 KiB head cap, on loopback."""
    port = free_port()
    settings = Settings(
        metagraph=Path("m.json"), host="127.0.0.1", port=port, max_header_bytes=8192
    )
    config = uvicorn.Config(
        _echo_size, **uvicorn_options(settings), log_level="error", lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    assert eventually(lambda: server.started, True)
    yield port
    server.should_exit = True
    thread.join(10)


def _exchange(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        with contextlib.suppress(OSError):  # the server may close while a long head is sent
            sock.sendall(request)
        sock.settimeout(10)
        answer = b""
        for _ in range(100):
            part = sock.recv(65536)
            if not part:
                break
            answer += part
        return answer


def test_headers_over_the_cap_get_431_not_an_endless_buffer(capped_server: int) -> None:
    # 20 KB: over the cap, and small enough to be read whole before the server closes (a
    # close with unread bytes would reset the connection and lose the answer).
    padding = b"".join(b"X-Pad-%d: %s\r\n" % (i, b"a" * 1000) for i in range(20))
    answer = _exchange(capped_server, b"GET / HTTP/1.1\r\nHost: x\r\n" + padding + b"\r\n")
    assert answer.startswith(b"HTTP/1.1 431"), answer[:100]
    assert b"headers_too_large" in answer


def test_a_body_bigger_than_the_head_cap_is_still_read(capped_server: int) -> None:
    body = b"x" * 200_000
    head = b"POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
    answer = _exchange(capped_server, head + b"Content-Length: 200000\r\n\r\n" + body)
    assert answer.startswith(b"HTTP/1.1 200") and b"\r\n200000\r\n" in answer


def test_a_whole_request_in_one_read_is_not_taken_for_a_head(capped_server: int) -> None:
    body = b"y" * 100_000
    head = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"
    with socket.create_connection(("127.0.0.1", capped_server)) as sock:
        sock.sendall(head + body + head + body)  # two requests on one connection
        sock.settimeout(10)
        answer = b""
        for _ in range(100):
            if answer.count(b"\r\n100000\r\n") == 2:
                break
            part = sock.recv(65536)
            if not part:
                break
            answer += part
    assert answer.count(b"HTTP/1.1 200") == 2, answer[:300]


def test_one_endless_header_gets_431(capped_server: int) -> None:
    answer = _exchange(capped_server, b"GET / HTTP/1.1\r\nHost: x\r\nX-Endless: " + b"a" * 20_000)
    assert answer.startswith(b"HTTP/1.1 431"), answer[:100]


async def _slow(scope: Any, receive: Any, send: Any) -> None:
    """An ASGI app that answers after 1.5 s (longer than the head timeout below)."""
    if scope["type"] != "http":
        return
    await asyncio.sleep(1.5)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"done"})


@contextlib.contextmanager
def _serving(app: Any, **server: Any) -> Iterator[int]:
    port = free_port()
    settings = Settings(metagraph=Path("m.json"), host="127.0.0.1", port=port, **server)
    config = uvicorn.Config(app, **uvicorn_options(settings), log_level="error", lifespan="off")
    runner = uvicorn.Server(config)
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    assert eventually(lambda: runner.started, True)
    try:
        yield port
    finally:
        runner.should_exit = True
        thread.join(10)


def _read_all(sock: socket.socket) -> bytes:
    sock.settimeout(10)
    answer = b""
    with contextlib.suppress(ConnectionResetError):
        while part := sock.recv(65536):
            answer += part
    return answer


def test_a_head_that_trickles_past_its_time_gets_408_and_a_silent_socket_is_closed() -> None:
    # Failed before: uvicorn waited for a head without end.
    with (
        _serving(_echo_size, head_timeout_s=0.5) as port,
        socket.create_connection(("127.0.0.1", port)) as trickling,
        socket.create_connection(("127.0.0.1", port)) as silent,
    ):
        trickling.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        assert _read_all(trickling).startswith(b"HTTP/1.1 408")
        assert _read_all(silent) == b""


def test_past_the_pending_heads_the_oldest_is_closed_and_callers_are_served() -> None:
    # Failed before: 100 sockets trickling heads passed limit_concurrency (1.5 x 4 + 64), and
    # every complete request got 503.
    with _serving(_echo_size, max_inflight=4, max_pending_heads=8) as port:
        trickling = [socket.create_connection(("127.0.0.1", port)) for _ in range(100)]
        try:
            for sock in trickling:
                sock.sendall(b"GET / HTTP/1.1\r\n")
            request = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            answers = [_exchange(port, request) for _ in range(8)]
            assert all(a.startswith(b"HTTP/1.1 200") for a in answers), {a[:12] for a in answers}
            # Closed: with a 408 if the server had read the head's first line, else silently.
            closed = [_read_all(s) for s in trickling[:80]]
            assert all(c == b"" or c.startswith(b"HTTP/1.1 408") for c in closed)
        finally:
            for sock in trickling:
                sock.close()


def test_a_request_slower_than_the_head_timeout_is_not_cut() -> None:
    with (
        _serving(_slow, head_timeout_s=0.5) as port,
        socket.create_connection(("127.0.0.1", port)) as sock,
    ):
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 2)  # the second is pipelined
        sock.settimeout(10)
        answer = b""
        while answer.count(b"done") < 2 and (part := sock.recv(65536)):
            answer += part
    assert answer.count(b"HTTP/1.1 200") == 2, answer
