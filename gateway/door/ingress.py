"""Parsing a request the door has read: JSON, bounds, validation; watching for disconnects."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.types import Receive

from gateway.door.bounds import InputLimits, check_request
from gateway.door.inflight import BODY
from gateway.errors import BadRequest, ClientClosed, bad_request_from

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")


def read_request(request: Request, model: type[M], bounds: InputLimits) -> tuple[dict[str, Any], M]:
    """The body as the client sent it, validated as `model`, or an OpenAI 4xx.

    The in-flight gate read it (size, time and JSON shape bounded there, once) before the
    route ran; a route that fans out is always behind it (`COMPLETION_PATHS`).
    """
    body = request.scope.get(BODY)
    if not isinstance(body, bytes):
        raise BadRequest("The request body was not read.")
    return parse_request(body, model, bounds)


def parse_request(body: bytes, model: type[M], bounds: InputLimits) -> tuple[dict[str, Any], M]:
    """A body parsed, checked against `bounds` and validated as `model`; or a 400.

    The body's JSON shape was checked as it arrived (gateway.door.inflight).
    """
    try:
        raw = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise BadRequest("The request body is not valid JSON.") from None
    if not isinstance(raw, dict):
        raise BadRequest("The request body must be a JSON object.")
    check_request(raw, bounds)
    try:
        parsed = model.model_validate(raw)
    except ValidationError as exc:
        raise bad_request_from(exc) from None
    return raw, parsed


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def until_disconnect(request: Request, work: Coroutine[Any, Any, T]) -> T:
    """Run `work`, cancelling it if the client disconnects first."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnected(request.receive))
    try:
        await asyncio.wait((task, watcher), return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        if not task.done():
            task.cancel()
            # Wait for the cancelled work to unwind: it cancels the miner calls it started.
            await asyncio.gather(task, return_exceptions=True)
    if task.cancelled():
        raise ClientClosed("The client closed the connection.")
    return task.result()
