"""Latency histograms: HDR histograms in microseconds, read back as milliseconds."""

from __future__ import annotations

from collections.abc import Iterable

from hdrh.histogram import HdrHistogram

# 1 µs to one hour, three significant digits: percentiles within 0.1% of the exact value.
LOWEST_US = 1
HIGHEST_US = 3_600_000_000
DIGITS = 3
# Small histograms (time-series windows, miners): 1 µs to 100 s, two digits (1%).
SMALL_HIGHEST_US = 100_000_000
SMALL_DIGITS = 2
QUANTILES = (50.0, 90.0, 99.0)

Stats = dict[str, float | None]


class Latency:
    """An HDR histogram of durations: record milliseconds, read percentiles in milliseconds."""

    __slots__ = ("_highest", "_hist")

    def __init__(self, small: bool = False) -> None:
        highest, digits = (SMALL_HIGHEST_US, SMALL_DIGITS) if small else (HIGHEST_US, DIGITS)
        self._hist = HdrHistogram(LOWEST_US, highest, digits)
        self._highest = highest

    def record(self, ms: float) -> None:
        """Add one duration in milliseconds (clamped to the histogram's range)."""
        us = int(ms * 1000.0)
        self._hist.record_value(min(max(us, LOWEST_US), self._highest))

    @property
    def count(self) -> int:
        """How many durations were recorded."""
        return int(self._hist.get_total_count())

    def percentile(self, q: float) -> float | None:
        """The `q`-th percentile (0-100) in milliseconds; None when empty."""
        if not self.count:
            return None
        return float(self._hist.get_value_at_percentile(q)) / 1000.0

    def stats(self) -> Stats:
        """p50, p90, p99, max and mean in milliseconds (None when empty)."""
        out: Stats = {f"p{q:g}": self.percentile(q) for q in QUANTILES}
        empty = not self.count
        out["max"] = None if empty else float(self._hist.get_max_value()) / 1000.0
        out["mean"] = None if empty else float(self._hist.get_mean_value()) / 1000.0
        return out

    def cdf(self, points: int = 200) -> list[tuple[float, float]]:
        """(milliseconds, share of requests at or below) at up to `points` quantiles."""
        if not self.count:
            return []
        steps = [100.0 * (1.0 - 10 ** (-5.0 * i / points)) for i in range(points)]
        steps.append(100.0)
        seen: dict[float, float] = {}
        for q in steps:
            seen[round(self._hist.get_value_at_percentile(q) / 1000.0, 3)] = q / 100.0
        return sorted(seen.items())

    def merge(self, other: Latency) -> None:
        """Add every value of another histogram of the same kind."""
        self._hist.add(other._hist)

    def encode(self) -> str:
        """The histogram in HdrHistogram's compressed base64 form (mergeable elsewhere)."""
        return str(self._hist.encode().decode("ascii"))

    @classmethod
    def decode(cls, encoded: str) -> Latency:
        """A histogram back from `encode`."""
        latency = cls()
        latency._hist = HdrHistogram.decode(encoded)
        latency._highest = int(latency._hist.highest_trackable_value)
        return latency

    @classmethod
    def of(cls, values_ms: Iterable[float], small: bool = False) -> Latency:
        """A histogram of these durations."""
        latency = cls(small)
        for value in values_ms:
            latency.record(value)
        return latency
