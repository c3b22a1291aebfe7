"""The pools a gateway serves, each with its live metagraph."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from gateway.config import PoolConfig
from gateway.metrics import Metrics
from router.metagraph import FileMetagraphSource, Metagraph, MetagraphError, parse_metagraph
from router.store import StateStore

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class Pool:
    """One served pool: its routing settings and the last good metagraph."""

    name: str
    config: PoolConfig
    source: FileMetagraphSource
    metagraph: Metagraph
    miner_count: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.miner_count = len(self.metagraph.neurons)


async def _initial_metagraph(
    source: FileMetagraphSource, store: StateStore, name: str | None
) -> Metagraph:
    """The file's metagraph, or the store's snapshot when the file is bad at start."""
    try:
        return source.load()
    except MetagraphError:
        if name is None:
            raise
        try:
            snapshot = await store.load_metagraph(name)
        except Exception:  # a store that is down cannot help here
            snapshot = None
        if snapshot is None:
            raise
        logger.error("metagraph file is bad, serving %s from the stored snapshot", name)
        return parse_metagraph(snapshot, f"stored snapshot of {name}")


async def open_pools(configs: list[PoolConfig], store: StateStore) -> dict[str, Pool]:
    """Load every pool's metagraph; a bad file with no stored snapshot raises."""
    pools: dict[str, Pool] = {}
    for config in configs:
        source = FileMetagraphSource(config.metagraph)
        metagraph = await _initial_metagraph(source, store, config.name)
        name = config.name or metagraph.pool_name
        if name in pools:
            raise MetagraphError(f"two pools are named {name!r}; set `name` in the pools file")
        pools[name] = Pool(name, config, source, metagraph)
    return pools


async def save_snapshot(store: StateStore, pool: Pool) -> None:
    """Cache the pool's metagraph in the store; a failing store is logged, not raised."""
    try:
        await store.save_metagraph(pool.name, pool.metagraph.model_dump_json().encode())
    except Exception as exc:  # the store is optional on this path
        logger.warning("could not cache the %s metagraph: %r", pool.name, exc)


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
            before = pool.source.last_error
            fresh = pool.source.poll()
            if fresh is None:
                if pool.source.last_error and pool.source.last_error != before:
                    metrics.metagraph_reload_errors.labels(pool.name).inc()
                continue
            pool.metagraph = fresh
            pool.miner_count = len(fresh.neurons)
            metrics.metagraph_neurons.labels(pool.name).set(pool.miner_count)
            logger.info("pool %s: metagraph reloaded, %d neurons", pool.name, pool.miner_count)
            await save_snapshot(store, pool)
