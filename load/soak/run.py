"""Drive the soak: probe capacity, warm up, drain, measure, drain; sample all along."""

from __future__ import annotations

import asyncio
import contextlib
import random
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from load.arrivals import offsets
from load.soak.judge import reasons, start_ticks
from load.soak.traffic import MIX, Outcome, Traffic, expected, pick
from load.soak.watch import idle_check, process_sample, verdict

CLIENT_MAX_INFLIGHT = 512
DRAIN_S = 30.0
# Past uvicorn's keep-alive (5 s) every client connection is closed.
IDLE_SETTLE_S = 6.0
# The miner pool closes a connection idle for 30 s on a sweep every 30 s: at most 60 s.
MINER_IDLE_S = 65.0
PROBE_CONCURRENCY = 48


@dataclass(slots=True)
class Window:
    """What the traffic did since the last sample."""

    served_ms: list[float] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)
    unexpected: int = 0
    client_errors: int = 0
    not_sent: int = 0

    def add(self, outcome: Outcome) -> None:
        """Count one finished request."""
        key = f"{outcome.kind}:{outcome.status}"
        self.statuses[key] = self.statuses.get(key, 0) + 1
        if not expected(outcome):
            self.unexpected += 1
        elif outcome.status == 200 and outcome.kind in ("best_of", "race", "stream"):
            self.served_ms.append(outcome.latency_s * 1000)

    def figures(self, interval_s: float) -> dict[str, Any]:
        """The window as a sample's fields."""
        served = sorted(self.served_ms)
        done = sum(self.statuses.values())

        def pct(q: float) -> float | None:
            return round(served[min(int(q * len(served)), len(served) - 1)], 1) if served else None

        return {
            "rps": round(done / interval_s, 2),
            "p50_ms": pct(0.5),
            "p99_ms": pct(0.99),
            "unexpected": self.unexpected,
            "client_errors": self.client_errors,
            "not_sent": self.not_sent,
        }


@dataclass(slots=True)
class Soak:
    """One soak run against a gateway process."""

    traffic: Traffic
    pid: int
    port: int
    interval_s: float
    started: float = field(default_factory=time.monotonic)
    phase: str = "probe"
    window: Window = field(default_factory=Window)
    totals: dict[str, int] = field(default_factory=dict)
    samples: list[dict[str, Any]] = field(default_factory=list)
    inflight: set[asyncio.Task[None]] = field(default_factory=set)
    idle_wait_s: float = MINER_IDLE_S
    ticks: int | None = None

    def __post_init__(self) -> None:
        self.ticks = start_ticks(self.pid)

    def alive(self) -> bool:
        """The gateway process the soak started with is still the one running."""
        return self.ticks is not None and start_ticks(self.pid) == self.ticks

    async def gateway_load(self) -> dict[str, int]:
        """The gateway's own counts from /readyz: in flight, settling, asyncio tasks."""
        try:
            async with self.traffic.session.get(self.traffic.url + "/readyz") as resp:
                load: dict[str, int] = (await resp.json())["load"]
                return load
        except (aiohttp.ClientError, KeyError, TimeoutError):
            return {}

    async def sample(self) -> dict[str, Any]:
        """One sample of the gateway process and of the traffic since the last one."""
        load = await self.gateway_load()
        figures = process_sample(self.pid, self.port)
        missing = [] if load else ["readyz"]
        missing += [] if figures["alive"] else ["process"]
        row: dict[str, Any] = {
            "t_s": round(time.monotonic() - self.started, 1),
            "phase": self.phase,
            **figures,
            "alive": self.alive(),
            "missing": missing,
            "tasks": load.get("asyncio_tasks", 0),
            "inflight": load.get("inflight", 0),
            "settling": load.get("settling", 0),
            **self.window.figures(self.interval_s),
        }
        for key, count in self.window.statuses.items():
            self.totals[key] = self.totals.get(key, 0) + count
        self.totals["unexpected"] = self.totals.get("unexpected", 0) + self.window.unexpected
        self.totals["client_errors"] = (
            self.totals.get("client_errors", 0) + self.window.client_errors
        )
        self.window = Window()
        return row

    async def sampler(self) -> None:
        """A sample on every tick of the interval until cancelled; a tick missed is lost."""
        begin = time.monotonic()
        tick = 0
        while True:
            tick = max(tick + 1, int((time.monotonic() - begin) / self.interval_s) + 1)
            await asyncio.sleep(max(begin + tick * self.interval_s - time.monotonic(), 0.0))
            self.samples.append(await self.sample())

    async def one(self, kind: str) -> None:
        """Send one request of `kind` and count how it ended."""
        try:
            self.window.add(await MIX[kind][1](self.traffic))
        except (aiohttp.ClientError, TimeoutError):
            self.window.client_errors += 1

    async def closed_loop(self, seconds: float, concurrency: int, rng: random.Random) -> int:
        """`concurrency` clients back to back for `seconds`; how many requests ended."""
        done = 0
        until = time.monotonic() + seconds

        async def client() -> None:
            nonlocal done
            while time.monotonic() < until:
                await self.one(pick(rng))
                done += 1

        await asyncio.gather(*(client() for _ in range(concurrency)))
        return done

    async def open_loop(self, rate: float, seconds: float, rng: random.Random) -> None:
        """Requests at `rate` per second (Poisson) for `seconds`, however slow the answers."""
        begin = time.monotonic()
        for at in offsets(rate, seconds, rng=rng):
            await asyncio.sleep(max(begin + at - time.monotonic(), 0.0))
            if len(self.inflight) >= CLIENT_MAX_INFLIGHT:
                self.window.not_sent += 1
                continue
            task = asyncio.get_running_loop().create_task(self.one(pick(rng)))
            self.inflight.add(task)
            task.add_done_callback(self.inflight.discard)

    async def drain(self) -> dict[str, float]:
        """Wait for the traffic and the gateway's background work to end; an idle sample."""
        self.phase = "drain"
        if self.inflight:
            await asyncio.wait(set(self.inflight), timeout=self.traffic.timeout_s + 5)
        deadline = time.monotonic() + DRAIN_S
        while time.monotonic() < deadline and self.alive():
            load = await self.gateway_load()
            if load.get("inflight") == 0 and load.get("settling") == 0:
                break
            await asyncio.sleep(0.5)
        await asyncio.sleep(IDLE_SETTLE_S)
        # Then until the pooled miner connections have closed too, so a leaked one shows.
        deadline = time.monotonic() + self.idle_wait_s - IDLE_SETTLE_S
        while time.monotonic() < deadline and self.alive():
            figures = process_sample(self.pid, self.port)
            if figures["miner_conns"] == 0 and figures["close_wait"] == 0:
                break
            await asyncio.sleep(1.0)
        load = await self.gateway_load()
        return {**process_sample(self.pid, self.port), "tasks": load.get("asyncio_tasks", 0)}


async def soak(
    url: str,
    model: str,
    pid: int,
    *,
    duration_s: float,
    warmup_s: float,
    interval_s: float,
    probe_s: float,
    rate: float | None,
    seed: int = 0,
    idle_wait_s: float = MINER_IDLE_S,
) -> dict[str, Any]:
    """Run the soak and return its report (without the plot)."""
    rng = random.Random(seed)
    connector = aiohttp.TCPConnector(limit=CLIENT_MAX_INFLIGHT + PROBE_CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as session:
        traffic = Traffic(session, url, model, rng=random.Random(seed + 1))
        port = int(url.rsplit(":", 1)[1])
        run = Soak(traffic, pid, port, interval_s, idle_wait_s=idle_wait_s)
        sampler = asyncio.get_running_loop().create_task(run.sampler())
        try:
            capacity = rate * 2 if rate else 0.0
            if rate is None:
                done = await run.closed_loop(probe_s, PROBE_CONCURRENCY, rng)
                capacity = done / probe_s
            target = max(capacity / 2, 0.5)
            run.started = time.monotonic()  # the probe is not part of the timeline
            run.samples.clear()
            run.phase = "warmup"
            await run.open_loop(target, warmup_s, rng)
            idle_before = await run.drain()
            run.phase = "measured"
            measured_from = time.monotonic() - run.started
            measured_s = max(duration_s - warmup_s, interval_s * 2)
            await run.open_loop(target, measured_s, rng)
            idle_after = await run.drain()
        finally:
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler
        run.samples.append(await run.sample())
    measured = [s for s in run.samples if s["phase"] == "measured"]
    growth = verdict(measured, 0.0)
    idle = idle_check(idle_before, idle_after)
    served = [s["p50_ms"] for s in measured if s["p50_ms"] is not None]
    why = reasons(
        run.samples,
        run.totals,
        expected_samples=int(measured_s / interval_s),
        under_load=growth,
        idle=idle,
    )
    return {
        "passed": not why,
        "reasons": why,
        "duration_s": duration_s,
        "warmup_s": round(measured_from, 1),
        "interval_s": interval_s,
        "capacity_rps": round(capacity, 2),
        "rate_rps": round(target, 2),
        "mix": {kind: weight for kind, (weight, _) in MIX.items()},
        "under_load": growth,
        "idle": {"after_warmup": idle_before, "at_end": idle_after, **idle},
        "median_p50_ms": round(statistics.median(served), 1) if served else None,
        "totals": dict(sorted(run.totals.items())),
        "samples": run.samples,
    }
