"""Capacity search: raise the offered rate step by step until an objective breaks."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

MAX_STEPS = 50


@dataclass(frozen=True, slots=True)
class Objective:
    """What a rate must meet to hold: a latency percentile and an error budget."""

    p99_ms: float = 2000.0
    error_budget: float = 0.01

    def verdict(self, p99_ms: float | None, error_rate: float) -> str | None:
        """Why a step broke the objective, or None when it held."""
        if error_rate > self.error_budget:
            return f"errors {100 * error_rate:.1f}% > {100 * self.error_budget:g}%"
        if p99_ms is None:
            return "no replies"
        if p99_ms > self.p99_ms:
            return f"p99 {p99_ms:.0f} ms > {self.p99_ms:g} ms"
        return None


@dataclass(frozen=True, slots=True)
class StepFigures:
    """What one step at a fixed rate measured."""

    requests: int
    errors: int
    p50_ms: float | None
    p99_ms: float | None
    rps: float

    @property
    def error_rate(self) -> float:
        """Errors per request (1.0 when nothing came back)."""
        return self.errors / self.requests if self.requests else 1.0


@dataclass(frozen=True, slots=True)
class Step:
    """One offered rate and whether it held."""

    rate: float
    figures: StepFigures
    broke: str | None

    @property
    def held(self) -> bool:
        """Whether the objective held at this rate."""
        return self.broke is None


@dataclass(frozen=True, slots=True)
class Plan:
    """How the rate rises: from `start`, times `factor` (or plus `step`), up to `max_rate`."""

    start: float = 10.0
    factor: float = 1.5
    step: float | None = None
    max_rate: float = 10_000.0
    max_steps: int = 20
    refine: int = 2

    def next_rate(self, rate: float) -> float:
        """The rate after `rate`."""
        return rate + self.step if self.step else rate * self.factor


@dataclass(slots=True)
class Search:
    """A finished search: every step, and the highest rate that held."""

    label: str
    steps: list[Step] = field(default_factory=list)

    @property
    def capacity(self) -> float | None:
        """The highest offered rate that met the objective."""
        held = [s.rate for s in self.steps if s.held]
        return max(held) if held else None

    @property
    def broke(self) -> Step | None:
        """The lowest rate that broke the objective."""
        broken = [s for s in self.steps if not s.held]
        return min(broken, key=lambda s: s.rate) if broken else None

    def to_json(self) -> dict[str, Any]:
        """A plain dict for JSON."""
        return {
            "label": self.label,
            "capacity_rps": self.capacity,
            "broke_at_rps": None if self.broke is None else self.broke.rate,
            "broke_because": None if self.broke is None else self.broke.broke,
            "steps": [
                {"rate": s.rate, "held": s.held, "broke": s.broke, **asdict(s.figures)}
                for s in self.steps
            ],
        }


Measure = Callable[[float], Awaitable[StepFigures]]


async def search(
    label: str, measure: Measure, objective: Objective, plan: Plan, on_step: Any = None
) -> Search:
    """Raise the rate until the objective breaks (or the plan ends), then bisect `refine` times."""
    found = Search(label)

    async def attempt(rate: float) -> Step:
        figures = await measure(rate)
        step = Step(rate, figures, objective.verdict(figures.p99_ms, figures.error_rate))
        found.steps.append(step)
        if on_step is not None:
            on_step(label, step)
        return step

    rate = plan.start
    for _ in range(min(plan.max_steps, MAX_STEPS)):
        if not (await attempt(rate)).held or rate >= plan.max_rate:
            break
        rate = min(plan.next_rate(rate), plan.max_rate)
    for _ in range(plan.refine):
        low, high = found.capacity, found.broke
        if low is None or high is None or high.rate - low <= max(1.0, 0.02 * low):
            break
        await attempt(round((low + high.rate) / 2.0, 2))
    return found
