"""Pure functions that choose which miners get a request."""

from __future__ import annotations

import random
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import NotRequired, TypedDict

from router.backpressure import Backpressure
from router.metagraph import Neuron


def eligible(
    neurons: Iterable[Neuron],
    cooling_until: Mapping[int, float],
    now: float,
    backpressure: Backpressure | None = None,
) -> list[Neuron]:
    """Miners that may be asked: active, serving, no validator permit, not cooling down,
    and not paused by their own back-pressure."""
    return [
        n
        for n in neurons
        if n.active
        and n.serving
        and not n.validator_permit
        and cooling_until.get(n.uid, 0.0) <= now
        and not (backpressure is not None and backpressure.held(n, now))
    ]


def rank_by_incentive(neurons: Iterable[Neuron]) -> list[Neuron]:
    """Neurons by incentive, highest first; ties go to the lower uid."""
    return sorted(neurons, key=lambda n: (-n.incentive, n.uid))


def top_eligible(
    ranked: Iterable[Neuron],
    k: int,
    cooling_until: Mapping[int, float],
    now: float,
    backpressure: Backpressure | None = None,
) -> list[Neuron]:
    """The first `k` eligible miners of neurons already ranked by incentive.

    Stops at the `k`-th, so a large pool costs no more per request than a small one.
    """
    top: list[Neuron] = []
    for neuron in ranked:
        if len(top) == k:
            break
        if eligible((neuron,), cooling_until, now, backpressure):
            top.append(neuron)
    return top


def draw_weights(
    neurons: Sequence[Neuron], scores: Mapping[int, float], explore: float
) -> list[float]:
    """Each miner's draw weight: its share of EMA score mixed with a uniform `explore` share."""
    count = len(neurons)
    if count == 0:
        return []
    uniform = 1.0 / count
    raw = [max(scores.get(n.uid, 0.0), 0.0) for n in neurons]
    total = sum(raw)
    if total <= 0.0 or explore >= 1.0:
        return [uniform] * count
    return [(1.0 - explore) * r / total + explore * uniform for r in raw]


def sample_without_replacement(
    neurons: Sequence[Neuron], weights: Sequence[float], n: int, rng: random.Random
) -> list[Neuron]:
    """Draw `n` distinct miners, each draw proportional to the remaining weights."""
    pool = list(zip(neurons, weights, strict=True))
    picked: list[Neuron] = []
    while pool and len(picked) < n:
        total = sum(w for _, w in pool)
        if total <= 0.0:
            index = rng.randrange(len(pool))
        else:
            target = rng.random() * total
            index = len(pool) - 1
            for i, (_, weight) in enumerate(pool):
                target -= weight
                if target < 0.0:
                    index = i
                    break
        picked.append(pool.pop(index)[0])
    return picked


class Choice(TypedDict):
    """How one request picks its miners: what `select_candidates` and `select_width` share."""

    top_k: int
    sample: int
    scores: Mapping[int, float]
    cooling_until: Mapping[int, float]
    explore: float
    now: float
    rng: random.Random
    only: NotRequired[Collection[int] | None]
    exclude: NotRequired[Collection[int]]
    backpressure: NotRequired[Backpressure | None]


def select_candidates(
    ranked: Iterable[Neuron],
    *,
    top_k: int,
    sample: int,
    scores: Mapping[int, float],
    cooling_until: Mapping[int, float],
    explore: float,
    now: float,
    rng: random.Random,
    only: Collection[int] | None = None,
    exclude: Collection[int] = (),
    backpressure: Backpressure | None = None,
) -> list[Neuron]:
    """Eligible miners → top `top_k` by incentive → `sample` of them, weighted by score.

    `ranked` must be ranked by incentive (`rank_by_incentive`) and hold only miners the axon
    policy allows; pools keep theirs so. `only` keeps just those uids (a request that names
    its miners), `exclude` drops uids.
    """
    if only is not None or exclude:
        ranked = [n for n in ranked if (only is None or n.uid in only) and n.uid not in exclude]
    top = top_eligible(ranked, top_k, cooling_until, now, backpressure)
    if sample >= len(top):
        return top
    return sample_without_replacement(top, draw_weights(top, scores, explore), sample, rng)
