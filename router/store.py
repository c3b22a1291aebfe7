"""The state store shared by gateway replicas: Redis, or memory when there is none."""

from __future__ import annotations

import copy
import logging
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_fixed

from router.stats import MinerStats, Outcome, ScorePolicy, apply_outcome

logger = logging.getLogger(__name__)

KEY_PREFIX = "bitgate"


def stats_key(pool: str) -> str:
    """The Redis hash of one pool's miner stats, uid → JSON."""
    return f"{KEY_PREFIX}:{pool}:miners"


def batch_key(pool: str, batch_id: str) -> str:
    """The Redis key marking an outcome batch as written (kept an hour)."""
    return f"{KEY_PREFIX}:{pool}:batch:{batch_id}"


def metagraph_key(pool: str) -> str:
    """The Redis key of one pool's metagraph snapshot."""
    return f"{KEY_PREFIX}:{pool}:metagraph"


def weights_key(pool: str) -> str:
    """The Redis hash of one pool's validator weights, validator hotkey → JSON."""
    return f"{KEY_PREFIX}:{pool}:weights"


def bonds_key(pool: str) -> str:
    """The Redis key of one pool's Yuma bonds (local pools)."""
    return f"{KEY_PREFIX}:{pool}:bonds"


def epoch_key(pool: str, epoch: int) -> str:
    """The Redis key a replica sets to claim one epoch of a local pool."""
    return f"{KEY_PREFIX}:{pool}:epoch:{epoch}"


class StateStore(Protocol):
    """Where miner stats and metagraph snapshots live."""

    name: str

    async def record(
        self,
        pool: str,
        outcomes: Sequence[Outcome],
        policy: ScorePolicy,
        now: float,
        batch_id: str | None = None,
    ) -> None:
        """Fold outcomes into the pool's miner stats, atomically; a `batch_id` seen before is
        skipped, so a batch retried after a lost reply is counted once."""
        ...

    async def stats(self, pool: str) -> dict[int, MinerStats]:
        """Every miner's stats in the pool."""
        ...

    async def save_metagraph(self, pool: str, snapshot: bytes) -> None:
        """Keep the pool's latest good metagraph (JSON)."""
        ...

    async def load_metagraph(self, pool: str) -> bytes | None:
        """The pool's kept metagraph snapshot, if any."""
        ...

    async def save_weights(self, pool: str, hotkey: str, weights: bytes) -> None:
        """Keep one validator's latest weights over the pool (JSON)."""
        ...

    async def load_weights(self, pool: str) -> dict[str, bytes]:
        """Every validator's latest weights, by validator hotkey."""
        ...

    async def save_bonds(self, pool: str, bonds: bytes) -> None:
        """Keep the pool's Yuma bonds after an epoch (JSON)."""
        ...

    async def load_bonds(self, pool: str) -> bytes | None:
        """The pool's kept bonds, if any."""
        ...

    async def claim_epoch(self, pool: str, epoch: int, ttl_s: float) -> bool:
        """True for the one replica that may run this epoch of the pool."""
        ...

    async def ping(self) -> bool:
        """Whether the store answers now."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


class MemoryStore:
    """The embedded store: one process, nothing shared."""

    name = "memory"

    def __init__(self) -> None:
        self._stats: dict[str, dict[int, MinerStats]] = {}
        self._metagraphs: dict[str, bytes] = {}
        self._weights: dict[str, dict[str, bytes]] = {}
        self._bonds: dict[str, bytes] = {}
        self._epochs: dict[str, int] = {}
        self._batches: deque[str] = deque(maxlen=10_000)

    async def record(
        self,
        pool: str,
        outcomes: Sequence[Outcome],
        policy: ScorePolicy,
        now: float,
        batch_id: str | None = None,
    ) -> None:
        """Fold outcomes into the pool's miner stats."""
        if batch_id is not None:
            if batch_id in self._batches:
                return
            self._batches.append(batch_id)
        miners = self._stats.setdefault(pool, {})
        for outcome in outcomes:
            miners[outcome.uid] = apply_outcome(miners.get(outcome.uid), outcome, policy, now)

    async def stats(self, pool: str) -> dict[int, MinerStats]:
        """A copy of every miner's stats in the pool."""
        return copy.deepcopy(self._stats.get(pool, {}))

    async def save_metagraph(self, pool: str, snapshot: bytes) -> None:
        """Keep the snapshot."""
        self._metagraphs[pool] = snapshot

    async def load_metagraph(self, pool: str) -> bytes | None:
        """The kept snapshot, if any."""
        return self._metagraphs.get(pool)

    async def save_weights(self, pool: str, hotkey: str, weights: bytes) -> None:
        """Keep the validator's weights."""
        self._weights.setdefault(pool, {})[hotkey] = weights

    async def load_weights(self, pool: str) -> dict[str, bytes]:
        """Every validator's kept weights."""
        return dict(self._weights.get(pool, {}))

    async def save_bonds(self, pool: str, bonds: bytes) -> None:
        """Keep the bonds."""
        self._bonds[pool] = bonds

    async def load_bonds(self, pool: str) -> bytes | None:
        """The kept bonds, if any."""
        return self._bonds.get(pool)

    async def claim_epoch(self, pool: str, epoch: int, ttl_s: float) -> bool:
        """One process: each epoch is claimed once, in order."""
        if epoch <= self._epochs.get(pool, -1):
            return False
        self._epochs[pool] = epoch
        return True

    async def ping(self) -> bool:
        """Always up."""
        return True

    async def close(self) -> None:
        """Nothing to release."""


# The Lua twin of router.stats.apply_outcome: one script call folds a batch atomically,
# so replicas racing on the same miner never lose an update. Redis does not roll a script
# back when it fails half way, so every outcome and every stored document is checked (and
# decoded) before the first write; a bad batch writes nothing, not even its batch marker.
RECORD_LUA = """
local alpha = tonumber(ARGV[1])
local cooldown_after = tonumber(ARGV[2])
local cooldown_s = tonumber(ARGV[3])
local now = tonumber(ARGV[4])
local window = tonumber(ARGV[5])
local ok, outcomes = pcall(cjson.decode, ARGV[6])
if not ok or type(outcomes) ~= 'table' then
  return redis.error_reply('outcomes are not a JSON list')
end
local statuses = {ok = true, timeout = true, error = true, invalid = true, busy = true}
local fields = {}
local current = {}
for i, o in ipairs(outcomes) do
  if type(o) ~= 'table' or type(o.uid) ~= 'number' or o.uid < 0 or o.uid % 1 ~= 0
     or o.uid > 4294967295 or type(o.hotkey) ~= 'string' or not statuses[o.status]
     or type(o.reward) ~= 'number' or type(o.latency_ms) ~= 'number' then
    return redis.error_reply('outcome ' .. i .. ' is malformed')
  end
  local field = string.format('%d', o.uid)
  fields[i] = field
  if current[field] == nil then
    local raw = redis.call('HGET', KEYS[1], field)
    local s = false
    if raw then
      local decoded, doc = pcall(cjson.decode, raw)
      if decoded and type(doc) == 'table' then s = doc end
    end
    current[field] = s
  end
end
if ARGV[7] ~= '' and not redis.call('SET', KEYS[2], '1', 'NX', 'EX', 3600) then
  return 0
end
local touched = {}
for i, o in ipairs(outcomes) do
  local field = fields[i]
  local s = current[field]
  if (not s) or s.hotkey ~= o.hotkey then
    s = {hotkey = o.hotkey, score = 0, requests = 0, successes = 0, failures = 0,
         consecutive_failures = 0, cooling_until = 0, wins = 0, latencies = {}}
  end
  if o.status ~= 'busy' then
    local reward = 0
    if o.status == 'ok' then reward = o.reward end
    s.score = (1 - alpha) * (tonumber(s.score) or 0) + alpha * reward
    s.requests = (tonumber(s.requests) or 0) + 1
    if o.won then s.wins = (tonumber(s.wins) or 0) + 1 end
    if o.status == 'ok' then
      s.successes = (tonumber(s.successes) or 0) + 1
      s.consecutive_failures = 0
      local lat = s.latencies
      if type(lat) ~= 'table' then lat = {} end
      table.insert(lat, o.latency_ms)
      while #lat > window do table.remove(lat, 1) end
      s.latencies = lat
    else
      s.failures = (tonumber(s.failures) or 0) + 1
      s.consecutive_failures = (tonumber(s.consecutive_failures) or 0) + 1
      if s.consecutive_failures >= cooldown_after then
        s.cooling_until = now + cooldown_s
        s.consecutive_failures = 0
      end
    end
  end
  current[field] = s
  touched[field] = true
end
for field, _ in pairs(touched) do
  redis.call('HSET', KEYS[1], field, cjson.encode(current[field]))
end
return #outcomes
"""


class RedisStore:
    """Redis, shared by every gateway replica; calls fail fast and retry once."""

    name = "redis"

    def __init__(self, url: str, timeout_s: float = 0.5) -> None:
        self.url = url
        self._redis = aioredis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
        )
        self._record = self._redis.register_script(RECORD_LUA)
        self._replica = uuid.uuid4().hex.encode()  # who claims epochs from this process

    async def _call(self, command: Callable[..., Awaitable[Any]], *args: Any, **kw: Any) -> Any:
        """One Redis command, retried once after a short pause."""
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(RedisError),
            stop=stop_after_attempt(2),
            wait=wait_fixed(0.05),
            reraise=True,
        )

        async def once() -> Any:
            return await command(*args, **kw)

        return await retrying(once)

    async def record(
        self,
        pool: str,
        outcomes: Sequence[Outcome],
        policy: ScorePolicy,
        now: float,
        batch_id: str | None = None,
    ) -> None:
        """Fold outcomes with one atomic Lua call; retrying is safe thanks to `batch_id`."""
        payload = orjson.dumps(
            [
                {
                    "uid": o.uid,
                    "hotkey": o.hotkey,
                    "status": o.status,
                    "reward": o.reward,
                    "latency_ms": o.latency_ms,
                    "won": o.won,
                }
                for o in outcomes
            ]
        )
        args: list[Any] = [
            policy.alpha,
            policy.cooldown_after,
            policy.cooldown_s,
            now,
            policy.latency_window,
            payload,
            batch_id or "",
        ]
        keys = [stats_key(pool), batch_key(pool, batch_id or "-")]
        await self._call(self._record, keys=keys, args=args)

    async def stats(self, pool: str) -> dict[int, MinerStats]:
        """Every miner's stats in the pool, in one read."""
        raw: dict[Any, Any] = await self._call(self._redis.hgetall, stats_key(pool))
        stats: dict[int, MinerStats] = {}
        for uid, doc in raw.items():
            try:
                stats[int(uid)] = MinerStats.from_json(orjson.loads(doc))
            except (ValueError, TypeError, AttributeError):  # one bad entry must not hide the rest
                logger.warning("skipping an unreadable stats entry %r of pool %s", uid, pool)
        return stats

    async def save_metagraph(self, pool: str, snapshot: bytes) -> None:
        """Keep the snapshot for every replica."""
        await self._call(self._redis.set, metagraph_key(pool), snapshot)

    async def load_metagraph(self, pool: str) -> bytes | None:
        """The kept snapshot, if any."""
        value: Any = await self._call(self._redis.get, metagraph_key(pool))
        return None if value is None else bytes(value)

    async def save_weights(self, pool: str, hotkey: str, weights: bytes) -> None:
        """Keep the validator's weights for every replica."""
        await self._call(self._redis.hset, weights_key(pool), hotkey, weights)

    async def load_weights(self, pool: str) -> dict[str, bytes]:
        """Every validator's kept weights, in one read."""
        raw: dict[Any, Any] = await self._call(self._redis.hgetall, weights_key(pool))
        return {_text(hotkey): bytes(doc) for hotkey, doc in raw.items()}

    async def save_bonds(self, pool: str, bonds: bytes) -> None:
        """Keep the bonds for every replica."""
        await self._call(self._redis.set, bonds_key(pool), bonds)

    async def load_bonds(self, pool: str) -> bytes | None:
        """The kept bonds, if any."""
        value: Any = await self._call(self._redis.get, bonds_key(pool))
        return None if value is None else bytes(value)

    async def claim_epoch(self, pool: str, epoch: int, ttl_s: float) -> bool:
        """SET NX on the epoch's key with this replica's id: the first replica to ask wins.

        Not retried blindly: when the reply is lost, the key says whether the SET landed.
        """
        ttl_ms = max(int(ttl_s * 1000), 1)
        key = epoch_key(pool, epoch)
        try:
            return bool(await self._redis.set(key, self._replica, nx=True, px=ttl_ms))
        except RedisError:
            owner = await self._call(self._redis.get, key)
            return owner is not None and bytes(owner) == self._replica

    async def ping(self) -> bool:
        """Whether Redis answers now."""
        try:
            return bool(await self._redis.ping())
        except (RedisError, OSError):
            return False

    async def close(self) -> None:
        """Close the connection pool."""
        await self._redis.aclose()


def _text(value: bytes | str) -> str:
    """A Redis hash field as text."""
    return value.decode() if isinstance(value, bytes) else value


def open_store(redis_url: str | None) -> StateStore:
    """Redis when a URL is given, else the in-memory store."""
    if redis_url:
        return RedisStore(redis_url)
    return MemoryStore()
