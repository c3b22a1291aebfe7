"""`POST /v1/responses` through openai-python's Responses client, against sim miners.

The same pools as the chat structured-output tests: prose, broken JSON and wrong tool calls
answer first; only uid 6 follows the request. A Responses request is ranked as the chat one
is, so uid 6 must win whether streamed or not, and the events must be the ones the client's
stream accumulator accepts, numbered in order.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import jsonschema
import openai
import pytest
from pydantic import BaseModel

from tests.integration.test_structured import CITY, JSON_POOL, RIGHT, TOOL_POOL, serve
from tests.support import profiles

pytestmark = pytest.mark.integration

QUESTION = "What is the weather in Paris right now?"
TOOLS: Any = [
    {
        "type": "function",
        "name": "get_weather",
        "description": "Weather now.",
        "parameters": CITY,
        "strict": True,
    }
]
SCHEMA: Any = {"format": {"type": "json_schema", "name": "weather", "schema": CITY, "strict": True}}
STRATEGIES = ("best_of", "race")
TEXT_EVENTS = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
    "response.output_text.delta",
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
]


class City(BaseModel):
    """The schema CITY as a pydantic model, for `responses.parse`."""

    city: str
    days: int


def block_of(response: Any) -> dict[str, Any]:
    """The `bitgate` block of a Responses object."""
    return dict((response.model_extra or {})["bitgate"])


def by_strategy(strategy: str) -> dict[str, Any]:
    """`extra_body` choosing a strategy."""
    return {"extra_body": {"bitgate": {"strategy": strategy}}}


@pytest.fixture
def plain_gateway(sim_pool: Callable[..., Any]) -> Iterator[openai.OpenAI]:
    """Three fluent sim miners."""
    with serve(sim_pool, profiles("good", "good", "good")) as client:
        yield client


@pytest.fixture
def json_gateway(sim_pool: Callable[..., Any]) -> Iterator[openai.OpenAI]:
    """Seven miners asked for JSON; only uid 6 conforms."""
    with serve(sim_pool, JSON_POOL) as client:
        yield client


@pytest.fixture
def tool_gateway(sim_pool: Callable[..., Any]) -> Iterator[openai.OpenAI]:
    """Seven miners offered get_weather; only uid 6 calls it right."""
    with serve(sim_pool, TOOL_POOL) as client:
        yield client


def test_a_plain_response_has_text_usage_and_the_block(plain_gateway: openai.OpenAI) -> None:
    response = plain_gateway.responses.create(
        model="sim",
        input=[{"role": "user", "content": [{"type": "input_text", "text": "Say hello."}]}],
        instructions="You are terse.",
        max_output_tokens=64,
        temperature=0.5,
        metadata={"run": "ci"},
    )
    assert response.object == "response" and response.status == "completed"
    assert response.output_text and response.output[0].type == "message"
    assert response.usage is not None and response.usage.output_tokens > 0
    assert response.usage.total_tokens == response.usage.input_tokens + response.usage.output_tokens
    assert response.metadata == {"run": "ci"} and response.max_output_tokens == 64
    block = block_of(response)
    assert block["pool"] == "sim" and len(block["candidates"]) == 3


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_streamed_response_sends_the_events_in_order(
    plain_gateway: openai.OpenAI, strategy: str
) -> None:
    events = list(
        plain_gateway.responses.create(
            model="sim", input="Tell me a story.", stream=True, **by_strategy(strategy)
        )
    )
    kinds = [e.type for e in events]
    assert [k for i, k in enumerate(kinds) if i == 0 or k != kinds[i - 1]] == TEXT_EVENTS
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    final = events[-1].response
    assert text and final.output_text == text and final.usage.output_tokens > 0
    assert block_of(final)["miner"]["uid"] in (0, 1, 2)


def test_the_stream_helper_accumulates_the_final_response(plain_gateway: openai.OpenAI) -> None:
    with plain_gateway.responses.stream(model="sim", input="Tell me a story.") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert final.output_text == "".join(deltas) and final.status == "completed"


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("stream", [False, True])
def test_a_schema_valid_reply_wins(
    json_gateway: openai.OpenAI, strategy: str, stream: bool
) -> None:
    if stream:
        with json_gateway.responses.stream(
            model="sim", input=QUESTION, text_format=City, **by_strategy(strategy)
        ) as events:
            response: Any = events.get_final_response()
    else:
        response = json_gateway.responses.parse(
            model="sim", input=QUESTION, text_format=City, **by_strategy(strategy)
        )
    assert block_of(response)["miner"]["uid"] == RIGHT, json.dumps(block_of(response))
    assert isinstance(response.output_parsed, City)
    jsonschema.validate(json.loads(response.output_text), CITY)


def test_json_schema_by_hand_and_json_object(json_gateway: openai.OpenAI) -> None:
    response = json_gateway.responses.create(model="sim", input=QUESTION, text=SCHEMA)
    assert block_of(response)["miner"]["uid"] == RIGHT
    assert response.text is not None and response.text.format is not None
    assert response.text.format.type == "json_schema"
    jsonschema.validate(json.loads(response.output_text), CITY)


@pytest.mark.parametrize(("strategy", "choice"), [("best_of", "auto"), ("race", "required")])
@pytest.mark.parametrize("stream", [False, True])
def test_a_valid_tool_call_comes_back_as_a_function_call_item(
    tool_gateway: openai.OpenAI, strategy: str, choice: str, stream: bool
) -> None:
    request: Any = {"model": "sim", "input": QUESTION, "tools": TOOLS, "tool_choice": choice}
    if stream:
        events = list(
            tool_gateway.responses.create(stream=True, **request, **by_strategy(strategy))
        )
        kinds = [e.type for e in events]
        assert "response.function_call_arguments.delta" in kinds
        done = [e for e in events if e.type == "response.function_call_arguments.done"]
        assert json.loads(done[0].arguments) == {"city": "Paris", "days": 1}
        response: Any = events[-1].response
    else:
        response = tool_gateway.responses.create(**request, **by_strategy(strategy))
    assert block_of(response)["miner"]["uid"] == RIGHT
    calls = [item for item in response.output if item.type == "function_call"]
    assert calls[0].name == "get_weather" and calls[0].call_id
    assert json.loads(calls[0].arguments) == {"city": "Paris", "days": 1}


def test_a_named_tool_choice_and_the_tool_result_turn(tool_gateway: openai.OpenAI) -> None:
    choice: Any = {"type": "function", "name": "get_weather"}
    first = tool_gateway.responses.create(
        model="sim", input=QUESTION, tools=TOOLS, tool_choice=choice
    )
    call = next(item for item in first.output if item.type == "function_call")
    history: Any = [
        {"role": "user", "content": QUESTION},
        {
            "type": "function_call",
            "call_id": call.call_id,
            "name": call.name,
            "arguments": call.arguments,
        },
        {"type": "function_call_output", "call_id": call.call_id, "output": '{"celsius": 18}'},
    ]
    second = tool_gateway.responses.create(
        model="sim", input=history, tools=TOOLS, tool_choice="none"
    )
    assert second.status == "completed" and second.output_text


@pytest.mark.parametrize(
    ("request_fields", "param"),
    [
        ({"previous_response_id": "resp_1"}, "previous_response_id"),
        ({"store": True}, "store"),
        ({"background": True}, "background"),
        ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]},
            "input[0].content[0].type",
        ),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0].type"),
        (
            {"text": {"format": {"type": "json_schema", "name": "x", "schema": []}}},
            "text.format.schema",
        ),
        ({"max_output_tokens": 0}, "max_output_tokens"),
        ({"tool_choice": {"type": "function", "name": "nope"}, "tools": TOOLS}, "tool_choice"),
    ],
)
def test_what_a_stateless_gateway_cannot_do_is_a_400_naming_the_field(
    plain_gateway: openai.OpenAI, request_fields: dict[str, Any], param: str
) -> None:
    body = {"model": "sim", "input": "Hi", **request_fields}
    reply = httpx.post(f"{plain_gateway.base_url}responses", json=body, timeout=10)
    assert reply.status_code == 400, reply.text
    error = reply.json()["error"]
    assert error["param"] == param and error["type"] == "invalid_request_error"


def test_an_unknown_model_is_a_404(plain_gateway: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        plain_gateway.responses.create(model="nope", input="Hi")


def test_the_async_client_and_chat_parse(json_gateway: openai.OpenAI) -> None:
    parsed = json_gateway.chat.completions.parse(
        model="sim", messages=[{"role": "user", "content": QUESTION}], response_format=City
    )
    assert parsed.choices[0].message.parsed == City(city="Paris", days=1)

    async def both() -> tuple[str, str]:
        async with openai.AsyncOpenAI(
            base_url=str(json_gateway.base_url), api_key="-", max_retries=0
        ) as client:
            chat = await client.chat.completions.create(
                model="sim", messages=[{"role": "user", "content": "Hi"}]
            )
            deltas = [
                event.delta
                async for event in await client.responses.create(
                    model="sim", input="Hi", stream=True
                )
                if event.type == "response.output_text.delta"
            ]
            return chat.choices[0].message.content or "", "".join(deltas)

    chat, streamed = asyncio.run(both())
    assert chat and streamed


def test_a_race_winner_that_breaks_off_fails_the_response_stream(
    sim_pool: Callable[..., Any],
) -> None:
    pool = profiles({"failure": "drop_stream", "latency": 0}, {"quality": "good", "latency": 300})
    with serve(sim_pool, pool, "--timeout-s", "1.5") as client:
        events = list(
            client.responses.create(
                model="sim", input="Why is the sky blue?", stream=True, **by_strategy("race")
            )
        )
    kinds = [e.type for e in events]
    assert "response.output_text.delta" in kinds  # text had reached the client
    assert kinds[-2:] == ["error", "response.failed"]
    failed = events[-1].response
    assert failed.status == "failed" and failed.error is not None
    assert "broke off" in failed.error.message
    assert block_of(failed)["miner"]["uid"] == 0


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_miners_reasoning_comes_back_as_a_reasoning_item(
    sim_pool: Callable[..., Any], strategy: str
) -> None:
    # Failed before: the miners' reasoning_content was dropped from Responses output.
    pool = profiles({"quality": "good", "reasoning": True}, {"quality": "good", "reasoning": True})
    with serve(sim_pool, pool) as client:
        whole = client.responses.create(model="sim", input="Why?", **by_strategy(strategy))
        with client.responses.stream(model="sim", input="Why?", **by_strategy(strategy)) as stream:
            thought = "".join(e.delta for e in stream if e.type == "response.reasoning_text.delta")
            final = stream.get_final_response()
    for response in (whole, final):
        kinds = [item.type for item in response.output]
        assert kinds == ["reasoning", "message"], kinds
        reasoning = response.output[0]
        assert reasoning.content is not None
        assert reasoning.content[0].text.startswith("Thinking about: Why?")
        assert response.output_text
    assert thought == final.output[0].content[0].text  # type: ignore[union-attr]
