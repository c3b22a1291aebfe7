"""A pool's `max_tokens` cap follows its miners' context (`max_model_len`)."""

from __future__ import annotations

import asyncio
from typing import Protocol

import aiohttp

from gateway.runtime.pools import Pool
from router.miner_context import pool_context

# What a prompt needs at least: a cap of the whole context would leave none for it.
PROMPT_RESERVE_TOKENS = 16
SAMPLE = 8  # top miners asked for their context
REREAD_S = 600.0


class TokenLimits(Protocol):
    """The pool settings the cap is made of."""

    max_tokens_limit: int
    max_model_len: int | None


def token_cap(pool: TokenLimits, reported: int | None = None) -> int:
    """The most completion tokens a request may ask of this pool's miners: the pool's limit,
    under its declared context, else under the context its miners report."""
    context = pool.max_model_len if pool.max_model_len is not None else reported
    if context is None:
        return pool.max_tokens_limit
    return max(1, min(pool.max_tokens_limit, context - PROMPT_RESERVE_TOKENS))


async def watch_contexts(
    pools: dict[str, Pool], session: aiohttp.ClientSession, interval_s: float = REREAD_S
) -> None:
    """Forever: read the context of pools that declare none from their top miners."""
    while True:
        for pool in pools.values():
            if pool.config.max_model_len is not None:
                continue
            urls = [n.base_url for n in pool.ranked if n.uid not in pool.refused][:SAMPLE]
            reported = await pool_context(session, urls)
            if reported is not None:
                pool.context_tokens = reported
        await asyncio.sleep(interval_s)
