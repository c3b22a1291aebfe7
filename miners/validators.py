"""What subnet validators send a miner besides completions: SN1's `POST /availability`."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

# SN1 (macrocosm-os/prompting) posts `{"task_availabilities": {…}, "llm_model_availabilities":
# {…}}` unsigned, and reads back the same keys mapped to booleans. The body is small: a larger
# or slower one is not read.
MAX_ASK_BYTES = 64 * 1024
ASK_DEADLINE_S = 2.0
ASK_FIELDS = ("task_availabilities", "llm_model_availabilities")


async def read_availability_ask(request: web.Request) -> dict[str, Any]:
    """The validator's ask, or {} if it is missing, too big, too slow or not JSON."""
    if request.content_length is not None and request.content_length > MAX_ASK_BYTES:
        return {}
    raw = b""
    try:
        async with asyncio.timeout(ASK_DEADLINE_S):
            while len(raw) <= MAX_ASK_BYTES:
                chunk = await request.content.read(MAX_ASK_BYTES + 1 - len(raw))
                if not chunk:
                    break
                raw += chunk
    except (TimeoutError, OSError, HttpProcessingError):
        return {}
    if not raw or len(raw) > MAX_ASK_BYTES:
        return {}
    try:
        asked = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {}
    return asked if isinstance(asked, dict) else {}


def answer_availability(asked: dict[str, Any], document: dict[str, Any]) -> dict[str, Any]:
    """SN1's answer: every task while there is room, and only the model this miner serves."""
    free = document.get("available")
    room = free is None or free > 0
    answer: dict[str, Any] = {}
    tasks, models = (asked.get(name) for name in ASK_FIELDS)
    if isinstance(tasks, dict):
        answer["task_availabilities"] = {str(task): room for task in list(tasks)[:256]}
    if isinstance(models, dict):
        served = document.get("model") or ""
        answer["llm_model_availabilities"] = {
            str(model): room and model == served for model in list(models)[:256]
        }
    return answer
