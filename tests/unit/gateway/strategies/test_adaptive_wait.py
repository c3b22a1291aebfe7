"""Adaptive best_of and cascade with fake miners: early stops, late replies settled, no bias."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from gateway.serving.plan import Plan
from gateway.serving.result import Result
from gateway.serving.stop_rule import Pair
from gateway.serving.strategies.base import Stages
from gateway.serving.strategies.best_of import BestOf
from gateway.serving.strategies.cascade import Cascade
from tests.unit.gateway.strategies.fakes import (
    FakeMiners,
    Script,
    TextRanker,
    drain,
    neuron,
    plan,
    stages,
    stats,
    until,
)

RANKER = TextRanker({"Paris.": 0.9, "Lyon.": 0.4, "Nice.": 0.2})


def scripts(gate: asyncio.Event | None) -> dict[int, Script]:
    """uid 0 answers well at once; uids 1 and 2 answer worse, 2 only once `gate` is set."""
    return {0: Script(["Paris."]), 1: Script(["Lyon."]), 2: Script(["Nice."], gate=gate)}


def adaptive(**fields: object) -> Plan:
    return replace(plan("best_of", [0, 1, 2], RANKER), wait="adaptive", **fields)  # type: ignore[arg-type]


async def serve_releasing(
    settled: Stages, request: Plan, strategy: type[BestOf | Cascade] = BestOf
) -> tuple[Result, bool]:
    """Serve with uid 2 held back; release it only if the request waits for it.
    Returns the result and whether it stopped before uid 2 answered."""
    gate = asyncio.Event()
    miners = FakeMiners(scripts(gate))
    serving = asyncio.ensure_future(strategy(miners, settled).serve(request))
    await until(lambda: 2 in miners.waiting)
    for _ in range(50):
        if serving.done():
            break
        await asyncio.sleep(0)
    early = serving.done()
    gate.set()
    served = await serving
    assert isinstance(served, Result)
    await drain(settled)
    return served, early


async def test_cold_it_hears_everyone_then_stops_once_history_says_none_can_win() -> None:
    settled = stages()
    first, early = await serve_releasing(settled, adaptive())
    assert not early and first.block()["wait"]["stopped"] == "all"
    for _ in range(30):
        result, early = await serve_releasing(settled, adaptive())
    assert early
    block = result.block()
    assert block["wait"] == {
        "mode": "adaptive",
        "replies": 2,
        "stopped": "confident",
        "queue_ms": 0.0,
    }
    assert {c["uid"]: c["status"] for c in block["candidates"]}[2] == "pending"
    assert result.winner.neuron.uid == 0


async def test_wait_all_always_hears_every_miner() -> None:
    settled = stages()
    for _ in range(30):
        result, early = await serve_releasing(settled, replace(adaptive(), wait="all"))
        assert not early
    assert result.block()["wait"]["stopped"] == "all"


async def test_early_stops_do_not_bias_scores() -> None:
    heard_all, adapting = stages(), stages()
    stopped_early = 0
    for _ in range(40):
        await serve_releasing(heard_all, replace(adaptive(), wait="all"))
        _, early = await serve_releasing(adapting, adaptive())
        stopped_early += early
    assert stopped_early > 10  # the test means something only if many stopped early
    full, adapted = stats(heard_all), stats(adapting)
    for uid in (0, 1, 2):
        assert adapted[uid].requests == full[uid].requests == 40
        assert adapted[uid].score == pytest.approx(full[uid].score)
        assert adapted[uid].wins == full[uid].wins


async def test_a_budget_ends_the_wait_when_a_credible_winner_is_in() -> None:
    settled = stages()
    # uid 1 sometimes beats uid 0 in history: too risky to stop as confident, not to budget.
    settled.settler.history.record("sim", [], [])
    for _ in range(20):
        await serve_releasing(settled, adaptive())
    pair = settled.settler.history.pairs["sim"][(2, 0)]
    pair.beats, pair.seen = 2.0, 10.0  # 2 in 10: over wait_risk, under the budget's bar
    result, early = await serve_releasing(settled, adaptive(wait_budget=0.0))
    assert early and result.block()["wait"]["stopped"] == "budget"


async def test_cascade_asks_the_best_known_miner_alone_once_it_is_known_to_win() -> None:
    settled = stages()
    miners = FakeMiners(scripts(None))
    cascade = Cascade(miners, settled)
    request = plan("cascade", [0, 1, 2], RANKER)
    first = await cascade.serve(request)
    assert isinstance(first, Result) and len(first.replies) == 3  # cold: widened to all
    for _ in range(30):
        last = await cascade.serve(request)
    assert isinstance(last, Result)
    assert [r.neuron.uid for r in last.replies] == [0]
    assert last.block()["wait"]["stopped"] == "confident"
    assert last.block()["width"]["asked"] == 1


async def test_a_busy_miner_s_place_goes_to_a_spare() -> None:
    miners = FakeMiners({0: Script(status="busy"), 1: Script(["Paris."])})
    request = replace(plan("best_of", [0], RANKER), wait="adaptive", spares=(neuron(1),))
    result = await BestOf(miners, stages()).serve(request)
    assert isinstance(result, Result) and result.winner.neuron.uid == 1
    block = result.block()
    assert [c["uid"] for c in block["candidates"]] == [0, 1]
    assert block["width"]["asked"] == 2


async def test_with_n_2_it_stops_once_neither_choice_can_be_displaced() -> None:
    # Failed before: with n > 1, best_of heard every miner, however sure the choices were.
    settled = stages()
    for _ in range(30):
        result, early = await serve_releasing(settled, adaptive(n=2))
    assert early
    block = result.block()
    assert [c["uid"] for c in block["choices"]] == [0, 1]
    assert block["wait"]["stopped"] == "confident" and block["wait"]["replies"] == 2
    assert {c["uid"]: c["status"] for c in block["candidates"]}[2] == "pending"


async def test_with_n_3_it_waits_for_a_third_reply() -> None:
    settled = stages()
    for _ in range(30):
        result, early = await serve_releasing(settled, adaptive(n=3))
        assert not early
    assert [c["uid"] for c in result.block()["choices"]] == [0, 1, 2]


async def test_with_n_2_a_miner_out_that_beats_the_second_choice_is_waited_for() -> None:
    # uid 2 (held back) never beats uid 0 but always beats uid 1: it changes the second choice.
    ranker = TextRanker({"Paris.": 0.9, "Lyon.": 0.4, "Nice.": 0.6})
    request = replace(plan("best_of", [0, 1, 2], ranker), wait="adaptive", n=2)
    settled = stages()
    for _ in range(30):
        result, early = await serve_releasing(settled, request)
        assert not early
    assert [c["uid"] for c in result.block()["choices"]] == [0, 2]


async def test_a_cascade_stage_stops_once_its_miners_still_out_cannot_win() -> None:
    # Failed before: a cascade waited for every miner of a stage, a slow hopeless one too.
    settled = stages()
    pairs = settled.settler.history.pairs.setdefault("sim", {})
    pairs[(1, 0)] = Pair(beats=200.0, seen=256.0)  # uid 1 might beat uid 0: ask it too
    pairs[(2, 0)] = Pair(beats=0.0, seen=256.0)  # uid 2 never beats uid 0
    result, early = await serve_releasing(settled, plan("cascade", [0, 1, 2], RANKER), Cascade)
    assert early and result.winner.neuron.uid == 0
    block = result.block()
    assert block["wait"]["stopped"] == "confident"
    assert {c["uid"]: c["status"] for c in block["candidates"]} == {0: "ok", 1: "ok", 2: "pending"}
    assert stats(settled)[2].requests == 1  # the late reply is still settled
