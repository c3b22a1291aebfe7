"""The pools a gateway serves, each with its live metagraph from a file, the chain, or local
Yuma Consensus; the loops that keep them current live in router/subnet/loops.py."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gateway.config import PoolConfig
from gateway.runtime.refusals import refusal_note
from router.axon_policy import AxonPolicy
from router.metagraph import (
    FileMetagraphSource,
    Metagraph,
    MetagraphError,
    Neuron,
)
from router.scores import LeaderboardRow
from router.selection import rank_by_incentive
from router.snapshots import stored_metagraph
from router.store import StateStore
from router.subnet.chain import (
    ChainConfig,
    ChainLink,
    ChainMetagraphSource,
    ChainWeightSetter,
    Subtensor,
    connect_subtensor,
    open_wallet,
)
from router.subnet.epochs import LocalEpochs, overlay
from router.subnet.weights import ValidatorWeights

logger = logging.getLogger(__name__)

SubtensorFactory = Callable[[str], Subtensor]
WalletFactory = Callable[[ChainConfig], Any]


@dataclass(frozen=True, slots=True)
class ChainAccess:
    """How chain pools reach the SDK: a Subtensor per network, a wallet per pool (tests fake
    both)."""

    connect: SubtensorFactory = connect_subtensor
    wallet: WalletFactory = open_wallet


@dataclass(slots=True)
class Pool:
    """One served pool: its routing settings, its source and the last good metagraph."""

    name: str
    config: PoolConfig
    source: FileMetagraphSource | ChainMetagraphSource
    metagraph: Metagraph
    miner_count: int = field(init=False, default=0)
    ranked: list[Neuron] = field(init=False, default_factory=list)
    # Miners the axon policy will not dial, uid → reason; never selected.
    refused: dict[int, str] = field(init=False, default_factory=dict)
    refusal: str | None = field(init=False, default=None)  # the refusals and their fix, one line
    base: Metagraph | None = None  # local pools: the file's metagraph, before any epoch
    local: LocalEpochs | None = None
    setter: ChainWeightSetter | None = None
    weights: ValidatorWeights | None = None
    epoch_error: str | None = None
    policy: AxonPolicy = field(default_factory=AxonPolicy)
    # The context its miners report on /v1/models (gateway/runtime/context_cap.py), when not
    # declared.
    context_tokens: int | None = None

    def __post_init__(self) -> None:
        self.adopt(self.metagraph)

    def adopt(self, metagraph: Metagraph) -> None:
        """Serve from `metagraph` from now on; neurons are checked against the axon policy and
        ranked by incentive once, here, not per request."""
        refused = {}
        for neuron in metagraph.neurons:
            reason = self.policy.refusal(neuron.axon.ip) if neuron.serving else None
            if reason is not None:
                refused[neuron.uid] = reason
        note = refusal_note(metagraph, refused)
        if note is not None and note != self.refusal:  # said once, not at every reload
            logger.warning("pool %s: %s", self.name, note)
        self.refusal = note
        self.metagraph = metagraph
        self.miner_count = len(metagraph.neurons)
        self.refused = refused
        self.ranked = rank_by_incentive(n for n in metagraph.neurons if n.uid not in refused)

    def add_weights(self, rows: list[LeaderboardRow]) -> None:
        """Give each leaderboard row this validator's weight on it at the last epoch (0 for
        a miner that has since re-registered)."""
        by_uid = self.weights.by_uid() if self.weights else {}
        for row in rows:
            hotkey, weight = by_uid.get(row["uid"], (row["hotkey"], 0.0))
            row["weight"] = weight if hotkey == row["hotkey"] else 0.0

    def status(self) -> dict[str, Any]:
        """Where the metagraph comes from and how its syncs and epochs went, for /readyz."""
        report: dict[str, Any] = {"source": self.config.source}
        if isinstance(self.source, ChainMetagraphSource):
            report.update(self.source.status())
        report["weights_epoch"] = self.weights.epoch if self.weights else None
        if self.local is not None:
            report["epochs_run"] = self.local.epochs_run
            report["last_epoch"] = self.local.last_epoch
        report["epoch_error"] = self.epoch_error
        return report


async def _initial_metagraph(
    source: FileMetagraphSource, store: StateStore, name: str | None
) -> Metagraph:
    """The file's metagraph, or the store's snapshot when the file is bad at start."""
    try:
        return source.load()
    except MetagraphError:
        stored = await stored_metagraph(store, name)
        if stored is None:
            raise
        logger.error("metagraph file is bad, serving %s from the stored snapshot", name)
        return stored


async def _chain_pool(
    config: PoolConfig,
    chain: ChainConfig,
    store: StateStore,
    access: ChainAccess,
    policy: AxonPolicy,
) -> Pool:
    """A chain pool, synced once now; when that fails it serves the stored snapshot, or
    nothing (not ready) until a sync succeeds."""
    name = config.name or f"sn{chain.netuid}"
    link = ChainLink(lambda: access.connect(chain.network), chain)
    source = ChainMetagraphSource(link, config.name)
    metagraph = (
        await source.sync()
        or await stored_metagraph(store, name)
        or Metagraph(netuid=chain.netuid, name=name, neurons=[])
    )
    setter = ChainWeightSetter(link, lambda: access.wallet(chain)) if chain.set_weights else None
    return Pool(name, config, source, metagraph, setter=setter, policy=policy)


async def _file_pool(config: PoolConfig, store: StateStore, policy: AxonPolicy) -> Pool:
    """A file pool, or a local one whose last epoch (a stored snapshot) is laid over the file."""
    assert config.metagraph is not None
    source = FileMetagraphSource(config.metagraph)
    base = await _initial_metagraph(source, store, config.name)
    name = config.name or base.pool_name
    if config.local is None:
        return Pool(name, config, source, base, policy=policy)
    local = LocalEpochs(name, config.local, store, config.epoch_s)
    last = await stored_metagraph(store, name)
    metagraph = overlay(base, last, config.local) if last is not None else base
    return Pool(name, config, source, metagraph, base=base, local=local, policy=policy)


async def open_pools(
    configs: list[PoolConfig],
    store: StateStore,
    chain: ChainAccess | None = None,
    policy: AxonPolicy | None = None,
) -> dict[str, Pool]:
    """Load every pool's metagraph; a bad file with no stored snapshot raises.

    `policy` says which miner addresses may be dialled (default: public ones only).
    """
    policy = policy or AxonPolicy()
    pools: dict[str, Pool] = {}
    for config in configs:
        if config.chain is not None:
            access = chain or ChainAccess()
            pool = await _chain_pool(config, config.chain, store, access, policy)
        else:
            pool = await _file_pool(config, store, policy)
        if pool.name in pools:
            raise MetagraphError(f"two pools are named {pool.name!r}; set `name` in the pools file")
        pools[pool.name] = pool
    return pools
