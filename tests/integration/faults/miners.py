"""Hostile miners on raw loopback sockets: each answers a completion request with one fault.

Raw asyncio servers, not aiohttp, so a fault can break HTTP itself: reset a connection half
way, hang before the status line, drip one byte at a time. Every fault ends when the gateway
hangs up, and every connection is closed after one request (no keep-alive to count).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import Awaitable, Callable

import orjson

HEALTHY_TEXT = "Rayleigh scattering: air scatters blue light more than red, so the sky is blue."
# Faults start after this, so a healthy miner answering at once always speaks first.
FAULT_DELAY_S = 0.2
BIG_BODY_BYTES = 50 * 1024 * 1024
LONG_LINE_BYTES = 600 * 1024
DRIP_INTERVAL_S = 0.1
MAX_FAULT_S = 30.0  # no fault outlives this, whatever the gateway does

Fault = Callable[["Exchange"], Awaitable[None]]


def chat_body(text: str) -> bytes:
    """An OpenAI chat completion."""
    message = {"role": "assistant", "content": text}
    choice = {"index": 0, "message": message, "finish_reason": "stop"}
    return orjson.dumps({"id": "m", "object": "chat.completion", "choices": [choice]})


def chunk(text: str | None, finish: str | None = None) -> bytes:
    """One chat stream event."""
    delta = {} if text is None else {"content": text}
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    body = orjson.dumps({"id": "m", "object": "chat.completion.chunk", "choices": [choice]})
    return b"data: " + body + b"\n\n"


DONE = b"data: [DONE]\n\n"


class Exchange:
    """One request on one connection, and the ways to answer it."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.stream = False
        self.hung_up: asyncio.Task[bytes] | None = None

    async def read_request(self) -> None:
        """Read the request line, headers and body; note whether a stream was asked for."""
        head = await self.reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        body = orjson.loads(await self.reader.readexactly(length)) if length else {}
        self.stream = isinstance(body, dict) and body.get("stream") is True
        self.hung_up = asyncio.get_running_loop().create_task(self.reader.read(1))

    @property
    def gone(self) -> bool:
        """Whether the gateway hung up."""
        return self.hung_up is not None and self.hung_up.done()

    async def send(self, data: bytes) -> None:
        """Write and flush."""
        self.writer.write(data)
        await self.writer.drain()

    async def head(
        self,
        status: int = 200,
        content_type: str = "application/json",
        length: int | None = None,
        extra: str = "",
    ) -> None:
        """The status line and headers; no length means the body ends with the connection."""
        lines = [f"HTTP/1.1 {status} X", f"Content-Type: {content_type}", "Connection: close"]
        if length is not None:
            lines.append(f"Content-Length: {length}")
        if extra:
            lines.append(extra)
        await self.send(("\r\n".join(lines) + "\r\n\r\n").encode())

    async def answer(self, body: bytes, status: int = 200, extra: str = "") -> None:
        """A whole reply with its length."""
        await self.head(status, length=len(body), extra=extra)
        await self.send(body)

    async def events(self, *frames: bytes) -> None:
        """An event stream, sent whole."""
        await self.head(content_type="text/event-stream")
        await self.send(b"".join(frames))

    async def until_gone(self, step: Callable[[], Awaitable[None]], interval_s: float) -> None:
        """Run `step` every `interval_s` until the gateway hangs up (bounded)."""
        for _ in range(int(MAX_FAULT_S / max(interval_s, 0.001))):
            if self.gone:
                return
            await step()
            await asyncio.sleep(interval_s)

    def reset(self) -> None:
        """Close with a TCP RST, not a FIN."""
        sock = self.writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.transport.abort()


async def healthy(ex: Exchange) -> None:
    """A good answer, at once."""
    if ex.stream:
        await ex.events(chunk(HEALTHY_TEXT), chunk(None, "stop"), DONE)
    else:
        await ex.answer(chat_body(HEALTHY_TEXT))


async def reset_mid_body(ex: Exchange) -> None:
    """Part of the reply, then a connection reset."""
    if ex.stream:
        await ex.events(chunk("The sky is"))
    else:
        await ex.head(length=5000)
        await ex.send(chat_body("cut")[:40])
    await asyncio.sleep(0.05)
    ex.reset()


async def hang_before_headers(ex: Exchange) -> None:
    """Never a status line."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(MAX_FAULT_S):
            assert ex.hung_up is not None
            await asyncio.shield(ex.hung_up)


async def one_byte_a_tick(ex: Exchange) -> None:
    """A 200 whose body comes one byte at a time."""
    await ex.head(content_type="text/event-stream" if ex.stream else "application/json")
    await ex.until_gone(lambda: ex.send(b" "), DRIP_INTERVAL_S)


async def fifty_megabytes(ex: Exchange) -> None:
    """A 50 MB body, as fast as the gateway reads it."""
    await ex.head(length=BIG_BODY_BYTES)
    block = b" " * 65536
    for _ in range(BIG_BODY_BYTES // len(block)):
        if ex.gone:
            return
        await ex.send(block)


async def long_sse_line(ex: Exchange) -> None:
    """A 600 KiB event line (a comment), then a real answer: over aiohttp's line limit."""
    await ex.events(b": " + b"x" * LONG_LINE_BYTES + b"\n\n", chunk("Blue light scatters."), DONE)


async def invalid_json(ex: Exchange) -> None:
    """JSON that does not parse."""
    if ex.stream:
        await ex.events(b'data: {"choices": [{"delta": \n\n', DONE)
    else:
        await ex.answer(b'{"choices": [')


async def wrong_shape(ex: Exchange) -> None:
    """JSON, but not a completion."""
    if ex.stream:
        await ex.events(b'data: {"choices": "none"}\n\n', DONE)
    else:
        await ex.answer(b'{"choices": "none", "answer": 42}')


def redirect_to(target_port: int) -> Fault:
    """A 307 to an internal service, which must never be called."""

    async def redirect(ex: Exchange) -> None:
        url = f"http://127.0.0.1:{target_port}/v1/chat/completions"
        await ex.answer(b"", status=307, extra=f"Location: {url}")

    return redirect


async def busy(ex: Exchange) -> None:
    """429 with Retry-After: back-pressure."""
    body = b'{"error": {"message": "at capacity", "type": "rate_limit_error"}}'
    await ex.answer(body, status=429, extra="Retry-After: 30")


async def server_error(ex: Exchange) -> None:
    """A 500."""
    await ex.answer(b'{"error": {"message": "boom", "type": "server_error"}}', status=500)


async def no_done(ex: Exchange) -> None:
    """A stream that stops without [DONE]."""
    await ex.events(chunk("The sky"), chunk(" is blue"))


async def endless(ex: Exchange) -> None:
    """A stream that never ends."""
    await ex.head(content_type="text/event-stream")
    await ex.until_gone(lambda: ex.send(chunk(" and on")), 0.05)


class FaultServer:
    """One listening socket whose every request gets one fault; counts requests."""

    def __init__(
        self, fault: Fault, delay_s: float = FAULT_DELAY_S, host: str = "127.0.0.1"
    ) -> None:
        self.fault = fault
        self.host = host
        self.delay_s = delay_s
        self.requests = 0
        self.port = 0
        self.server: asyncio.Server | None = None
        self.connections: set[asyncio.Task[None]] = set()

    async def start(self) -> FaultServer:
        """Listen on a free loopback port."""
        self.server = await asyncio.start_server(self._serve, self.host, 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        ex = Exchange(reader, writer)
        try:
            await ex.read_request()
            self.requests += 1
            await asyncio.sleep(self.delay_s)
            await self.fault(ex)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            if ex.hung_up is not None:
                ex.hung_up.cancel()
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def stop(self) -> None:
        """Stop listening."""
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
