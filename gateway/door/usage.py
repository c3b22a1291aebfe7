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
USAGE_PREFIX = "bitgate:usage:"  # + key name: hash of "{pool}|{field}" → count
FIELDS = ("requests", "winner_tokens", "fanout_tokens")


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


def reply_tokens(reply: Reply, prompt_text: str) -> Tokens:
    """What one miner call cost: its reported usage, else an estimate (failures: 0)."""
    usage = reply.answer.usage
    if usage is not None:
        return Tokens(usage.prompt_tokens, usage.completion_tokens)
    if not reply.ok:
        return Tokens()
    return Tokens(estimate(prompt_text), estimate(reply.text), estimated=True)


def fanout_tokens(replies: Sequence[Reply], prompt_text: str) -> Tokens:
    """The tokens of every miner call of a request, together."""
    total = Tokens()
    for reply in replies:
        one = reply_tokens(reply, prompt_text)
        total.prompt += one.prompt
        total.completion += one.completion
        total.estimated = total.estimated or one.estimated
    return total


class UsageLedger:
    """Counts usage in the metrics at once and in Redis on each `flush` (batched)."""

    def __init__(self, redis: aioredis.Redis | None, metrics: Metrics) -> None:
        self.redis = redis
        self.metrics = metrics
        self.pending: defaultdict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
        self.last_used: dict[str, float] = {}

    def record(self, key: str, pool: str, winner: int, fanout: int) -> None:
        """One request of `key` served by `pool`."""
        m = self.metrics
        m.key_requests.labels(key, pool).inc()
        m.key_tokens.labels(key, pool, "winner").inc(winner)
        m.key_tokens.labels(key, pool, "fanout").inc(fanout)
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
