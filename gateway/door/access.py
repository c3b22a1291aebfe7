"""The door of the API: request id, key, pool access and limits, before any route runs.

An ASGI middleware rather than a dependency, so that a streamed reply holds its key's
request-in-flight slot until its last byte, and every response (refusals included)
carries `x-request-id` and the key's `x-ratelimit-*` headers. It is the outermost: a key
is checked from the headers before gateway.door.inflight takes a slot or reads a byte of the
body (a 401 closes the connection); the key's pools and limits are checked on the body
once admission has read it (`BODY_CHECK`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import orjson
import redis.asyncio as aioredis
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.config import Settings
from gateway.door.auth import AuthFailure, Identity, KeyRing, auth_required
from gateway.door.bounds import prompt_chars
from gateway.door.inflight import BODY_CHECK, COMPLETION_PATHS, KEY_POOLS
from gateway.door.keys import KeyStore
from gateway.door.limits import KeyLease, Limiter
from gateway.door.request_log import CURRENT, RequestRecord, request_id
from gateway.door.usage import CHARS_PER_TOKEN, UsageLedger, key_label
from gateway.errors import ModelNotFound, RateLimited, error_response
from gateway.runtime.metrics import Metrics

logger = logging.getLogger(__name__)

# Probes and scrapes get a request id but no log line: they would drown the requests.
UNLOGGED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
DEFAULT_COMPLETION_TOKENS = 256  # reserved when a request sets no max_tokens
MAX_RESERVED_TOKENS = 1_000_000
# Besides the messages or prompt, what a miner's prompt holds (its tokens are charged).
PROMPT_FIELDS = ("tools", "functions", "response_format", "tool_choice")
FLUSH_S = 0.5
REDIS_TIMEOUT_S = 0.25
LEASE_MARGIN_S = 60.0
LIMIT_NAMES = {
    "requests": "requests per minute",
    "tokens": "tokens per minute",
    "concurrency": "requests in flight",
}


@dataclass(slots=True)
class Access:
    """Keys, limits and usage of one app, opened and closed by its lifespan."""

    settings: Settings
    metrics: Metrics
    keyring: KeyRing
    limiter: Limiter
    ledger: UsageLedger
    redis: aioredis.Redis | None = None
    flusher: asyncio.Task[None] | None = field(default=None)
    held: dict[int, asyncio.TimerHandle] = field(default_factory=dict)
    releases: set[asyncio.Task[None]] = field(default_factory=set)

    def settled(self, record: RequestRecord, adm: KeyLease | None) -> None:
        """A request's fan-out is over: record its usage and charge its real tokens."""
        if adm is not None:
            self.limiter.settle(adm, record.winner_tokens)
            if adm.release_on_settle:
                self._release_soon(adm)
        if record.pool is not None:
            self.ledger.record(
                record.key or "anonymous", record.pool, record.winner_tokens, record.fanout_tokens
            )

    def hold_until_settled(self, adm: KeyLease) -> None:
        """Keep the key's in-flight slot while the request's miner calls still run (a race
        answered early): freed when they settle, at the lease's time to live at the latest."""
        adm.release_on_settle = True
        loop = asyncio.get_running_loop()
        self.held[id(adm)] = loop.call_later(self.limiter.lease_ttl_s, self._release_soon, adm)

    def _release_soon(self, adm: KeyLease) -> None:
        """Free a held slot (once), in a task kept until it is done."""
        timer = self.held.pop(id(adm), None)
        if timer is None:
            return
        timer.cancel()
        task = asyncio.get_running_loop().create_task(self.limiter.release(adm))
        self.releases.add(task)
        task.add_done_callback(self.releases.discard)

    async def flush(self) -> None:
        """Write usage and token corrections to Redis."""
        await self.limiter.flush()
        await self.ledger.flush()


async def open_access(settings: Settings, metrics: Metrics) -> Access:
    """Connect the key store, limiter and usage ledger; start their flush loop."""
    redis = None
    if settings.redis_url:
        redis = aioredis.Redis.from_url(
            settings.redis_url,
            socket_timeout=REDIS_TIMEOUT_S,
            socket_connect_timeout=REDIS_TIMEOUT_S,
        )
    store = KeyStore(redis) if redis is not None else None
    keyring = KeyRing(
        settings.access.api_keys, store, settings.access.key_cache_s, auth_required(settings)
    )
    lease_ttl_s = settings.routing.max_timeout_s + LEASE_MARGIN_S
    access = Access(
        settings=settings,
        metrics=metrics,
        keyring=keyring,
        limiter=Limiter(redis, settings.access.limits_fallback_share, lease_ttl_s),
        ledger=UsageLedger(redis, metrics, settings.access.metrics_key_names),
        redis=redis,
    )
    access.flusher = asyncio.get_running_loop().create_task(_flush_loop(access), name="access")
    return access


async def _flush_loop(access: Access) -> None:
    while True:
        await asyncio.sleep(FLUSH_S)
        try:
            await access.flush()
        except Exception:  # a flush must never end the loop
            logger.exception("usage flush failed")


async def close_access(access: Access) -> None:
    """Stop the flush loop, write what is left, close Redis."""
    if access.flusher is not None:
        access.flusher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await access.flusher
    for timer in access.held.values():
        timer.cancel()
    await asyncio.gather(*access.releases, return_exceptions=True)
    await access.flush()
    if access.redis is not None:
        await access.redis.aclose()


def peek(body: bytes) -> tuple[str | None, int]:
    """The model a body asks for and the tokens to reserve for it (prompt + max output).

    The prompt is what a miner reads (the text, and the tools and formats it is shown), never
    the body's length: fields that are not forwarded must not buy a bigger reservation, and
    so a bigger refund (gateway.door.limits refunds at most what it charged).
    """
    try:
        raw = orjson.loads(body)
    except orjson.JSONDecodeError:
        raw = None
    fields: dict[str, Any] = raw if isinstance(raw, dict) else {}
    model = fields.get("model")
    most = (
        fields.get("max_completion_tokens")
        or fields.get("max_tokens")
        or fields.get("max_output_tokens")
    )
    output = DEFAULT_COMPLETION_TOKENS
    if isinstance(most, int | float) and not isinstance(most, bool) and most >= 1:
        output = int(min(most, MAX_RESERVED_TOKENS))
    shown = sum(len(orjson.dumps(fields[k])) for k in PROMPT_FIELDS if k in fields)
    tokens = math.ceil((prompt_chars(fields) + shown) / CHARS_PER_TOKEN) + output
    return (model if isinstance(model, str) else None), min(tokens, MAX_RESERVED_TOKENS)


class AccessMiddleware:
    """Identify the caller, check its pools and limits, then serve and account."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI call."""
        access: Access | None = None
        if scope["type"] == "http":
            access = getattr(scope["app"].state, "access", None)
        if access is None:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        record = RequestRecord(
            request_id(headers.get("x-request-id")),
            scope["method"],
            scope["path"],
            log_prompt=access.settings.access.log_prompts,
        )
        token = CURRENT.set(record)
        extra: list[tuple[bytes, bytes]] = [(b"x-request-id", record.id.encode())]
        status = 500

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", ()), *extra]}
            await send(message)

        held: list[KeyLease] = []  # the key's admission, once its body has been read

        async def check_body(identity: Identity, body: bytes) -> None:
            adm = await self._admit(access, identity, body)
            if adm is not None:
                held.append(adm)
                extra.extend((k.encode(), v.encode()) for k, v in adm.headers().items())

        try:
            try:
                identity = await self._identify(access, scope, headers, record)
            except AuthFailure as exc:
                access.metrics.auth_failures.labels(exc.reason).inc()
                access.metrics.requests.labels("unknown", "none", str(exc.status)).inc()
                extra.append((b"connection", b"close"))  # its body is never read
                await error_response(exc)(scope, receive, send_with_headers)
                return
            if (
                identity is not None
                and scope["method"] == "POST"
                and record.path in COMPLETION_PATHS
            ):
                record.on_settle = lambda done: access.settled(done, held[0] if held else None)
                if identity.pools is not None or identity.limited:
                    # Run by gateway.door.inflight once the body is in, inside an in-flight slot.
                    scope[BODY_CHECK] = partial(check_body, identity)
            await self.app(scope, receive, send_with_headers)
        finally:
            CURRENT.reset(token)
            await self._finish(access, record, held[0] if held else None, status)

    async def _identify(
        self, access: Access, scope: Scope, headers: Headers, record: RequestRecord
    ) -> Identity | None:
        """Who calls, from the headers alone (API routes only): before any in-flight slot is
        taken or any body byte read, so a caller with no valid key costs neither."""
        if not scope["path"].startswith("/v1/"):
            return None
        identity = await access.keyring.identify(headers.get("authorization"))
        record.key = identity.name
        scope[KEY_POOLS] = identity.pools  # the routes list and show only these
        return identity

    async def _admit(self, access: Access, identity: Identity, body: bytes) -> KeyLease | None:
        """Check the key's pools and limits against the body (read once, by admission)."""
        model, tokens = peek(body)
        if identity.pools is not None and model is not None and model not in identity.pools:
            raise ModelNotFound(
                f"The model '{model}' does not exist or you do not have access to it.",
                param="model",
            )
        if not identity.limited:
            return None
        adm = await access.limiter.admit(identity, tokens)
        if adm.refused is not None:
            label = key_label(identity.name, access.settings.access.metrics_key_names)
            access.metrics.ratelimit_rejections.labels(label, adm.refused).inc()
            raise RateLimited(
                f"Rate limit reached for key '{identity.name}': {LIMIT_NAMES[adm.refused]}. "
                f"Retry after {adm.headers()['retry-after']}s.",
                headers=adm.headers(),
            )
        return adm

    async def _finish(
        self, access: Access, record: RequestRecord, adm: KeyLease | None, status: int
    ) -> None:
        """Free the key's slot, refund an unused reservation, log the request."""
        settle_follows = status == 200 and record.path in COMPLETION_PATHS
        if adm is not None and adm.refused is None:
            if settle_follows and not record.settled:
                access.hold_until_settled(adm)
            else:
                await access.limiter.release(adm)
            if not record.settled and status != 200:
                access.limiter.settle(adm, 0)
        if record.path not in UNLOGGED_PATHS:
            record.responded(status, settle_follows)
