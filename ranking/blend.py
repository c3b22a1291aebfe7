"""Blends: a weighted sum of normalised rewards from several rankers, times the filters.

For one request with candidates 1..n, each component ranker k gives rewards r_k. They are
normalised per request so that each component's best candidate gets 1, whatever the model's
raw scale, and the weights mean what they say:

    low_k     = min(0, min_i r_k(i))        (0 for the usual non-negative rewards)
    norm_k(i) = (r_k(i) - low_k) / (max_i r_k(i) - low_k)      (0 for all when max = low)
    blend(i)  = mask(i) * sum_k w_k * norm_k(i) / sum_k w_k

Dividing by the maximum rather than stretching min..max keeps a runner-up that a model
scored nearly as high as the best near 1 (its miner's score should barely suffer), and never
forces the lowest reply to 0, so a filter still separates a penalised reply from one the
model merely liked less.

where mask(i) is the product of the filters' factors (ranking.filters). A component that is
unavailable this time (loading, timeout, 5xx, wrong shape) is dropped for the request and
the remaining weights are renormalised; the drop is reported through `on_fallback`. The
reasons of a candidate are the filters' reasons followed by the components' own.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from ranking.base import READY, Candidate, Prompt, Ranker, RankerUnavailable, Ranking, ranker_state
from ranking.filters import Filters

logger = logging.getLogger(__name__)

FallbackHook = Callable[[str, str], None]
FLAT = 1e-6


def normalise(rewards: Sequence[float]) -> list[float]:
    """Rewards scaled so the best is 1 and 0 stays 0 (negative rewards shifted up first)."""
    if not rewards:
        return []
    low, high = min(0.0, min(rewards)), max(rewards)
    if high - low < FLAT:
        return [0.0] * len(rewards)
    return [(r - low) / (high - low) for r in rewards]


def report_fallback(hook: FallbackHook | None, exc: RankerUnavailable, during: str) -> None:
    """Log a ranker that could not score, and tell the hook (metrics)."""
    # "no_component": each component already said why it could not score.
    quiet = {"loading", "disabled", "no_component", "model_not_installed"}
    level = logging.DEBUG if exc.reason in quiet else logging.WARNING
    logger.log(level, "ranker %s unavailable in %s (%s): %s", exc.ranker, during, exc.reason, exc)
    if hook is not None:
        hook(exc.ranker, exc.reason)


class BlendRanker:
    """Weighted sum of normalised component rewards, multiplied by filter masks."""

    def __init__(
        self,
        name: str,
        components: Sequence[tuple[Ranker, float]],
        filters: Filters | None = None,
        on_fallback: FallbackHook | None = None,
    ) -> None:
        if not components or any(w < 0 for _, w in components):
            raise ValueError("a blend needs components with non-negative weights")
        self.name = name
        self.components = list(components)
        self.filters = filters
        self.on_fallback = on_fallback

    def state(self) -> str:
        """Ready when every component is; else the first component that is not, and why."""
        for ranker, weight in self.components:
            state = ranker_state(ranker)
            if weight > 0 and state != READY:
                return state
        return READY

    async def score(self, prompt: Prompt, candidates: Sequence[Candidate]) -> Ranking:
        """Score with every component concurrently, normalise, weigh, mask."""
        n = len(candidates)
        results = await asyncio.gather(
            *(ranker.score(prompt, candidates) for ranker, _ in self.components),
            return_exceptions=True,
        )
        totals = [0.0] * n
        weight_sum = 0.0
        reasons: list[list[str]] = [[] for _ in candidates]
        component_reasons: list[list[str]] = [[] for _ in candidates]
        dropped: list[RankerUnavailable] = []
        for (ranker, weight), result in zip(self.components, results, strict=True):
            if isinstance(result, BaseException) and not isinstance(result, RankerUnavailable):
                raise result
            if not isinstance(result, RankerUnavailable) and len(result.rewards) != n:
                result = RankerUnavailable(ranker.name, "bad_shape")
            if isinstance(result, RankerUnavailable):
                report_fallback(self.on_fallback, result, self.name)
                dropped.append(result)
                continue
            for i, value in enumerate(normalise(result.rewards)):
                totals[i] += weight * value
            weight_sum += weight
            for i, why in enumerate(result.reasons or []):
                component_reasons[i] += why
        if weight_sum <= 0:
            cause = dropped[0] if dropped else None
            raise RankerUnavailable(self.name, "no_component", cause=cause)
        rewards = [t / weight_sum for t in totals]
        if self.filters is not None:
            filtered = self.filters.apply(prompt, candidates)
            rewards = [r * m for r, m in zip(rewards, filtered.masks, strict=True)]
            reasons = filtered.reasons
        merged = [
            list(dict.fromkeys([*own, *theirs]))
            for own, theirs in zip(reasons, component_reasons, strict=True)
        ]
        note = "; ".join(f"without {d.ranker}: {d.why}" for d in dropped)
        return Ranking([min(1.0, max(0.0, r)) for r in rewards], merged, self.name, note)


class FallbackRanker:
    """Tries rankers in order; the first that scores wins, each failure is logged and counted."""

    def __init__(
        self, name: str, chain: Sequence[Ranker], on_fallback: FallbackHook | None = None
    ) -> None:
        if not chain:
            raise ValueError("a fallback chain needs at least one ranker")
        self.name = name
        self.chain = list(chain)
        self.on_fallback = on_fallback

    def state(self) -> str:
        """The state of the ranker asked first (the others only stand in for it)."""
        return ranker_state(self.chain[0])

    async def score(self, prompt: Prompt, candidates: Sequence[Candidate]) -> Ranking:
        """The first ranker's answer that is not RankerUnavailable; the last error otherwise.

        The ranking names the ranker that answered and, when it is not the first, why the
        first could not.
        """
        first: RankerUnavailable | None = None
        error: RankerUnavailable | None = None
        for ranker in self.chain:
            try:
                ranking = await ranker.score(prompt, candidates)
            except RankerUnavailable as exc:
                report_fallback(self.on_fallback, exc, self.name)
                first, error = first or exc, exc
                continue
            ranking.ranked_by = ranking.ranked_by or ranker.name
            if first is not None:
                ranking.note = f"{self.name} unavailable: {first.why}"
            return ranking
        assert error is not None
        raise error


class FilteredRanker:
    """One ranker's rewards times the filter masks (the filters alone when it is None)."""

    def __init__(self, name: str, ranker: Ranker | None, filters: Filters) -> None:
        self.name = name
        self.ranker = ranker
        self.filters = filters

    def state(self) -> str:
        """The state of the ranker the filters mask (ready for the filters alone)."""
        return READY if self.ranker is None else ranker_state(self.ranker)

    async def score(self, prompt: Prompt, candidates: Sequence[Candidate]) -> Ranking:
        """Masked rewards, with the filters' reasons first."""
        if self.ranker is None:
            base = Ranking([1.0] * len(candidates), [[] for _ in candidates])
        else:
            base = await self.ranker.score(prompt, candidates)
        filtered = self.filters.apply(prompt, candidates)
        rewards = [r * m for r, m in zip(base.rewards, filtered.masks, strict=True)]
        reasons = [
            list(dict.fromkeys([*f, *b]))
            for f, b in zip(filtered.reasons, base.reasons or [[]] * len(candidates), strict=True)
        ]
        return Ranking(rewards, reasons, self.name, base.note)
