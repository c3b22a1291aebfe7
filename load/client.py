"""One request to an OpenAI endpoint, streamed or not: timings, status, error kind, tokens."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}
OVERHEAD_HEADER = "x-bitgate-overhead-ms"
DATA = b"data:"
DONE = b"[DONE]"


@dataclass(slots=True)
class Reply:
    """What came back for one request; times are perf-counter seconds."""

    status: int = 0
    error: str | None = None
    first_token_at: float | None = None
    ended_at: float = 0.0
    tokens: int = 0
    overhead_ms: float | None = None
    block: dict[str, Any] | None = None


def error_kind(exc: BaseException) -> str:
    """A short name for a failed request's exception."""
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return "timeout"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return "connect"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "disconnected"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "broken_body"
    return type(exc).__name__


def _bitgate(document: Any) -> dict[str, Any] | None:
    block = document.get("bitgate") if isinstance(document, dict) else None
    return block if isinstance(block, dict) else None


def _words(text: Any) -> int:
    return len(text.split()) if isinstance(text, str) else 0


def read_body(reply: Reply, payload: bytes) -> None:
    """Check a non-stream reply's JSON and take its tokens and `bitgate` block."""
    try:
        document = orjson.loads(payload)
    except orjson.JSONDecodeError:
        reply.error = "invalid_json"
        return
    reply.block = _bitgate(document)
    choices = document.get("choices") if isinstance(document, dict) else None
    if not choices or not isinstance(choices, list) or not isinstance(choices[0], dict):
        reply.error = "no_choices"
        return
    usage = document.get("usage")
    if isinstance(usage, dict) and isinstance(usage.get("completion_tokens"), int):
        reply.tokens = usage["completion_tokens"]
    else:
        choice = choices[0]
        message = choice.get("message")
        reply.tokens = _words(message.get("content") if isinstance(message, dict) else None)
        reply.tokens = reply.tokens or _words(choice.get("text"))
    reply.first_token_at = reply.ended_at


def _delta_text(chunk: dict[str, Any]) -> Any:
    choices = chunk.get("choices")
    if not choices or not isinstance(choices, list) or not isinstance(choices[0], dict):
        return None
    choice = choices[0]
    delta = choice.get("delta")
    return delta.get("content") if isinstance(delta, dict) else choice.get("text")


async def read_stream(reply: Reply, resp: aiohttp.ClientResponse) -> None:
    """Read SSE events to `[DONE]`: first-token time, tokens, errors, the `bitgate` block."""
    words = 0
    usage_tokens: int | None = None
    async for line in resp.content:
        if not line.startswith(DATA):
            continue
        data = line[len(DATA) :].strip()
        if data == DONE:
            reply.ended_at = time.perf_counter()
            reply.tokens = usage_tokens if usage_tokens is not None else words
            return
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            reply.error = "invalid_chunk"
            continue
        if not isinstance(chunk, dict):
            continue
        if "error" in chunk:
            reply.error = "stream_error"
        reply.block = _bitgate(chunk) or reply.block
        text = _delta_text(chunk)
        if text:
            if reply.first_token_at is None:
                reply.first_token_at = time.perf_counter()
            words += _words(text)
        usage = chunk.get("usage")
        if isinstance(usage, dict) and isinstance(usage.get("completion_tokens"), int):
            usage_tokens = usage["completion_tokens"]
    reply.ended_at = time.perf_counter()
    reply.error = reply.error or "stream_incomplete"


async def send(session: aiohttp.ClientSession, url: str, body: bytes, stream: bool) -> Reply:
    """POST one request and read the whole reply; never raises for network trouble."""
    reply = Reply()
    try:
        async with session.post(url, data=body, headers=JSON_HEADERS) as resp:
            reply.status = resp.status
            header = resp.headers.get(OVERHEAD_HEADER)
            if resp.status != 200:
                await resp.read()
                reply.ended_at = time.perf_counter()
                reply.error = f"http_{resp.status}"
                return reply
            if stream:
                await read_stream(reply, resp)
            else:
                payload = await resp.read()
                reply.ended_at = time.perf_counter()
                read_body(reply, payload)
            reply.overhead_ms = _float(header)
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        reply.ended_at = time.perf_counter()
        reply.error = reply.error or error_kind(exc)
    return reply


def _float(text: str | None) -> float | None:
    try:
        return None if text is None else float(text)
    except ValueError:
        return None
