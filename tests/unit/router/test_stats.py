"""Tests for router.stats: folding reply outcomes into a miner's stats."""

from __future__ import annotations

import pytest

from router.stats import MinerStats, Outcome, ScorePolicy, Status, apply_outcome

NOW = 1_000.0
POLICY = ScorePolicy(alpha=0.5, cooldown_after=3, cooldown_s=30.0, latency_window=3)


def outcome(
    status: Status = "ok",
    reward: float = 1.0,
    latency_ms: float = 100.0,
    *,
    hotkey: str = "hk0",
    won: bool = False,
) -> Outcome:
    """An outcome for uid 0."""
    return Outcome(
        uid=0, hotkey=hotkey, status=status, reward=reward, latency_ms=latency_ms, won=won
    )


def fold(*outcomes: Outcome, policy: ScorePolicy = POLICY, now: float = NOW) -> MinerStats:
    """Stats after applying `outcomes` in order to a fresh miner."""
    stats: MinerStats | None = None
    for o in outcomes:
        stats = apply_outcome(stats, o, policy, now)
    assert stats is not None
    return stats


def test_first_outcome_starts_fresh_stats() -> None:
    stats = fold(outcome(reward=0.8, latency_ms=120.0, won=True))
    assert stats == MinerStats(
        hotkey="hk0",
        score=0.4,
        requests=1,
        successes=1,
        failures=0,
        consecutive_failures=0,
        cooling_until=0.0,
        wins=1,
        latencies=[120.0],
    )


def test_score_is_an_ema_with_alpha() -> None:
    policy = ScorePolicy(alpha=0.1)
    stats = fold(outcome(reward=1.0), outcome(reward=0.5), policy=policy)
    # 0.9 * (0.9 * 0 + 0.1 * 1.0) + 0.1 * 0.5
    assert stats.score == pytest.approx(0.14)


@pytest.mark.parametrize("status", ["timeout", "error", "invalid"])
def test_a_failure_counts_as_zero_reward(status: Status) -> None:
    stats = fold(outcome(reward=1.0), outcome(status, reward=0.9))
    assert stats.score == pytest.approx(0.25)
    assert (stats.requests, stats.successes, stats.failures) == (2, 1, 1)
    assert stats.success_rate == 0.5


def test_only_ok_replies_add_latency() -> None:
    stats = fold(outcome(latency_ms=100.0), outcome("timeout", latency_ms=5000.0))
    assert stats.latencies == [100.0]


def test_latency_window_keeps_the_most_recent() -> None:
    stats = fold(*(outcome(latency_ms=float(ms)) for ms in (10, 20, 30, 40, 50)))
    assert stats.latencies == [30.0, 40.0, 50.0]


def test_p50_is_the_median_latency() -> None:
    policy = ScorePolicy(latency_window=10)
    stats = fold(*(outcome(latency_ms=ms) for ms in (300.0, 100.0, 200.0, 900.0)), policy=policy)
    assert stats.p50_latency_ms == 250.0


def test_no_latency_or_rate_before_any_reply() -> None:
    stats = MinerStats(hotkey="hk0")
    assert stats.p50_latency_ms is None
    assert stats.success_rate is None


def test_wins_are_counted() -> None:
    stats = fold(outcome(won=True), outcome(won=False), outcome(won=True))
    assert stats.wins == 2


def test_cool_down_after_consecutive_failures() -> None:
    stats = fold(outcome("error"), outcome("timeout"))
    assert stats.cooling_until == 0.0
    stats = apply_outcome(stats, outcome("invalid"), POLICY, NOW)
    assert stats.cooling_until == NOW + 30.0
    assert stats.consecutive_failures == 0  # the streak starts again after a cool-down


def test_a_success_resets_the_failure_streak() -> None:
    stats = fold(outcome("error"), outcome("error"), outcome("ok"), outcome("error"))
    assert stats.consecutive_failures == 1
    assert stats.cooling_until == 0.0


def test_a_new_hotkey_on_the_uid_starts_afresh() -> None:
    old = fold(outcome(reward=1.0, won=True), outcome("error"), outcome("error"))
    stats = apply_outcome(old, outcome("timeout", hotkey="hk-new"), POLICY, NOW)
    assert stats == MinerStats(
        hotkey="hk-new", score=0.0, requests=1, failures=1, consecutive_failures=1
    )


def test_json_round_trip() -> None:
    stats = fold(outcome(reward=0.7, won=True), outcome("error"), outcome(latency_ms=80.0))
    assert MinerStats.from_json(stats.to_json()) == stats


def test_from_json_accepts_lua_empty_object_for_latencies() -> None:
    raw = {"hotkey": "hk0", "score": 0.0, "requests": 1, "failures": 1, "latencies": {}}
    stats = MinerStats.from_json(raw)
    assert stats.latencies == []
    assert stats.failures == 1


def test_from_json_fills_missing_fields_with_defaults() -> None:
    assert MinerStats.from_json({"hotkey": "hk0"}) == MinerStats(hotkey="hk0")
