"""Arrival models: schedules hold their rate, and an open loop keeps it against a slow target."""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import AsyncIterator

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from load import arrivals, engine
from load.engine import UNSENT, Run, open_session
from load.scenario import Scenario
from load.targets import resolve

REPLY = orjson.dumps({"choices": [{"message": {"content": "slow but sure"}}]})


def test_uniform_and_ramping_schedules_hold_their_rate() -> None:
    flat = list(arrivals.offsets(50, 2.0, process="uniform"))
    assert len(flat) == 99 and flat[0] == pytest.approx(0.02) and flat[-1] < 2.0
    ramp = list(arrivals.offsets(10, 4.0, rate_to=90, process="uniform"))
    assert len(ramp) == pytest.approx(arrivals.expected(10, 4.0, 90), abs=1)
    first_second = sum(1 for t in ramp if t < 1.0)
    last_second = sum(1 for t in ramp if t >= 3.0)
    assert first_second == pytest.approx(20, abs=1) and last_second == pytest.approx(80, abs=1)
    assert all(a < b for a, b in itertools.pairwise(ramp))


def test_poisson_arrivals_average_the_rate_and_respect_the_request_limit() -> None:
    counts = [len(list(arrivals.offsets(100, 10.0, rng=random.Random(s)))) for s in range(5)]
    assert all(abs(c - 1000) < 4 * 1000**0.5 for c in counts)  # within 4 sigma
    assert len(list(arrivals.offsets(100, 10.0, limit=7))) == 7


@pytest.fixture
async def slow_target() -> AsyncIterator[tuple[str, list[float]]]:
    """A target that takes 0.5 s per request; it records when each request arrived."""
    seen: list[float] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append(time.perf_counter())
        await request.read()
        await asyncio.sleep(0.5)
        return web.Response(body=REPLY, content_type="application/json")

    app = web.Application()
    app.router.add_post("/v1/chat/completions", handle)
    async with TestServer(app, host="127.0.0.1") as server:
        yield str(server.make_url("/v1")), seen


async def run(scenario: Scenario) -> Run:
    async with open_session(scenario) as session:
        runner = Run(scenario, resolve(scenario.target), session)
        await runner.run()
        return runner


async def test_the_open_loop_keeps_its_rate_against_a_slow_target(
    slow_target: tuple[str, list[float]],
) -> None:
    url, seen = slow_target
    common = {"target": url, "model": "m", "duration_s": 1.5, "timeout_s": 5}
    started = time.perf_counter()
    opened = await run(Scenario(**common, rate=40, arrival="uniform"))
    took = time.perf_counter() - started
    rec = opened.recorder
    # 40 req/s for 1.5 s is 59 arrivals (the 60th falls on the end); all sent, all answered.
    assert rec.requests == opened.sent == 59 and rec.ok == 59 and len(seen) == 59
    assert seen[-1] - seen[0] == pytest.approx(58 / 40, abs=0.25)  # sent on schedule
    assert took < 1.5 + 0.5 + 1.0  # the last reply, plus generous slack
    assert rec.latency.percentile(50) == pytest.approx(500, rel=0.2)
    # A closed loop of 2 clients against the same target manages 4 req/s.
    seen.clear()
    closed = await run(Scenario(**common, concurrency=2))
    assert closed.recorder.requests <= 2 * 4


async def test_late_arrivals_are_counted_and_still_sent(
    slow_target: tuple[str, list[float]],
) -> None:
    url, seen = slow_target
    scenario = Scenario(target=url, model="m", rate=100, arrival="uniform", duration_s=1.0)
    async with open_session(scenario) as session:
        runner = Run(scenario, resolve(scenario.target), session)
        task = asyncio.create_task(runner.run())
        await asyncio.sleep(0.3)
        # The client's loop stalls (the point of the test): ~30 arrivals fall due meanwhile.
        time.sleep(0.3)  # noqa: ASYNC251
        await task
    rec = runner.recorder
    assert rec.requests == runner.sent == 99 and len(seen) == 99
    # At least the stall's ~30 are late; a busy machine adds more, but never all of them.
    assert 20 <= rec.late < 90
    # Latency counts from when a request was due, so the stall shows in the tail.
    assert rec.latency.stats()["max"] is not None and rec.latency.stats()["max"] > 700


async def test_requests_over_the_in_flight_bound_are_counted_as_not_sent(
    slow_target: tuple[str, list[float]],
) -> None:
    url, seen = slow_target
    scenario = Scenario(
        target=url, model="m", rate=50, arrival="uniform", duration_s=0.4, max_in_flight=5
    )
    runner = await run(scenario)
    rec = runner.recorder
    assert runner.sent == 5 and len(seen) == 5
    assert rec.requests == 19 and rec.errors[UNSENT] == 14 and rec.ok == 5


def test_aiohttp_is_the_client() -> None:
    # The engine's session is aiohttp's, sized for the load (a house rule: one client per run).
    scenario = Scenario(target="http://127.0.0.1:1/v1", model="m", concurrency=3)

    async def size() -> int:
        async with open_session(scenario) as session:
            assert isinstance(session, aiohttp.ClientSession)
            return int(session.connector.limit) if session.connector else 0

    assert asyncio.run(size()) == 3


async def test_a_request_that_breaks_the_client_is_counted_not_lost(
    slow_target: tuple[str, list[float]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, _ = slow_target
    real_send = engine.send
    calls = itertools.count()

    async def flaky_send(*args: object, **kwargs: object) -> object:
        if next(calls) % 3 == 2:
            raise ValueError("a bug in the client")
        return await real_send(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(engine, "send", flaky_send)
    runner = await run(Scenario(target=url, model="m", rate=20, arrival="uniform", duration_s=0.6))
    rec = runner.recorder
    assert rec.requests == runner.sent == 11
    assert rec.errors["ValueError"] == 3 and rec.ok == 8


def test_a_ramp_needs_a_duration() -> None:
    with pytest.raises(ValueError, match="rate_to"):
        Scenario(target="http://127.0.0.1:1/v1", model="m", rate=10, rate_to=100, requests=50)
