"""The door's body reader: a size cap, a deadline and the JSON shape, before any parser."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from pathlib import Path

import orjson
import pytest
from starlette.datastructures import Headers
from starlette.types import Message, Receive, Scope, Send

from gateway.config import Settings
from gateway.door.bounds import InputLimits
from gateway.door.inflight import InFlightGate, read_ahead
from gateway.errors import BadRequest, BodyTimeout, BodyTooLarge, RateLimited

LIMITS = InputLimits(max_depth=4, max_values=20)


def receiver(messages: Iterable[Message], hang: bool = False):  # type: ignore[no-untyped-def]
    """An ASGI receive that hands out `messages`, then hangs or says the client left."""
    queue = list(messages)

    async def receive() -> Message:
        if queue:
            return queue.pop(0)
        if hang:
            await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    return receive


def chunks(*parts: bytes) -> list[Message]:
    """`parts` as http.request messages, the last without more_body."""
    return [
        {"type": "http.request", "body": part, "more_body": i < len(parts) - 1}
        for i, part in enumerate(parts)
    ]


async def read(
    messages: list[Message], limit: int = 100, headers: dict[str, str] | None = None
) -> list[Message]:
    replay, body = await read_ahead(receiver(messages), Headers(headers or {}), limit, 1.0, LIMITS)
    sent = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.request")
    assert body == sent  # the bytes the route parses are the bytes that came
    return [await replay() for _ in range(len(messages) + 1)]


async def test_the_body_is_replayed_whole_then_receive_goes_on() -> None:
    messages = chunks(b'{"a": ', b"[1, 2]", b"}")
    replayed = await read(messages)
    assert replayed[:3] == messages
    assert replayed[3] == {"type": "http.disconnect"}


async def test_a_declared_length_over_the_limit_is_413_before_a_byte_is_read() -> None:
    taken: list[Message] = []

    async def receive() -> Message:
        taken.append({"type": "http.request"})
        return {"type": "http.request", "body": b"{}", "more_body": False}

    with pytest.raises(BodyTooLarge):
        await read_ahead(receive, Headers({"content-length": "101"}), 100, 1.0, LIMITS)
    assert taken == []
    await read_ahead(receive, Headers({"content-length": "100"}), 100, 1.0, LIMITS)
    await read_ahead(receive, Headers({"content-length": "lots"}), 100, 1.0, LIMITS)


async def test_a_body_that_grows_past_the_limit_is_413_at_the_chunk_that_passes_it() -> None:
    assert len(await read(chunks(b'"' + b"a" * 60, b"a" * 38 + b'"'), limit=100)) == 3  # 100
    with pytest.raises(BodyTooLarge):
        await read(chunks(b'"' + b"a" * 60, b"a" * 39 + b'"'), limit=100)


async def test_a_body_that_does_not_arrive_in_time_is_408() -> None:
    receive = receiver(chunks(b"[", b"1]")[:1], hang=True)
    with pytest.raises(BodyTimeout) as caught:
        await read_ahead(receive, Headers({}), 100, 0.05, LIMITS)
    assert caught.value.status == 408 and "0.05 s" in caught.value.message


async def test_a_client_that_leaves_mid_body_is_handed_on_to_the_route() -> None:
    messages: list[Message] = [*chunks(b"[1,", b"2]")[:1], {"type": "http.disconnect"}]
    replayed = await read(messages)
    assert replayed[:2] == messages


@pytest.mark.parametrize(
    ("body", "code"),
    [(b"[[[[[]]]]]", "json_too_deep"), (b"[" + b"0," * 20 + b"0]", "json_too_large")],
)
async def test_the_shape_is_checked_across_chunks(body: bytes, code: str) -> None:
    with pytest.raises(BadRequest) as caught:
        await read(chunks(body[:3], body[3:]))
    assert caught.value.code == code
    fits = b"[[[[]]]]" if code == "json_too_deep" else b"[" + b"0," * 18 + b"0]"
    await read(chunks(fits[:3], fits[3:]))


class FullDoor:
    """A gateway state whose in-flight slots are all taken."""

    def __init__(self) -> None:
        self.settings = Settings(metagraph=Path("m.json"))
        self.refused: list[int] = []
        self.released = 0

    def admit(self) -> None:
        raise RateLimited(
            "The gateway is serving 8 requests, its limit; retry shortly.",
            headers={"Retry-After": "1"},
        )

    def count_refusal(self, status: int) -> None:
        self.refused.append(status)

    def release(self) -> None:
        self.released += 1


async def test_a_full_door_answers_429_with_retry_after_before_a_byte_is_read() -> None:
    door, served, sent = FullDoor(), [], []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        served.append(scope)

    async def send(message: Message) -> None:
        sent.append(message)

    async def receive() -> Message:
        raise AssertionError("the body was read")

    scope = {"type": "http", "path": "/v1/chat/completions", "method": "POST", "headers": []}
    await InFlightGate(app, lambda: door)(scope, receive, send)  # type: ignore[arg-type]
    start, body = sent
    assert start["status"] == 429 and (b"retry-after", b"1") in start["headers"]
    error = orjson.loads(body["body"])["error"]
    assert error["code"] == "rate_limit_exceeded" and error["type"] == "rate_limit_error"
    assert "its limit" in error["message"]
    assert (door.refused, door.released, served) == ([429], 0, [])
