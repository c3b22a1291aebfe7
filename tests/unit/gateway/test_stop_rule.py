"""The stop rule: who beat whom, the chance a miner still out answers in time, the risk."""

from __future__ import annotations

import pytest

from gateway.serving.stop_rule import WinHistory, answer_chance, change_risk, score_prior
from router.miner_client import Reply
from router.stats import MinerStats
from tests.unit.gateway.strategies.fakes import neuron


def replies(*uids: int) -> list[Reply]:
    return [Reply(neuron(u), "ok", 10.0, "x") for u in uids]


def test_history_counts_strict_wins_only_and_keeps_moving() -> None:
    history = WinHistory()
    for _ in range(10):
        history.record("p", replies(0, 1, 2), [0.9, 0.9, 0.2])
    assert history.pairs["p"][(0, 2)].beats == 10
    assert history.pairs["p"][(1, 0)].beats == 0  # a tie is no win: the faster keeps it
    assert history.beat("p", 1, 0, prior=0.5) == pytest.approx(0.5 / 11)
    assert history.beat("p", 7, 0, prior=0.3) == pytest.approx(0.3)  # never seen: the prior


def test_failed_replies_teach_no_pairs() -> None:
    history = WinHistory()
    failed = Reply(neuron(1), "error", 10.0)
    history.record("p", [*replies(0), failed], [0.5, 0.0])
    assert "p" not in history.pairs


def test_a_miner_is_unlikely_in_time_when_its_latencies_say_so() -> None:
    slow = MinerStats(
        hotkey="h", requests=4, successes=4, latencies=[900.0, 1000.0, 1100.0, 5000.0]
    )
    assert answer_chance(slow, waited_ms=100, left_ms=1500) == pytest.approx(0.75)
    assert answer_chance(slow, waited_ms=950, left_ms=200) == pytest.approx(2 / 3)
    assert answer_chance(None, 0, 10) == 1.0
    flaky = MinerStats(hotkey="h", requests=4, successes=2, latencies=[100.0, 100.0])
    assert answer_chance(flaky, 0, 1000) == pytest.approx(0.5)


def test_risk_grows_with_each_miner_that_could_still_win() -> None:
    history = WinHistory()
    stats = {u: MinerStats(hotkey="h", score=0.5, requests=10, successes=10) for u in range(4)}
    one = change_risk(history, "p", 0, [1], stats, 0, 1000)
    three = change_risk(history, "p", 0, [1, 2, 3], stats, 0, 1000)
    assert 0 < one < three < 1
    assert change_risk(history, "p", 0, [], stats, 0, 1000) == 0.0
    assert score_prior(0.2, 0.9) == 0.02 and score_prior(0.9, 0.2) == 0.98
    assert score_prior(0.5, 0.5) < 0.5
