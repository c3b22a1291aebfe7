"""The miner server: verifies Epistula, limits load, forwards OpenAI requests to vLLM."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from miners.body_gate import DEFAULT_DEADLINE_S, DEFAULT_GRACE_S, UnverifiedBodies
from miners.epistula_verify import Verifier
from miners.fit import DEFAULT_MAX_TOKENS, Context, DoesNotFit, fit
from miners.guard import Capacity, refuse_unsigned
from miners.sim.wire import JSON_HEADERS, error_body
from miners.upstream import Upstream, open_upstream_session
from miners.validators import answer_availability, read_availability_ask

CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"
DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024
DEFAULT_MAX_UNVERIFIED = 64
SHUTDOWN_TIMEOUT_S = 5.0
PROBE_CONNECTIONS = 2
PROBE_TIMEOUT_S = 5.0
CONTEXT_RETRY_S = 30.0

BackgroundJob = Callable[[], Coroutine[Any, Any, None]]


@dataclass(frozen=True, slots=True)
class MinerConfig:
    """What the miner server needs to know, whatever starts it."""

    upstream: str
    model: str | None = None
    max_in_flight: int = 32
    retry_after_s: float = 1.0
    timeout_s: float = 60.0
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    upstream_api_key: str | None = None
    # Requests whose body is being read before its signature is checked, at most.
    max_unverified: int = DEFAULT_MAX_UNVERIFIED
    # How long an unverified body may take to arrive, and how long its slot is safe.
    body_timeout_s: float = DEFAULT_DEADLINE_S
    unverified_grace_s: float = DEFAULT_GRACE_S
    # vLLM's --max-model-len (None: read from its /v1/models), and max_tokens when none is asked.
    max_model_len: int | None = None
    default_max_tokens: int = DEFAULT_MAX_TOKENS

    def __repr__(self) -> str:
        return f"MinerConfig(upstream={self.upstream!r}, model={self.model!r})"


def bad_request(message: str, param: str | None = None, status: int = 400) -> web.Response:
    """An OpenAI `invalid_request_error`."""
    body = error_body(message, "invalid_request_error", param)
    return web.Response(status=status, body=body, headers=JSON_HEADERS)


class MinerServer:
    """Routes of one miner: completions forwarded upstream, availability, health, models."""

    def __init__(
        self,
        config: MinerConfig,
        verifier: Verifier | None,
        background: tuple[BackgroundJob, ...] = (),
    ) -> None:
        self.config = config
        self.verifier = verifier
        self.capacity = Capacity(config.max_in_flight, config.retry_after_s)
        self.unverified = UnverifiedBodies(
            config.max_unverified,
            config.body_timeout_s,
            config.unverified_grace_s,
            config.retry_after_s,
        )
        self.background = background
        self.upstream: Upstream | None = None
        self.probes: Upstream | None = None
        self.context = Context(config.max_model_len, config.default_max_tokens)
        self._ask_at = 0.0  # when the upstream's context may next be asked for

    def app(self) -> web.Application:
        """The miner's aiohttp application; its upstream session lives as long as the app."""
        app = web.Application(client_max_size=self.config.max_body_bytes)
        app.cleanup_ctx.append(self._lifespan)
        app.router.add_post(CHAT, self.chat)
        app.router.add_post(COMPLETIONS, self.completions)
        app.router.add_get("/v1/models", self.models)
        app.router.add_get("/availability", self.availability)
        app.router.add_post("/availability", self.availability_polled)
        app.router.add_get("/health", self.health)
        app.router.add_get("/livez", self.live)
        return app

    async def _lifespan(self, app: web.Application) -> AsyncIterator[None]:
        """Open the upstream session and start background jobs; undo both on shutdown."""
        session = open_upstream_session(self.config.max_in_flight + 4)
        # Unsigned /v1/models and /health calls get their own two connections and a short
        # deadline, so they can never take the connections signed requests need.
        probe_session = open_upstream_session(PROBE_CONNECTIONS)
        config = self.config
        self.upstream = Upstream(
            session, config.upstream, config.timeout_s, config.upstream_api_key
        )
        self.probes = Upstream(
            probe_session,
            config.upstream,
            min(config.timeout_s, PROBE_TIMEOUT_S),
            config.upstream_api_key,
        )
        loop = asyncio.get_running_loop()
        tasks = [loop.create_task(job()) for job in self.background]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await session.close()
            await probe_session.close()

    def _probes(self) -> Upstream:
        if self.probes is None:
            raise RuntimeError("the miner app is not started")
        return self.probes

    def _upstream(self) -> Upstream:
        if self.upstream is None:
            raise RuntimeError("the miner app is not started")
        return self.upstream

    async def chat(self, request: web.Request) -> web.StreamResponse:
        """`POST /v1/chat/completions`, forwarded."""
        return await self._forward(request, CHAT)

    async def completions(self, request: web.Request) -> web.StreamResponse:
        """`POST /v1/completions`, forwarded."""
        return await self._forward(request, COMPLETIONS)

    async def models(self, request: web.Request) -> web.Response:
        """`GET /v1/models`, from the upstream."""
        return await self._probes().get("/v1/models")

    async def availability(self, request: web.Request) -> web.Response:
        """`GET /availability`: model, capacity and load."""
        document = self.capacity.availability(self.config.model or "")
        return web.Response(body=orjson.dumps(document), headers=JSON_HEADERS)

    async def availability_polled(self, request: web.Request) -> web.Response:
        """`POST /availability` as subnet-1 validators send it: our document, and their asks
        (`task_availabilities`, `llm_model_availabilities`) answered."""
        asked = await read_availability_ask(request)
        document = self.capacity.availability(self.config.model or "")
        return web.Response(
            body=orjson.dumps({**document, **answer_availability(asked, document)}),
            headers=JSON_HEADERS,
        )

    async def live(self, request: web.Request) -> web.Response:
        """`GET /livez`: 200 while this process serves, whatever vLLM is doing (liveness)."""
        return web.Response(status=200, text="ok")

    async def health(self, request: web.Request) -> web.Response:
        """`GET /health`: 200 while the upstream is healthy, else 503."""
        return web.Response(status=200 if await self._probes().healthy() else 503)

    async def _forward(self, request: web.Request, path: str) -> web.StreamResponse:
        """Check the signature (headers first), the body and capacity; then forward."""
        try:
            refused = await refuse_unsigned(self.verifier, request, self.unverified)
            if refused is not None:
                return refused
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return bad_request("request body is too large", status=413)
        try:
            payload = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return bad_request("request body is not valid JSON")
        if not isinstance(payload, dict):
            return bad_request("request body must be a JSON object")
        try:
            body = await self._for_upstream(payload, raw)
        except DoesNotFit as exc:
            return bad_request(str(exc), exc.param)
        if not self.capacity.try_enter():
            return self.capacity.busy()
        try:
            if payload.get("stream") is True:
                return await self._upstream().stream(request, path, body)
            return await self._upstream().complete(path, body)
        finally:
            self.capacity.leave()

    async def _for_upstream(self, payload: dict[str, Any], raw: bytes) -> bytes:
        """The body to send upstream: `model` set to the served model when the miner has one,
        and fitted to vLLM (`DoesNotFit` if it cannot be)."""
        changed = fit(payload, await self._context())
        model = self.config.model
        if model is not None and payload.get("model") != model:
            payload["model"] = model
            changed = True
        return orjson.dumps(payload) if changed else raw

    async def _context(self) -> Context:
        """The model's context: configured, or read once from the upstream's `/v1/models`."""
        now = asyncio.get_running_loop().time()
        if self.context.max_model_len is None and self.probes is not None and now >= self._ask_at:
            self._ask_at = now + CONTEXT_RETRY_S
            learned = await self.probes.max_model_len(self.config.model)
            if learned is not None:
                self.context = Context(learned, self.context.default_max_tokens)
        return self.context


async def start_miner(server: MinerServer, host: str, port: int) -> web.AppRunner:
    """Start serving the miner on host:port; `cleanup()` the runner to stop."""
    runner = web.AppRunner(
        server.app(),
        access_log=None,
        handler_cancellation=True,
        shutdown_timeout=SHUTDOWN_TIMEOUT_S,
    )
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port, backlog=1024).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner
