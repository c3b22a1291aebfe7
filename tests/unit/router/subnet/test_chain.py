"""The chain source and set_weights against objects shaped like the bittensor SDK's (no network).

`FakeMetagraph` has the attributes the SDK's (non-torch) metagraph documents: `netuid`,
`block`, `uids`, `hotkeys`, `coldkeys`, `axons` (AxonInfo: ip, port, ip_type, protocol,
is_serving), and the vectors S, I, T, C, D, E, `validator_permit`, `active`, `last_update`.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from fastapi.testclient import TestClient

from gateway.app import create_app
from gateway.config import PoolConfig, Settings
from gateway.runtime.metrics import Metrics
from gateway.runtime.pools import ChainAccess, open_pools
from router.metagraph import MetagraphError
from router.scores import Scoreboard
from router.stats import Outcome, ScorePolicy
from router.store import MemoryStore
from router.subnet.chain import (
    INSTALL_HINT,
    ChainConfig,
    ChainError,
    ChainLink,
    ChainMetagraphSource,
    ChainWeightSetter,
    connect_subtensor,
    metagraph_from_sdk,
)
from router.subnet.loops import run_epoch, sync_chain
from router.subnet.weights import ValidatorWeights
from tests.support import eventually


@dataclass
class FakeAxon:
    """The SDK's AxonInfo: `is_serving` is false for ip 0.0.0.0."""

    ip: str
    port: int
    ip_type: int = 4
    protocol: int = 4
    version: int = 0

    @property
    def is_serving(self) -> bool:
        return self.ip != "0.0.0.0"


class FakeMetagraph:
    """Shaped like the SDK's numpy metagraph of a subnet with 2 miners and 1 validator."""

    def __init__(self, block: int = 5_000_000) -> None:
        self.netuid = 7
        self.block = np.array(block, dtype=np.int64)
        self.uids = np.array([0, 1, 2], dtype=np.int64)
        self.hotkeys = ["5Miner0", "5Miner1", "5Valid2"]
        self.coldkeys = ["5Cold0", "5Cold1", "5Cold2"]
        self.axons = [
            FakeAxon("10.0.0.1", 8091),
            FakeAxon("10.0.0.2", 8092),
            FakeAxon("0.0.0.0", 0),
        ]
        self.S = np.array([0.0, 12.5, 40000.0], dtype=np.float32)
        self.I = np.array([0.75, 0.25, 0.0], dtype=np.float32)
        self.T = np.array([1.0, 0.5, 0.0], dtype=np.float32)
        self.C = np.array([0.6, 0.4, 0.0], dtype=np.float32)
        self.D = np.array([0.0, 0.0, 1.0], dtype=np.float32)
        self.E = np.array([1.5, 0.5, 2.0], dtype=np.float32)
        self.validator_permit = np.array([False, False, True])
        self.active = np.array([1, 1, 1], dtype=np.int64)
        self.last_update = np.array([4_999_990, 4_999_000, 4_999_999], dtype=np.int64)


@dataclass
class FakeSubtensor:
    """Shaped like the SDK's Subtensor; fails the next `failures` calls."""

    graph: FakeMetagraph = field(default_factory=FakeMetagraph)
    failures: int = 0
    set_result: Any = (True, "")
    calls: list[str] = field(default_factory=list)
    weights_set: list[dict[str, Any]] = field(default_factory=list)

    def _maybe_fail(self, call: str) -> None:
        self.calls.append(call)
        if self.failures > 0:
            self.failures -= 1
            raise ConnectionError("websocket closed")

    def metagraph(self, netuid: int) -> FakeMetagraph:
        self._maybe_fail(f"metagraph({netuid})")
        return self.graph

    def set_weights(self, **kwargs: Any) -> Any:
        self._maybe_fail("set_weights")
        self.weights_set.append(kwargs)
        return self.set_result


class Connector:
    """Hands out the fake subtensor and counts connections."""

    def __init__(self, subtensor: FakeSubtensor) -> None:
        self.subtensor = subtensor
        self.networks: list[str] = []

    def __call__(self, network: str) -> FakeSubtensor:
        self.networks.append(network)
        return self.subtensor


def chain_config(**overrides: Any) -> ChainConfig:
    """A chain config that retries fast."""
    return ChainConfig.model_validate(
        {"network": "ws://127.0.0.1:9944", "netuid": 7, "backoff_s": 0, "attempts": 3, **overrides}
    )


def source_for(
    subtensor: FakeSubtensor, **overrides: Any
) -> tuple[ChainMetagraphSource, Connector]:
    """A chain source over the fake, and its connector."""
    connector = Connector(subtensor)
    config = chain_config(**overrides)
    return ChainMetagraphSource(
        ChainLink(lambda: connector(config.network), config), "sn7"
    ), connector


# --- mapping ---


def test_the_sdk_metagraph_maps_onto_ours() -> None:
    graph = metagraph_from_sdk(FakeMetagraph(), name="sn7")
    assert (graph.netuid, graph.block, graph.pool_name) == (7, 5_000_000, "sn7")
    miner, _, validator = graph.neurons
    assert miner.uid == 0 and miner.hotkey == "5Miner0" and miner.coldkey == "5Cold0"
    assert miner.base_url == "http://10.0.0.1:8091" and miner.serving
    assert miner.incentive == pytest.approx(0.75) and miner.trust == pytest.approx(1.0)
    assert miner.consensus == pytest.approx(0.6) and miner.emission == pytest.approx(1.5)
    assert miner.active is True and miner.validator_permit is False
    assert miner.last_update == 4_999_990
    assert validator.stake == pytest.approx(40000.0) and validator.dividends == pytest.approx(1.0)
    assert validator.validator_permit is True and not validator.serving


def test_an_axon_that_is_not_serving_maps_to_0000() -> None:
    sdk = FakeMetagraph()
    sdk.axons[1] = FakeAxon("10.0.0.2", 8092)
    sdk.axons[1].ip = "0.0.0.0"
    graph = metagraph_from_sdk(sdk)
    assert graph.neurons[1].axon.ip == "0.0.0.0" and not graph.neurons[1].serving


def test_long_attribute_names_are_accepted_too() -> None:
    sdk = FakeMetagraph()
    sdk.incentive = sdk.I  # type: ignore[attr-defined]
    del sdk.I
    assert metagraph_from_sdk(sdk).neurons[0].incentive == pytest.approx(0.75)


def test_a_ragged_metagraph_is_refused() -> None:
    sdk = FakeMetagraph()
    sdk.hotkeys = sdk.hotkeys[:2]
    with pytest.raises(MetagraphError, match="2 hotkeys for 3 uids"):
        metagraph_from_sdk(sdk)


def test_a_missing_vector_is_named() -> None:
    sdk = FakeMetagraph()
    del sdk.E
    with pytest.raises(MetagraphError, match="E or emission"):
        metagraph_from_sdk(sdk)


@pytest.mark.skipif(importlib.util.find_spec("bittensor") is not None, reason="SDK installed")
def test_without_the_sdk_a_chain_pool_says_how_to_install_it() -> None:
    with pytest.raises(ChainError, match=r"bitgate\[chain\]") as info:
        connect_subtensor("finney")
    assert str(info.value) == INSTALL_HINT


# --- syncing ---


async def test_a_sync_retries_and_reconnects_after_a_failure() -> None:
    subtensor = FakeSubtensor(failures=2)
    source, connector = source_for(subtensor)
    graph = await source.sync()
    assert graph is not None and len(graph.neurons) == 3
    assert subtensor.calls == ["metagraph(7)"] * 3
    assert len(connector.networks) == 3  # a failed call drops the connection
    assert source.last_error is None and source.failures == 0
    assert source.status()["last_sync_age_s"] is not None


async def test_a_failed_sync_returns_nothing_and_says_why() -> None:
    subtensor = FakeSubtensor(failures=3)
    source, _ = source_for(subtensor)
    assert await source.sync() is None
    assert source.failures == 1
    assert source.last_error is not None and "websocket closed" in source.last_error
    assert source.status() == {"last_sync_age_s": None, "sync_failures": 1}
    assert await source.sync() is not None
    assert source.last_error is None


async def test_a_failed_sync_keeps_the_pool_on_its_last_good_metagraph() -> None:
    subtensor = FakeSubtensor()
    config = PoolConfig(source="chain", chain=chain_config())
    store, metrics = MemoryStore(), Metrics()
    pools = await open_pools([config], store, ChainAccess(connect=Connector(subtensor)))
    pool = pools["sn7"]
    assert pool.metagraph.block == 5_000_000
    subtensor.graph = FakeMetagraph(block=5_000_360)
    subtensor.failures = 3
    assert await sync_chain(pool, store, metrics) is False
    assert pool.metagraph.block == 5_000_000
    assert metrics.metagraph_sync_failures.labels("sn7")._value.get() == 1
    assert await sync_chain(pool, store, metrics) is True
    assert pool.metagraph.block == 5_000_360
    assert await store.load_metagraph("sn7") == pool.metagraph.model_dump_json().encode()


async def test_a_chain_pool_that_cannot_sync_at_start_serves_the_stored_snapshot() -> None:
    store = MemoryStore()
    good = metagraph_from_sdk(FakeMetagraph(block=123), name="sn7")
    await store.save_metagraph("sn7", good.model_dump_json().encode())
    config = PoolConfig(source="chain", chain=chain_config())
    down = FakeSubtensor(failures=99)
    pools = await open_pools([config], store, ChainAccess(connect=Connector(down)))
    assert pools["sn7"].metagraph.block == 123
    assert pools["sn7"].source.last_error is not None


# --- weights on chain ---


def scoreboard_with_scores() -> Scoreboard:
    """Scores for the two miners of the fake metagraph: uid 0 better than uid 1."""
    board = Scoreboard(MemoryStore(), ScorePolicy(alpha=0.5))
    board.record(
        "sn7",
        [
            Outcome(0, "5Miner0", "ok", reward=0.9, latency_ms=10.0),
            Outcome(1, "5Miner1", "ok", reward=0.3, latency_ms=10.0),
        ],
    )
    return board


async def test_an_epoch_sets_weights_on_chain_with_the_validators_wallet() -> None:
    subtensor = FakeSubtensor()
    wallets: list[ChainConfig] = []

    def wallet(config: ChainConfig) -> str:
        wallets.append(config)
        return "wallet-object"

    chain = chain_config(set_weights=True, wallet="owner", hotkey="validator")
    config = PoolConfig(source="chain", chain=chain)
    store, metrics = MemoryStore(), Metrics()
    pools = await open_pools([config], store, ChainAccess(Connector(subtensor), wallet))
    pool = pools["sn7"]
    weights = await run_epoch(pool, scoreboard_with_scores(), store, metrics, number=9)
    assert weights.weights == pytest.approx([0.75, 0.25, 0.0])
    (call,) = subtensor.weights_set
    assert call["wallet"] == "wallet-object" and call["netuid"] == 7
    assert call["uids"] == [0, 1, 2] and call["weights"] == pytest.approx([0.75, 0.25, 0.0])
    assert [w.hotkey for w in wallets] == ["validator"]
    stored = await store.load_weights("sn7")
    assert ValidatorWeights.from_json(stored["validator"]) == weights
    rows = [{"uid": 0, "hotkey": "5Miner0"}, {"uid": 1, "hotkey": "re-registered"}]
    pool.add_weights(rows)
    assert [r["weight"] for r in rows] == [pytest.approx(0.75), 0.0]
    assert pool.epoch_error is None
    assert metrics.weights_set.labels("sn7", "ok")._value.get() == 1


async def test_without_set_weights_the_weights_are_only_stored() -> None:
    subtensor = FakeSubtensor()
    config = PoolConfig(source="chain", chain=chain_config())
    store = MemoryStore()
    pools = await open_pools([config], store, ChainAccess(connect=Connector(subtensor)))
    await run_epoch(pools["sn7"], scoreboard_with_scores(), store, Metrics(), number=1)
    assert subtensor.weights_set == []
    assert "bitgate" in await store.load_weights("sn7")


class Refused:
    """The SDK 10 answer: an object with `success` and `message`."""

    success = False
    message = "SettingWeightsTooFast"


async def test_a_refused_set_weights_is_retried_then_reported() -> None:
    subtensor = FakeSubtensor(set_result=Refused())
    config = chain_config(set_weights=True, hotkey="validator")
    setter = ChainWeightSetter(ChainLink(lambda: subtensor, config), lambda: "wallet")
    weights = ValidatorWeights(hotkey="validator", uids=[0], hotkeys=["a"], weights=[1.0])
    with pytest.raises(ChainError, match="SettingWeightsTooFast"):
        await setter.set(weights)
    assert len(subtensor.weights_set) == 3


async def test_an_epoch_with_a_failing_set_weights_keeps_the_error() -> None:
    subtensor = FakeSubtensor()
    chain = chain_config(set_weights=True, hotkey="validator")
    store, metrics = MemoryStore(), Metrics()
    pools = await open_pools(
        [PoolConfig(source="chain", chain=chain)],
        store,
        ChainAccess(Connector(subtensor), lambda _: "wallet"),
    )
    subtensor.set_result = (False, "NotRegistered")
    await run_epoch(pools["sn7"], scoreboard_with_scores(), store, metrics, number=2)
    assert "NotRegistered" in (pools["sn7"].epoch_error or "")
    assert metrics.weights_set.labels("sn7", "error")._value.get() == 1


def test_set_weights_needs_a_hotkey() -> None:
    with pytest.raises(ValueError, match="needs the validator's wallet `hotkey`"):
        ChainConfig(netuid=1, set_weights=True)


# --- the app ---


@pytest.fixture
def chain_app(tmp_path: Path) -> Iterator[tuple[TestClient, FakeSubtensor]]:
    """A gateway serving one chain pool over the fake SDK, syncing every 50 ms."""
    pools = tmp_path / "pools.yaml"
    pool = {
        "name": "sn7",
        "source": "chain",
        "chain": {"netuid": 7, "sync_s": 0.05, "backoff_s": 0},
    }
    pools.write_text(yaml.safe_dump({"pools": [pool]}))
    subtensor = FakeSubtensor(failures=4)  # the sync at start fails: 4 tries by default
    app = create_app(Settings(pools=pools), ChainAccess(connect=Connector(subtensor)))
    with TestClient(app) as client:
        yield client, subtensor


def test_readyz_shows_the_chain_sync(chain_app: tuple[TestClient, FakeSubtensor]) -> None:
    client, subtensor = chain_app
    # It started with no metagraph at all, then a background sync brought one.
    assert eventually(lambda: client.get("/readyz").status_code, 200)
    report = client.get("/readyz").json()["pools"]["sn7"]
    assert report["neurons"] == 3 and report["metagraph_error"] is None
    assert report["sync"]["source"] == "chain" and report["sync"]["sync_failures"] == 1
    assert client.get("/v1/models").json()["data"][0]["id"] == "sn7"
    subtensor.failures = 10**6
    assert eventually(
        lambda: client.get("/readyz").json()["pools"]["sn7"]["sync"]["sync_failures"] > 2, True
    )
    report = client.get("/readyz").json()
    assert report["ready"] is True  # the last good metagraph still serves
    assert "websocket closed" in report["pools"]["sn7"]["metagraph_error"]
    metrics = client.get("/metrics").text
    assert 'bitgate_metagraph_sync_failures_total{pool="sn7"}' in metrics
    assert 'bitgate_metagraph_sync_age_seconds{pool="sn7"}' in metrics
