"""A load run: warm-up, then a closed loop of clients or an open loop of arrivals, bounded."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TextIO

import aiohttp

from load import arrivals, progress
from load.bodies import Planned, Planner
from load.client import Reply, send
from load.procs import cpu_snapshot, cpu_spent
from load.prompts import load_prompts
from load.recorder import Recorder, window_for
from load.scenario import Scenario
from load.targets import Target, resolve

LATE_S = 0.010  # an arrival sent more than this after it was due counts as late
DRAIN_GRACE_S = 5.0
UNSENT = "not_sent_in_flight_bound"


@dataclass(slots=True)
class RunResult:
    """A finished run: what was asked for, where it went, and what came back."""

    scenario: Scenario
    target: Target
    recorder: Recorder
    started_at: str
    elapsed_s: float
    sent: int
    warmup: dict[str, int] = field(default_factory=dict)
    cpu_s: dict[str, float | None] = field(default_factory=dict)


class Run:
    """One run of a scenario over one client session."""

    def __init__(
        self,
        scenario: Scenario,
        target: Target,
        session: aiohttp.ClientSession,
        watch: dict[str, int] | None = None,
    ) -> None:
        self.scenario = scenario
        self.target = target
        self.session = session
        self.watch = watch or {}
        self.planner = Planner(scenario, target, load_prompts(scenario.prompts))
        now = time.perf_counter()
        self.measure_from = now + scenario.warmup_s
        self.stop_at = self.measure_from + scenario.limit_s
        self.recorder = Recorder(self.measure_from, window_for(scenario.limit_s))
        if scenario.good_uids is not None:
            self.recorder.good_uids = frozenset(scenario.good_uids)
        self.sent = 0
        self.warm_sent = 0
        self.warm_errors = 0
        self.in_flight = 0

    async def _one(self, planned: Planned, start: float, measured: bool) -> None:
        """Send one request; record it if it belongs to the measured phase."""
        self.in_flight += 1
        reply = Reply(error="internal", ended_at=time.perf_counter())
        try:
            reply = await send(self.session, planned.url, planned.body, planned.stream)
        except asyncio.CancelledError:
            reply = Reply(error="cancelled", ended_at=time.perf_counter())
            raise
        except Exception as exc:  # whatever went wrong, the request is counted, not lost
            reply = Reply(error=type(exc).__name__, ended_at=time.perf_counter())
        finally:
            self.in_flight -= 1
            if measured:
                self.recorder.record(start, reply, planned.uid)
            else:
                self.warm_errors += reply.error is not None

    def _count(self, measured: bool) -> None:
        if measured:
            self.sent += 1
        else:
            self.warm_sent += 1

    async def _worker(self) -> None:
        """A closed-loop client: the next request as soon as the last one ends."""
        limit = self.scenario.requests
        while (now := time.perf_counter()) < self.stop_at:
            measured = now >= self.measure_from
            if measured and limit is not None and self.sent >= limit:
                return
            self._count(measured)
            if measured:
                self.recorder.sent(now)
            await self._one(self.planner.next(), now, measured)

    def _schedule(self) -> Iterator[tuple[float, bool]]:
        """Due times (perf-counter seconds) of the warm-up's and the measured phase's arrivals."""
        s = self.scenario
        rng = random.Random(s.seed + 1)
        assert s.rate is not None
        start = self.measure_from - s.warmup_s
        for offset in arrivals.offsets(s.rate, s.warmup_s, process=s.arrival, rng=rng):
            yield start + offset, False
        measured = arrivals.offsets(s.rate, s.limit_s, s.rate_to, s.requests, s.arrival, rng)
        for offset in measured:
            yield self.measure_from + offset, True

    async def _open_loop(self) -> None:
        """Send each arrival when due, however slow the target is; late ones still go."""
        tasks: set[asyncio.Task[None]] = set()
        bound = self.scenario.max_in_flight
        for at, measured in self._schedule():
            delay = at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if measured and self.in_flight >= bound:
                self.recorder.unsent(at, UNSENT)
                continue
            self._count(measured)
            if measured:
                lag = time.perf_counter() - at
                self.recorder.sent(at, lag, lag > LATE_S)
            # Latency counts from when the request was due, so lateness is not hidden.
            task = asyncio.create_task(self._one(self.planner.next(), at, measured))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=self.scenario.timeout_s + DRAIN_GRACE_S)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def run(self, out: TextIO | None = None) -> RunResult:
        """Run both phases and return what was measured."""
        started_at = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        cpu_task = asyncio.create_task(self._cpu_at_start())
        shown = asyncio.create_task(
            progress.show(self.recorder, self.measure_from, self.scenario.limit_s, out)
        )
        try:
            if self.scenario.open_loop:
                await self._open_loop()
            else:
                await asyncio.gather(*(self._worker() for _ in range(self.scenario.workers)))
        finally:
            shown.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await shown
        before = await cpu_task
        rec = self.recorder
        elapsed = max(rec.last_end - self.measure_from, 1e-9) if rec.requests else 0.0
        return RunResult(
            self.scenario,
            self.target,
            rec,
            started_at,
            elapsed,
            self.sent,
            {"sent": self.warm_sent, "errors": self.warm_errors},
            cpu_spent(before, cpu_snapshot(self.watch)),
        )

    async def _cpu_at_start(self) -> dict[str, float | None]:
        await asyncio.sleep(max(self.measure_from - time.perf_counter(), 0.0))
        return cpu_snapshot(self.watch)


def open_session(scenario: Scenario) -> aiohttp.ClientSession:
    """The run's one client session, its pool sized for the load."""
    limit = scenario.max_in_flight if scenario.open_loop else scenario.workers
    connector = aiohttp.TCPConnector(limit=limit, limit_per_host=0, force_close=False)
    timeout = aiohttp.ClientTimeout(total=scenario.timeout_s)
    return aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        headers=scenario.headers,
        cookie_jar=aiohttp.DummyCookieJar(),
    )


async def run_scenario(
    scenario: Scenario, watch: dict[str, int] | None = None, out: TextIO | None = None
) -> RunResult:
    """Resolve the target and run the scenario against it."""
    target = resolve(scenario.target, scenario.allow_remote)
    async with open_session(scenario) as session:
        return await Run(scenario, target, session, watch).run(out)
