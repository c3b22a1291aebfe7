"""race with fake miners: the first usable reply wins, the rest settle in the background;
a streaming client gets the winner's chunks live."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from gateway.errors import AllMinersFailed, DeadlinePassed
from gateway.serving.result import Result
from gateway.serving.strategies.base import LiveStream
from gateway.serving.strategies.race import Race
from tests.unit.gateway.strategies.fakes import (
    FakeMiners,
    Script,
    drain,
    plan,
    stages,
    stats,
    until,
)


async def test_the_first_usable_reply_wins_and_the_others_settle_later() -> None:
    slow = asyncio.Event()
    miners = FakeMiners({0: Script(["Paris, slowly."], gate=slow), 1: Script([" "]), 2: Script()})
    settled = stages()
    result = await Race(miners, settled).serve(plan("race", [0, 1, 2]))
    assert isinstance(result, Result)
    assert result.winner.neuron.uid == 2  # uid 1 answered first, but blank
    statuses = {c["uid"]: c["status"] for c in result.block()["candidates"]}
    assert statuses == {0: "pending", 1: "ok", 2: "ok"}
    assert stats(settled) == {}  # nothing is settled while a miner is still out
    slow.set()
    await drain(settled)
    seen = stats(settled)
    assert {uid: s.requests for uid, s in seen.items()} == {0: 1, 1: 1, 2: 1}
    assert {uid: s.wins for uid, s in seen.items()} == {0: 0, 1: 0, 2: 1}


async def test_no_usable_reply_is_a_502_and_is_settled() -> None:
    miners = FakeMiners({0: Script(status="error"), 1: Script([""])})
    settled = stages()
    with pytest.raises(AllMinersFailed):
        await Race(miners, settled).serve(plan("race", [0, 1]))
    assert {uid: s.requests for uid, s in stats(settled).items()} == {0: 1, 1: 1}


async def test_every_miner_timing_out_is_a_504() -> None:
    miners = FakeMiners({0: Script(status="timeout"), 1: Script(status="timeout")})
    with pytest.raises(DeadlinePassed):
        await Race(miners, stages()).serve(plan("race", [0, 1]))


async def test_a_cancelled_race_cancels_its_miner_calls() -> None:
    never = asyncio.Event()
    miners = FakeMiners({0: Script(gate=never), 1: Script(gate=never)})
    serving = asyncio.ensure_future(Race(miners, stages()).serve(plan("race", [0, 1])))
    await until(lambda: len(miners.waiting) == 2)
    serving.cancel()
    await asyncio.gather(serving, return_exceptions=True)
    await until(lambda: len(miners.cancelled) == 2)
    assert sorted(miners.cancelled) == [0, 1]


def events(raw: list[bytes]) -> list[Any]:
    """The SSE events' payloads, `[DONE]` as the string."""
    out: list[Any] = []
    for event in raw:
        assert event.startswith(b"data: ") and event.endswith(b"\n\n")
        data = event[6:-2]
        out.append("[DONE]" if data == b"[DONE]" else orjson.loads(data))
    return out


async def live(miners: FakeMiners, uids: list[int], settled: Any) -> LiveStream:
    """Serve a streaming race; it must come back as a live stream."""
    served = await Race(miners, settled).serve(plan("race", uids, stream=True))
    assert isinstance(served, LiveStream)
    return served


async def test_the_live_stream_forwards_the_winners_chunks_then_the_block_and_done() -> None:
    silent = asyncio.Event()
    miners = FakeMiners({0: Script(["Par", "is", "."]), 1: Script(["Lyon"], gate=silent)})
    settled = stages()
    stream = await live(miners, [0, 1], settled)
    assert stream.headers["x-bitgate-miner-uid"] == "0"
    sent = events([event async for event in stream.events])
    assert sent[-1] == "[DONE]"
    text = "".join(e["choices"][0]["delta"]["content"] for e in sent[:-2])
    assert text == "Paris."
    assert all(e["model"] == "sim" for e in sent[:-1])  # the pool's name, not the miner's
    block = sent[-2]["bitgate"]
    assert block["miner"]["uid"] == 0 and block["strategy"] == "race"
    assert {c["uid"]: c["status"] for c in block["candidates"]} == {0: "ok", 1: "pending"}
    silent.set()
    await drain(settled)
    assert {uid: s.wins for uid, s in stats(settled).items()} == {0: 1, 1: 0}


async def test_a_winner_whose_stream_breaks_ends_with_an_openai_error_event() -> None:
    opening = "Paris is the capital of France, and has been for most of its history; "
    miners = FakeMiners({0: Script([opening, "it"], status="error")})
    settled = stages()
    stream = await live(miners, [0], settled)
    sent = events([event async for event in stream.events])
    assert "[DONE]" not in sent
    error = sent[-1]["error"]
    assert error["code"] == "miner_stream_failed" and set(error) == {
        "message",
        "type",
        "param",
        "code",
    }
    assert sent[-1]["bitgate"]["candidates"][0]["status"] == "error"
    assert "".join(e["choices"][0]["delta"]["content"] for e in sent[:-1]) == opening + "it"
    await drain(settled)
    assert stats(settled)[0].failures == 1


async def test_a_live_race_where_no_miner_speaks_is_an_error_and_is_settled() -> None:
    miners = FakeMiners({0: Script(status="timeout", pieces=()), 1: Script([" "])})
    settled = stages()
    with pytest.raises(AllMinersFailed):
        await live(miners, [0, 1], settled)
    assert {uid: s.requests for uid, s in stats(settled).items()} == {0: 1, 1: 1}


async def test_a_client_leaving_before_anyone_speaks_cancels_the_miner_streams() -> None:
    never = asyncio.Event()
    miners = FakeMiners({0: Script(gate=never), 1: Script(gate=never)})
    serving = asyncio.ensure_future(live(miners, [0, 1], stages()))
    await until(lambda: len(miners.waiting) == 2)
    serving.cancel()
    await asyncio.gather(serving, return_exceptions=True)
    await until(lambda: len(miners.cancelled) == 2)
    assert sorted(miners.cancelled) == [0, 1]


async def test_a_client_leaving_mid_stream_cancels_the_miner_streams() -> None:
    never = asyncio.Event()
    opening = "Paris is the capital of France, and has been for most of its history; "
    miners = FakeMiners({0: Script([opening, "more"], hold=never), 1: Script(gate=never)})
    stream = await live(miners, [0, 1], stages())
    events = stream.events
    first = await anext(events)
    assert b"Paris is the capital" in first
    await events.aclose()
    await until(lambda: len(miners.cancelled) == 2)
    assert sorted(miners.cancelled) == [0, 1]


OPENING = "Paris is the capital of France, and has been for most of its history; "  # > 64 chars


async def test_a_client_leaving_mid_stream_still_settles_the_replies_already_in() -> None:
    never = asyncio.Event()
    miners = FakeMiners(
        {
            0: Script([OPENING, "more"], hold=never),
            1: Script(gate=never),
            2: Script(status="error", pieces=()),  # fails at once, before 0 speaks
        }
    )
    settled = stages()
    stream = await live(miners, [0, 1, 2], settled)
    await anext(stream.events)
    await stream.events.aclose()
    await until(lambda: len(miners.cancelled) == 2)
    await drain(settled)
    # The miner that had failed is counted; the two the gateway cut off owe nothing.
    assert {uid: (s.requests, s.failures) for uid, s in stats(settled).items()} == {2: (1, 1)}


async def test_a_client_leaving_a_race_still_settles_the_replies_already_in() -> None:
    never = asyncio.Event()
    miners = FakeMiners({0: Script(gate=never), 1: Script(status="invalid")})
    settled = stages()
    serving = asyncio.ensure_future(Race(miners, settled).serve(plan("race", [0, 1])))
    await until(lambda: len(miners.waiting) == 1)
    serving.cancel()
    await asyncio.gather(serving, return_exceptions=True)
    await drain(settled)
    assert {uid: s.failures for uid, s in stats(settled).items()} == {1: 1}
