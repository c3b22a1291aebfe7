"""Structured output through the official OpenAI client: JSON schemas, tools, n, stream shapes.

Seven sim miners answer each request: fluent prose, broken or non-conforming JSON, wrong tool
calls, and one right reply, which is the slowest and has the least incentive. Whatever the
strategy and whether streamed or not, the right one must come back, every time.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import jsonschema
import openai
import pytest

from tests.support import GatewayProcess, profiles

pytestmark = pytest.mark.integration

WEATHER: Any = [{"role": "user", "content": "What is the weather in Paris right now?"}]
CITY = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1}},
    "required": ["city", "days"],
    "additionalProperties": False,
}
SCHEMA_FORMAT: Any = {
    "type": "json_schema",
    "json_schema": {"name": "weather", "schema": CITY, "strict": True},
}
TOOLS: Any = [
    {
        "type": "function",
        "function": {"name": "get_weather", "description": "Weather now.", "parameters": CITY},
    }
]
STRATEGIES = ("best_of", "race")
REPEATS = 3
FAST = {"ms": 0, "tokens_per_s": 0}


def miner(structured: str, latency: float = 0, **fields: Any) -> dict[str, Any]:
    """A sim miner profile answering structured requests the given way."""
    return {"structured": structured, "latency": {"ms": latency}, **fields}


JSON_POOL = profiles(
    miner("prose"),
    miner("prose", quality="partial"),
    miner("prose", quality="wrong"),
    miner("broken_json"),
    miner("wrong_json"),
    miner("wrong_tool"),
    miner("follow", latency=300),
)
TOOL_POOL = profiles(
    miner("prose"),
    miner("prose", quality="partial"),
    miner("wrong_tool"),
    miner("broken_json"),
    miner("wrong_json"),
    miner("wrong_tool", latency=50),
    miner("follow", latency=300),
)
RIGHT = 6


@contextmanager
def serve(sim_pool: Callable[..., Any], pool: Any, *args: str) -> Iterator[openai.OpenAI]:
    """A gateway over the pool and an OpenAI client for it, both closed afterwards."""
    _, path = sim_pool(pool)
    gateway = GatewayProcess("--metagraph", str(path), *args)
    client = openai.OpenAI(base_url=gateway.base_url + "/v1", api_key="-", max_retries=0)
    try:
        yield client
    finally:
        client.close()
        gateway.stop()


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


def block_of(obj: Any) -> dict[str, Any]:
    """The `bitgate` block of a response or chunk."""
    return dict((obj.model_extra or {})["bitgate"])


def streamed(client: openai.OpenAI, **request: Any) -> tuple[list[Any], dict[str, Any]]:
    """A streamed chat request's chunks and the bitgate block of its last chunk."""
    chunks = list(client.chat.completions.create(model="sim", stream=True, **request))
    return chunks, block_of(chunks[-1])


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("stream", [False, True])
def test_a_schema_valid_reply_wins_over_prose_and_broken_json(
    json_gateway: openai.OpenAI, strategy: str, stream: bool
) -> None:
    request: dict[str, Any] = {
        "messages": WEATHER,
        "response_format": SCHEMA_FORMAT,
        "extra_body": {"bitgate": {"strategy": strategy}},
    }
    for _ in range(REPEATS):
        if stream:
            chunks, block = streamed(json_gateway, **request)
            content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        else:
            reply = json_gateway.chat.completions.create(model="sim", **request)
            block, content = block_of(reply), reply.choices[0].message.content or ""
        assert block["miner"]["uid"] == RIGHT, json.dumps(block["candidates"])
        jsonschema.validate(json.loads(content), CITY)
        if strategy == "best_of":
            reasons = {c["uid"]: c.get("reasons", []) for c in block["candidates"]}
            assert all("schema" in reasons[uid] for uid in range(6))


def called(client: openai.OpenAI, stream: bool, **request: Any) -> tuple[str, str, str, Any]:
    """One tools request: the call's name and arguments, the finish reason, the block."""
    if stream:
        chunks, block = streamed(client, **request)
        parts = [
            call for c in chunks if c.choices for call in (c.choices[0].delta.tool_calls or [])
        ]
        name = "".join(p.function.name or "" for p in parts if p.function)
        arguments = "".join(p.function.arguments or "" for p in parts if p.function)
        finish = [c.choices[0].finish_reason for c in chunks if c.choices][-1]
        return name, arguments, str(finish), block
    reply = client.chat.completions.create(model="sim", **request)
    calls = reply.choices[0].message.tool_calls or []
    if not calls:
        return "", "", str(reply.choices[0].finish_reason), block_of(reply)
    assert calls[0].type == "function"
    function = calls[0].function
    return function.name, function.arguments, str(reply.choices[0].finish_reason), block_of(reply)


# best_of hears every miner, so under tool_choice auto the calls outvote the prose; a race
# returns the first valid reply, and under auto prose is valid, so it is asked to call.
@pytest.mark.parametrize(("strategy", "choice"), [("best_of", "auto"), ("race", "required")])
@pytest.mark.parametrize("stream", [False, True])
def test_a_valid_tool_call_wins_over_prose_and_wrong_calls(
    tool_gateway: openai.OpenAI, strategy: str, choice: str, stream: bool
) -> None:
    request: dict[str, Any] = {
        "messages": WEATHER,
        "tools": TOOLS,
        "tool_choice": choice,
        "extra_body": {"bitgate": {"strategy": strategy}},
    }
    for _ in range(REPEATS):
        name, arguments, finish, block = called(tool_gateway, stream, **request)
        assert block["miner"]["uid"] == RIGHT, json.dumps(block["candidates"])
        assert name == "get_weather" and finish == "tool_calls"
        assert json.loads(arguments) == {"city": "Paris", "days": 1}


@pytest.mark.parametrize("stream", [False, True])
def test_a_race_under_tool_choice_auto_never_returns_a_broken_call(
    tool_gateway: openai.OpenAI, stream: bool
) -> None:
    request = {"messages": WEATHER, "tools": TOOLS, "extra_body": {"bitgate": {"strategy": "race"}}}
    name, arguments, _, block = called(tool_gateway, stream, **request)
    assert block["miner"]["uid"] in (0, 1, RIGHT)  # prose is a valid answer under auto
    if name:
        assert json.loads(arguments) == {"city": "Paris", "days": 1}


@pytest.mark.parametrize(
    "choice", ["required", {"type": "function", "function": {"name": "get_weather"}}]
)
def test_tool_choice_required_or_named_beats_a_prose_majority(
    sim_pool: Callable[..., Any], choice: Any
) -> None:
    pool = profiles(*[miner("prose")] * 4, miner("follow", latency=200))
    with serve(sim_pool, pool) as client:
        reply = client.chat.completions.create(
            model="sim", messages=WEATHER, tools=TOOLS, tool_choice=choice
        )
        assert block_of(reply)["miner"]["uid"] == 4
        assert reply.choices[0].message.tool_calls


@pytest.fixture
def quality_gateway(sim_pool: Callable[..., Any]) -> Iterator[openai.OpenAI]:
    """Four miners of falling quality: good, partial, wrong, refusal (reasoning on)."""
    pool = profiles(
        *(
            {"quality": q, "reasoning": True, "latency": {"ms": 40 * i}}
            for i, q in enumerate(("good", "partial", "wrong", "refusal"))
        )
    )
    with serve(sim_pool, pool) as client:
        yield client


QUESTION: Any = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.mark.parametrize("stream", [False, True])
def test_n_2_returns_the_best_two_distinct_replies(
    quality_gateway: openai.OpenAI, stream: bool
) -> None:
    request: dict[str, Any] = {"messages": QUESTION, "n": 2}
    if stream:
        chunks, block = streamed(quality_gateway, **request)
        texts = {0: "", 1: ""}
        for chunk in chunks:
            for choice in chunk.choices:
                texts[choice.index] += choice.delta.content or ""
    else:
        reply = quality_gateway.chat.completions.create(model="sim", **request)
        block = block_of(reply)
        assert [c.index for c in reply.choices] == [0, 1]
        texts = {c.index: c.message.content or "" for c in reply.choices}
    rewards = {c["uid"]: c["reward"] for c in block["candidates"]}
    best_two = sorted(rewards, key=lambda uid: -rewards[uid])[:2]
    assert [c["uid"] for c in block["choices"]] == best_two
    assert best_two[0] == block["miner"]["uid"] == 0 and 3 not in best_two  # never the refusal
    assert "Paris" in texts[0] and texts[0] != texts[1] and texts[1]


def test_n_2_in_a_race_returns_the_first_two_usable(sim_pool: Callable[..., Any]) -> None:
    pool = profiles(
        {"quality": "good", "latency": {"ms": 600}},
        {"quality": "refusal", "latency": {"ms": 0}},
        {"quality": "partial", "latency": {"ms": 50}},
        {"quality": "good", "latency": {"ms": 100}},
    )
    with serve(sim_pool, pool, "--strategy", "race") as client:
        reply = client.chat.completions.create(model="sim", messages=QUESTION, n=2)
        block = block_of(reply)
        assert [c["uid"] for c in block["choices"]] == [2, 3]  # the refusal is not usable
        assert len(reply.choices) == 2


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_the_stream_keeps_reasoning_logprobs_and_fingerprint(
    quality_gateway: openai.OpenAI, strategy: str
) -> None:
    chunks, block = streamed(
        quality_gateway,
        messages=QUESTION,
        logprobs=True,
        extra_body={"bitgate": {"strategy": strategy}},
    )
    assert all(c.system_fingerprint == "fp_bitgate_sim" for c in chunks)
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    reasoning = "".join((d.model_extra or {}).get("reasoning_content") or "" for d in deltas)
    assert reasoning.startswith("Thinking about")
    tokens = [
        t
        for c in chunks
        if c.choices and c.choices[0].logprobs
        for t in c.choices[0].logprobs.content or []
    ]
    text = "".join(d.content or "" for d in deltas)
    assert "".join(t.token for t in tokens) == text and text
    assert block["miner"]["uid"] == (0 if strategy == "best_of" else block["miner"]["uid"])


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("include_usage", [False, True])
def test_a_usage_chunk_ends_the_stream_only_when_asked(
    quality_gateway: openai.OpenAI, strategy: str, include_usage: bool
) -> None:
    chunks, block = streamed(
        quality_gateway,
        messages=QUESTION,
        stream_options={"include_usage": include_usage},
        extra_body={"bitgate": {"strategy": strategy}},
    )
    empty = [c for c in chunks if not c.choices]
    if include_usage:
        assert len(empty) == 1 and chunks[-1] is empty[0]
        usage = chunks[-1].usage
        assert usage is not None and usage.completion_tokens > 0
        assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    else:
        assert empty == [] and all(c.usage is None for c in chunks)
        assert chunks[-1].choices[0].finish_reason == "stop"
    assert block["miner"]["uid"] >= 0


def test_usage_is_the_winners_as_openai_reports_it(quality_gateway: openai.OpenAI) -> None:
    reply = quality_gateway.chat.completions.create(model="sim", messages=QUESTION)
    assert reply.usage is not None
    words = len((reply.choices[0].message.content or "").split())
    assert reply.usage.completion_tokens == words  # the sim counts words as tokens


def test_a_slow_best_of_stream_sends_keep_alive_comments(sim_pool: Callable[..., Any]) -> None:
    _, path = sim_pool(profiles({"quality": "good", "latency": {"ms": 1500}}))
    gateway = GatewayProcess("--metagraph", str(path), env={"BITGATE_SSE_KEEPALIVE_S": "0.2"})
    try:
        body = {"model": "sim", "messages": QUESTION, "stream": True}
        with httpx.stream("POST", gateway.base_url + "/v1/chat/completions", json=body) as resp:
            assert resp.status_code == 200
            raw = resp.read().decode()
        assert raw.startswith(": keep-alive\n\n")
        assert raw.rstrip().endswith("data: [DONE]") and "Paris" in raw
    finally:
        gateway.stop()


def test_uids_choose_the_miners_through_the_client(quality_gateway: openai.OpenAI) -> None:
    reply = quality_gateway.chat.completions.create(
        model="sim", messages=QUESTION, extra_body={"bitgate": {"uids": [2, 3]}}
    )
    block = block_of(reply)
    assert sorted(c["uid"] for c in block["candidates"]) == [2, 3]
    with pytest.raises(openai.BadRequestError) as caught:
        quality_gateway.chat.completions.create(
            model="sim", messages=QUESTION, extra_body={"bitgate": {"uids": [42]}}
        )
    assert caught.value.param == "bitgate.uids"
