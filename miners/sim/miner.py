"""One simulated miner: its route handlers, answering as its profile says."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from itertools import count
from typing import Any

import orjson
from aiohttp import web

from miners.epistula_verify import Verifier
from miners.guard import Capacity, refuse_unsigned
from miners.sim import faults as sim_faults
from miners.sim import structured
from miners.sim.profiles import FailureMode, MinerProfile
from miners.sim.questions import Answer, answer
from miners.sim.wire import (
    JSON_HEADERS,
    SSE_HEADERS,
    BadRequest,
    ChatEndpoint,
    CompletionEndpoint,
    Endpoint,
    Reply,
    Request,
    StreamPlan,
    count_tokens,
    error_body,
    plan_stream,
)

_CHAT = ChatEndpoint()
_COMPLETION = CompletionEndpoint()


class SimMiner:
    """One simulated miner: its profile, its seeded RNG, and its route handlers."""

    def __init__(self, profile: MinerProfile, rng: random.Random) -> None:
        self.profile = profile
        self.rng = rng
        self.requests = 0
        self.in_flight = 0
        self.cancelled = 0
        self.capacity = Capacity(profile.capacity, profile.retry_after_s)
        self.verifier: Verifier | None = None
        self._ids = count()
        self._tag = f"sim{rng.getrandbits(32):08x}"

    def app(self) -> web.Application:
        """The miner's aiohttp application."""
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_post("/v1/completions", self.completions)
        app.router.add_get("/v1/models", self.models)
        app.router.add_get("/health", self.health)
        app.router.add_get("/availability", self.availability)
        return app

    async def chat(self, request: web.Request) -> web.StreamResponse:
        """`POST /v1/chat/completions`."""
        return await self._complete(request, _CHAT)

    async def completions(self, request: web.Request) -> web.StreamResponse:
        """`POST /v1/completions`."""
        return await self._complete(request, _COMPLETION)

    async def models(self, request: web.Request) -> web.Response:
        """`GET /v1/models`: the one model this miner serves."""
        card = {
            "id": self.profile.model,
            "object": "model",
            "created": 0,
            "owned_by": "bitgate-sim",
        }
        return web.Response(
            body=orjson.dumps({"object": "list", "data": [card]}), headers=JSON_HEADERS
        )

    async def health(self, request: web.Request) -> web.Response:
        """`GET /health`: 200 with an empty body, as vLLM does."""
        return web.Response()

    async def availability(self, request: web.Request) -> web.Response:
        """`GET /availability`: model, capacity and load."""
        document = self.capacity.availability(self.profile.model)
        return web.Response(body=orjson.dumps(document), headers=JSON_HEADERS)

    async def _complete(self, request: web.Request, endpoint: Endpoint) -> web.StreamResponse:
        """Check the signature and capacity, then answer as the profile says."""
        refused = await refuse_unsigned(self.verifier, request)
        if refused is not None:
            return refused
        try:
            parsed = endpoint.parse(await _read_object(request))
        except BadRequest as exc:
            body = error_body(str(exc), "invalid_request_error", exc.param)
            return web.Response(status=400, body=body, headers=JSON_HEADERS)
        if not self.capacity.try_enter():
            return self.capacity.busy()
        self.in_flight += 1
        try:
            return await self._answer(request, endpoint, parsed)
        except asyncio.CancelledError:
            # aiohttp cancels the handler when the caller hangs up: the gateway let go.
            self.cancelled += 1
            raise
        finally:
            self.in_flight -= 1
            self.capacity.leave()

    async def _answer(
        self, request: web.Request, endpoint: Endpoint, parsed: Request
    ) -> web.StreamResponse:
        """Answer an accepted request: latency, quality, failure."""
        self.requests += 1
        failure = self._failure()
        if failure == "hang":
            await sim_faults.hang()
        delay = self.profile.latency.sample_s(self.rng)
        if delay:
            await asyncio.sleep(delay)
        if failure == "error":
            return sim_faults.error_response()
        reply = self._reply(endpoint, parsed)
        if parsed.stream:
            return await self._stream(
                request, plan_stream(endpoint, reply, parsed.include_usage), failure
            )
        return await self._send(request, orjson.dumps(endpoint.body(reply)), failure)

    def _failure(self) -> FailureMode:
        """This request's failure: the profile's mode at its rate, else none."""
        profile = self.profile
        if profile.failure == "none" or (
            profile.failure_rate < 1 and self.rng.random() >= profile.failure_rate
        ):
            return "none"
        return profile.failure

    def _reply(self, endpoint: Endpoint, parsed: Request) -> Reply:
        """The completion this miner gives, cut at `max_tokens`."""
        profile = self.profile
        said = _cut(answer(parsed.prompt, profile.quality), parsed.max_tokens)
        call = None
        if endpoint is _CHAT and profile.quality != "empty":
            call = structured.tool_call(parsed.asked, parsed.prompt, profile.structured)
            shaped = structured.json_reply(parsed.asked, parsed.prompt, profile.structured)
            if call is None and shaped is not None:
                said = Answer(shaped)
        rid = f"{endpoint.id_prefix}{self._tag}{next(self._ids):x}"
        return Reply(
            rid,
            int(time.time()),
            parsed.model or profile.model,
            "" if call else said.text,
            "tool_calls" if call else said.finish_reason,
            parsed.prompt_tokens,
            count_tokens(call[1] if call else said.text),
            tool_call=call,
            reasoning=f"Thinking about: {parsed.prompt[:80]}" if profile.reasoning else None,
            logprobs=parsed.logprobs,
        )

    async def _send(
        self, request: web.Request, document: bytes, failure: FailureMode
    ) -> web.StreamResponse:
        """A non-stream reply, or its failure."""
        if failure == "malformed":
            return sim_faults.malformed_body(document)
        if failure == "empty":
            return sim_faults.empty_body()
        if failure == "drop_stream":
            return await sim_faults.drop_body(request, document)
        if failure == "slow_drip":
            return await sim_faults.drip_body(request, self.profile.drip_interval_s)
        return web.Response(body=document, headers=JSON_HEADERS)

    async def _stream(
        self, request: web.Request, plan: StreamPlan, failure: FailureMode
    ) -> web.StreamResponse:
        """A stream reply, paced at the profile's tokens per second, or its failure."""
        if failure == "empty":
            return sim_faults.empty_stream()
        if failure == "drop_stream":
            return await sim_faults.drop_stream(request, plan)
        if failure == "slow_drip":
            return await sim_faults.drip_stream(request, plan, self.profile.drip_interval_s)
        response = web.StreamResponse(headers=SSE_HEADERS)
        await response.prepare(request)
        with contextlib.suppress(ConnectionError):
            if failure == "malformed":
                await response.write(sim_faults.malformed_frames(plan))
            elif self.profile.latency.tokens_per_s:
                await self._paced(response, plan, self.profile.latency.tokens_per_s)
            else:
                await response.write(plan.whole())
        return response

    @staticmethod
    async def _paced(response: web.StreamResponse, plan: StreamPlan, tokens_per_s: float) -> None:
        """Write a stream piece by piece, each after its words' worth of time."""
        await response.write(b"".join(plan.head))
        for piece, frame in zip(plan.pieces, plan.frames, strict=True):
            await asyncio.sleep(count_tokens(piece) / tokens_per_s)
            await response.write(frame)
        await response.write(b"".join(plan.tail))


async def _read_object(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object, or `BadRequest`."""
    try:
        payload = orjson.loads(await request.read())
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise BadRequest("request body must be a JSON object")
    return payload


def _cut(said: Answer, max_tokens: int | None) -> Answer:
    """The answer cut to `max_tokens` words, finishing for `length` when cut."""
    if max_tokens is None:
        return said
    words = said.text.split()
    if len(words) <= max_tokens:
        return said
    return Answer(" ".join(words[:max_tokens]), "length")
