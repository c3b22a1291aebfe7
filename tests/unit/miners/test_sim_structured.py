"""Sim miners asked for JSON or offered tools: each `structured` behaviour, over real sockets."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from miners.sim.pool import start_pool
from miners.sim.profiles import STRUCTURED, MinerProfile
from miners.sim.structured import instance, spoil, subject
from ranking.base import Candidate, ToolCall
from ranking.constraints import constraints_of, tool_calls_of
from ranking.request_filters import blocking_reasons

pytestmark = pytest.mark.integration

CHAT = "/v1/chat/completions"
QUESTION = "What is the weather in Paris right now?"
CITY = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1}},
    "required": ["city", "days"],
    "additionalProperties": False,
}
SCHEMA_FORMAT = {"type": "json_schema", "json_schema": {"name": "w", "schema": CITY}}
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": CITY}}]
# What the request-aware filters say of each behaviour's reply.
EXPECTED = {
    "follow": [],
    "prose": ["schema"],
    "broken_json": ["schema"],
    "wrong_json": ["schema"],
    "wrong_tool": ["schema"],
}
EXPECTED_TOOLS = {
    "follow": [],
    "prose": [],  # prose is allowed under tool_choice auto
    "broken_json": ["tool_call"],
    "wrong_json": ["tool_call"],
    "wrong_tool": ["tool_call"],
}


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    """One client session per test."""
    async with aiohttp.ClientSession() as session:
        yield session


async def ask(
    client: aiohttp.ClientSession, structured: str, stream: bool = False, **fields: Any
) -> bytes:
    """One chat request to a one-miner pool of this behaviour; the raw reply."""
    profile = MinerProfile.model_validate({"structured": structured, "reasoning": True})
    body = {"model": "sim", "messages": [{"role": "user", "content": QUESTION}], **fields}
    async with await start_pool([profile]) as pool:
        url = pool.urls[0] + CHAT
        async with client.post(url, json={**body, "stream": stream}) as resp:
            assert resp.status == 200
            return await resp.read()


def candidate(message: dict[str, Any]) -> Candidate:
    """The reply as the gateway hands it to the filters."""
    calls = tool_calls_of(message)
    return Candidate(0, message.get("content") or "", tool_calls=calls)


@pytest.mark.parametrize("structured", STRUCTURED)
async def test_each_behaviour_answers_response_format_as_described(
    client: aiohttp.ClientSession, structured: str
) -> None:
    fields = {"response_format": SCHEMA_FORMAT}
    doc = json.loads(await ask(client, structured, **fields))
    message = doc["choices"][0]["message"]
    assert message["reasoning_content"].startswith("Thinking about")
    assert blocking_reasons(constraints_of(fields), candidate(message)) == EXPECTED[structured]


@pytest.mark.parametrize("structured", STRUCTURED)
async def test_each_behaviour_answers_tools_as_described(
    client: aiohttp.ClientSession, structured: str
) -> None:
    fields = {"tools": TOOLS}
    doc = json.loads(await ask(client, structured, **fields))
    choice = doc["choices"][0]
    verdict = blocking_reasons(constraints_of(fields), candidate(choice["message"]))
    assert verdict == EXPECTED_TOOLS[structured]
    if structured == "prose":
        assert choice["finish_reason"] == "stop" and "tool_calls" not in choice["message"]
    else:
        assert choice["finish_reason"] == "tool_calls"
        assert choice["message"]["content"] is None
    if structured == "follow":
        call = choice["message"]["tool_calls"][0]["function"]
        assert json.loads(call["arguments"]) == {"city": "Paris", "days": 1}


async def test_tool_choice_none_gets_prose_even_from_a_follower(
    client: aiohttp.ClientSession,
) -> None:
    doc = json.loads(await ask(client, "follow", tools=TOOLS, tool_choice="none"))
    assert "tool_calls" not in doc["choices"][0]["message"]


async def test_a_streamed_tool_call_reassembles_to_the_same_call(
    client: aiohttp.ClientSession,
) -> None:
    whole = json.loads(await ask(client, "follow", tools=TOOLS))
    raw = await ask(client, "follow", stream=True, tools=TOOLS, logprobs=True)
    events = [p.removeprefix("data: ") for p in raw.decode().split("\n\n") if p]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["system_fingerprint"] == "fp_bitgate_sim" for c in chunks)
    deltas = [c["choices"][0]["delta"] for c in chunks]
    reasoning = "".join(d.get("reasoning_content", "") for d in deltas)
    arguments = "".join(
        call["function"].get("arguments", "") for d in deltas for call in d.get("tool_calls", [])
    )
    named = [
        call["function"]["name"]
        for d in deltas
        for call in d.get("tool_calls", [])
        if "name" in call.get("function", {})
    ]
    assert reasoning == whole["choices"][0]["message"]["reasoning_content"]
    assert named == ["get_weather"]
    expected = whole["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]
    assert arguments == expected and len([d for d in deltas if d.get("tool_calls")]) > 2
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


async def test_logprobs_come_when_asked(client: aiohttp.ClientSession) -> None:
    doc = json.loads(await ask(client, "prose", logprobs=True))
    tokens = doc["choices"][0]["logprobs"]["content"]
    assert "".join(t["token"] for t in tokens) == doc["choices"][0]["message"]["content"]
    plain = json.loads(await ask(client, "prose"))
    assert plain["choices"][0]["logprobs"] is None


def test_instances_follow_nested_schemas() -> None:
    schema = {
        "$defs": {"day": {"type": "object", "properties": {"date": {"format": "date"}}}},
        "type": "object",
        "properties": {
            "city": {"type": "string", "minLength": 3},
            "days": {"type": "array", "items": {"$ref": "#/$defs/day"}, "minItems": 2},
            "unit": {"enum": ["celsius", "fahrenheit"]},
            "note": {"type": ["null", "string"]},
        },
    }
    value = instance(schema, subject(QUESTION))
    assert value == {
        "city": "Paris",
        "days": [{"date": "2026-01-01"}, {"date": "2026-01-01"}],
        "unit": "celsius",
        "note": "Paris",
    }
    assert spoil({"city": "Paris", "days": 1}, CITY) == {"days": 1}
    assert ToolCall("f", "{}") == ToolCall("f", "{}")
