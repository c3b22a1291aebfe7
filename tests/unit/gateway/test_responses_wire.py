"""The Responses request as a chat request, and chat chunks as Responses events."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from gateway.errors import BadRequest
from gateway.serving.responses_reply import ResponseWriter
from gateway.serving.responses_request import ResponsesRequest, chat_request


def translated(**fields: Any) -> dict[str, Any]:
    """The chat request of a Responses request with these fields."""
    raw = {"model": "sim", "input": "Hi", **fields}
    return chat_request(ResponsesRequest.model_validate(raw), raw)


def test_input_items_become_chat_messages() -> None:
    image = {"type": "input_image", "image_url": "data:image/png;base64,AA", "detail": "low"}
    chat = translated(
        instructions="Be brief.",
        input=[
            {"role": "user", "content": [{"type": "input_text", "text": "What is this?"}, image]},
            {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
            {"type": "function_call", "call_id": "c2", "name": "g", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": "42"},
            {"type": "reasoning", "summary": []},
            {"role": "assistant", "content": [{"type": "output_text", "text": "Done."}]},
        ],
        max_output_tokens=32,
        top_p=0.5,
        parallel_tool_calls=False,
    )
    messages = chat["messages"]
    assert messages[0] == {"role": "system", "content": "Be brief."}
    assert messages[1]["content"][1] == {
        "type": "image_url",
        "image_url": {"url": "data:image/png;base64,AA", "detail": "low"},
    }
    assert [c["id"] for c in messages[2]["tool_calls"]] == ["c1", "c2"]  # one assistant turn
    assert messages[3] == {"role": "tool", "tool_call_id": "c1", "content": "42"}
    assert messages[4] == {"role": "assistant", "content": "Done."}
    assert (chat["max_tokens"], chat["top_p"], chat["parallel_tool_calls"]) == (32, 0.5, False)


def test_tools_choice_and_text_format_become_their_chat_fields() -> None:
    schema = {"type": "object", "properties": {}}
    chat = translated(
        tools=[{"type": "function", "name": "f", "parameters": schema, "strict": True}],
        tool_choice={"type": "function", "name": "f"},
        text={"format": {"type": "json_schema", "name": "x", "schema": schema, "strict": True}},
    )
    assert chat["tools"] == [
        {"type": "function", "function": {"name": "f", "parameters": schema, "strict": True}}
    ]
    assert chat["tool_choice"] == {"type": "function", "function": {"name": "f"}}
    assert chat["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "x", "schema": schema, "strict": True},
    }


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"input": [{"role": ["user"], "content": "x"}]}, "input[0].role"),
        ({"input": [{"role": "user", "content": 5}]}, "input[0].content"),
        ({"input": [{"type": {"a": 1}}]}, "input[0].type"),
        ({"input": [{"type": "function_call", "call_id": 1}]}, "input[0]"),
        ({"tools": [{"type": ["function"]}]}, "tools[0].type"),
        ({"tools": [{"type": "file_search"}]}, "tools[0].type"),
        ({"tool_choice": {"type": "file_search"}}, "tool_choice"),
        ({"text": {"format": {"type": "yaml"}}}, "text.format.type"),
        ({"conversation": "conv_1"}, "conversation"),
    ],
)
def test_hostile_or_stateful_fields_are_a_400_naming_them(
    fields: dict[str, Any], param: str
) -> None:
    with pytest.raises(BadRequest) as refused:
        translated(**fields)
    assert refused.value.param == param


def events(frames: list[bytes]) -> list[dict[str, Any]]:
    """The JSON of each SSE frame, checking that its `event:` line names its type."""
    parsed = []
    for frame in frames:
        head, data = frame.decode().split("\n", 1)
        event = orjson.loads(data.removeprefix("data: "))
        assert head == f"event: {event['type']}"
        parsed.append(event)
    return parsed


def shell() -> dict[str, Any]:
    """A response object before any output."""
    return {"id": "resp_1", "status": "in_progress", "output": [], "error": None}


def delta(**fields: Any) -> dict[str, Any]:
    """A chat chunk with one choice's delta."""
    return {"choices": [{"index": 0, "delta": fields, "finish_reason": None}]}


def test_text_then_a_tool_call_are_two_items_in_order() -> None:
    writer = ResponseWriter(shell())
    frames = writer.start()
    frames += writer.feed(delta(content="Let me check."))
    call = {"index": 0, "id": "call_1", "function": {"name": "f", "arguments": '{"a"'}}
    frames += writer.feed(delta(tool_calls=[call]))
    frames += writer.feed(delta(tool_calls=[{"index": 0, "function": {"arguments": ": 1}"}}]))
    frames += writer.feed({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
    frames += writer.complete()
    seen = events(frames)
    assert [e["sequence_number"] for e in seen] == list(range(len(seen)))
    assert [e["type"] for e in seen] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    final = seen[-1]["response"]
    assert [item["type"] for item in final["output"]] == ["message", "function_call"]
    assert final["output"][1]["arguments"] == '{"a": 1}'
    assert final["output"][1]["call_id"] == "call_1"


def test_a_cut_reply_is_incomplete_and_a_broken_stream_fails() -> None:
    writer = ResponseWriter(shell())
    writer.feed({"choices": [{"index": 0, "delta": {"content": "x"}, "finish_reason": "length"}]})
    last = events(writer.complete())[-1]
    assert last["type"] == "response.incomplete"
    assert last["response"]["incomplete_details"] == {"reason": "max_output_tokens"}

    broken = ResponseWriter(shell())
    error = {"message": "The miner broke off.", "type": "upstream_error", "code": "miner_failed"}
    failed = events(broken.fail(error))
    assert [e["type"] for e in failed] == ["error", "response.failed"]
    assert failed[1]["response"]["status"] == "failed"
    assert failed[1]["response"]["error"] == {
        "code": "miner_failed",
        "message": "The miner broke off.",
    }


def test_a_miners_reasoning_is_a_reasoning_item_before_its_message() -> None:
    # Failed before: reasoning_content was dropped; a client saw the answer only.
    writer = ResponseWriter(shell())
    frames = writer.start()
    frames += writer.feed(delta(role="assistant", reasoning_content="The capital "))
    frames += writer.feed(delta(reasoning="is Paris."))  # vLLM's newer name for it
    frames += writer.feed(delta(content="Paris."))
    usage = {"prompt_tokens": 5, "completion_tokens": 9, "total_tokens": 14}
    usage["completion_tokens_details"] = {"reasoning_tokens": 7}  # type: ignore[assignment]
    frames += writer.feed({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    frames += writer.feed({"choices": [], "usage": usage})
    frames += writer.complete()
    seen = events(frames)
    assert [e["type"] for e in seen][2:7] == [
        "response.output_item.added",
        "response.reasoning_text.delta",
        "response.reasoning_text.delta",
        "response.reasoning_text.done",
        "response.output_item.done",
    ]
    assert seen[5]["text"] == "The capital is Paris."
    final = seen[-1]["response"]
    reasoning, message = final["output"]
    assert reasoning["type"] == "reasoning" and reasoning["status"] == "completed"
    assert reasoning["content"] == [{"type": "reasoning_text", "text": "The capital is Paris."}]
    assert message["content"][0]["text"] == "Paris."
    assert final["usage"]["output_tokens_details"] == {"reasoning_tokens": 7}
