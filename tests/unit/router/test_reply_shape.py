"""Tests for router.reply_shape: what parsing a reply may cost, bounded from its bytes."""

from __future__ import annotations

import tracemalloc
from typing import Any

import orjson
import pytest

from router.reply_shape import (
    FREE_BYTES,
    REPLY_MULTIPLE,
    STREAM_MULTIPLE,
    ReplyShape,
    ReplyTooComplex,
)

SIZE = 512 * 1024
PIECE = 65536


def repeated(element: bytes, size: int = SIZE) -> bytes:
    """A JSON array of `element`, about `size` bytes long."""
    return b"[" + b",".join([element] * (size // (len(element) + 1))) + b"]"


def logprobs_reply(tokens: int, top: int, token: str = "a") -> bytes:
    """A chat completion with per-token logprobs, the densest reply a real miner sends."""
    spelled = list(token.encode())
    alternatives = [{"token": token, "logprob": -1.25, "bytes": spelled}] * top
    entry = {"token": token, "logprob": -0.5, "bytes": spelled, "top_logprobs": alternatives}
    choice = {
        "index": 0,
        "message": {"role": "assistant", "content": "a" * tokens},
        "logprobs": {"content": [entry] * tokens},
        "finish_reason": "stop",
    }
    return orjson.dumps({"id": "x", "object": "chat.completion", "choices": [choice]})


def fed(document: bytes, multiple: int = REPLY_MULTIPLE) -> ReplyShape:
    shape = ReplyShape(multiple)
    for start in range(0, len(document), PIECE):
        shape.feed(document[start : start + PIECE])
    return shape


def parsed_bytes(document: bytes) -> int:
    tracemalloc.start()
    try:
        kept: Any = orjson.loads(document)
        used, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    del kept
    return used


HOSTILE = [repeated(b"{}"), repeated(b"[]"), repeated(b'{"a":1}'), b"[" * 100]


@pytest.mark.parametrize("document", HOSTILE, ids=["objects", "arrays", "dicts", "deep"])
def test_a_reply_of_tiny_values_is_refused_in_its_first_piece(document: bytes) -> None:
    shape = ReplyShape()
    with pytest.raises(ReplyTooComplex):
        shape.feed(document[:PIECE])


DENSE = [
    b"[1.5]",
    b"[-1e9]",
    b"[1.5,1.5]",
    b'"abc"',
    '"\u00e9"'.encode(),
    '"\u4e00"'.encode(),
    '"\U0001f600"'.encode(),
    b'"\\u00e9"',
    b'["\\u00e9"]',
    b'["\\ud83d\\ude00"]',
]


@pytest.mark.parametrize("element", DENSE)
def test_the_estimate_is_never_under_what_a_reply_parses_to(element: bytes) -> None:
    document = repeated(element)
    assert fed(document, multiple=1000).estimate >= parsed_bytes(document)


@pytest.mark.parametrize(
    "element",
    [
        b"{}" + b" " * 14,
        b'{"a":1}' + b" " * 12,
        b"[]" + b" " * 3,
        b"1.5",
        b"[1.5]",
        b"[-1e9]",
        b"[1.5,1.5]",
        b'"ab"',
        b'"abc"',
        b'{"k":{}}  ',
        '"\u00e9"'.encode(),  # one-character strings with wider headers
        '"\u4e00"'.encode(),
        '"\U0001f600"'.encode(),
        b'"\\u00e9"',  # the same, escaped: no byte shows the character is wide
        b'"\\u4e00"',
        b'["\\u00e9"]',
    ],
)
def test_what_is_accepted_parses_within_the_stated_multiple(element: bytes) -> None:
    document = repeated(element)
    try:
        fed(document)
    except ReplyTooComplex:
        return
    assert parsed_bytes(document) <= REPLY_MULTIPLE * len(document) + FREE_BYTES


@pytest.mark.parametrize(
    ("tokens", "top", "token"),
    [(4000, 0, "a"), (2000, 5, "a"), (1000, 20, "a"), (30000, 0, "a"), (2200, 20, "\n")],
)
def test_real_logprobs_replies_are_accepted(tokens: int, top: int, token: str) -> None:
    # The last is the densest: one-character tokens, 20 alternatives each, ~1.9 MiB.
    fed(logprobs_reply(tokens, top, token))


def test_a_long_stream_of_small_chunks_is_accepted() -> None:
    chunk = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    line = orjson.dumps({**chunk, "choices": [{"index": 0, "delta": {"content": "{["}}]})
    shape = ReplyShape(STREAM_MULTIPLE)
    for _ in range(2 * 1024 * 1024 // len(line)):
        shape.feed(line)
