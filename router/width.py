"""How wide one request goes: what the pool can spare now, between `min_sample` and `sample`.

Of the top-k eligible miners, those at their learned concurrency limit are full (skipped,
not lost). The width is `sample` scaled by the pool's share of free slots, never below
`min_sample` while miners have room, never more than the miners with room, and no more than
the free slots shared among the requests queued for them: under load widths shrink before
any request must wait.
"""

from __future__ import annotations

import math
import random
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from router.backpressure import Backpressure
from router.concurrency import ConcurrencyLimits
from router.metagraph import Neuron
from router.selection import draw_weights, sample_without_replacement, top_eligible

# A narrowed request's draw leans harder on score than a full one's: with few miners asked,
# each should be among the best with room.
SHARPEN = 4.0
# full: sample granted; pool: fewer eligible miners than sample; load: shrunk to what the
# pool can spare; floor: held at min_sample by load; none: no miner has room.
WidthWhy = Literal["full", "pool", "load", "floor", "none"]


@dataclass(frozen=True, slots=True)
class Width:
    """The miners chosen for one request and why that many."""

    candidates: list[Neuron]
    asked: int
    why: WidthWhy
    eligible: int  # top-k eligible miners, full, paused or not
    free: int  # miners among them with room
    spares: tuple[Neuron, ...] = ()  # miners with room not chosen: stand-ins for a busy one


def spare_width(
    sample: int, min_sample: int, free_slots: int, total_slots: int, waiting: int = 0
) -> int:
    """`sample` times the pool's share of free slots, and no more than the free slots shared
    with the requests waiting for them; at least `min_sample`."""
    if total_slots <= 0:
        return min_sample
    share = math.ceil(sample * free_slots / total_slots)
    return max(min_sample, min(sample, share, free_slots // max(waiting, 1)))


def select_width(
    ranked: Iterable[Neuron],
    *,
    top_k: int,
    sample: int,
    min_sample: int,
    scores: Mapping[int, float],
    cooling_until: Mapping[int, float],
    explore: float,
    now: float,
    rng: random.Random,
    limits: ConcurrencyLimits,
    only: Collection[int] | None = None,
    exclude: Collection[int] = (),
    backpressure: Backpressure | None = None,
    waiting: int = 0,
) -> Width:
    """Eligible → top `top_k` → those with room → `width` of them, weighted by score."""
    if only is not None or exclude:
        ranked = [n for n in ranked if (only is None or n.uid in only) and n.uid not in exclude]
    top = top_eligible(ranked, top_k, cooling_until, now, backpressure)
    if not top and backpressure is not None:  # paused for a Retry-After: full, not lost
        paused = len(top_eligible(ranked, top_k, cooling_until, now, None))
        return Width([], 0, "none", paused, 0)
    rooms = [limits.room(n) for n in top]
    open_ = [n for n, room in zip(top, rooms, strict=True) if room > 0]
    if not open_:
        return Width([], 0, "none", len(top), 0)
    total = sum(int(limits.limit(n)) for n in top)
    width = spare_width(sample, min(min_sample, sample), sum(rooms), total, waiting)
    width = min(width, len(open_))
    if width >= sample:
        why: WidthWhy = "full"
    elif width == len(open_) == len(top):
        why = "pool"
    elif width <= min_sample:
        why = "floor"
    else:
        why = "load"
    if width >= len(open_):
        chosen = open_
    else:
        sharp = {n.uid: max(scores.get(n.uid, 0.0), 0.0) ** SHARPEN for n in open_}
        weights = draw_weights(open_, sharp, explore)
        chosen = sample_without_replacement(open_, weights, width, rng)
    spares = tuple(n for n in open_ if n not in chosen)
    return Width(chosen, len(chosen), why, len(top), len(open_), spares)
