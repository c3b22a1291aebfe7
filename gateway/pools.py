"""The pools a gateway serves, each with its live metagraph from a file, the chain, or local
Yuma Consensus, and the background loops that keep them current."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gateway.config import PoolConfig
from gateway.metrics import Metrics
from router.metagraph import (
    FileMetagraphSource,
    Metagraph,
    MetagraphError,
    Neuron,
    parse_metagraph,
)
from router.scores import Scoreboard
from router.selection import rank_by_incentive
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
from router.subnet.epochs import LocalConfig, LocalEpochs, overlay
from router.subnet.weights import ValidatorWeights, compute_weights

logger = logging.getLogger(__name__)

SubtensorFactory = Callable[[str], Subtensor]
WalletFactory = Callable[[ChainConfig], Any]


@dataclass(frozen=True, slots=True)
class ChainAccess:
    """How chain pools reach the SDK: a Subtensor per network, a wallet per pool (tests fake
    both)."""

    connect: SubtensorFactory = connect_subtensor
    wallet: WalletFactory = open_wallet


# How long a replica that lost an epoch's claim waits before adopting the winner's metagraph.
FOLLOW_S = 5.0


@dataclass(slots=True)
class Pool:
    """One served pool: its routing settings, its source and the last good metagraph."""

    name: str
    config: PoolConfig
    source: FileMetagraphSource | ChainMetagraphSource
    metagraph: Metagraph
    miner_count: int = field(init=False, default=0)
    ranked: list[Neuron] = field(init=False, default_factory=list)
    base: Metagraph | None = None  # local pools: the file's metagraph, before any epoch
    local: LocalEpochs | None = None
    setter: ChainWeightSetter | None = None
    weights: ValidatorWeights | None = None
    epoch_error: str | None = None

    def __post_init__(self) -> None:
        self.adopt(self.metagraph)

    def adopt(self, metagraph: Metagraph) -> None:
        """Serve from `metagraph` from now on; neurons are ranked by incentive once, here."""
        self.metagraph = metagraph
        self.miner_count = len(metagraph.neurons)
        self.ranked = rank_by_incentive(metagraph.neurons)

    def add_weights(self, rows: list[dict[str, Any]]) -> None:
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


async def _stored_metagraph(store: StateStore, name: str | None) -> Metagraph | None:
    """The store's snapshot of the pool, if there is one that validates."""
    if name is None:
        return None
    try:
        snapshot = await store.load_metagraph(name)
        return None if snapshot is None else parse_metagraph(snapshot, f"stored {name}")
    except Exception as exc:  # a store that is down or a bad snapshot cannot help here
        logger.warning("no usable stored metagraph for %s: %r", name, exc)
        return None


async def _initial_metagraph(
    source: FileMetagraphSource, store: StateStore, name: str | None
) -> Metagraph:
    """The file's metagraph, or the store's snapshot when the file is bad at start."""
    try:
        return source.load()
    except MetagraphError:
        stored = await _stored_metagraph(store, name)
        if stored is None:
            raise
        logger.error("metagraph file is bad, serving %s from the stored snapshot", name)
        return stored


async def _chain_pool(
    config: PoolConfig, chain: ChainConfig, store: StateStore, access: ChainAccess
) -> Pool:
    """A chain pool, synced once now; when that fails it serves the stored snapshot, or
    nothing (not ready) until a sync succeeds."""
    name = config.name or f"sn{chain.netuid}"
    link = ChainLink(lambda: access.connect(chain.network), chain)
    source = ChainMetagraphSource(link, config.name)
    metagraph = (
        await source.sync()
        or await _stored_metagraph(store, name)
        or Metagraph(netuid=chain.netuid, name=name, neurons=[])
    )
    setter = ChainWeightSetter(link, lambda: access.wallet(chain)) if chain.set_weights else None
    return Pool(name, config, source, metagraph, setter=setter)


async def _file_pool(config: PoolConfig, store: StateStore) -> Pool:
    """A file pool, or a local one whose last epoch (a stored snapshot) is laid over the file."""
    assert config.metagraph is not None
    source = FileMetagraphSource(config.metagraph)
    base = await _initial_metagraph(source, store, config.name)
    name = config.name or base.pool_name
    if config.local is None:
        return Pool(name, config, source, base)
    local = LocalEpochs(name, config.local, store, config.epoch_s)
    last = await _stored_metagraph(store, name)
    metagraph = overlay(base, last, config.local) if last is not None else base
    return Pool(name, config, source, metagraph, base=base, local=local)


async def open_pools(
    configs: list[PoolConfig],
    store: StateStore,
    chain: ChainAccess | None = None,
) -> dict[str, Pool]:
    """Load every pool's metagraph; a bad file with no stored snapshot raises."""
    pools: dict[str, Pool] = {}
    for config in configs:
        if config.chain is not None:
            pool = await _chain_pool(config, config.chain, store, chain or ChainAccess())
        else:
            pool = await _file_pool(config, store)
        if pool.name in pools:
            raise MetagraphError(f"two pools are named {pool.name!r}; set `name` in the pools file")
        pools[pool.name] = pool
    return pools


async def save_snapshot(store: StateStore, pool: Pool) -> None:
    """Cache the pool's metagraph in the store; a failing store is logged, not raised."""
    try:
        await store.save_metagraph(pool.name, pool.metagraph.model_dump_json().encode())
    except Exception as exc:  # the store is optional on this path
        logger.warning("could not cache the %s metagraph: %r", pool.name, exc)


def _reloaded(pool: Pool, fresh: Metagraph, local: LocalConfig | None) -> Metagraph:
    """What a pool serves after its file changed: local pools keep their last epoch."""
    if local is None:
        return fresh
    pool.base = fresh
    return overlay(fresh, pool.metagraph, local)


async def watch_metagraphs(
    pools: dict[str, Pool], store: StateStore, metrics: Metrics, interval_s: float
) -> None:
    """Reload changed metagraph files forever; a bad file keeps the last good metagraph."""
    for pool in pools.values():
        metrics.metagraph_neurons.labels(pool.name).set(pool.miner_count)
        await save_snapshot(store, pool)
    while True:
        await asyncio.sleep(interval_s)
        for pool in pools.values():
            if not isinstance(pool.source, FileMetagraphSource):
                continue
            before = pool.source.last_error
            fresh = pool.source.poll()
            if fresh is None:
                if pool.source.last_error and pool.source.last_error != before:
                    metrics.metagraph_reload_errors.labels(pool.name).inc()
                continue
            try:
                reloaded = _reloaded(pool, fresh, pool.config.local)
            except Exception as exc:  # keep the last good metagraph and keep watching
                pool.source.last_error = f"reload failed: {exc!r}"
                metrics.metagraph_reload_errors.labels(pool.name).inc()
                logger.exception("pool %s: metagraph reload failed", pool.name)
                continue
            pool.adopt(reloaded)
            metrics.metagraph_neurons.labels(pool.name).set(pool.miner_count)
            logger.info("pool %s: metagraph reloaded, %d neurons", pool.name, pool.miner_count)
            await save_snapshot(store, pool)


async def sync_chain(pool: Pool, store: StateStore, metrics: Metrics) -> bool:
    """One chain sync of the pool; a failure keeps the last good metagraph and is counted."""
    assert isinstance(pool.source, ChainMetagraphSource)
    fresh = await pool.source.sync()
    if fresh is None:
        metrics.metagraph_sync_failures.labels(pool.name).inc()
        return False
    pool.adopt(fresh)
    metrics.metagraph_neurons.labels(pool.name).set(pool.miner_count)
    metrics.metagraph_sync_age.labels(pool.name).set(0)
    await save_snapshot(store, pool)
    return True


async def watch_chain(pool: Pool, store: StateStore, metrics: Metrics, interval_s: float) -> None:
    """Sync a chain pool's metagraph every `interval_s`, forever."""
    while True:
        await asyncio.sleep(interval_s)
        await sync_chain(pool, store, metrics)


async def _follow(pool: Pool, store: StateStore, block: int, delay_s: float) -> None:
    """Adopt the epoch another replica ran, once its snapshot is in the store.

    Looks every `delay_s` until a third of the epoch has passed: the winner may be slow.
    """
    tries = max(int(pool.config.epoch_s / 3 / max(delay_s, 1e-3)), 1)
    for _ in range(tries):
        await asyncio.sleep(delay_s)
        stored = await _stored_metagraph(store, pool.name)
        if stored is not None and stored.block >= block and pool.config.local and pool.base:
            pool.adopt(overlay(pool.base, stored, pool.config.local))
            return
    logger.warning(
        "pool %s: no replica published epoch block %d; keeping the last", pool.name, block
    )


async def _local_epoch(
    pool: Pool, own: ValidatorWeights, number: int, store: StateStore, follow_s: float
) -> bool:
    """Run (or follow) epoch `number` of a local pool; True when this replica ran it."""
    assert pool.local is not None and pool.base is not None and pool.config.local is not None
    fresh = await pool.local.run(pool.base, own, number)
    if fresh is None:
        if pool.local.no_consensus != number:  # another replica ran it
            await _follow(pool, store, number * max(pool.config.local.yuma.tempo, 1), follow_s)
        return False
    pool.adopt(fresh)
    return True


async def run_epoch(
    pool: Pool,
    scoreboard: Scoreboard,
    store: StateStore,
    metrics: Metrics,
    number: int,
    follow_s: float = FOLLOW_S,
) -> ValidatorWeights:
    """Epoch `number`: scores become this validator's weights, kept in the store; a local pool
    then runs Yuma Consensus, and a chain pool with `set_weights` sets them on chain. Failures
    are kept in `epoch_error`; the next epoch tries again."""
    weights = compute_weights(
        pool.metagraph,
        scoreboard.stats(pool.name),
        hotkey=pool.config.validator_hotkey,
        max_share=pool.config.max_weight_share,
        epoch=number,
    )
    pool.weights = weights
    errors: list[str] = []
    try:
        await store.save_weights(pool.name, weights.hotkey, weights.to_json())
    except Exception as exc:  # the store is down: local epochs wait for it, chain ones don't
        errors.append(f"storing weights: {exc!r}")
    if pool.local is not None:
        try:
            if await _local_epoch(pool, weights, number, store, follow_s):
                metrics.epochs.labels(pool.name).inc()
                metrics.metagraph_neurons.labels(pool.name).set(pool.miner_count)
        except Exception as exc:
            errors.append(f"epoch {number}: {exc!r}")
    if pool.setter is not None and not weights.empty:
        try:
            await pool.setter.set(weights)
            metrics.weights_set.labels(pool.name, "ok").inc()
        except Exception as exc:
            metrics.weights_set.labels(pool.name, "error").inc()
            errors.append(f"set_weights: {exc!r}")
    pool.epoch_error = "; ".join(errors) or None
    if pool.epoch_error:
        logger.error("pool %s: %s", pool.name, pool.epoch_error)
    return weights


async def run_epochs(
    pool: Pool,
    scoreboard: Scoreboard,
    store: StateStore,
    metrics: Metrics,
    clock: Callable[[], float] = time.time,
) -> None:
    """Run the pool's epochs forever, epoch n at n x `epoch_s` on the wall clock (so replicas
    agree on the number)."""
    period = pool.config.epoch_s
    last = 0
    while True:
        # Never the same number twice, even if the clock steps back or a sleep wakes early.
        number = max(int(clock() // period) + 1, last + 1)
        await asyncio.sleep(max(number * period - clock(), 0.0))
        last = number
        try:
            await run_epoch(pool, scoreboard, store, metrics, number)
        except Exception as exc:  # one bad epoch must not end the pool's epochs
            pool.epoch_error = repr(exc)
            logger.exception("pool %s: epoch %d failed", pool.name, number)
