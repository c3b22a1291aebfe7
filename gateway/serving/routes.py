"""HTTP routes: the OpenAI API and the operations endpoints; each is a few lines."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from starlette.responses import Response, StreamingResponse

from gateway.door.inflight import KEY_POOLS
from gateway.door.ingress import read_request, until_disconnect
from gateway.errors import ModelNotFound
from gateway.protocol import (
    ChatCompletionRequest,
    CompletionReply,
    CompletionRequest,
    ErrorResponse,
    Health,
    Leaderboard,
    ModelCard,
    ModelList,
    Readiness,
)
from gateway.serving.fanout_queue import add_concurrency, serve_queued
from gateway.serving.replay import document, replay
from gateway.serving.responses import SSE_HEADERS, JSONBytes
from gateway.serving.responses_api import serve_responses
from gateway.serving.responses_request import ResponsesRequest
from gateway.serving.result import Result
from gateway.serving.strategies.registry import LiveStream, Served, Strategies
from gateway.state import GatewayState
from router.miner_client import Kind

routes = APIRouter()


async def get_state(request: Request) -> GatewayState:
    """The app's state, set up by the lifespan (async: FastAPI runs sync ones in a thread)."""
    state: GatewayState = request.app.state.gateway
    return state


State = Annotated[GatewayState, Depends(get_state)]


def _respond(served: Served) -> Response:
    """The HTTP response for what a strategy served: JSON, a replayed stream, or a live one."""
    if isinstance(served, LiveStream):
        headers = {**SSE_HEADERS, **served.headers}
        return StreamingResponse(served.events, media_type="text/event-stream", headers=headers)
    if served.plan.client_stream:
        headers = {**SSE_HEADERS, **served.headers()}
        return StreamingResponse(replay(served), media_type="text/event-stream", headers=headers)
    return _json(served)


def _json(result: Result) -> JSONBytes:
    return JSONBytes(document(result), headers=result.headers())


async def _serve(kind: Kind, request: Request, state: GatewayState) -> Response:
    with state.observe() as seen:
        model = ChatCompletionRequest if kind == "chat" else CompletionRequest
        settings = state.settings
        raw, parsed = read_request(request, model, settings.limits.input)
        if parsed.model in state.pools:
            seen.pool = parsed.model
        strategies: Strategies = state.strategies
        queued = serve_queued(
            state.planner, state.queue, state.metrics, strategies.serve, kind, raw, parsed
        )
        plan, served = await until_disconnect(request, queued)
        seen.strategy = plan.strategy
        return _respond(served)


ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse} for status in (400, 401, 404, 408, 413, 429, 502, 503, 504)
}
# Routes return orjson-rendered responses; `responses` only tells the OpenAPI document their shape.
COMPLETION: dict[int | str, dict[str, Any]] = {
    200: {
        "model": CompletionReply,
        "description": "The best miner's reply with a `bitgate` block; with `stream`, OpenAI "
        "server-sent events ending in `data: [DONE]`, the block on the last chunk.",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    },
    **ERRORS,
}


RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "A Responses object with a `bitgate` block; with `stream`, Responses "
        "server-sent events ending in `response.completed`, the block on its response.",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    },
    **ERRORS,
}


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    """A JSON schema with its `#/$defs/…` references replaced by what they point at."""
    if isinstance(node, dict):
        ref = node.get("$ref", "")
        if ref.startswith("#/$defs/"):
            return _inline(defs[ref.removeprefix("#/$defs/")], defs)
        return {key: _inline(value, defs) for key, value in node.items() if key != "$defs"}
    if isinstance(node, list):
        return [_inline(item, defs) for item in node]
    return node


def request_body(model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra=` naming a route's JSON body, which the route reads and checks itself
    (for the body limit and OpenAI-shaped errors) instead of letting FastAPI parse it."""
    schema = model.model_json_schema()
    body = {
        "required": True,
        "content": {"application/json": {"schema": _inline(schema, schema.get("$defs", {}))}},
    }
    return {"requestBody": body}


def shape(model: Any, *errors: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route whose 200 body has the shape `model`, and its error statuses."""
    return {200: {"model": model}, **{status: ERRORS[status] for status in errors}}


@routes.post(
    "/v1/chat/completions",
    responses=COMPLETION,
    openapi_extra=request_body(ChatCompletionRequest),
)
async def chat_completions(request: Request, state: State) -> Response:
    """OpenAI chat completions, answered by the best of the pool's top miners."""
    return await _serve("chat", request, state)


@routes.post("/v1/completions", responses=COMPLETION, openapi_extra=request_body(CompletionRequest))
async def completions(request: Request, state: State) -> Response:
    """OpenAI text completions, answered by the best of the pool's top miners."""
    return await _serve("completion", request, state)


@routes.post("/v1/responses", responses=RESPONSES, openapi_extra=request_body(ResponsesRequest))
async def responses(request: Request, state: State) -> Response:
    """OpenAI Responses (stateless), served as a chat completion by the pool's best miners."""
    return await serve_responses(request, state)


def _visible(request: Request, pool: str) -> bool:
    """Whether the caller's key may see `pool` (a key limited to pools sees only those)."""
    pools = request.scope.get(KEY_POOLS)
    return pools is None or pool in pools


@routes.get("/v1/models", responses=shape(ModelList, 401))
async def list_models(request: Request, state: State) -> JSONBytes:
    """Every pool the caller may use, as an OpenAI model."""
    data: list[ModelCard] = [
        {"id": name, "object": "model", "created": state.started_at, "owned_by": "bitgate"}
        for name in state.pools
        if _visible(request, name)
    ]
    models: ModelList = {"object": "list", "data": data}
    return JSONBytes(models)


@routes.get("/v1/models/{model:path}", responses=shape(ModelCard, 401, 404))
async def retrieve_model(model: str, request: Request, state: State) -> JSONBytes:
    """One pool, as an OpenAI model; 404 when no pool has that name (or the key may not see it)."""
    if model not in state.pools or not _visible(request, model):
        raise ModelNotFound(
            f"The model '{model}' does not exist; GET /v1/models lists the pools.", param="model"
        )
    card: ModelCard = {
        "id": model,
        "object": "model",
        "created": state.started_at,
        "owned_by": "bitgate",
    }
    return JSONBytes(card)


@routes.get("/v1/pools/{pool}/miners", responses=shape(Leaderboard, 401, 404))
async def leaderboard(pool: str, request: Request, state: State) -> JSONBytes:
    """The pool's miners with their scores, success rates and latencies."""
    served = state.pools.get(pool)
    if served is None or not _visible(request, pool):
        raise ModelNotFound(f"The pool '{pool}' does not exist.", param="pool")
    rows = state.scoreboard.leaderboard(pool, served.metagraph, served.refused)
    served.add_weights(rows)
    add_concurrency(rows, served.metagraph, state.planner.limits)
    board: Leaderboard = {"object": "list", "pool": pool, "data": rows}
    return JSONBytes(board)


@routes.get("/healthz", responses=shape(Health))
async def healthz() -> JSONBytes:
    """The process is up."""
    health: Health = {"status": "ok"}
    return JSONBytes(health)


@routes.get(
    "/readyz", responses={**shape(Readiness), 503: {"model": Readiness, "description": "Not ready"}}
)
async def readyz(state: State) -> JSONBytes:
    """Ready when every pool has a metagraph and every loop runs; reports what is degraded."""
    report = state.readiness()
    for name, pool in state.pools.items():
        report["pools"][name]["sync"] = pool.status()
    return JSONBytes(report, status_code=200 if report["ready"] else 503)


@routes.get("/metrics")
async def metrics(state: State) -> Response:
    """Prometheus metrics."""
    state.metrics.store_up.set(0 if state.scoreboard.store_state == "down" else 1)
    state.metrics.store_sync_seconds.set(state.scoreboard.last_round_s)
    for pool in state.pools.values():
        state.metrics.observe_refusals(pool.name, pool.refused)
        age = pool.status().get("last_sync_age_s")
        if age is not None:
            state.metrics.metagraph_sync_age.labels(pool.name).set(age)
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
