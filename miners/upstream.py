"""Forwarding one OpenAI request to the upstream server (vLLM), stream or not, by a deadline."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Mapping
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from miners.sim.wire import JSON_HEADERS, SSE_HEADERS, error_body

logger = logging.getLogger(__name__)

PASSED_STATUSES = range(200, 500)
ERROR_TAIL_BYTES = 300
MAX_MODELS_BYTES = 256 * 1024
# vLLM closes idle connections after VLLM_HTTP_TIMEOUT_KEEP_ALIVE (5 s): the miner lets its
# own go a second sooner, so that no request is sent on a socket vLLM is closing.
VLLM_KEEP_ALIVE_ENV = "VLLM_HTTP_TIMEOUT_KEEP_ALIVE"
VLLM_DEFAULT_KEEP_ALIVE_S = 5.0


def upstream_keepalive_s(environ: Mapping[str, str] = os.environ) -> float:
    """How long the miner keeps an idle upstream connection: under vLLM's keep-alive."""
    try:
        server = float(environ.get(VLLM_KEEP_ALIVE_ENV, VLLM_DEFAULT_KEEP_ALIVE_S))
    except ValueError:
        server = VLLM_DEFAULT_KEEP_ALIVE_S
    return max(0.5, min(server - 1.0, server * 0.8))


def open_upstream_session(max_connections: int) -> aiohttp.ClientSession:
    """The miner's one client session to its upstream, sized for its capacity."""
    connector = aiohttp.TCPConnector(
        limit=max_connections, keepalive_timeout=upstream_keepalive_s()
    )
    # Bodies are passed through as they come, so ask for them uncompressed.
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=None),
        auto_decompress=False,
        headers={"Accept-Encoding": "identity"},
    )


def failure(status: int, message: str, code: str) -> web.Response:
    """An OpenAI error reply for an upstream that failed (502) or ran out of time (504)."""
    body = error_body(message, "server_error" if status != 504 else "timeout", None, code)
    return web.Response(status=status, body=body, headers=JSON_HEADERS)


def stream_error_event(message: str, code: str) -> bytes:
    """The SSE event that ends a stream the upstream broke off; no [DONE] follows it."""
    return b"data: " + error_body(message, "server_error", None, code) + b"\n\n"


class Upstream:
    """An OpenAI-compatible server (vLLM) this miner forwards to, over one shared session."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        timeout_s: float,
        api_key: str | None = None,
    ) -> None:
        self.session = session
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self._auth = {"Authorization": f"Bearer {api_key}"} if api_key else {}

    def __repr__(self) -> str:
        return f"Upstream({self.base_url!r})"

    def _headers(self, accept: str) -> Mapping[str, str]:
        return {"Content-Type": "application/json", "Accept": accept, **self._auth}

    async def healthy(self, timeout_s: float = 2.0) -> bool:
        """Whether the upstream's `/health` answers 200 within `timeout_s`."""
        try:
            async with (
                asyncio.timeout(timeout_s),
                self.session.get(self.base_url + "/health", headers=self._auth) as resp,
            ):
                return resp.status == 200
        except (TimeoutError, aiohttp.ClientError, OSError):
            return False

    async def max_model_len(self, model: str | None, timeout_s: float = 2.0) -> int | None:
        """The context length `/v1/models` gives for `model` (or its only model), if any."""
        try:
            async with (
                asyncio.timeout(timeout_s),
                self.session.get(self.base_url + "/v1/models", headers=self._auth) as resp,
            ):
                raw = await resp.content.read(MAX_MODELS_BYTES)
                listing: Any = orjson.loads(raw) if resp.status == 200 else None
        except (TimeoutError, aiohttp.ClientError, OSError, orjson.JSONDecodeError):
            return None
        cards = listing.get("data") if isinstance(listing, dict) else None
        if not isinstance(cards, list):
            return None
        cards = [c for c in cards if isinstance(c, dict)]
        chosen = [c for c in cards if c.get("id") == model] or (cards if len(cards) == 1 else [])
        length = chosen[0].get("max_model_len") if chosen else None
        return length if isinstance(length, int) and not isinstance(length, bool) else None

    async def get(self, path: str) -> web.Response:
        """A GET passed through (e.g. `/v1/models`), or 502/504."""
        try:
            async with asyncio.timeout(self.timeout_s):
                async with self.session.get(self.base_url + path, headers=self._auth) as resp:
                    return await self._passed(resp)
        except TimeoutError:
            return self._timed_out()
        except (aiohttp.ClientError, OSError) as exc:
            return self._unreachable(exc)

    async def complete(self, path: str, body: bytes) -> web.Response:
        """A non-stream request: the upstream's reply as it is, or 502/504."""
        try:
            async with asyncio.timeout(self.timeout_s):
                async with self.session.post(
                    self.base_url + path, data=body, headers=self._headers("application/json")
                ) as resp:
                    return await self._passed(resp)
        except TimeoutError:
            return self._timed_out()
        except (aiohttp.ClientError, OSError) as exc:
            return self._unreachable(exc)

    async def stream(self, request: web.Request, path: str, body: bytes) -> web.StreamResponse:
        """A stream request, piped chunk by chunk; a stream cut short ends with an error event."""
        response: web.StreamResponse | None = None
        try:
            async with asyncio.timeout(self.timeout_s):
                async with self.session.post(
                    self.base_url + path, data=body, headers=self._headers("text/event-stream")
                ) as resp:
                    if resp.status != 200:
                        return await self._passed(resp)
                    response = web.StreamResponse(headers=SSE_HEADERS)
                    await response.prepare(request)
                    async for chunk in resp.content.iter_any():
                        await response.write(chunk)
                    return response
        except TimeoutError:
            if response is None:
                return self._timed_out()
            await _end_broken(response, "upstream stream passed the deadline", "upstream_timeout")
            return response
        except (aiohttp.ClientError, OSError) as exc:
            if response is None:
                return self._unreachable(exc)
            await _end_broken(response, "upstream stream broke off", "upstream_error")
            return response

    async def _passed(self, resp: aiohttp.ClientResponse) -> web.Response:
        """The upstream's reply passed through; a 5xx becomes a 502 naming it."""
        raw = await resp.read()
        if resp.status not in PASSED_STATUSES:
            logger.warning("upstream answered %d", resp.status)
            tail = raw[:ERROR_TAIL_BYTES].decode("utf-8", "replace")
            return failure(502, f"upstream answered {resp.status}: {tail}", "upstream_error")
        content_type = resp.headers.get("Content-Type", "application/json")
        return web.Response(status=resp.status, body=raw, headers={"Content-Type": content_type})

    def _timed_out(self) -> web.Response:
        logger.warning("upstream passed the %g s deadline", self.timeout_s)
        return failure(
            504, f"upstream did not answer within {self.timeout_s:g} s", "upstream_timeout"
        )

    def _unreachable(self, exc: BaseException) -> web.Response:
        logger.warning("upstream unreachable: %s", type(exc).__name__)
        return failure(502, f"upstream unreachable ({type(exc).__name__})", "upstream_unreachable")


async def _end_broken(response: web.StreamResponse, message: str, code: str) -> None:
    """Write the error event and finish a stream the upstream broke off."""
    logger.warning("%s", message)
    with contextlib.suppress(ConnectionError, RuntimeError):
        await response.write(stream_error_event(message, code))
        await response.write_eof()
