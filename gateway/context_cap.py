"""A pool's `max_tokens` cap follows its miners' context (`max_model_len`)."""

from __future__ import annotations

from typing import Protocol

# What a prompt needs at least: a cap of the whole context would leave none for it.
PROMPT_RESERVE_TOKENS = 16


class TokenLimits(Protocol):
    """The pool settings the cap is made of."""

    max_tokens_limit: int
    max_model_len: int | None


def token_cap(pool: TokenLimits) -> int:
    """The most completion tokens a request may ask of this pool's miners."""
    if pool.max_model_len is None:
        return pool.max_tokens_limit
    return max(1, min(pool.max_tokens_limit, pool.max_model_len - PROMPT_RESERVE_TOKENS))
