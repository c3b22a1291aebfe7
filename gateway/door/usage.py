"""Usage per key and pool: requests, the winner's tokens, and what the whole fan-out cost."""

from __future__ import annotations

import logging
import math
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from gateway.door.keys import LAST_USED_HASH
from gateway.protocol import FanoutUsage
from gateway.runtime.metrics import Metrics
from router.miner_client import Reply

logger = logging.getLogger(__name__)

CHARS_PER_TOKEN = 4
# Tokens a chat template and special tokens may add to a prompt or a completion.
TEMPLATE_TOKENS = 64
USAGE_PREFIX = "bitgate:usage:"  # + key name: hash of "{pool}|{field}" → count
FIELDS = ("requests", "winner_tokens", "fanout_tokens")
ALL_KEYS = "all"  # the `key` label of every key while BITGATE_METRICS_KEY_NAMES is off


@dataclass(slots=True)
class Tokens:
    """Prompt and completion tokens of one or more miner calls."""

    prompt: int = 0
    completion: int = 0
    estimated: bool = False

    @property
    def total(self) -> int:
        """Prompt plus completion."""
        return self.prompt + self.completion

    def block(self, calls: int) -> FanoutUsage:
        """As the `fanout_usage` of a response's `bitgate` block."""
        return {
            "prompt_tokens": self.prompt,
            "completion_tokens": self.completion,
            "total_tokens": self.total,
            "calls": calls,
            "estimated": self.estimated,
        }


def estimate(text: str) -> int:
    """Tokens in `text`, roughly (for replies that report no usage, and reservations)."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def said_bytes(reply: Reply) -> int:
    """The UTF-8 bytes of what a reply said: its text (or tool calls) and its reasoning."""
    return len(reply.text.encode()) + len(reply.answer.reasoning.encode())


def reply_tokens(reply: Reply, prompt_text: str, prompt_bytes: int | None = None) -> Tokens:
    """What one miner call cost: its reported usage, else an estimate (failures: 0).

    Reported usage is a claim: no more prompt tokens than the bytes sent to the miner
    (`prompt_bytes`, else the prompt's own) and no more completion tokens than the bytes it
    said, each plus `TEMPLATE_TOKENS`; a token is at least one byte.
    """
    usage = reply.answer.usage  # counts already checked as non-negative integers
    if usage is not None:
        sent = len(prompt_text.encode()) if prompt_bytes is None else prompt_bytes
        return Tokens(
            min(usage.prompt_tokens, sent + TEMPLATE_TOKENS),
            min(usage.completion_tokens, said_bytes(reply) + TEMPLATE_TOKENS),
        )
    if not reply.ok:
        return Tokens()
    return Tokens(estimate(prompt_text), estimate(reply.text), estimated=True)


def chosen_tokens(replies: Sequence[Reply], prompt_text: str, prompt_bytes: int) -> Tokens:
    """What the replies returned to the client cost (n > 1: every choice's completion;
    the prompt once, the largest any of them claims)."""
    total = Tokens()
    for reply in replies:
        one = reply_tokens(reply, prompt_text, prompt_bytes)
        total.prompt = max(total.prompt, one.prompt)
        total.completion += one.completion
        total.estimated = total.estimated or one.estimated
    return total


def fanout_tokens(
    replies: Sequence[Reply], prompt_text: str, prompt_bytes: int | None = None
) -> Tokens:
    """The tokens of every miner call of a request, together."""
    total = Tokens()
    for reply in replies:
        one = reply_tokens(reply, prompt_text, prompt_bytes)
        total.prompt += one.prompt
        total.completion += one.completion
        total.estimated = total.estimated or one.estimated
    return total


def key_label(name: str, named: bool) -> str:
    """A key as /metrics shows it: its name only when the operator asks for names."""
    return name if named else ALL_KEYS


class UsageLedger:
    """Counts usage in the metrics at once and in Redis on each `flush` (batched)."""

    def __init__(
        self, redis: aioredis.Redis | None, metrics: Metrics, key_names: bool = False
    ) -> None:
        self.redis = redis
        self.metrics = metrics
        self.key_names = key_names
        self.pending: defaultdict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
        self.last_used: dict[str, float] = {}

    def record(self, key: str, pool: str, winner: int, fanout: int) -> None:
        """One request of `key` served by `pool`."""
        m, label = self.metrics, key_label(key, self.key_names)
        m.key_requests.labels(label, pool).inc()
        m.key_tokens.labels(label, pool, "winner").inc(winner)
        m.key_tokens.labels(label, pool, "fanout").inc(fanout)
        counts = self.pending[(key, pool)]
        counts[0] += 1
        counts[1] += winner
        counts[2] += fanout
        self.last_used[key] = time.time()

    async def flush(self) -> None:
        """Add what was counted since the last flush to Redis; kept for later on failure."""
        if self.redis is None or not self.pending:
            return
        pending, self.pending = self.pending, defaultdict(lambda: [0, 0, 0])
        used, self.last_used = self.last_used, {}
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                for (key, pool), counts in pending.items():
                    for name, count in zip(FIELDS, counts, strict=True):
                        pipe.hincrby(USAGE_PREFIX + key, f"{pool}|{name}", count)
                pipe.hset(LAST_USED_HASH, mapping={k: str(t) for k, t in used.items()})
                await pipe.execute()
        except (RedisError, OSError) as exc:
            logger.warning("usage not written to Redis yet: %r", exc)
            for k, counts in pending.items():
                self.pending[k] = [a + b for a, b in zip(self.pending[k], counts, strict=True)]
            self.last_used = used | self.last_used


async def read_usage(redis: aioredis.Redis, name: str | None = None) -> dict[str, Any]:
    """Usage from Redis: key → pool → {requests, winner_tokens, fanout_tokens}."""
    if name is not None:
        keys = [USAGE_PREFIX + name]
    else:
        keys = sorted([_text(k) async for k in redis.scan_iter(match=USAGE_PREFIX + "*")])
    out: dict[str, dict[str, dict[str, int]]] = {}
    for redis_key in keys:
        raw: dict[Any, Any] = await redis.hgetall(redis_key)
        pools: dict[str, dict[str, int]] = {}
        for field_name, value in raw.items():
            pool, _, counter = _text(field_name).rpartition("|")
            pools.setdefault(pool, dict.fromkeys(FIELDS, 0))[counter] = int(value)
        out[redis_key.removeprefix(USAGE_PREFIX)] = pools
    return out


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
