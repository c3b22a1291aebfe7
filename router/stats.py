"""Per-miner statistics and the rule that folds one reply's outcome into them."""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

# `busy`: the miner asked for a pause (429, or 503 with Retry-After); it moves no score.
Status = Literal["ok", "timeout", "error", "invalid", "busy"]


@dataclass(frozen=True, slots=True)
class ScorePolicy:
    """How outcomes move scores: EMA weight, cool-down rule, latency window."""

    alpha: float = 0.1
    cooldown_after: int = 3
    cooldown_s: float = 30.0
    latency_window: int = 32


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one miner did for one request."""

    uid: int
    hotkey: str
    status: Status
    reward: float
    latency_ms: float
    won: bool = False


@dataclass(slots=True)
class MinerStats:
    """What the gateway has learned about one miner."""

    hotkey: str
    score: float = 0.0
    requests: int = 0
    successes: int = 0
    failures: int = 0
    consecutive_failures: int = 0
    cooling_until: float = 0.0
    wins: int = 0
    latencies: list[float] = field(default_factory=list)

    @property
    def success_rate(self) -> float | None:
        """Share of requests answered validly, None before the first."""
        return self.successes / self.requests if self.requests else None

    @property
    def p50_latency_ms(self) -> float | None:
        """Median latency of the recent valid replies."""
        return statistics.median(self.latencies) if self.latencies else None

    def to_json(self) -> dict[str, Any]:
        """A plain dict, the shape kept in the state store."""
        return asdict(self)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> MinerStats:
        """Rebuild from the stored dict; Lua's cjson writes an empty list as `{}`."""
        latencies = raw.get("latencies") or []
        return cls(
            hotkey=str(raw.get("hotkey", "")),
            score=float(raw.get("score", 0.0)),
            requests=int(raw.get("requests", 0)),
            successes=int(raw.get("successes", 0)),
            failures=int(raw.get("failures", 0)),
            consecutive_failures=int(raw.get("consecutive_failures", 0)),
            cooling_until=float(raw.get("cooling_until", 0.0)),
            wins=int(raw.get("wins", 0)),
            latencies=[float(x) for x in latencies] if isinstance(latencies, list) else [],
        )


def apply_outcome(
    current: MinerStats | None, outcome: Outcome, policy: ScorePolicy, now: float
) -> MinerStats:
    """Fold one outcome into a miner's stats; a new hotkey on the uid starts afresh.

    `router/store.py` carries the same rule in Lua for Redis; keep the two in step.
    """
    stats = current
    if stats is None or stats.hotkey != outcome.hotkey:
        stats = MinerStats(hotkey=outcome.hotkey)
    if outcome.status == "busy":
        return stats
    reward = outcome.reward if outcome.status == "ok" else 0.0
    stats.score = (1.0 - policy.alpha) * stats.score + policy.alpha * reward
    stats.requests += 1
    if outcome.won:
        stats.wins += 1
    if outcome.status == "ok":
        stats.successes += 1
        stats.consecutive_failures = 0
        stats.latencies.append(outcome.latency_ms)
        del stats.latencies[: -policy.latency_window]
    else:
        stats.failures += 1
        stats.consecutive_failures += 1
        if stats.consecutive_failures >= policy.cooldown_after:
            stats.cooling_until = now + policy.cooldown_s
            stats.consecutive_failures = 0
    return stats
