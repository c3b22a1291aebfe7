"""Tests for router.backpressure: Retry-After parsing and holding a miner."""

from __future__ import annotations

import email.utils

import pytest

from router.backpressure import (
    DEFAULT_RETRY_AFTER_S,
    MAX_RETRY_AFTER_S,
    Backpressure,
    retry_after_s,
)
from router.metagraph import Axon, Neuron

NOW = 1_000_000.0


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("3", 3.0),
        (" 2.5 ", 2.5),
        (None, DEFAULT_RETRY_AFTER_S),
        ("", DEFAULT_RETRY_AFTER_S),
        ("soon", DEFAULT_RETRY_AFTER_S),
        ("nan", DEFAULT_RETRY_AFTER_S),
        ("-5", 0.0),
        ("99999999", MAX_RETRY_AFTER_S),
        (email.utils.formatdate(NOW + 20, usegmt=True), 20.0),
    ],
)
def test_retry_after_is_read_within_bounds(header: str | None, seconds: float) -> None:
    assert retry_after_s(header, now=NOW) == pytest.approx(seconds)


def test_a_held_miner_is_held_until_then_by_its_axon() -> None:
    clock = [NOW]
    board = Backpressure(clock=lambda: clock[0])
    miner = Neuron(uid=1, hotkey="a", axon=Axon(ip="127.0.0.1", port=9001))
    same_axon_new_hotkey = Neuron(uid=1, hotkey="b", axon=Axon(ip="127.0.0.1", port=9001))
    other = Neuron(uid=2, hotkey="c", axon=Axon(ip="127.0.0.1", port=9002))
    board.hold(miner, 5.0)
    assert board.held(miner, NOW + 4.9)
    assert board.held(same_axon_new_hotkey, NOW)
    assert not board.held(other, NOW)
    assert not board.held(miner, NOW + 5.0)
    board.release(miner)
    assert not board.held(miner, NOW)
    board.hold(other, 1.0)
    clock[0] += 2.0
    board.hold(miner, 1.0)  # forgets the expired hold of `other`
    assert board.waiting() == [miner.base_url]
