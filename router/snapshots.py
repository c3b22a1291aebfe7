"""Metagraph snapshots in the state store: what a replica serves when its source fails."""

from __future__ import annotations

import logging

from router.metagraph import Metagraph, parse_metagraph
from router.store import StateStore

logger = logging.getLogger(__name__)


async def stored_metagraph(store: StateStore, name: str | None) -> Metagraph | None:
    """The store's snapshot of the pool, if there is one that validates."""
    if name is None:
        return None
    try:
        snapshot = await store.load_metagraph(name)
        return None if snapshot is None else parse_metagraph(snapshot, f"stored {name}")
    except Exception as exc:  # a store that is down or a bad snapshot cannot help here
        logger.warning("no usable stored metagraph for %s: %r", name, exc)
        return None


async def save_snapshot(store: StateStore, name: str, metagraph: Metagraph) -> None:
    """Cache the pool's metagraph in the store; a failing store is logged, not raised."""
    try:
        await store.save_metagraph(name, metagraph.model_dump_json().encode())
    except Exception as exc:  # the store is optional on this path
        logger.warning("could not cache the %s metagraph: %r", name, exc)
