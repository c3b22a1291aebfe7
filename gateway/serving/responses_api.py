"""Serving `POST /v1/responses`: translate to chat, plan and serve it, answer as Responses."""

from __future__ import annotations

from collections.abc import AsyncGenerator

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from gateway.door.bounds import check_request
from gateway.door.ingress import read_request, until_disconnect
from gateway.errors import BadRequest, GatewayError, bad_request_from
from gateway.protocol import ChatCompletionRequest
from gateway.serving.replay import replay
from gateway.serving.responses import SSE_HEADERS, JSONBytes
from gateway.serving.responses_reply import (
    ResponseWriter,
    response_document,
    response_events,
    response_shell,
)
from gateway.serving.responses_request import ResponsesRequest, chat_request, responses_param
from gateway.serving.strategies.registry import LiveStream, Served, Strategies
from gateway.state import GatewayState


def _renamed(exc: GatewayError) -> GatewayError:
    """A chat-side 400 with its `param` as the Responses request spells it."""
    if isinstance(exc, BadRequest):
        exc.param = responses_param(exc.param)
        for chat, ours in (("response_format", "text.format"), ("max_tokens", "max_output_tokens")):
            exc.message = exc.message.replace(chat, ours)
    return exc


async def serve_responses(request: Request, state: GatewayState) -> Response:
    """A Responses request served by the same strategies and rankers as chat."""
    with state.observe() as seen:
        limits = state.settings.limits
        raw, parsed = read_request(request, ResponsesRequest, limits.input)
        try:
            chat = chat_request(parsed, raw)
            check_request(chat, limits.input)
            try:
                typed = ChatCompletionRequest.model_validate(chat)
            except ValidationError as exc:
                raise bad_request_from(exc) from None
            if parsed.model in state.pools:
                seen.pool = parsed.model
            plan = state.planner.plan("chat", chat, typed)
        except GatewayError as exc:
            raise _renamed(exc) from None
        seen.strategy = plan.strategy
        strategies: Strategies = state.strategies
        served = await until_disconnect(request, strategies.serve(plan))
        shell = response_shell(parsed, plan.pool.name)
        return _respond(served, shell)


def _respond(served: Served, shell: dict[str, object]) -> Response:
    if isinstance(served, LiveStream):
        chat: AsyncGenerator[bytes, None] = served.events
        headers = {**SSE_HEADERS, **served.headers}
    elif served.plan.client_stream:
        chat, headers = replay(served), {**SSE_HEADERS, **served.headers()}
    else:
        return JSONBytes(response_document(served, shell), headers=served.headers())
    events = response_events(chat, ResponseWriter(shell))
    return StreamingResponse(events, media_type="text/event-stream", headers=headers)
