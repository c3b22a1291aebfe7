"""Each miner's concurrency, learned online: calls in flight and an AIMD limit on them.

The limit rises by one for each success while the miner was using all of it, and drops to
what was in flight before the call that got a 429 (a timeout backs it off by a tenth). After
a drop it stays at or below that level for `probe_after_s`, so a miner at its capacity is
probed past it rarely: each probe costs its Retry-After (router.backpressure). A miner at its
limit is full, not lost: it is skipped for new requests until a call of its own ends.
A plan reserves its miners' slots at once, so requests planned before their calls start
cannot overshoot a limit together.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from router.metagraph import Neuron

INITIAL_LIMIT = 4.0
MIN_LIMIT = 1.0
MAX_LIMIT = 256.0
TIMEOUT_BACKOFF = 0.9
PROBE_AFTER_S = 30.0
# A plan's slot is held this long for its call to start (a plan never served frees it).
RESERVE_S = 1.0


@dataclass(slots=True)
class MinerLimit:
    """One miner's calls in flight and the limit learned on them."""

    limit: float = INITIAL_LIMIT
    inflight: int = 0
    ceiling: float = MAX_LIMIT  # the level of the last 429; passed only after probe_after_s
    dropped_at: float = field(default=-math.inf)
    # When each slot held for a planned call lapses, if the call never starts.
    reserved: deque[float] = field(default_factory=deque)

    @property
    def room(self) -> int:
        """Calls that may still start now."""
        return max(int(self.limit) - self.inflight, 0)


class ConcurrencyLimits:
    """Every miner's (by axon address) in-flight calls and learned limit, in this replica."""

    def __init__(
        self,
        initial: float = INITIAL_LIMIT,
        probe_after_s: float = PROBE_AFTER_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.initial = initial
        self.probe_after_s = probe_after_s
        self.clock = clock
        self._miners: dict[str, MinerLimit] = {}
        # Called whenever a call ends (a slot may be free): the request queue listens.
        self.listeners: list[Callable[[], None]] = []

    def _of(self, neuron: Neuron) -> MinerLimit:
        found = self._miners.get(neuron.base_url)
        if found is None:
            found = self._miners[neuron.base_url] = MinerLimit(limit=self.initial)
        return found

    def room(self, neuron: Neuron) -> int:
        """How many more calls the miner may take now (reservations count as calls)."""
        found = self._miners.get(neuron.base_url)
        if found is None:
            return int(self.initial)
        return max(found.room - self._live(found), 0)

    def reserve(self, neuron: Neuron) -> None:
        """Hold a slot for a call a plan is about to start; it lapses after `RESERVE_S`."""
        miner = self._of(neuron)
        self._live(miner)
        miner.reserved.append(self.clock() + RESERVE_S)

    def unreserve(self, neuron: Neuron) -> None:
        """Give back a slot reserved for a call that will not be made."""
        miner = self._miners.get(neuron.base_url)
        if miner is not None and miner.reserved:
            miner.reserved.pop()
        for listener in self.listeners:
            listener()

    def _live(self, miner: MinerLimit) -> int:
        now = self.clock()
        while miner.reserved and miner.reserved[0] <= now:
            miner.reserved.popleft()
        return len(miner.reserved)

    def limit(self, neuron: Neuron) -> float:
        """The miner's learned limit."""
        return self._of(neuron).limit

    def inflight(self, neuron: Neuron) -> int:
        """The miner's calls in flight from this replica."""
        found = self._miners.get(neuron.base_url)
        return 0 if found is None else found.inflight

    def start(self, neuron: Neuron) -> int:
        """A call starts; returns how many were in flight before it."""
        miner = self._of(neuron)
        if miner.reserved:
            miner.reserved.popleft()
        before = miner.inflight
        miner.inflight += 1
        return before

    def end(self, neuron: Neuron, status: str | None, before: int) -> None:
        """A call that started with `before` others in flight ended with `status` (None: it
        was cancelled, which teaches nothing)."""
        miner = self._of(neuron)
        miner.inflight = max(miner.inflight - 1, 0)
        now = self.clock()
        if status == "busy":
            miner.limit = max(MIN_LIMIT, min(miner.limit, float(before)))
            miner.ceiling, miner.dropped_at = miner.limit, now
        elif status == "timeout":
            miner.limit = max(MIN_LIMIT, miner.limit * TIMEOUT_BACKOFF)
        elif status == "ok" and before + 1 >= int(miner.limit):
            cap = miner.ceiling if now - miner.dropped_at < self.probe_after_s else MAX_LIMIT
            miner.limit = min(max(miner.limit, min(miner.limit + 1.0, cap)), MAX_LIMIT)
        for listener in self.listeners:
            listener()

    def snapshot(self) -> dict[str, tuple[float, int]]:
        """Each known axon's (limit, in flight)."""
        return {url: (m.limit, m.inflight) for url, m in self._miners.items()}
