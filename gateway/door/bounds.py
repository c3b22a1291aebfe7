"""Bounds on what a client may send: JSON depth and size, messages, and prompt text.

The shape of the JSON (how deep it nests, how many values it holds; router.json_shape) is
read from the bytes as they arrive (gateway.door.inflight), before anything parses them: a
body of millions of tiny elements would grow ~20x as Python objects, so it is refused
first. Message count and text are checked on the parsed body, before validation, so a
hostile body never reaches pydantic, the rankers or the miners.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.errors import BadRequest
from ranking.base import message_text
from router.json_shape import JsonShape as JsonShape
from router.json_shape import json_shape as json_shape


@dataclass(frozen=True, slots=True)
class InputLimits:
    """The most a request may nest, hold, count and say."""

    max_depth: int = 128
    max_values: int = 100_000
    max_messages: int = 1024
    max_prompt_chars: int = 1_000_000


def check_shape(shape: JsonShape, limits: InputLimits) -> None:
    """400 when the body nests deeper or holds more values than `limits` (before parsing)."""
    if shape.depth > limits.max_depth:
        raise BadRequest(
            f"The request body nests JSON more than {limits.max_depth} levels deep.",
            code="json_too_deep",
        )
    if shape.values > limits.max_values:
        raise BadRequest(
            f"The request body holds more than {limits.max_values} JSON values.",
            code="json_too_large",
        )


def prompt_chars(raw: dict[str, Any]) -> int:
    """How many characters of text a chat, completion or Responses request carries."""
    prompt = raw.get("prompt")
    if isinstance(prompt, str):
        return len(prompt)
    if isinstance(prompt, list):
        return sum(len(p) for p in prompt if isinstance(p, str))
    instructions = raw.get("instructions")
    chars = len(instructions) if isinstance(instructions, str) else 0
    given = raw.get("input")
    if isinstance(given, str):
        return chars + len(given)
    messages = given if isinstance(given, list) else raw.get("messages")
    if not isinstance(messages, list):
        return chars
    return chars + sum(len(message_text(m.get("content"))) for m in messages if isinstance(m, dict))


def check_request(raw: dict[str, Any], limits: InputLimits) -> None:
    """400 naming the field when a parsed request has too many messages or too much text."""
    messages = raw.get("messages")
    if isinstance(messages, list) and len(messages) > limits.max_messages:
        raise BadRequest(
            f"'messages' may hold at most {limits.max_messages} messages; "
            f"this request has {len(messages)}.",
            param="messages",
            code="too_many_messages",
        )
    chars = prompt_chars(raw)
    if chars > limits.max_prompt_chars:
        param = next((f for f in ("prompt", "input") if f in raw), "messages")
        raise BadRequest(
            f"The prompt is {chars} characters; this gateway takes at most "
            f"{limits.max_prompt_chars}.",
            param=param,
            code="prompt_too_long",
        )
