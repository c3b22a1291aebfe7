"""Tests for router.selection: eligibility, top-K by incentive, weighted sampling."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from router.metagraph import Axon, Neuron
from router.selection import (
    draw_weights,
    eligible,
    rank_by_incentive,
    sample_without_replacement,
    select_candidates,
    top_eligible,
)

NOW = 1_000.0


def miner(
    uid: int,
    incentive: float = 0.1,
    *,
    ip: str = "127.0.0.1",
    port: int = 9000,
    active: bool = True,
    validator_permit: bool = False,
) -> Neuron:
    """A neuron with the fields selection looks at."""
    return Neuron(
        uid=uid,
        hotkey=f"hk{uid}",
        axon=Axon(ip=ip, port=port + uid if port else 0),
        incentive=incentive,
        active=active,
        validator_permit=validator_permit,
    )


def uids(neurons: list[Neuron]) -> list[int]:
    """The uids, in order."""
    return [n.uid for n in neurons]


def select(
    neurons: list[Neuron],
    *,
    top_k: int = 10,
    sample: int = 10,
    scores: dict[int, float] | None = None,
    cooling: dict[int, float] | None = None,
    explore: float = 0.2,
    seed: int = 0,
) -> list[Neuron]:
    """`select_candidates` with test defaults."""
    return select_candidates(
        rank_by_incentive(neurons),
        top_k=top_k,
        sample=sample,
        scores=scores or {},
        cooling_until=cooling or {},
        explore=explore,
        now=NOW,
        rng=random.Random(seed),
    )


def draw_counts(
    neurons: list[Neuron], scores: dict[int, float], explore: float, draws: int = 4000
) -> Counter[int]:
    """How often each uid is drawn when sampling one miner `draws` times, seeded."""
    rng = random.Random(1234)
    weights = draw_weights(neurons, scores, explore)
    return Counter(
        sample_without_replacement(neurons, weights, 1, rng)[0].uid for _ in range(draws)
    )


# --- eligibility ---


def test_eligible_keeps_an_active_serving_miner() -> None:
    assert uids(eligible([miner(0)], {}, NOW)) == [0]


@pytest.mark.parametrize(
    "excluded",
    [
        pytest.param(miner(1, active=False), id="inactive"),
        pytest.param(miner(1, ip="0.0.0.0"), id="ip-0.0.0.0"),
        pytest.param(miner(1, port=0), id="port-0"),
        pytest.param(miner(1, validator_permit=True), id="validator"),
    ],
)
def test_eligible_drops_miners_that_cannot_be_asked(excluded: Neuron) -> None:
    assert uids(eligible([miner(0), excluded, miner(2)], {}, NOW)) == [0, 2]


def test_eligible_drops_a_miner_cooling_down_until_later() -> None:
    cooling = {1: NOW + 5.0}
    assert uids(eligible([miner(0), miner(1)], cooling, NOW)) == [0]


def test_eligible_keeps_a_miner_whose_cool_down_has_passed() -> None:
    cooling = {0: NOW - 5.0, 1: NOW}
    assert uids(eligible([miner(0), miner(1)], cooling, NOW)) == [0, 1]


def test_all_cooling_down_leaves_no_candidates() -> None:
    neurons = [miner(uid) for uid in range(4)]
    cooling = {uid: NOW + 30.0 for uid in range(4)}
    assert select(neurons, cooling=cooling) == []


# --- top-K by incentive ---


def test_top_k_takes_the_highest_incentive_first() -> None:
    neurons = [miner(0, 0.1), miner(1, 0.5), miner(2, 0.3), miner(3, 0.4)]
    assert uids(select(neurons, top_k=2, sample=2)) == [1, 3]


def test_top_k_breaks_incentive_ties_by_lower_uid() -> None:
    neurons = [miner(7, 0.2), miner(3, 0.2), miner(5, 0.2), miner(9, 0.9)]
    assert uids(select(neurons, top_k=3, sample=3)) == [9, 3, 5]


def test_fewer_eligible_than_top_k_returns_them_all() -> None:
    neurons = [miner(0, 0.2), miner(1, 0.4), miner(2, 0.9, ip="0.0.0.0")]
    assert uids(select(neurons, top_k=10, sample=10)) == [1, 0]


def test_select_skips_ineligible_miners_before_taking_top_k() -> None:
    neurons = [miner(0, 0.9, validator_permit=True), miner(1, 0.5), miner(2, 0.4), miner(3, 0.1)]
    assert uids(select(neurons, top_k=2, sample=2)) == [1, 2]


# --- sampling ---


def test_sample_draws_distinct_miners_from_the_top_k() -> None:
    neurons = [miner(uid, incentive=1.0 - uid / 100) for uid in range(20)]
    for seed in range(50):
        picked = uids(select(neurons, top_k=8, sample=3, seed=seed))
        assert len(picked) == 3
        assert len(set(picked)) == 3
        assert set(picked) <= set(range(8))


def test_sample_is_deterministic_under_a_seeded_rng() -> None:
    neurons = [miner(uid, incentive=0.5) for uid in range(10)]
    scores = {uid: uid / 10 for uid in range(10)}
    first = [uids(select(neurons, sample=4, scores=scores, seed=s)) for s in range(20)]
    again = [uids(select(neurons, sample=4, scores=scores, seed=s)) for s in range(20)]
    assert first == again
    assert len({tuple(p) for p in first}) > 1  # the seed matters


def test_sample_larger_than_pool_returns_every_miner_once() -> None:
    neurons = [miner(uid) for uid in range(3)]
    weights = draw_weights(neurons, {}, 0.2)
    picked = sample_without_replacement(neurons, weights, 10, random.Random(0))
    assert sorted(uids(picked)) == [0, 1, 2]


def test_sample_with_all_zero_weights_still_draws_distinct_miners() -> None:
    neurons = [miner(uid) for uid in range(5)]
    picked = sample_without_replacement(neurons, [0.0] * 5, 3, random.Random(0))
    assert len(set(uids(picked))) == 3


# --- weighting ---


def test_weights_sum_to_one() -> None:
    neurons = [miner(uid) for uid in range(4)]
    weights = draw_weights(neurons, {0: 0.9, 1: 0.1, 2: 0.0}, 0.2)
    assert sum(weights) == pytest.approx(1.0)


def test_explore_zero_always_picks_the_only_scored_miner() -> None:
    neurons = [miner(uid, incentive=0.5) for uid in range(5)]
    for seed in range(200):
        picked = select(neurons, sample=1, scores={3: 0.8}, explore=0.0, seed=seed)
        assert uids(picked) == [3]


@pytest.mark.parametrize(
    ("scores", "explore"),
    [
        pytest.param({0: 1.0, 1: 0.0, 2: 0.0, 3: 0.0}, 1.0, id="explore-1"),
        pytest.param({}, 0.0, id="no-scores"),
        pytest.param({0: 0.0, 1: 0.0, 2: 0.0, 3: 0.0}, 0.2, id="all-zero"),
    ],
)
def test_draw_is_uniform_without_score_signal(scores: dict[int, float], explore: float) -> None:
    neurons = [miner(uid) for uid in range(4)]
    counts = draw_counts(neurons, scores, explore)
    for uid in range(4):
        assert counts[uid] == pytest.approx(1000, abs=120)


def test_higher_score_is_drawn_more_often_with_some_exploration() -> None:
    neurons = [miner(0), miner(1)]
    counts = draw_counts(neurons, {0: 0.9, 1: 0.1}, explore=0.2)
    # weights: 0.8 * 0.9 + 0.1 = 0.82 and 0.8 * 0.1 + 0.1 = 0.18
    assert counts[0] == pytest.approx(0.82 * 4000, abs=150)
    assert counts[1] == pytest.approx(0.18 * 4000, abs=150)


def test_exploration_gives_an_unscored_miner_a_chance() -> None:
    neurons = [miner(0), miner(1)]
    counts = draw_counts(neurons, {0: 1.0}, explore=0.2)
    assert counts[1] == pytest.approx(0.1 * 4000, abs=120)


def test_negative_scores_count_as_zero() -> None:
    neurons = [miner(0), miner(1)]
    assert draw_weights(neurons, {0: -5.0, 1: 1.0}, 0.0) == [0.0, 1.0]


def test_top_eligible_skips_ineligible_miners_and_stops_at_k() -> None:
    ranked = rank_by_incentive([miner(i, incentive=1.0 - i / 10) for i in range(6)])
    cooling = {0: NOW + 60}
    assert uids(top_eligible(ranked, 3, cooling, NOW)) == [1, 2, 3]
    assert uids(top_eligible(ranked, 10, cooling, NOW)) == [1, 2, 3, 4, 5]


def test_a_request_may_name_or_exclude_its_miners_within_the_eligible() -> None:
    neurons = [miner(0, 0.5), miner(1, 0.4), miner(2, 0.3, validator_permit=True), miner(3, 0.2)]
    ranked = rank_by_incentive(neurons)

    def chosen(only: set[int] | None = None, exclude: set[int] | None = None) -> list[int]:
        picked = select_candidates(
            ranked,
            top_k=2,
            sample=2,
            scores={},
            cooling_until={3: NOW + 5},
            explore=0.0,
            now=NOW,
            rng=random.Random(0),
            only=only,
            exclude=exclude or set(),
        )
        return sorted(n.uid for n in picked)

    assert chosen() == [0, 1]
    assert chosen(exclude={0}) == [1]  # 2 is a validator, 3 is cooling down
    assert chosen(only={1, 2, 3}) == [1]
    assert chosen(only={2, 3}) == []
