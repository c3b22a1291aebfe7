"""The strategy registry: every strategy a request may name is served by its own module."""

from __future__ import annotations

import asyncio
from typing import get_args

from gateway.protocol import Strategy
from gateway.serving.result import Result
from gateway.serving.strategies.registry import STRATEGIES, Strategies
from tests.unit.gateway.strategies.fakes import FakeMiners, Script, drain, plan, stages


def test_every_strategy_a_request_may_name_is_registered() -> None:
    assert set(STRATEGIES) == set(get_args(Strategy))


async def test_serve_hands_the_plan_to_the_strategy_it_names() -> None:
    late = asyncio.Event()
    miners = FakeMiners({0: Script(["Paris."]), 1: Script(["Paris!"], gate=late)})
    settled = stages()
    strategies = Strategies(miners, settled)  # type: ignore[arg-type]
    raced = await strategies.serve(plan("race", [0, 1]))
    assert isinstance(raced, Result)
    assert statuses(raced) == {0: "ok", 1: "pending"}  # the race did not wait for uid 1
    late.set()
    best = await strategies.serve(plan("best_of", [0, 1]))
    assert isinstance(best, Result)
    assert statuses(best) == {0: "ok", 1: "ok"}
    await drain(settled)


def statuses(result: Result) -> dict[int, str]:
    """Each candidate's status in the result's block."""
    return {c["uid"]: c["status"] for c in result.block()["candidates"]}
