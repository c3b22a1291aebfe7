"""What the miner client reads from a reply's JSON and a stream chunk, and what it refuses."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from router.axon_policy import AxonRefused
from router.miner_client import InvalidReply, MinerHTTPError, describe_failure
from router.wire import FunctionCall, Kind, StreamAnswer, answer_of

CALLS = [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]
CALLED = (FunctionCall("f", "{}"),)


def extract_choice(body: Any, kind: Kind) -> tuple[str, tuple[FunctionCall, ...], str | None]:
    """What the miner client reads of a whole reply: content, calls, finish reason."""
    answer = answer_of(body, kind)
    return answer.content, answer.tool_calls, answer.finish_reason


def chunk_delta(chunk: Any, kind: Kind) -> tuple[str, str | None]:
    """What one chunk adds to a stream, and the finish reason it leaves."""
    heard = StreamAnswer(kind)
    return heard.add(chunk), heard.answer.finish_reason


def chat(message: Any, **choice: Any) -> dict[str, Any]:
    return {"choices": [{"message": message, **choice}]}


@pytest.mark.parametrize(
    ("body", "kind", "read"),
    [
        (chat({"content": "hi"}, finish_reason="stop"), "chat", ("hi", (), "stop")),
        (chat({"content": "hi"}, finish_reason=7), "chat", ("hi", (), None)),
        (chat({"content": "", "tool_calls": CALLS}), "chat", ("", CALLED, None)),
        (chat({"content": None, "tool_calls": CALLS}), "chat", ("", CALLED, None)),
        (chat({"content": "says", "tool_calls": CALLS}), "chat", ("says", CALLED, None)),
        (chat({"content": ""}), "chat", ("", (), None)),
        (
            {"choices": [{"message": {"content": "a"}}, {"message": {"content": "b"}}]},
            "chat",
            ("a", (), None),
        ),
        (
            {"choices": [{"text": "t", "finish_reason": "length"}]},
            "completion",
            ("t", (), "length"),
        ),
    ],
)
def test_a_reply_gives_its_first_choices_text_and_finish_reason(
    body: Any, kind: Any, read: tuple[str, tuple[FunctionCall, ...], str | None]
) -> None:
    assert extract_choice(body, kind) == read


@pytest.mark.parametrize(
    ("body", "kind", "why"),
    [
        ([], "chat", "reply is not a JSON object"),
        ("text", "chat", "reply is not a JSON object"),
        ({}, "chat", "reply has no choices"),
        ({"choices": {}}, "chat", "reply has no choices"),
        ({"choices": []}, "chat", "reply has no choices"),
        ({"choices": ["text"]}, "chat", "reply has no choices"),
        (chat({"content": 5}), "chat", "reply has no text"),
        (chat("hi"), "chat", "reply has no text"),
        (chat({"tool_calls": []}), "chat", "reply has no text"),
        ({"choices": [{"text": None}]}, "completion", "reply has no text"),
        (chat({"content": "hi"}), "completion", "reply has no text"),
        ({"choices": [{"text": "t"}]}, "chat", "reply has no text"),
    ],
)
def test_a_reply_without_usable_text_is_invalid_and_says_why(
    body: Any, kind: Any, why: str
) -> None:
    with pytest.raises(InvalidReply) as caught:
        extract_choice(body, kind)
    assert str(caught.value) == why


@pytest.mark.parametrize(
    ("chunk", "kind", "read"),
    [
        ({"choices": []}, "chat", ("", None)),
        ({"choices": [{"delta": {"content": "a"}}]}, "chat", ("a", None)),
        (
            {"choices": [{"delta": {"content": "a"}, "finish_reason": "stop"}]},
            "chat",
            ("a", "stop"),
        ),
        ({"choices": [{"delta": {}, "finish_reason": 1}]}, "chat", ("", None)),
        ({"choices": [{"delta": "a"}]}, "chat", ("", None)),
        ({"choices": [{"delta": {"tool_calls": CALLS}}]}, "chat", ("{}", None)),
        ({"choices": [{"delta": {"content": "x", "tool_calls": CALLS}}]}, "chat", ("x{}", None)),
        ({"choices": [{"delta": {"content": 3}}]}, "chat", ("", None)),
        ({"choices": [{"text": "t"}, {"text": "u"}]}, "completion", ("t", None)),
        ({"choices": [{"delta": {"content": "a"}}]}, "completion", ("", None)),
    ],
)
def test_a_chunk_adds_its_first_choices_text(
    chunk: dict[str, Any], kind: Any, read: tuple[str, str | None]
) -> None:
    assert chunk_delta(chunk, kind) == read


@pytest.mark.parametrize(
    ("chunk", "why"),
    [
        ({}, "stream chunk has no choices"),
        ({"choices": {"0": {}}}, "stream chunk has no choices"),
        ({"choices": ["a"]}, "stream chunk choice is not an object"),
    ],
)
def test_a_chunk_without_choices_is_invalid(chunk: dict[str, Any], why: str) -> None:
    with pytest.raises(InvalidReply) as caught:
        chunk_delta(chunk, "chat")
    assert str(caught.value) == why


def connector_error(os_error: OSError) -> aiohttp.ClientConnectorError:
    key = aiohttp.client_reqrep.ConnectionKey("h", 1, False, True, None, None, None)
    return aiohttp.ClientConnectorError(key, os_error)


@pytest.mark.parametrize(
    ("exc", "words"),
    [
        (AxonRefused("169.254.169.254", "link_local"), "address refused by the axon policy"),
        (connector_error(ConnectionRefusedError(111, "refused")), "cannot connect"),
        (aiohttp.ServerDisconnectedError(), "connection closed early"),
        (ConnectionResetError(), "connection closed early"),
        (aiohttp.ClientPayloadError("cut"), "reply body broken off"),
        (aiohttp.ClientOSError(), "connection failed"),
        (OSError("x"), "connection failed"),
        (ValueError("/secret/path"), "unexpected failure"),
    ],
)
def test_a_failure_is_told_in_fixed_words(exc: BaseException, words: str) -> None:
    assert describe_failure(exc) == words


def test_a_failure_caused_by_a_refusal_is_told_as_one() -> None:
    try:
        raise RuntimeError("wrapped") from AxonRefused("169.254.169.254", "link_local")
    except RuntimeError as exc:
        assert describe_failure(exc) == "address refused by the axon policy"


@pytest.mark.parametrize(
    ("status", "retry_after", "busy"),
    [
        (429, None, True),
        (503, "2", True),
        (503, None, False),
        (500, "2", False),
        (200, None, False),
    ],
)
def test_busy_is_429_or_a_5xx_with_retry_after(
    status: int, retry_after: str | None, busy: bool
) -> None:
    error = MinerHTTPError(status, retry_after)
    assert (error.busy, error.status, error.retry_after, str(error)) == (
        busy,
        status,
        retry_after,
        f"HTTP {status}",
    )
