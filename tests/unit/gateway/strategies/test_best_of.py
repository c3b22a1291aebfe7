"""best_of with fake miners: the best reward wins, failures map to 502/504, scores settle."""

from __future__ import annotations

import asyncio

import pytest

from gateway.errors import AllMinersFailed, DeadlinePassed
from gateway.serving.strategies.best_of import BestOf
from tests.unit.gateway.strategies.fakes import (
    FakeMiners,
    Script,
    TextRanker,
    plan,
    stages,
    stats,
    until,
)


async def test_the_reply_with_the_highest_reward_wins_and_every_reply_is_settled() -> None:
    miners = FakeMiners({0: Script(["meh"]), 1: Script(["Paris."]), 2: Script(["London."])})
    ranker = TextRanker({"meh": 0.3, "Paris.": 0.9, "London.": 0.1})
    settled = stages()
    result = await BestOf(miners, settled).serve(plan("best_of", [0, 1, 2], ranker))
    assert result.winner.neuron.uid == 1
    block = result.block()
    assert block["miner"]["uid"] == 1 and block["strategy"] == "best_of"
    assert {c["uid"]: c["reward"] for c in block["candidates"]} == {0: 0.3, 1: 0.9, 2: 0.1}
    seen = stats(settled)
    assert {uid: s.requests for uid, s in seen.items()} == {0: 1, 1: 1, 2: 1}
    assert {uid: s.wins for uid, s in seen.items()} == {0: 0, 1: 1, 2: 0}


async def test_a_tie_goes_to_the_faster_miner() -> None:
    miners = FakeMiners({0: Script(["A."], latency_ms=50.0), 1: Script(["B."], latency_ms=20.0)})
    ranker = TextRanker({"A.": 0.7, "B.": 0.7})
    result = await BestOf(miners, stages()).serve(plan("best_of", [0, 1], ranker))
    assert result.winner.neuron.uid == 1


async def test_a_failed_miner_never_wins_over_one_that_answered() -> None:
    miners = FakeMiners(
        {0: Script(status="error"), 1: Script(["Paris."]), 2: Script(status="timeout")}
    )
    result = await BestOf(miners, stages()).serve(plan("best_of", [0, 1, 2]))
    assert result.winner.neuron.uid == 1
    statuses = {c["uid"]: c["status"] for c in result.block()["candidates"]}
    assert statuses == {0: "error", 1: "ok", 2: "timeout"}


async def test_every_miner_failing_is_a_502_and_their_failures_are_settled() -> None:
    miners = FakeMiners({0: Script(status="error"), 1: Script(status="invalid")})
    settled = stages()
    with pytest.raises(AllMinersFailed) as failed:
        await BestOf(miners, settled).serve(plan("best_of", [0, 1]))
    assert failed.value.status == 502
    assert "uid 0: error" in str(failed.value) and "uid 1: invalid" in str(failed.value)
    assert {uid: s.failures for uid, s in stats(settled).items()} == {0: 1, 1: 1}


async def test_every_miner_timing_out_is_a_504_and_is_settled() -> None:
    miners = FakeMiners({0: Script(status="timeout"), 1: Script(status="timeout")})
    settled = stages()
    with pytest.raises(DeadlinePassed) as late:
        await BestOf(miners, settled).serve(plan("best_of", [0, 1]))
    assert late.value.status == 504
    assert {uid: s.failures for uid, s in stats(settled).items()} == {0: 1, 1: 1}


async def test_a_timeout_among_errors_is_a_502() -> None:
    miners = FakeMiners({0: Script(status="timeout"), 1: Script(status="error")})
    with pytest.raises(AllMinersFailed):
        await BestOf(miners, stages()).serve(plan("best_of", [0, 1]))


async def test_a_cancelled_request_cancels_its_miner_calls() -> None:
    never = asyncio.Event()
    miners = FakeMiners({0: Script(gate=never), 1: Script(gate=never)})
    serving = asyncio.ensure_future(BestOf(miners, stages()).serve(plan("best_of", [0, 1])))
    await until(lambda: len(miners.waiting) == 2)
    serving.cancel()
    await asyncio.gather(serving, return_exceptions=True)
    await until(lambda: len(miners.cancelled) == 2)
    assert serving.cancelled()
    assert sorted(miners.cancelled) == [0, 1]
