"""Concurrent miner calls over one shared aiohttp session, with deadlines and body caps."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp
import orjson

from router.axon_policy import AxonPolicy, AxonRefused
from router.backpressure import Backpressure, retry_after_s
from router.chunk_log import ChunkLog
from router.concurrency import ConcurrencyLimits
from router.metagraph import Neuron
from router.reply_shape import STREAM_MULTIPLE, ReplyShape
from router.sse import StreamTooLarge, sse_lines
from router.stats import Status
from router.wire import Answer, InvalidReply, Kind, StreamAnswer, answer_of

__all__ = ["InvalidReply", "Kind", "MinerCalls", "MinerClient", "Reply"]

PATHS: dict[Kind, str] = {"chat": "/v1/chat/completions", "completion": "/v1/completions"}
# What the gateway sends a miner (request headers; gateway.serving.responses has the client's side).
JSON_REQUEST_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}
STREAM_REQUEST_HEADERS = {"Content-Type": "application/json", "Accept": "text/event-stream"}
READ_CHUNK = 65536
# Connecting is retried once: nothing was sent, so a second try cannot double a request.
CONNECT_RETRY_DELAY_S = 0.05
# A miner's 429 (or 503 with Retry-After) is back-pressure, not a failure.
BUSY_STATUSES = frozenset({429, 503})

# Each chunk's JSON bytes, once they parsed into a chunk, with the miner's uid.
ChunkSink = Callable[[int, bytes], None]
Headers = Mapping[str, str]
AddressHook = Callable[[str, str | None], None]
# Extra headers for one miner request, from the shared body and the miner's hotkey (signing).
RequestSigner = Callable[[bytes, str], Headers]


class MinerHTTPError(Exception):
    """A miner answered with a status other than 200."""

    def __init__(self, status: int, retry_after: str | None = None) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.retry_after = retry_after

    @property
    def busy(self) -> bool:
        """Whether the miner asked to be left alone for a while (back-pressure)."""
        return self.status == 429 or (self.status in BUSY_STATUSES and bool(self.retry_after))


@dataclass(slots=True)
class Reply:
    """One miner's answer to one request, or why there is none.

    A reply keeps the bytes it came in and its `answer`, not the objects it parsed into:
    those can cost ~16x the bytes (`router.reply_shape`), and a request holds every reply
    until it is ranked. `document()` parses a whole reply again, for the one returned."""

    neuron: Neuron
    status: Status
    latency_ms: float
    answer: Answer = field(default_factory=Answer)
    raw: bytes | bytearray = b""
    error: str | None = None
    chunks: ChunkLog = field(default_factory=ChunkLog)

    def document(self) -> dict[str, Any] | None:
        """The whole reply as its miner sent it, parsed anew; None for a stream or a failure."""
        if not self.raw:
            return None
        parsed = orjson.loads(self.raw)
        return parsed if isinstance(parsed, dict) else None

    @property
    def ok(self) -> bool:
        """Whether the reply can be ranked and returned."""
        return self.status == "ok"

    @property
    def text(self) -> str:
        """What the reply says: its content and its calls (`Answer.said`)."""
        return self.answer.said

    @property
    def finish_reason(self) -> str | None:
        """How its first choice ended, as the miner said."""
        return self.answer.finish_reason


class MinerCalls(Protocol):
    """What the strategies need of a miner client; `MinerClient` and the tests' fakes have it."""

    async def complete(
        self, neuron: Neuron, kind: Kind, body: bytes, deadline: float, headers: Headers = ...
    ) -> Reply:
        """One non-streaming call, cut at `deadline` (event-loop time); never raises."""
        ...

    async def stream(
        self,
        neuron: Neuron,
        kind: Kind,
        body: bytes,
        deadline: float,
        sink: ChunkSink | None = None,
        headers: Headers = ...,
    ) -> Reply:
        """One streaming call; each chunk's bytes go to `sink` as it arrives; never raises."""
        ...


def open_session(
    max_connections: int, policy: AxonPolicy | None = None, record: AddressHook | None = None
) -> aiohttp.ClientSession:
    """The process's one client session for miner calls, sized for the fan-out.

    With a `policy`, every address the session would dial is checked first (after DNS);
    `record` (tests) hears each one.
    """
    factory = policy.socket_factory(record) if policy is not None else None
    connector = aiohttp.TCPConnector(
        limit=max_connections,
        limit_per_host=0,
        ttl_dns_cache=300,
        keepalive_timeout=30,
        socket_factory=factory,
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=None),
        auto_decompress=True,
        raise_for_status=False,
    )


class MinerClient:
    """Calls miners; every call ends by its deadline with a `Reply`, never an exception."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        max_reply_bytes: int,
        signer: RequestSigner | None = None,
        backpressure: Backpressure | None = None,
        policy: AxonPolicy | None = None,
        limits: ConcurrencyLimits | None = None,
    ) -> None:
        self.session = session
        self.limits = limits
        self.max_reply_bytes = max_reply_bytes
        self.signer = signer
        self.backpressure = backpressure if backpressure is not None else Backpressure()
        self.policy = policy

    def _headers(self, base: Headers, body: bytes, neuron: Neuron) -> Headers:
        """The request's headers, signed for this miner when there is a signer."""
        if self.signer is None:
            return base
        return {**base, **self.signer(body, neuron.hotkey)}

    async def _read_capped(self, resp: aiohttp.ClientResponse) -> bytearray:
        length = resp.content_length
        if length is not None and length > self.max_reply_bytes:
            raise InvalidReply(f"reply of {length} bytes is over the cap")
        # One buffer grown in place: pieces joined at the end would hold every reply twice
        # while a fan-out's replies arrive together (and freed pieces stay in the heap).
        raw = bytearray()
        shape = ReplyShape()  # refused before it is parsed when it would parse too large
        while chunk := await resp.content.read(READ_CHUNK):
            if len(raw) + len(chunk) > self.max_reply_bytes:
                raise InvalidReply("reply is over the size cap")
            shape.feed(chunk)
            raw += chunk
        return raw

    async def _post(self, url: str, body: bytes, headers: Headers) -> tuple[int, bytearray]:
        # A plain retry, not tenacity's: its per-call set-up cost 0.24 ms of CPU per
        # ten-miner request, a tenth of the gateway's whole budget (py-spy, make bench).
        try:
            return await self._post_once(url, body, headers)
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, AxonRefused):
                raise
            await asyncio.sleep(CONNECT_RETRY_DELAY_S)
            return await self._post_once(url, body, headers)

    async def _post_once(self, url: str, body: bytes, headers: Headers) -> tuple[int, bytearray]:
        async with self.session.post(
            url, data=body, headers=headers, allow_redirects=False
        ) as resp:
            if resp.status != 200:
                raise MinerHTTPError(resp.status, resp.headers.get("Retry-After"))
            return resp.status, await self._read_capped(resp)

    async def complete(
        self,
        neuron: Neuron,
        kind: Kind,
        body: bytes,
        deadline: float,
        headers: Headers = JSON_REQUEST_HEADERS,
    ) -> Reply:
        """One non-streaming call, cut at `deadline` (event-loop time)."""

        async def call(reply: Reply) -> None:
            signed = self._headers(headers, body, neuron)
            _, raw = await self._post(neuron.base_url + PATHS[kind], body, signed)
            try:
                document = orjson.loads(raw)
            except orjson.JSONDecodeError:
                raise InvalidReply("reply is not JSON") from None
            reply.answer = answer_of(document, kind)
            reply.raw = raw

        return await self._guarded(neuron, deadline, call)

    async def stream(
        self,
        neuron: Neuron,
        kind: Kind,
        body: bytes,
        deadline: float,
        sink: ChunkSink | None = None,
        headers: Headers = STREAM_REQUEST_HEADERS,
    ) -> Reply:
        """One streaming call; each chunk's bytes go to `sink` as it arrives."""
        url = neuron.base_url + PATHS[kind]

        async def call(reply: Reply) -> None:
            signed = self._headers(headers, body, neuron)
            await self._read_stream(url, body, signed, kind, reply, sink)

        return await self._guarded(neuron, deadline, call)

    async def _guarded(
        self, neuron: Neuron, deadline: float, call: Callable[[Reply], Awaitable[None]]
    ) -> Reply:
        """Run `call` to fill a reply by `deadline`; any way it fails becomes the reply's status."""
        start = time.perf_counter()
        reply = Reply(neuron, "ok", 0.0)
        refusal = self.policy.refusal(neuron.axon.ip) if self.policy is not None else None
        if refusal is not None:
            return self._failed(neuron, start, "error", "address refused by the axon policy")
        if self.limits is None:
            return await self._timed(neuron, start, reply, deadline, call)
        before = self.limits.start(neuron)
        status: Status | None = None
        try:
            reply = await self._timed(neuron, start, reply, deadline, call)
            status = reply.status
            return reply
        finally:
            self.limits.end(neuron, status, before)

    async def _timed(
        self,
        neuron: Neuron,
        start: float,
        reply: Reply,
        deadline: float,
        call: Callable[[Reply], Awaitable[None]],
    ) -> Reply:
        try:
            async with asyncio.timeout_at(deadline):
                await call(reply)
        except TimeoutError:
            return self._failed(neuron, start, "timeout", "deadline passed")
        except InvalidReply as exc:
            return self._failed(neuron, start, "invalid", str(exc))
        except StreamTooLarge as exc:
            return self._failed(neuron, start, "invalid", str(exc))
        except MinerHTTPError as exc:
            return self._http_failed(neuron, start, exc)
        except Exception as exc:  # the client never raises: any failure is the reply's error
            return self._failed(neuron, start, "error", describe_failure(exc))
        reply.latency_ms = _ms_since(start)
        return reply

    def _http_failed(self, neuron: Neuron, start: float, exc: MinerHTTPError) -> Reply:
        if exc.busy:
            wait_s = retry_after_s(exc.retry_after)
            self.backpressure.hold(neuron, wait_s)
            return self._failed(
                neuron, start, "busy", f"HTTP {exc.status}, retry after {wait_s:g} s"
            )
        if 300 <= exc.status < 400:
            return self._failed(
                neuron, start, "error", f"HTTP {exc.status} (redirects are not followed)"
            )
        return self._failed(neuron, start, "error", f"HTTP {exc.status}")

    async def _read_stream(
        self,
        url: str,
        body: bytes,
        headers: Headers,
        kind: Kind,
        reply: Reply,
        sink: ChunkSink | None,
    ) -> None:
        async with self.session.post(
            url, data=body, headers=headers, allow_redirects=False
        ) as resp:
            if resp.status != 200:
                raise MinerHTTPError(resp.status, resp.headers.get("Retry-After"))
            assembly = StreamAnswer(kind)
            shape = ReplyShape(STREAM_MULTIPLE)
            # The line reader caps the whole stream, so no single line can outgrow it either.
            async for line in sse_lines(resp.content, self.max_reply_bytes):
                if not line.startswith(b"data:"):
                    continue
                data = line[5:].strip()
                if data == b"[DONE]":
                    reply.answer = assembly.answer
                    return
                shape.feed(data)
                try:
                    chunk = orjson.loads(data)
                except orjson.JSONDecodeError:
                    raise InvalidReply("stream chunk is not JSON") from None
                assembly.add(chunk)
                reply.chunks.append(data)
                if sink is not None:
                    sink(reply.neuron.uid, data)
        raise InvalidReply("stream ended without [DONE]")

    @staticmethod
    def _failed(neuron: Neuron, start: float, status: Status, error: str) -> Reply:
        return Reply(neuron, status, _ms_since(start), error=error)


def describe_failure(exc: BaseException) -> str:
    """A failure in a few fixed words: never the exception's text, which can name internals."""
    if isinstance(exc, AxonRefused) or isinstance(exc.__cause__, AxonRefused):
        return "address refused by the axon policy"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return "cannot connect"
    if isinstance(exc, aiohttp.ServerDisconnectedError | ConnectionResetError):
        return "connection closed early"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "reply body broken off"
    if isinstance(exc, aiohttp.ClientResponseError):
        return "malformed HTTP reply"
    if isinstance(exc, aiohttp.ClientError | OSError):
        return "connection failed"
    return "unexpected failure"


def _ms_since(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0
