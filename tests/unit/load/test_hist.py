"""HDR histogram percentiles against exact ones, and the capacity search's logic."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from load.capacity import Objective, Plan, StepFigures, search
from load.hist import Latency


def exact(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(math.ceil(q / 100 * len(ordered)) - 1, 0)]


@pytest.mark.parametrize("seed", [1, 2])
def test_percentiles_match_exact_ones_within_the_histograms_precision(seed: int) -> None:
    rng = random.Random(seed)
    values = [rng.lognormvariate(3.0, 1.2) for _ in range(20_000)]  # ms, ~1 to ~2000
    values += [5000.0 + rng.random() for _ in range(50)]  # a far tail
    hist = Latency.of(values)
    assert hist.count == len(values)
    for q in (50.0, 90.0, 99.0, 99.9):
        assert hist.percentile(q) == pytest.approx(exact(values, q), rel=2e-3, abs=2e-3)
    stats = hist.stats()
    assert stats["max"] == pytest.approx(max(values), rel=1e-3)
    assert stats["mean"] == pytest.approx(sum(values) / len(values), rel=1e-3)
    small = Latency.of(values, small=True)
    assert small.percentile(99) == pytest.approx(exact(values, 99), rel=1e-2)


def test_known_data_and_round_trips() -> None:
    hist = Latency.of(float(ms) for ms in range(1, 1001))  # 1..1000 ms
    assert hist.percentile(50) == pytest.approx(500, rel=1e-3)
    assert hist.percentile(99) == pytest.approx(990, rel=1e-3)
    again = Latency.decode(hist.encode())
    assert again.stats() == hist.stats()
    cdf = hist.cdf()
    assert cdf[-1][1] == 1.0 and cdf[-1][0] == pytest.approx(1000, rel=1e-3)
    assert all(a[0] < b[0] and a[1] <= b[1] for a, b in itertools.pairwise(cdf))
    assert Latency().stats() == {"p50": None, "p90": None, "p99": None, "max": None, "mean": None}


async def test_the_capacity_search_finds_the_knee_and_bisects() -> None:
    tried: list[float] = []

    async def measure(rate: float) -> StepFigures:
        tried.append(rate)
        p99 = 100.0 if rate <= 130 else 5000.0  # the target breaks above 130 req/s
        return StepFigures(requests=100, errors=0, p50_ms=50.0, p99_ms=p99, rps=rate)

    found = await search("t", measure, Objective(p99_ms=2000), Plan(start=10, factor=2, refine=3))
    assert tried[:6] == [10, 20, 40, 80, 160, 120]
    assert found.capacity is not None and 120 <= found.capacity <= 130
    assert found.broke is not None and found.broke.rate > 130
    assert found.to_json()["broke_because"].startswith("p99")

    async def failing(rate: float) -> StepFigures:
        return StepFigures(requests=10, errors=5, p50_ms=1.0, p99_ms=1.0, rps=rate)

    none = await search("f", failing, Objective(error_budget=0.01), Plan(start=10))
    assert none.capacity is None and len(none.steps) == 1
