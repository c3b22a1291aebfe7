"""What a run measured: counts, latency histograms, a time series and per-miner figures."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from load.client import Reply
from load.fanout_tally import FanoutTally, is_good
from load.hist import Latency

MAX_WINDOWS = 300


def window_for(limit_s: float) -> float:
    """A time-series window (whole seconds) giving at most `MAX_WINDOWS` points."""
    return float(max(1, math.ceil(limit_s / MAX_WINDOWS)))


def waited_ms(block: dict[str, Any] | None) -> float | None:
    """The miner time a gateway reply waited on: the winner's (race) or the slowest (best_of)."""
    if block is None:
        return None
    latencies = {
        c.get("uid"): float(c["latency_ms"])
        for c in block.get("candidates") or ()
        if isinstance(c, dict) and isinstance(c.get("latency_ms"), int | float)
    }
    if not latencies:
        return None
    if block.get("strategy") == "race":
        winner = block.get("miner")
        return latencies.get(winner.get("uid")) if isinstance(winner, dict) else None
    return max(latencies.values())


@dataclass(slots=True)
class Window:
    """One slice of the measured phase: sends by start time, the rest by end time."""

    sent: int = 0
    done: int = 0
    ok: int = 0
    errors: int = 0
    tokens: int = 0
    latency: Latency = field(default_factory=lambda: Latency(small=True))


@dataclass(slots=True)
class MinerStats:
    """One miner: how often it was asked, answered, failed, won, and how fast."""

    chosen: int = 0
    ok: int = 0
    won: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    reward_sum: float = 0.0
    rewarded: int = 0
    latency: Latency = field(default_factory=lambda: Latency(small=True))


class Recorder:
    """Every measured request, folded into histograms and counters as it ends."""

    def __init__(self, origin: float, window_s: float = 1.0) -> None:
        self.origin = origin
        self.window_s = window_s
        self.requests = 0
        self.ok = 0
        self.errors: Counter[str] = Counter()
        self.statuses: Counter[int] = Counter()
        self.tokens = 0
        self.late = 0
        self.latency = Latency()
        self.ttft = Latency()
        self.overhead = Latency()
        self.client_overhead = Latency()
        self.send_lag = Latency()
        self.windows: list[Window] = []
        self.miners: dict[int, MinerStats] = {}
        self.last_end = origin
        self.recent = Latency(small=True)
        # Against a sim pool: the uids whose answers are good, and the answers from them.
        self.good_uids: frozenset[int] | None = None
        self.good = 0
        self.fanout = FanoutTally()

    def _window(self, at: float) -> Window:
        index = max(int((at - self.origin) / self.window_s), 0)
        while len(self.windows) <= index:
            self.windows.append(Window())
        return self.windows[index]

    def sent(self, at: float, lag_s: float = 0.0, late: bool = False) -> None:
        """A request left (or was due to leave) at `at`."""
        self._window(at).sent += 1
        self.send_lag.record(lag_s * 1000.0)
        self.late += late

    def unsent(self, at: float, kind: str) -> None:
        """A due request the client could not send (its in-flight bound was reached)."""
        self.requests += 1
        self.errors[kind] += 1
        window = self._window(at)
        window.done += 1
        window.errors += 1

    def record(self, start: float, reply: Reply, uid: int | None = None) -> None:
        """One finished request that started at `start` (perf-counter seconds)."""
        latency_ms = (reply.ended_at - start) * 1000.0
        self.requests += 1
        self.statuses[reply.status] += 1
        self.last_end = max(self.last_end, reply.ended_at)
        window = self._window(reply.ended_at)
        window.done += 1
        self.latency.record(latency_ms)
        window.latency.record(latency_ms)
        self.recent.record(latency_ms)
        if reply.error is not None:
            self.errors[reply.error] += 1
            window.errors += 1
        else:
            self.ok += 1
            window.ok += 1
            window.tokens += reply.tokens
            self.tokens += reply.tokens
            if reply.first_token_at is not None:
                self.ttft.record((reply.first_token_at - start) * 1000.0)
            if reply.overhead_ms is not None:
                self.overhead.record(reply.overhead_ms)
            self.good += is_good(reply.block, self.good_uids)
            self.fanout.add(reply.block)
            waited = waited_ms(reply.block)
            if waited is not None:
                self.client_overhead.record(max(latency_ms - waited, 0.0))
        if uid is not None:
            self._direct(uid, reply, latency_ms)
        elif reply.block is not None:
            self._candidates(reply.block)

    def _miner(self, uid: int) -> MinerStats:
        stats = self.miners.get(uid)
        if stats is None:
            stats = self.miners[uid] = MinerStats()
        return stats

    def _direct(self, uid: int, reply: Reply, latency_ms: float) -> None:
        """A request sent straight to miner `uid`."""
        stats = self._miner(uid)
        stats.chosen += 1
        stats.latency.record(latency_ms)
        if reply.error is None:
            stats.ok += 1
        else:
            stats.errors[reply.error] += 1

    def _candidates(self, block: dict[str, Any]) -> None:
        """The miners a gateway asked, from its `bitgate` block."""
        winner = block.get("miner")
        won = winner.get("uid") if isinstance(winner, dict) else None
        for candidate in block.get("candidates") or ():
            if not isinstance(candidate, dict) or not isinstance(candidate.get("uid"), int):
                continue
            stats = self._miner(candidate["uid"])
            stats.chosen += 1
            status = str(candidate.get("status", "unknown"))
            if status == "ok":
                stats.ok += 1
            else:
                stats.errors[status] += 1
            latency = candidate.get("latency_ms")
            if isinstance(latency, int | float):
                stats.latency.record(float(latency))
            reward = candidate.get("reward")
            if isinstance(reward, int | float):
                stats.reward_sum += float(reward)
                stats.rewarded += 1
            if candidate["uid"] == won:
                stats.won += 1

    def take_recent(self) -> Latency:
        """The latencies since the last call (for the progress line)."""
        recent, self.recent = self.recent, Latency(small=True)
        return recent
