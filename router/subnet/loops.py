"""The loops that keep a pool current: metagraph file reloads, chain syncs and epochs.

They work on any object shaped like a `SubnetPool` and report through `PoolEvents`, so the
gateway (which owns pools and metrics) passes its own in and nothing here imports it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from typing import Protocol

from router.metagraph import FileMetagraphSource, Metagraph
from router.scores import Scoreboard
from router.snapshots import save_snapshot, stored_metagraph
from router.store import StateStore
from router.subnet.chain import ChainMetagraphSource, ChainWeightSetter
from router.subnet.epochs import LocalConfig, LocalEpochs, overlay
from router.subnet.weights import ValidatorWeights, compute_weights

logger = logging.getLogger(__name__)

# How long a replica that lost an epoch's claim waits before adopting the winner's metagraph.
FOLLOW_S = 5.0


class EpochSettings(Protocol):
    """The part of a pool's settings its epochs read."""

    @property
    def epoch_s(self) -> float: ...
    @property
    def local(self) -> LocalConfig | None: ...
    @property
    def validator_hotkey(self) -> str: ...
    @property
    def max_weight_share(self) -> float: ...


class SubnetPool(Protocol):
    """A served pool as the loops see it: its source, its metagraph, its epoch state."""

    base: Metagraph | None
    weights: ValidatorWeights | None
    epoch_error: str | None

    @property
    def name(self) -> str: ...
    @property
    def config(self) -> EpochSettings: ...
    @property
    def source(self) -> FileMetagraphSource | ChainMetagraphSource: ...
    @property
    def metagraph(self) -> Metagraph: ...
    @property
    def miner_count(self) -> int: ...
    @property
    def local(self) -> LocalEpochs | None: ...
    @property
    def setter(self) -> ChainWeightSetter | None: ...

    def adopt(self, metagraph: Metagraph) -> None:
        """Serve from `metagraph` from now on."""
        ...


class PoolEvents(Protocol):
    """Where the loops report what happened (the gateway's metrics)."""

    def neurons_changed(self, pool: str, count: int) -> None:
        """The pool now serves `count` neurons."""
        ...

    def reload_failed(self, pool: str) -> None:
        """A metagraph file reload failed; the last good metagraph stays."""
        ...

    def chain_synced(self, pool: str, ok: bool) -> None:
        """A chain sync ended, well or not."""
        ...

    def epoch_ran(self, pool: str) -> None:
        """This replica ran a local epoch."""
        ...

    def weights_submitted(self, pool: str, ok: bool) -> None:
        """A set_weights call on chain ended, well or not."""
        ...


def _reloaded(pool: SubnetPool, fresh: Metagraph, local: LocalConfig | None) -> Metagraph:
    """What a pool serves after its file changed: local pools keep their last epoch."""
    if local is None:
        return fresh
    pool.base = fresh
    return overlay(fresh, pool.metagraph, local)


async def watch_metagraphs(
    pools: Iterable[SubnetPool], store: StateStore, events: PoolEvents, interval_s: float
) -> None:
    """Reload changed metagraph files forever; a bad file keeps the last good metagraph."""
    pools = list(pools)
    for pool in pools:
        events.neurons_changed(pool.name, pool.miner_count)
        await save_snapshot(store, pool.name, pool.metagraph)
    while True:
        await asyncio.sleep(interval_s)
        for pool in pools:
            if not isinstance(pool.source, FileMetagraphSource):
                continue
            before = pool.source.last_error
            fresh = pool.source.poll()
            if fresh is None:
                if pool.source.last_error and pool.source.last_error != before:
                    events.reload_failed(pool.name)
                continue
            try:
                reloaded = _reloaded(pool, fresh, pool.config.local)
            except Exception as exc:  # keep the last good metagraph and keep watching
                pool.source.last_error = f"reload failed: {exc!r}"
                events.reload_failed(pool.name)
                logger.exception("pool %s: metagraph reload failed", pool.name)
                continue
            pool.adopt(reloaded)
            events.neurons_changed(pool.name, pool.miner_count)
            logger.info("pool %s: metagraph reloaded, %d neurons", pool.name, pool.miner_count)
            await save_snapshot(store, pool.name, pool.metagraph)


async def sync_chain(pool: SubnetPool, store: StateStore, events: PoolEvents) -> bool:
    """One chain sync of the pool; a failure keeps the last good metagraph and is counted."""
    assert isinstance(pool.source, ChainMetagraphSource)
    fresh = await pool.source.sync()
    if fresh is None:
        events.chain_synced(pool.name, ok=False)
        return False
    pool.adopt(fresh)
    events.neurons_changed(pool.name, pool.miner_count)
    events.chain_synced(pool.name, ok=True)
    await save_snapshot(store, pool.name, pool.metagraph)
    return True


async def watch_chain(
    pool: SubnetPool, store: StateStore, events: PoolEvents, interval_s: float
) -> None:
    """Sync a chain pool's metagraph every `interval_s`, forever."""
    while True:
        await asyncio.sleep(interval_s)
        await sync_chain(pool, store, events)


async def _follow(pool: SubnetPool, store: StateStore, block: int, delay_s: float) -> None:
    """Adopt the epoch another replica ran, once its snapshot is in the store.

    Looks every `delay_s` until a third of the epoch has passed: the winner may be slow.
    """
    tries = max(int(pool.config.epoch_s / 3 / max(delay_s, 1e-3)), 1)
    for _ in range(tries):
        await asyncio.sleep(delay_s)
        stored = await stored_metagraph(store, pool.name)
        if stored is not None and stored.block >= block and pool.config.local and pool.base:
            pool.adopt(overlay(pool.base, stored, pool.config.local))
            return
    logger.warning(
        "pool %s: no replica published epoch block %d; keeping the last", pool.name, block
    )


async def _local_epoch(
    pool: SubnetPool, own: ValidatorWeights, number: int, store: StateStore, follow_s: float
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
    pool: SubnetPool,
    scoreboard: Scoreboard,
    store: StateStore,
    events: PoolEvents,
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
                events.epoch_ran(pool.name)
                events.neurons_changed(pool.name, pool.miner_count)
        except Exception as exc:
            errors.append(f"epoch {number}: {exc!r}")
    if pool.setter is not None and not weights.empty:
        try:
            await pool.setter.set(weights)
            events.weights_submitted(pool.name, ok=True)
        except Exception as exc:
            events.weights_submitted(pool.name, ok=False)
            errors.append(f"set_weights: {exc!r}")
    pool.epoch_error = "; ".join(errors) or None
    if pool.epoch_error:
        logger.error("pool %s: %s", pool.name, pool.epoch_error)
    return weights


async def run_epochs(
    pool: SubnetPool,
    scoreboard: Scoreboard,
    store: StateStore,
    events: PoolEvents,
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
            await run_epoch(pool, scoreboard, store, events, number)
        except Exception as exc:  # one bad epoch must not end the pool's epochs
            pool.epoch_error = repr(exc)
            logger.exception("pool %s: epoch %d failed", pool.name, number)
