"""Local Yuma Consensus pools: one epoch over a metagraph, the epoch runner, and the pool loop."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from gateway.config import ConfigError, PoolConfig, load_pools_file
from gateway.runtime.metrics import Metrics
from gateway.runtime.pools import Pool, open_pools
from router.metagraph import Axon, Metagraph, Neuron
from router.scores import Scoreboard
from router.selection import rank_by_incentive
from router.stats import Outcome, ScorePolicy
from router.store import MemoryStore, RedisStore, StateStore
from router.subnet.epochs import BondsState, LocalConfig, LocalEpochs, local_epoch, overlay
from router.subnet.loops import run_epoch
from router.subnet.weights import ValidatorWeights
from router.subnet.yuma import YumaParams

POOL = "house"
MINERS = ["m0", "m1", "m2", "m3"]


def miners(*hotkeys: str) -> Metagraph:
    """A file metagraph of miners uid 0.. with the given hotkeys."""
    neurons = [
        Neuron(uid=uid, hotkey=hk, axon=Axon(ip="127.0.0.1", port=9000 + uid), incentive=0.25)
        for uid, hk in enumerate(hotkeys)
    ]
    return Metagraph(netuid=1, name=POOL, block=10, neurons=neurons)


def config(*validators: dict[str, Any], **fields: Any) -> LocalConfig:
    """A local config from validator dicts."""
    return LocalConfig.model_validate({"validators": list(validators), **fields})


# The worked example: stakes 0.5/0.3/0.2; the smallest validator only weights miner 3.
EXAMPLE = config(
    {"hotkey": "a", "stake": 0.5, "weights": {0: 4, 1: 3, 2: 2, 3: 1}},
    {"hotkey": "b", "stake": 0.3, "weights": {0: 4, 1: 3, 2: 2, 3: 1}},
    {"hotkey": "c", "stake": 0.2, "weights": {3: 1}},
)


def by_hotkey(graph: Metagraph) -> dict[str, Neuron]:
    return {n.hotkey: n for n in graph.neurons}


def test_one_epoch_writes_the_worked_example_into_the_metagraph() -> None:
    graph, bonds, _ = local_epoch(miners(*MINERS), EXAMPLE, {}, None, number=3)
    neurons = by_hotkey(graph)
    assert [neurons[m].consensus for m in MINERS] == pytest.approx([0.4, 0.3, 0.2, 0.1], abs=1e-4)
    incentive = [neurons[m].incentive for m in MINERS]
    assert incentive == pytest.approx([0.3902, 0.2927, 0.1951, 0.1220], abs=1e-4)
    dividends = [neurons[v].dividends for v in "abc"]
    assert dividends == pytest.approx([0.6098, 0.3659, 0.0244], abs=1e-4)
    assert [neurons[v].model_extra["validator_trust"] for v in "abc"] == pytest.approx(  # type: ignore[index]
        [1.0, 1.0, 0.1], abs=1e-4
    )
    # Emission: miners by incentive and validators by dividends share one pot.
    assert sum(n.emission for n in graph.neurons) == pytest.approx(1.0, abs=1e-6)
    # Validators become neurons that selection never picks; the block counts tempo per epoch.
    assert [neurons[v].uid for v in "abc"] == [4, 5, 6]
    assert all(neurons[v].validator_permit and not neurons[v].serving for v in "abc")
    assert graph.block == 3 * 360
    assert bonds.validators == ["a", "b", "c"] and bonds.miner_uids == [0, 1, 2, 3]
    # Each validator neuron carries its bonds; "c" only bonds with miner 3, on 0.2 of its stake.
    assert neurons["c"].model_extra["bonds"] == {"uids": [3], "bonds": [pytest.approx(0.2)]}  # type: ignore[index]


def test_submitted_weights_for_an_old_hotkey_on_a_uid_are_dropped() -> None:
    local = config({"hotkey": "v", "stake": 1.0})
    submitted = ValidatorWeights(
        hotkey="v", uids=[0, 1], hotkeys=["m0", "gone"], weights=[0.5, 0.5]
    )
    graph, _, _ = local_epoch(miners("m0", "new"), local, {"v": submitted}, None, number=1)
    neurons = by_hotkey(graph)
    assert (neurons["m0"].incentive, neurons["new"].incentive) == (1.0, 0.0)


def test_a_validator_without_weights_earns_no_dividends() -> None:
    local = config(
        {"hotkey": "v", "stake": 1.0, "weights": {0: 1}}, {"hotkey": "idle", "stake": 1.0}
    )
    graph, _, _ = local_epoch(miners("m0", "m1"), local, {}, None, number=1)
    assert by_hotkey(graph)["idle"].dividends == 0.0
    assert by_hotkey(graph)["v"].dividends == pytest.approx(1.0)


def test_bonds_follow_validators_and_miners_by_hotkey() -> None:
    _, bonds, _ = local_epoch(miners(*MINERS), EXAMPLE, {}, None, number=1)
    # Miner uid 1 re-registers under a new hotkey, validator "b" leaves, "d" joins.
    now = miners("m0", "fresh", "m2", "m3").neurons
    aligned = bonds.aligned(["a", "d", "c"], now)
    assert aligned[0, 0] == pytest.approx(bonds.bonds[0][0])
    assert aligned[0, 1] == 0.0 and aligned[1].tolist() == [0.0] * 4
    assert aligned[2, 3] == pytest.approx(bonds.bonds[2][3])


def test_bonds_carry_into_the_next_epoch() -> None:
    yuma3 = EXAMPLE.model_copy(update={"yuma": YumaParams(yuma_version=3)})
    _, first, _ = local_epoch(miners(*MINERS), yuma3, {}, None, number=1)
    _, again, _ = local_epoch(miners(*MINERS), yuma3, {}, None, number=2)
    _, second, _ = local_epoch(miners(*MINERS), yuma3, {}, first, number=2)
    assert again.bonds == first.bonds  # no bonds given: the same first step
    # Yuma 3 bonds are an EMA of clipped weights: B2 = 0.9 B1 + 0.1 W = 1.9 B1 when W holds.
    assert np.array(second.bonds) == pytest.approx(1.9 * np.array(first.bonds))
    assert BondsState.model_validate_json(second.model_dump_json()) == second


def test_a_reloaded_file_keeps_the_last_epoch_for_the_same_miners() -> None:
    graph, _, _ = local_epoch(miners(*MINERS), EXAMPLE, {}, None, number=1)
    reloaded = miners("m0", "m1", "other", "m3", "m4")
    merged = by_hotkey(overlay(reloaded, graph, EXAMPLE))
    assert merged["m0"].incentive == pytest.approx(by_hotkey(graph)["m0"].incentive)
    assert merged["other"].incentive == 0.25 and merged["m4"].incentive == 0.25  # the file's
    assert merged["a"].dividends == pytest.approx(by_hotkey(graph)["a"].dividends)
    assert len({n.uid for n in merged.values()}) == len(merged)  # validators moved off uid 4


def test_local_config_is_checked() -> None:
    with pytest.raises(ValueError, match="unique"):
        config({"hotkey": "a", "stake": 1}, {"hotkey": "a", "stake": 2})
    with pytest.raises(ValueError, match="hold stake"):
        config({"hotkey": "a", "stake": 0})
    with pytest.raises(ValueError, match="not one of the validators"):
        config({"hotkey": "a", "stake": 1}, hotkey="z")
    assert config({"hotkey": "a", "stake": 1}, {"hotkey": "b", "stake": 1}).own_hotkey == "a"


def test_pools_files_name_their_source(tmp_path: Path) -> None:
    path = tmp_path / "pools.yaml"
    local = {"validators": [{"hotkey": "gw", "stake": 1}]}
    pools = [
        {"metagraph": "a.json"},
        {"name": "h", "source": "local", "metagraph": "h.json", "local": local, "epoch_s": 30},
    ]
    path.write_text(yaml.safe_dump({"pools": pools}))
    plain, house = load_pools_file(path).pools
    assert plain.source == "file" and plain.metagraph == tmp_path / "a.json"
    assert house.local is not None and house.validator_hotkey == "gw" and house.epoch_s == 30
    path.write_text(yaml.safe_dump({"pools": [{"source": "local", "metagraph": "h.json"}]}))
    with pytest.raises(ConfigError, match="source: local needs `local`"):
        load_pools_file(path)
    path.write_text(yaml.safe_dump({"pools": [{"metagraph": "h.json", "local": local}]}))
    with pytest.raises(ConfigError, match="only for source: local"):
        load_pools_file(path)


# --- the runner and the pool loop, on both stores ---


async def test_the_runner_gathers_stored_weights_and_keeps_bonds(store: StateStore) -> None:
    local = config({"hotkey": "gw", "stake": 3.0}, {"hotkey": "peer", "stake": 1.0})
    peer = ValidatorWeights(hotkey="peer", uids=[1], hotkeys=["m1"], weights=[1.0])
    await store.save_weights(POOL, "peer", peer.to_json())
    own = ValidatorWeights(hotkey="gw", uids=[0, 1], hotkeys=["m0", "m1"], weights=[0.5, 0.5])
    runner = LocalEpochs(POOL, local, store, epoch_s=60)
    graph = await runner.run(miners("m0", "m1"), own, number=5)
    assert graph is not None
    assert by_hotkey(graph)["m1"].incentive > by_hotkey(graph)["m0"].incentive
    assert await store.load_metagraph(POOL) == graph.model_dump_json().encode()
    bonds = await store.load_bonds(POOL)
    assert bonds is not None and BondsState.model_validate_json(bonds).epoch == 5
    assert await runner.run(miners("m0", "m1"), own, number=5) is None  # claimed already
    assert runner.epochs_run == 1


async def local_pool(tmp_path: Path, store: StateStore, **local: Any) -> Pool:
    """A local pool over a file of four miners; this gateway is validator "gw"."""
    path = tmp_path / "house.json"
    path.write_text(miners(*MINERS).model_dump_json())
    validators = [
        {"hotkey": "gw", "stake": 600.0},
        {"hotkey": "cheat", "stake": 400.0, "weights": {3: 1.0}},
    ]
    pool_config = PoolConfig.model_validate(
        {
            "name": POOL,
            "source": "local",
            "metagraph": path,
            "local": {"validators": validators, **local},
        }
    )
    return (await open_pools([pool_config], store))[POOL]


def scores(board: Scoreboard, rewards: list[float], rounds: int = 5) -> None:
    """Give each miner uid i the reward rewards[i], `rounds` times."""
    for _ in range(rounds):
        board.record(
            POOL,
            [Outcome(uid, MINERS[uid], "ok", reward, 10.0) for uid, reward in enumerate(rewards)],
        )


async def test_an_epoch_moves_incentive_to_the_better_miners_and_selection_follows(
    tmp_path: Path, store: StateStore
) -> None:
    pool = await local_pool(tmp_path, store)
    board = Scoreboard(store, ScorePolicy(alpha=0.5))
    scores(board, [0.1, 0.9, 0.8, 0.05])
    metrics = Metrics()
    await run_epoch(pool, board, store, metrics, number=100)
    neurons = by_hotkey(pool.metagraph)
    incentive = [neurons[m].incentive for m in MINERS]
    assert incentive[1] > incentive[2] > incentive[0] > incentive[3]
    assert sum(incentive) == pytest.approx(1.0, abs=1e-6)
    # The dishonest validator put everything on the worst miner: clipped to consensus.
    assert neurons["cheat"].dividends < 0.4 < 0.6 < neurons["gw"].dividends
    assert [n.uid for n in rank_by_incentive(pool.metagraph.neurons)[:2]] == [1, 2]
    rows: list[dict[str, Any]] = [{"uid": uid, "hotkey": hk} for uid, hk in enumerate(MINERS)]
    pool.add_weights(rows)
    assert rows[1]["weight"] > rows[0]["weight"] > 0
    assert metrics.epochs.labels(POOL)._value.get() == 1 and pool.epoch_error is None
    assert pool.status()["last_epoch"] == 100


async def test_replicas_share_a_local_pool_through_redis(tmp_path: Path, clean_redis: str) -> None:
    stores = [RedisStore(clean_redis), RedisStore(clean_redis)]
    try:
        first, second = [await local_pool(tmp_path, s) for s in stores]
        board = Scoreboard(stores[0], ScorePolicy(alpha=0.5))
        scores(board, [0.9, 0.1, 0.1, 0.1])
        await run_epoch(first, board, stores[0], Metrics(), number=7)
        metrics = Metrics()
        await run_epoch(second, board, stores[1], metrics, number=7, follow_s=0)
        assert metrics.epochs.labels(POOL)._value.get() == 0  # the first replica ran it
        assert second.metagraph == first.metagraph
        assert by_hotkey(second.metagraph)["m0"].incentive > 0.5
    finally:
        for s in stores:
            await s.close()


async def test_an_epoch_without_consensus_keeps_the_metagraph(tmp_path: Path) -> None:
    store = MemoryStore()
    pool = await local_pool(tmp_path, store)
    before = pool.metagraph
    metrics = Metrics()
    # No traffic yet: this gateway has no weights, and the minority cheat cannot decide alone.
    board = Scoreboard(store, ScorePolicy())
    await run_epoch(pool, board, store, metrics, number=3, follow_s=0)
    assert pool.metagraph == before and pool.local is not None
    assert pool.local.no_consensus == 3 and pool.local.epochs_run == 0
    assert metrics.epochs.labels(POOL)._value.get() == 0 and pool.epoch_error is None
