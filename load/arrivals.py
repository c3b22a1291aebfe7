"""Open-loop arrival times: a fixed or linearly ramping rate, evenly spaced or Poisson."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator


def time_of(count: float, rate: float, rate_to: float | None, duration_s: float) -> float:
    """When the `count`-th arrival is due: N(t) = r0·t + (r1 - r0)·t²/(2D), inverted."""
    if rate_to is None or rate_to == rate:
        return count / rate
    a = (rate_to - rate) / (2.0 * duration_s)
    discriminant = rate * rate + 4.0 * a * count
    if discriminant < 0:  # past the end of a ramp down to zero
        return math.inf
    return (-rate + math.sqrt(discriminant)) / (2.0 * a)


def offsets(
    rate: float,
    duration_s: float,
    rate_to: float | None = None,
    limit: int | None = None,
    process: str = "poisson",
    rng: random.Random | None = None,
) -> Iterator[float]:
    """Seconds from the start at which each request is due, within `duration_s` and `limit`."""
    rng = rng or random.Random(0)
    count = 0.0
    sent = 0
    while limit is None or sent < limit:
        count += rng.expovariate(1.0) if process == "poisson" else 1.0
        at = time_of(count, rate, rate_to, duration_s)
        if at >= duration_s:
            return
        sent += 1
        yield at


def expected(rate: float, duration_s: float, rate_to: float | None = None) -> float:
    """How many arrivals a schedule holds on average."""
    end = rate if rate_to is None else rate_to
    return (rate + end) / 2.0 * duration_s
