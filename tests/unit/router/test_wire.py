"""Tests for router.wire: a miner's reply read once, the same answer whole or streamed."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.serving.candidates import judged
from router.wire import (
    MAX_ARGUMENT_CHARS,
    MAX_CALLS,
    Answer,
    ChunkDelta,
    FunctionCall,
    InvalidReply,
    StreamAnswer,
    Usage,
    answer_of,
    delta_of,
    holds_back,
)

CALL = {"id": "c1", "type": "function", "function": {"name": "get", "arguments": '{"a": 1}'}}


def whole(message: dict[str, Any], finish: str = "stop") -> dict[str, Any]:
    return {
        "model": "m",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
    }


def streamed(message: dict[str, Any], finish: str = "stop") -> list[dict[str, Any]]:
    """The same message as a miner streams it: content in pieces, calls in fragments."""
    content = message.get("content") or ""
    chunks: list[dict[str, Any]] = [
        {"choices": [{"index": 0, "delta": {"content": content[i : i + 3]}}]}
        for i in range(0, len(content), 3)
    ]
    for i, call in enumerate(message.get("tool_calls") or []):
        name, arguments = call["function"]["name"], call["function"]["arguments"]
        first = {"index": i, "function": {"name": name, "arguments": arguments[:2]}}
        rest = {"index": i, "function": {"arguments": arguments[2:]}}
        chunks += [
            {"choices": [{"index": 0, "delta": {"tool_calls": [part]}}]} for part in (first, rest)
        ]
    chunks.append({"choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
    chunks.append({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 4}})
    return [{**c, "model": "m"} for c in chunks]


def assembled(chunks: list[dict[str, Any]]) -> Answer:
    heard = StreamAnswer("chat")
    for chunk in chunks:
        heard.add(chunk)
    return heard.answer


@pytest.mark.parametrize(
    "message",
    [
        {"role": "assistant", "content": "Paris is the capital."},
        {"role": "assistant", "content": None, "tool_calls": [CALL]},
        {"role": "assistant", "content": "Checking.", "tool_calls": [CALL, CALL]},
    ],
)
def test_a_stream_and_a_whole_reply_of_the_same_words_are_one_answer(
    message: dict[str, Any],
) -> None:
    buffered = answer_of(whole(message), "chat")
    live = assembled(streamed(message))
    assert live == buffered
    assert judged(1, live).text == judged(1, buffered).text
    assert buffered.usage == Usage(3, 4) and buffered.model == "m"


def test_tool_calls_are_judged_as_name_and_sorted_arguments() -> None:
    answer = answer_of(whole({"content": "Checking.", "tool_calls": [CALL]}), "chat")
    assert answer.tool_calls == (FunctionCall("get", '{"a": 1}'),)
    assert judged(1, answer).text == "Checking.\nget(a=1)"
    assert answer.said == 'Checking.\nget({"a": 1})'


@pytest.mark.parametrize(
    "document",
    [[], {"choices": []}, {"choices": ["x"]}, {"choices": [{"message": {"content": None}}]}],
)
def test_a_document_without_an_answer_is_invalid(document: Any) -> None:
    with pytest.raises(InvalidReply):
        answer_of(document, "chat")


def test_claims_are_bounded_in_count_and_size() -> None:
    big = {"function": {"name": "f" * 500, "arguments": "x" * (MAX_ARGUMENT_CHARS + 10)}}
    answer = answer_of(whole({"content": "", "tool_calls": [big] * (MAX_CALLS + 5)}), "chat")
    assert len(answer.tool_calls) == MAX_CALLS
    assert len(answer.tool_calls[0].arguments) == MAX_ARGUMENT_CHARS
    assert len(answer.tool_calls[0].name) == 64
    heard = StreamAnswer("chat")
    for index in range(MAX_CALLS + 5):
        part = {"index": index, "function": {"name": "f", "arguments": "y" * MAX_ARGUMENT_CHARS}}
        heard.add({"choices": [{"delta": {"tool_calls": [part, part]}}]})
    calls = heard.answer.tool_calls
    assert len(calls) == MAX_CALLS and {len(c.arguments) for c in calls} == {MAX_ARGUMENT_CHARS}


@pytest.mark.parametrize(
    "usage",
    [
        {"prompt_tokens": 1.5, "completion_tokens": 2},
        {"prompt_tokens": -1, "completion_tokens": 2},
        {"prompt_tokens": True, "completion_tokens": 2},
        "10",
    ],
)
def test_usage_that_is_not_two_counts_is_no_usage(usage: Any) -> None:
    document = {**whole({"content": "hi"}), "usage": usage}
    assert answer_of(document, "chat").usage is None


def test_text_completions_and_their_chunks() -> None:
    document = {"choices": [{"text": "Paris", "finish_reason": "length"}]}
    assert answer_of(document, "completion") == Answer("Paris", finish_reason="length")
    heard = StreamAnswer("completion")
    assert heard.add({"choices": [{"text": "Par"}]}) == "Par"
    heard.add({"choices": [{"text": "is", "finish_reason": "length"}]})
    assert heard.answer == Answer("Paris", finish_reason="length") and heard.size == 5


@pytest.mark.parametrize("chunk", [[], {"x": 1}, {"choices": ["x"]}])
def test_a_malformed_chunk_is_invalid(chunk: Any) -> None:
    with pytest.raises(InvalidReply):
        StreamAnswer("chat").add(chunk)


def test_reasoning_is_read_whole_or_streamed() -> None:
    message = {"content": "42", "reasoning_content": "6 times 7"}
    assert answer_of(whole(message), "chat").reasoning == "6 times 7"
    heard = StreamAnswer("chat")
    heard.add({"choices": [{"delta": {"reasoning": "6 times "}}]})
    heard.add({"choices": [{"delta": {"reasoning_content": "7", "content": "42"}}]})
    assert (heard.answer.reasoning, heard.answer.content) == ("6 times 7", "42")


@pytest.mark.parametrize(
    ("chunk", "held"),
    [
        ({"choices": [{"delta": {"content": "a"}}]}, False),
        ({"choices": [{"delta": {}, "finish_reason": "stop"}]}, True),
        ({"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 2}}, True),
        ({"choices": [{"delta": {"content": "a"}, "finish_reason": None}]}, False),
    ],
)
def test_finish_and_usage_chunks_are_held_back(chunk: dict[str, Any], held: bool) -> None:
    assert holds_back(chunk) is held


def test_a_chunks_delta_for_choice_zero() -> None:
    call = {"index": 0, "function": {"name": "f", "arguments": "{"}}
    chunk = {
        "choices": [
            {"index": 1, "delta": {"content": "other"}},
            {"index": 0, "delta": {"content": "hi", "tool_calls": [call, "junk"]}},
        ]
    }
    assert delta_of(chunk) == ChunkDelta("hi", (call,), None)
    finish = {"choices": [{"delta": {}, "finish_reason": "stop"}]}
    assert delta_of(finish) == ChunkDelta(finish_reason="stop")
    assert delta_of({"choices": []}) is None and delta_of("x") is None
