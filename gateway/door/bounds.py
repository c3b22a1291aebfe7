"""Bounds on what a client may send: JSON depth and size, messages, and prompt text.

The shape of the JSON (how deep it nests, how many values it holds) is read from the bytes
as they arrive (gateway.door.inflight), before anything parses them: a body of millions of
tiny elements would grow ~20x as Python objects, so it is refused first. Message count
and text are checked on the parsed body, before validation, so a hostile body never
reaches pydantic, the rankers or the miners.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from gateway.errors import BadRequest
from ranking.base import message_text

OPEN_ARRAY, CLOSE_ARRAY, OPEN_OBJECT, CLOSE_OBJECT, QUOTE, BACKSLASH, COMMA = b'[]{}"\\,'
SCAN_CHUNK = 256 * 1024


@dataclass(frozen=True, slots=True)
class InputLimits:
    """The most a request may nest, hold, count and say."""

    max_depth: int = 128
    max_values: int = 100_000
    max_messages: int = 1024
    max_prompt_chars: int = 1_000_000


@dataclass(slots=True)
class JsonShape:
    """How deep a JSON document nests and about how many values it holds."""

    depth: int = 0
    values: int = 0
    # Carried from one chunk to the next.
    level: int = 0
    in_string: bool = False
    backslashes: int = 0

    def feed(self, data: bytes) -> JsonShape:
        """Read the next bytes of the document, in whatever pieces they come."""
        for start in range(0, len(data), SCAN_CHUNK):
            count = min(SCAN_CHUNK, len(data) - start)
            self._scan(np.frombuffer(data, dtype=np.uint8, count=count, offset=start))
        return self

    def _scan(self, code: np.ndarray[Any, np.dtype[np.uint8]]) -> None:
        quotes = code == QUOTE
        if self.backslashes or BACKSLASH in code:
            # A quote after an odd run of backslashes is escaped (they only occur in strings).
            index = np.arange(code.size, dtype=np.int32)
            carried = -1 - self.backslashes  # where the byte before the carried run was
            last_plain = np.maximum.accumulate(np.where(code == BACKSLASH, carried, index))
            run = index - np.concatenate(([carried], last_plain[:-1])) - 1
            quotes &= run % 2 == 0
            self.backslashes = int(code.size - 1 - last_plain[-1])
        else:
            self.backslashes = 0
        inside = (np.cumsum(quotes, dtype=np.int32) % 2).astype(bool) ^ self.in_string
        opens = (code == OPEN_ARRAY) | (code == OPEN_OBJECT)
        closes = (code == CLOSE_ARRAY) | (code == CLOSE_OBJECT)
        outside = ~inside
        opens &= outside
        closes &= outside
        step = opens.astype(np.int8) - closes.astype(np.int8)
        levels = self.level + np.cumsum(step, dtype=np.int32)
        self.depth = max(self.depth, int(levels.max(initial=0)))
        self.level = int(levels[-1])
        self.in_string = bool(inside[-1])
        self.values += int(np.count_nonzero(opens)) + int(
            np.count_nonzero((code == COMMA) & outside)
        )


def json_shape(body: bytes) -> JsonShape:
    """How deep `body` nests objects and arrays, and its containers plus commas.

    Brackets and commas inside strings do not count. Vectorised over chunks of the body:
    a few MiB of scratch memory, whatever the shape of the document. Meant for valid JSON;
    on invalid JSON the figures are wrong, and the parser refuses the body anyway.
    """
    return JsonShape().feed(body)


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
    """How many characters of text a chat or completion request carries."""
    prompt = raw.get("prompt")
    if isinstance(prompt, str):
        return len(prompt)
    if isinstance(prompt, list):
        return sum(len(p) for p in prompt if isinstance(p, str))
    messages = raw.get("messages")
    if not isinstance(messages, list):
        return 0
    return sum(len(message_text(m.get("content"))) for m in messages if isinstance(m, dict))


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
        param = "prompt" if "prompt" in raw else "messages"
        raise BadRequest(
            f"The prompt is {chars} characters; this gateway takes at most "
            f"{limits.max_prompt_chars}.",
            param=param,
            code="prompt_too_long",
        )
