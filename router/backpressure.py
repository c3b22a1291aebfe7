"""Miners that asked for a pause (429, or 503 with Retry-After): skipped until then, not scored."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable

from router.metagraph import Neuron

DEFAULT_RETRY_AFTER_S = 1.0
# A miner may ask for a pause, not for a ban: a longer Retry-After is cut to this.
MAX_RETRY_AFTER_S = 300.0


def retry_after_s(value: str | None, now: float | None = None) -> float:
    """A Retry-After header (seconds or an HTTP date) in seconds, within bounds."""
    if not value:
        return DEFAULT_RETRY_AFTER_S
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return DEFAULT_RETRY_AFTER_S
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds:  # NaN
        return DEFAULT_RETRY_AFTER_S
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


class Backpressure:
    """Until when each miner (by axon address) asked not to be called, in `clock` time."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._until: dict[str, float] = {}

    def hold(self, neuron: Neuron, seconds: float) -> None:
        """Leave the miner at this axon alone for `seconds`."""
        self._until[neuron.base_url] = self.clock() + seconds
        self._forget_past()

    def release(self, neuron: Neuron) -> None:
        """The miner says it has room again (its /availability)."""
        self.release_url(neuron.base_url)

    def release_url(self, base_url: str) -> None:
        """The miner at `base_url` says it has room again."""
        self._until.pop(base_url, None)

    def held(self, neuron: Neuron, now: float) -> bool:
        """Whether the miner asked not to be called at `now`."""
        return bool(self._until) and self._until.get(neuron.base_url, 0.0) > now

    def waiting(self) -> list[str]:
        """The axons held now."""
        now = self.clock()
        return [url for url, until in self._until.items() if until > now]

    def _forget_past(self) -> None:
        now = self.clock()
        for url in [u for u, until in self._until.items() if until <= now]:
            del self._until[url]
