"""Tests for router.subnet.weights, and the weights, bonds and epoch-claim keys of both stores."""

from __future__ import annotations

import numpy as np
import pytest
import redis.asyncio as aioredis

from router.metagraph import Axon, Metagraph, Neuron
from router.stats import MinerStats
from router.store import RedisStore, StateStore, weights_key
from router.subnet.weights import (
    ValidatorWeights,
    cap_share,
    compute_weights,
    to_u16,
    weights_from_scores,
)

POOL = "sn1"


def metagraph(*hotkeys: str) -> Metagraph:
    """Neurons uid 0.. with the given hotkeys."""
    neurons = [
        Neuron(uid=uid, hotkey=hotkey, axon=Axon(ip="127.0.0.1", port=9000 + uid))
        for uid, hotkey in enumerate(hotkeys)
    ]
    return Metagraph(netuid=1, name=POOL, block=77, neurons=neurons)


def stats(hotkey: str, score: float, successes: int = 1) -> MinerStats:
    """A miner's stats with a score and some successes."""
    return MinerStats(hotkey=hotkey, score=score, requests=max(successes, 1), successes=successes)


# --- the weight vector ---


def test_weights_are_l1_normalised_scores() -> None:
    weights = weights_from_scores(np.array([0.6, 0.3, 0.1]), np.array([True, True, True]))
    assert weights.tolist() == pytest.approx([0.6, 0.3, 0.1])


def test_negative_scores_and_miners_that_never_answered_get_nothing() -> None:
    weights = weights_from_scores(np.array([-0.5, 0.4, 0.9, 0.1]), np.array([1, 1, 0, 1], bool))
    assert weights.tolist() == pytest.approx([0.0, 0.8, 0.0, 0.2])


def test_no_positive_score_means_no_weights() -> None:
    weights = weights_from_scores(np.array([0.0, -1.0]), np.array([True, True]))
    assert weights.tolist() == [0.0, 0.0]


def test_max_share_caps_the_top_miner_and_spreads_the_excess() -> None:
    weights = cap_share(np.array([8.0, 1.0, 1.0, 0.0, 0.0, 0.0]), max_share=0.5)
    # 0.8 is cut to 0.5; the 0.3 left over goes to the others in proportion to their scores.
    assert weights.tolist() == pytest.approx([0.5, 0.25, 0.25, 0.0, 0.0, 0.0])


def test_capping_repeats_until_no_miner_is_over_the_limit() -> None:
    weights = cap_share(np.array([50.0, 30.0, 10.0, 5.0, 5.0]), max_share=0.3)
    assert weights.max() <= 0.3 + 1e-12
    assert weights.sum() == pytest.approx(1.0)
    assert weights[0] == pytest.approx(0.3) and weights[1] == pytest.approx(0.3)
    # the rest keep their order and proportions: 10:5:5 of the 0.4 left
    assert weights[2:].tolist() == pytest.approx([0.2, 0.1, 0.1])


def test_too_few_answering_miners_for_the_limit_share_equally() -> None:
    weights = cap_share(np.array([0.9, 0.1, 0.0]), max_share=0.25)
    assert weights.tolist() == pytest.approx([0.5, 0.5, 0.0])


def test_compute_weights_uses_scores_of_the_current_hotkeys_only() -> None:
    graph = metagraph("a", "b", "c", "d")
    board = {
        0: stats("a", 0.6),
        1: stats("old-b", 0.9),  # uid 1 was re-registered: the old miner's score must not count
        2: stats("c", 0.2, successes=0),  # asked but never answered validly
        3: stats("d", 0.2),
    }
    weights = compute_weights(graph, board, hotkey="v0", epoch=12)
    assert weights.uids == [0, 1, 2, 3]
    assert weights.hotkeys == ["a", "b", "c", "d"]
    assert weights.weights == pytest.approx([0.75, 0.0, 0.0, 0.25])
    assert (weights.hotkey, weights.epoch, weights.block) == ("v0", 12, 77)
    assert weights.by_uid()[3] == ("d", pytest.approx(0.25))
    assert not weights.empty


def test_compute_weights_of_a_fresh_validator_is_empty() -> None:
    weights = compute_weights(metagraph("a", "b"), {}, hotkey="v0")
    assert weights.weights == [0.0, 0.0] and weights.empty


def test_to_u16_max_upscales_like_set_weights() -> None:
    assert to_u16([0.5, 0.25, 0.0]) == [65535, 32768, 0]
    assert to_u16([0.0, 0.0]) == [0, 0]


def test_weights_round_trip_through_json() -> None:
    weights = compute_weights(metagraph("a", "b"), {0: stats("a", 0.5)}, hotkey="v0")
    assert ValidatorWeights.from_json(weights.to_json()) == weights


# --- both stores ---


async def test_weights_are_kept_per_validator(store: StateStore) -> None:
    assert await store.load_weights(POOL) == {}
    await store.save_weights(POOL, "v0", b'{"w": 1}')
    await store.save_weights(POOL, "v1", b'{"w": 2}')
    await store.save_weights(POOL, "v0", b'{"w": 3}')
    await store.save_weights("other", "v9", b"{}")
    assert await store.load_weights(POOL) == {"v0": b'{"w": 3}', "v1": b'{"w": 2}'}


async def test_bonds_are_kept_per_pool(store: StateStore) -> None:
    assert await store.load_bonds(POOL) is None
    await store.save_bonds(POOL, b"[[0.5]]")
    await store.save_bonds("other", b"[[1.0]]")
    assert await store.load_bonds(POOL) == b"[[0.5]]"


async def test_each_epoch_is_claimed_once(store: StateStore) -> None:
    assert await store.claim_epoch(POOL, 7, ttl_s=60) is True
    assert await store.claim_epoch(POOL, 7, ttl_s=60) is False
    assert await store.claim_epoch(POOL, 8, ttl_s=60) is True
    assert await store.claim_epoch("other", 7, ttl_s=60) is True


async def test_replicas_race_for_an_epoch_and_one_wins(clean_redis: str) -> None:
    replicas = [RedisStore(clean_redis) for _ in range(4)]
    try:
        won = [await replica.claim_epoch(POOL, 42, ttl_s=60) for replica in replicas]
    finally:
        for replica in replicas:
            await replica.close()
    assert won.count(True) == 1


async def test_weights_land_in_the_pools_weights_hash(clean_redis: str) -> None:
    store = RedisStore(clean_redis)
    client = aioredis.Redis.from_url(clean_redis)
    try:
        await store.save_weights(POOL, "v0", b"{}")
        assert await client.hkeys(weights_key(POOL)) == [b"v0"]
    finally:
        await store.close()
        await client.aclose()
