"""The learned per-miner concurrency limits (AIMD) and the width a request gets from them."""

from __future__ import annotations

import random

from router.backpressure import Backpressure
from router.concurrency import ConcurrencyLimits
from router.metagraph import Axon, Neuron
from router.width import Width, select_width, spare_width


def miner(uid: int) -> Neuron:
    return Neuron(uid=uid, hotkey=f"hk{uid}", axon=Axon(ip="127.0.0.1", port=9000 + uid))


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def fill(limits: ConcurrencyLimits, neuron: Neuron, calls: int) -> list[int]:
    return [limits.start(neuron) for _ in range(calls)]


def test_a_429_drops_the_limit_to_what_was_in_flight_and_it_stays_there_a_while() -> None:
    clock = Clock()
    limits = ConcurrencyLimits(initial=8, probe_after_s=30, clock=clock)
    m = miner(0)
    befores = fill(limits, m, 5)
    limits.end(m, "busy", befores[-1])  # the fifth call (four before it) was refused
    assert limits.limit(m) == 4
    for before in befores[:4]:
        limits.end(m, "ok", before)
    # Fully used again: successes may not lift it past the 429's level before probe_after_s.
    for _ in range(10):
        befores = fill(limits, m, 4)
        for before in befores:
            limits.end(m, "ok", before)
    assert limits.limit(m) == 4
    clock.now = 31.0
    befores = fill(limits, m, 4)
    limits.end(m, "ok", befores[-1])
    assert limits.limit(m) == 5


def test_the_limit_rises_only_while_the_miner_is_fully_used() -> None:
    limits = ConcurrencyLimits(initial=4)
    m = miner(0)
    for _ in range(20):
        limits.end(m, "ok", limits.start(m))  # one call at a time never needs more
    assert limits.limit(m) == 4
    befores = fill(limits, m, 4)
    limits.end(m, "ok", befores[-1])
    assert limits.limit(m) == 5


def test_room_counts_calls_in_flight_and_reservations_until_they_lapse() -> None:
    clock = Clock()
    limits = ConcurrencyLimits(initial=2, clock=clock)
    m = miner(0)
    limits.reserve(m)
    assert limits.room(m) == 1
    limits.start(m)  # the reserved call starts: counted once
    assert limits.room(m) == 1 and limits.inflight(m) == 1
    limits.reserve(m)
    assert limits.room(m) == 0
    clock.now = 5.0  # a plan that never started its call frees the slot
    assert limits.room(m) == 1


def test_a_cancelled_call_frees_its_slot_and_teaches_nothing() -> None:
    limits = ConcurrencyLimits(initial=4)
    m = miner(0)
    limits.end(m, None, limits.start(m))
    assert limits.inflight(m) == 0 and limits.limit(m) == 4


def test_spare_width_shrinks_with_free_slots_and_queued_requests() -> None:
    assert spare_width(10, 1, 40, 40) == 10
    assert spare_width(10, 1, 20, 40) == 5
    assert spare_width(10, 1, 1, 40) == 1
    assert spare_width(10, 1, 12, 40, waiting=6) == 2
    assert spare_width(10, 3, 1, 40) == 3  # never below min_sample


def choose(limits: ConcurrencyLimits, neurons: list[Neuron], **kw: object) -> Width:
    args: dict[str, object] = {
        "top_k": 10, "sample": 10, "min_sample": 1, "scores": {}, "cooling_until": {},
        "explore": 0.2, "now": 0.0, "rng": random.Random(1), "limits": limits,
    }  # fmt: skip
    args.update(kw)
    return select_width(neurons, **args)  # type: ignore[arg-type]


def test_a_full_miner_is_skipped_and_widths_shrink_under_load() -> None:
    limits = ConcurrencyLimits(initial=2)
    pool = [miner(u) for u in range(4)]
    assert choose(limits, pool).why == "pool"
    fill(limits, pool[0], 2)
    width = choose(limits, pool)
    assert pool[0] not in width.candidates and width.free == 3
    for n in pool[1:]:
        fill(limits, n, 1)
    narrow = choose(limits, pool, sample=4)
    assert narrow.asked == 2 and narrow.why == "load"  # 3 of 8 slots free: ceil(4 * 3/8)
    for n in pool[1:]:
        fill(limits, n, 1)
    assert choose(limits, pool).why == "none"


def test_a_pool_paused_by_429s_is_full_not_empty() -> None:
    held = Backpressure(clock=lambda: 0.0)
    pool = [miner(u) for u in range(2)]
    for n in pool:
        held.hold(n, 1.0)
    width = choose(ConcurrencyLimits(), pool, backpressure=held)
    assert width.candidates == [] and width.eligible == 2 and width.free == 0
