"""Strategies and what the request asked for: n > 1, the cheap filters in a race, keep-alive."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import orjson

from gateway.serving.plan import Plan
from gateway.serving.responses import SSE_KEEPALIVE
from gateway.serving.result import Result
from gateway.serving.strategies.base import LiveStream
from gateway.serving.strategies.best_of import BestOf
from gateway.serving.strategies.race import Race
from ranking.base import Prompt
from ranking.constraints import constraints_of
from tests.unit.gateway.strategies.fakes import FakeMiners, Script, TextRanker, plan, stages

REFUSAL = "I'm sorry, but I can't help with that."
ANSWER = "Paris is the capital of France and its largest city, on the Seine."
JSON_FORMAT = {"response_format": {"type": "json_object"}}


def with_(base: Plan, **changes: Any) -> Plan:
    """The plan with some fields changed."""
    return dataclasses.replace(base, **changes)


def asking(base: Plan, **request: Any) -> Plan:
    """The plan with the constraints of a request carrying these fields."""
    prompt = Prompt(base.prompt.text, base.prompt.last_user, constraints=constraints_of(request))
    return with_(base, prompt=prompt)


async def collect(stream: LiveStream) -> list[bytes]:
    """Every event of a stream."""
    return [event async for event in stream.events]


def payloads(events: list[bytes]) -> list[Any]:
    """The JSON of each data event; comments and [DONE] as they are."""
    out: list[Any] = []
    for event in events:
        data = event.removeprefix(b"data: ").strip()
        if event.startswith(b":") or data == b"[DONE]":
            out.append(data if data == b"[DONE]" else event)
        else:
            out.append(orjson.loads(data))
    return out


async def test_best_of_with_n_returns_the_top_n_distinct_replies() -> None:
    miners = FakeMiners(
        {0: Script(["Paris."]), 1: Script(["Paris."]), 2: Script(["Lyon."]), 3: Script(["meh"])}
    )
    ranker = TextRanker({"Paris.": 0.9, "Lyon.": 0.5, "meh": 0.3})
    result = await BestOf(miners, stages()).serve(with_(plan("best_of", [0, 1, 2, 3], ranker), n=2))
    assert isinstance(result, Result)
    block = result.block()
    assert [c["uid"] for c in block["choices"]] == [0, 2]  # uid 1 says what uid 0 said
    assert [c["index"] for c in block["choices"]] == [0, 1]


async def test_a_slow_best_of_stream_keeps_alive_then_replays() -> None:
    gate = asyncio.Event()
    miners = FakeMiners({0: Script(["Paris."], gate=gate)})
    served = await BestOf(miners, stages()).serve(
        with_(plan("best_of", [0], stream=True), keepalive_s=0.01)
    )
    assert isinstance(served, LiveStream)
    events = served.events
    assert await anext(events) == SSE_KEEPALIVE
    gate.set()
    rest = payloads([event async for event in events])
    assert rest[-1] == b"[DONE]"
    chunks = [p for p in rest if isinstance(p, dict)]
    assert chunks[0]["choices"][0]["delta"]["content"] == "Paris."
    assert chunks[-1]["bitgate"]["miner"]["uid"] == 0


async def test_a_failure_after_the_keep_alive_started_is_an_error_event() -> None:
    gate = asyncio.Event()
    miners = FakeMiners({0: Script(status="error", gate=gate)})
    served = await BestOf(miners, stages()).serve(
        with_(plan("best_of", [0], stream=True), keepalive_s=0.01)
    )
    assert isinstance(served, LiveStream)
    assert await anext(served.events) == SSE_KEEPALIVE
    gate.set()
    rest = payloads([event async for event in served.events])
    assert b"[DONE]" not in rest
    assert rest[-1]["error"]["code"] == "all_miners_failed"


async def test_a_fast_best_of_stream_is_a_result_so_errors_keep_their_status() -> None:
    miners = FakeMiners({0: Script(["Paris."])})
    served = await BestOf(miners, stages()).serve(plan("best_of", [0], stream=True))
    assert isinstance(served, Result)


async def test_race_passes_over_a_refusal() -> None:
    slow = Script([ANSWER], latency_ms=50.0)
    miners = FakeMiners({0: Script([REFUSAL]), 1: slow})
    result = await Race(miners, stages()).serve(plan("race", [0, 1]))
    assert isinstance(result, Result) and result.winner.neuron.uid == 1


async def test_race_passes_over_prose_when_json_was_asked() -> None:
    miners = FakeMiners({0: Script([ANSWER]), 1: Script(['{"capital": "Paris"}'])})
    served = await Race(miners, stages()).serve(asking(plan("race", [0, 1]), **JSON_FORMAT))
    assert isinstance(served, Result) and served.winner.neuron.uid == 1


async def test_race_with_n_returns_the_first_n_usable() -> None:
    gate = asyncio.Event()
    miners = FakeMiners(
        {
            0: Script([REFUSAL]),
            1: Script([ANSWER]),
            2: Script(["Lyon is not it."]),
            3: Script(gate=gate),
        }
    )
    result = await Race(miners, stages()).serve(with_(plan("race", [0, 1, 2, 3]), n=2))
    assert isinstance(result, Result)
    assert [c["uid"] for c in result.block()["choices"]] == [1, 2]
    gate.set()


async def test_race_with_nothing_usable_returns_the_best_of_the_rest() -> None:
    miners = FakeMiners({0: Script([REFUSAL]), 1: Script(["   "])})
    ranker = TextRanker({REFUSAL: 0.2})
    result = await Race(miners, stages()).serve(plan("race", [0, 1], ranker))
    assert isinstance(result, Result) and result.winner.neuron.uid == 0


async def test_a_live_race_does_not_forward_a_refusal() -> None:
    miners = FakeMiners({0: Script([REFUSAL]), 1: Script([ANSWER], latency_ms=30.0)})
    served = await Race(miners, stages()).serve(plan("race", [0, 1], stream=True))
    assert isinstance(served, LiveStream)
    assert served.headers["x-bitgate-miner-uid"] == "1"
    sent = payloads(await collect(served))
    text = "".join(p["choices"][0]["delta"].get("content", "") for p in sent if isinstance(p, dict))
    assert text == ANSWER


async def test_a_live_race_ends_on_a_finish_chunk_without_an_unasked_usage_chunk() -> None:
    miners = FakeMiners({0: Script([ANSWER])})
    served = await Race(miners, stages()).serve(plan("race", [0], stream=True))
    assert isinstance(served, LiveStream)
    sent = payloads(await collect(served))
    assert sent[-1] == b"[DONE]"
    last = sent[-2]
    assert last["choices"][0]["finish_reason"] == "stop" and "bitgate" in last
    assert all(p["choices"] for p in sent[:-1])


async def test_a_race_asked_for_json_waits_for_whole_replies() -> None:
    miners = FakeMiners({0: Script([ANSWER]), 1: Script(['{"capital": "Paris"}'])})
    base = asking(plan("race", [0, 1], stream=True), **JSON_FORMAT)
    served = await Race(miners, stages()).serve(with_(base, live=False))
    assert isinstance(served, Result) and served.winner.neuron.uid == 1
