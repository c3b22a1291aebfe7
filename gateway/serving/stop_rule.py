"""When best_of may stop waiting: the miners still out are unlikely to change the winner.

The risk that waiting changes the winner is 1 - prod(1 - answer_i * beat_i) over the miners
still out, where `beat_i` is how often miner i's reward beat the current winner's when both
answered (pairwise history from every fully ranked request, with a prior from their EMA
scores), and `answer_i` is the chance it still answers in time: its success rate times the
share of its past latencies, of those beyond the time already waited, that fall before the
deadline. At most `wait_risk` of risk: stop (`confident`). At most `BUDGET_RISK`: the winner
is credible, and waiting ends `wait_budget` times its latency after it came (`budget`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from router.miner_client import Reply
from router.stats import MinerStats

# A reward must beat another by more than this to count as a win: a closer one is a tie,
# and a tie goes to the faster miner (replies that good are as good as each other).
MARGIN = 0.02
# Prior strength (in observations) of the score-based guess of a pairwise beat rate.
PRIOR_WEIGHT = 1.0
# Pairwise counts are scaled down past this many observations, so the history keeps moving.
MAX_SEEN = 256.0
MAX_PAIRS = 65_536
# The beat rate guessed for two miners of equal score, before any history of the pair.
EQUAL_PRIOR = 0.3
# Risk at most this: the winner in hand is more likely than not to stay the winner.
BUDGET_RISK = 0.5


@dataclass(slots=True)
class Pair:
    """How often one miner's reward beat another's, of the times both answered."""

    beats: float = 0.0
    seen: float = 0.0


@dataclass(slots=True)
class WinHistory:
    """Pairwise beat counts per pool, learned from every request ranked with all its replies."""

    pairs: dict[str, dict[tuple[int, int], Pair]] = field(default_factory=dict)

    def record(self, pool: str, replies: Sequence[Reply], rewards: Sequence[float]) -> None:
        """Count, for each pair of valid replies, whether the first beat the second."""
        ok = [(r.neuron.uid, w) for r, w in zip(replies, rewards, strict=True) if r.ok]
        if len(ok) < 2:
            return
        table = self.pairs.setdefault(pool, {})
        for i, ri in ok:
            for j, rj in ok:
                if i == j:
                    continue
                pair = table.get((i, j))
                if pair is None:
                    if len(table) >= MAX_PAIRS:
                        continue
                    pair = table[(i, j)] = Pair()
                if pair.seen >= MAX_SEEN:
                    pair.beats *= (MAX_SEEN - 1) / MAX_SEEN
                    pair.seen = MAX_SEEN - 1
                pair.seen += 1
                if ri > rj + MARGIN:
                    pair.beats += 1

    def beat(self, pool: str, uid: int, winner: int, prior: float) -> float:
        """How likely `uid`'s reply beats `winner`'s, `prior` standing for no history."""
        pair = self.pairs.get(pool, {}).get((uid, winner))
        beats, seen = (pair.beats, pair.seen) if pair else (0.0, 0.0)
        return (beats + PRIOR_WEIGHT * prior) / (seen + PRIOR_WEIGHT)


def score_prior(score: float, winner_score: float) -> float:
    """A guess at a beat rate from two EMA scores: under even when equal (equal replies tie,
    and a tie goes to the faster), rarer when lower."""
    return min(max(EQUAL_PRIOR + 2.0 * (score - winner_score), 0.02), 0.98)


def answer_chance(stats: MinerStats | None, waited_ms: float, left_ms: float) -> float:
    """How likely a miner still out answers validly before the deadline."""
    if stats is None or not stats.requests:
        return 1.0
    success = stats.success_rate or 0.0
    later = [ms for ms in stats.latencies if ms > waited_ms]
    if not stats.latencies:
        return success
    if not later:  # slower than it has ever been: as likely in time as not
        return success * 0.5
    in_time = sum(1 for ms in later if ms <= waited_ms + left_ms)
    return success * in_time / len(later)


def change_risk(
    history: WinHistory,
    pool: str,
    winner: int,
    outstanding: Iterable[int],
    stats: Mapping[int, MinerStats],
    waited_ms: float,
    left_ms: float,
) -> float:
    """The chance that some miner still out answers in time and beats `winner`."""
    winner_stats = stats.get(winner)
    winner_score = winner_stats.score if winner_stats else 0.0
    stay = 1.0
    for uid in outstanding:
        s = stats.get(uid)
        prior = score_prior(s.score if s else 0.0, winner_score) if s and s.requests else 0.5
        chance = answer_chance(s, waited_ms, left_ms) * history.beat(pool, uid, winner, prior)
        stay *= 1.0 - min(max(chance, 0.0), 1.0)
    return 1.0 - stay


def budget_end(arrived_s: float, latency_ms: float, budget: float) -> float:
    """When the wait budget of a winner that came at `arrived_s` (loop time) is spent."""
    if math.isinf(budget):
        return math.inf
    return arrived_s + budget * latency_ms / 1000.0
