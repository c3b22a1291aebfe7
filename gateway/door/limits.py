"""Per-key limits: requests and tokens per minute (GCRA) and requests in flight.

Every replica asks one Lua script in Redis, so N replicas together allow a key's limit,
not N times it. GCRA lets a key spend its whole minute at once and then refills it
evenly; a request whose token estimate is over the whole limit is charged the limit.
While Redis is unreachable each replica enforces `share` of every limit by itself,
starting from how much of its minute the key had spent when Redis last answered.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from gateway.door.auth import Identity

logger = logging.getLogger(__name__)

WINDOW_S = 60.0
REDIS_RETRY_S = 1.0  # after a failure, the fallback answers alone this long

# KEYS: requests TAT, tokens TAT, leases (zset). ARGV: mode, rpm, tpm, tokens,
# concurrency, lease id, lease ttl (s). 0 means no limit. Redis' clock is the only clock.
LIMIT_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local mode, rpm, tpm = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local tokens, cap, lease, ttl = tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6], tonumber(ARGV[7])
local function keep(key, tat)
  redis.call('SET', key, string.format('%.6f', tat), 'PX', math.ceil((tat - now) * 1000) + 1000)
end
if mode == 'release' then
  redis.call('ZREM', KEYS[3], lease)
  return {}
end
if mode == 'adjust' then
  if tpm > 0 then
    local tat = tonumber(redis.call('GET', KEYS[2]) or now)
    keep(KEYS[2], math.max(tat + tokens * 60 / tpm, now))
  end
  return {}
end
local function probe(key, limit, units)
  if limit <= 0 then return nil end
  local step = 60 / limit
  local tat = math.max(tonumber(redis.call('GET', key) or now), now)
  return {tat = tat, new = tat + math.min(units, limit) * step, step = step}
end
local function report(p, at)
  if not p then return '', '' end
  return tostring(math.floor((now + 60 - at) / p.step + 1e-9)), tostring(at - now)
end
local req, tok = probe(KEYS[1], rpm, 1), probe(KEYS[2], tpm, tokens)
local refused, wait = '', 0
if req and req.new - now > 60 + 1e-6 then refused, wait = 'requests', req.new - 60 - now
elseif tok and tok.new - now > 60 + 1e-6 then refused, wait = 'tokens', tok.new - 60 - now
elseif cap > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
  if redis.call('ZCARD', KEYS[3]) >= cap then refused, wait = 'concurrency', 1 end
end
if refused == '' then
  if req then keep(KEYS[1], req.new) end
  if tok then keep(KEYS[2], tok.new) end
  if cap > 0 then
    redis.call('ZADD', KEYS[3], now + ttl, lease)
    redis.call('EXPIRE', KEYS[3], math.ceil(ttl))
  end
end
local r_at, t_at = 0, 0
if req then r_at = (refused == '' and req.new) or req.tat end
if tok then t_at = (refused == '' and tok.new) or tok.tat end
local r_left, r_reset = report(req, r_at)
local t_left, t_reset = report(tok, t_at)
return {refused, tostring(wait), r_left, r_reset, t_left, t_reset}
"""


def limit_keys(name: str) -> list[str]:
    """The Redis keys of one key's limits (one hash tag: one slot in a Redis Cluster)."""
    base = f"bitgate:limit:{{{name}}}"
    return [f"{base}:requests", f"{base}:tokens", f"{base}:inflight"]


def duration(seconds: float) -> str:
    """A reset time the way OpenAI writes it: `20ms`, `1.5s`, `6m0s`."""
    if seconds < 1:
        return f"{max(seconds, 0) * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.3g}s"
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)}m{rest:.0f}s"


@dataclass(slots=True)
class KeyLease:
    """A limiter's answer for one request, and what it holds until the request ends."""

    identity: Identity
    reserved: int = 0
    refused: str | None = None  # requests | tokens | concurrency
    retry_after_s: float = 0.0
    remaining: dict[str, str] = field(default_factory=dict)
    lease: str | None = None
    local: bool = False
    # Set when the response ended before its fan-out did (a race): freed once it settles.
    release_on_settle: bool = False

    def headers(self) -> dict[str, str]:
        """OpenAI's `x-ratelimit-*` headers, and `Retry-After` on a refusal."""
        who = self.identity
        out: dict[str, str] = {}
        for unit, limit in (("requests", who.rpm), ("tokens", who.tpm)):
            if limit is None or f"{unit}_left" not in self.remaining:
                continue
            out[f"x-ratelimit-limit-{unit}"] = str(limit)
            out[f"x-ratelimit-remaining-{unit}"] = self.remaining[f"{unit}_left"]
            out[f"x-ratelimit-reset-{unit}"] = duration(float(self.remaining[f"{unit}_reset"]))
        if self.refused is not None:
            out["retry-after"] = str(max(1, math.ceil(self.retry_after_s)))
            out["retry-after-ms"] = str(max(1, math.ceil(self.retry_after_s * 1000)))
        return out


class LocalLimits:
    """The same limits kept in this process alone: the fallback while Redis is down."""

    def __init__(self, share: float) -> None:
        self.share = share
        self.tats: dict[str, float] = {}
        self.inflight: dict[str, int] = {}

    def _scaled(self, limit: int | None) -> int:
        return max(1, math.floor((limit or 0) * self.share)) if limit else 0

    def _probe(self, key: str, limit: int, units: int, now: float) -> tuple[float, float, float]:
        step = WINDOW_S / limit
        tat = max(self.tats.get(key, now), now)
        return tat, tat + min(units, limit) * step, step

    def admit(self, adm: KeyLease) -> None:
        """Decide `adm` against this replica's share of the limits."""
        who, now = adm.identity, time.monotonic()
        probes = {}
        for unit, limit, units in (("requests", who.rpm, 1), ("tokens", who.tpm, adm.reserved)):
            scaled = self._scaled(limit)
            if scaled:
                probes[unit] = (*self._probe(f"{who.name}:{unit}", scaled, units, now), scaled)
        for unit, (_, new, _, _) in probes.items():
            if adm.refused is None and new - now > WINDOW_S + 1e-6:
                adm.refused, adm.retry_after_s = unit, new - WINDOW_S - now
        if "tokens" in probes:
            adm.reserved = min(adm.reserved, probes["tokens"][3])  # what is charged, at most
        cap = self._scaled(who.concurrency)
        if adm.refused is None and cap and self.inflight.get(who.name, 0) >= cap:
            adm.refused, adm.retry_after_s = "concurrency", 1.0
        for unit, (tat, new, step, _) in probes.items():
            at = new if adm.refused is None else tat
            if adm.refused is None:
                self.tats[f"{who.name}:{unit}"] = new
            adm.remaining[f"{unit}_left"] = str(math.floor((now + WINDOW_S - at) / step + 1e-9))
            adm.remaining[f"{unit}_reset"] = str(at - now)
        if adm.refused is None and cap:
            self.inflight[who.name] = self.inflight.get(who.name, 0) + 1
            adm.lease = "local"
        adm.local = True

    def seen(self, name: str, unit: str, reset_s: float) -> None:
        """What Redis last said of a key: its minute is spent up to `reset_s` from now, so a
        fallback starting now grants the unspent part (times the share), not a fresh minute."""
        self.tats[f"{name}:{unit}"] = time.monotonic() + max(0.0, reset_s)

    def release(self, adm: KeyLease) -> None:
        """Give back a request-in-flight slot."""
        name = adm.identity.name
        self.inflight[name] = max(0, self.inflight.get(name, 0) - 1)

    def adjust(self, identity: Identity, tokens: int) -> None:
        """Charge (or refund) tokens after the fact."""
        scaled = self._scaled(identity.tpm)
        if not scaled:
            return
        key, now = f"{identity.name}:tokens", time.monotonic()
        tat = self.tats.get(key, now) + tokens * WINDOW_S / scaled
        self.tats[key] = max(tat, now)


class Limiter:
    """Per-key limits in Redis, falling back to `LocalLimits` while Redis is unreachable."""

    def __init__(
        self, redis: aioredis.Redis | None, fallback_share: float, lease_ttl_s: float
    ) -> None:
        self.redis = redis
        self.script = redis.register_script(LIMIT_LUA) if redis is not None else None
        self.local = LocalLimits(fallback_share)
        self.lease_ttl_s = lease_ttl_s
        self.down_until = 0.0
        self.pending: dict[str, tuple[Identity, int]] = {}

    @property
    def redis_up(self) -> bool:
        """Whether Redis is being asked (not in a fallback pause)."""
        return self.script is not None and time.monotonic() >= self.down_until

    async def _run(self, identity: Identity, mode: str, tokens: int = 0, lease: str = "") -> Any:
        assert self.script is not None
        who = identity
        args: list[str | int | float] = [mode, who.rpm or 0, who.tpm or 0, tokens]
        args += [who.concurrency or 0, lease, self.lease_ttl_s]
        return await self.script(keys=limit_keys(who.name), args=args)

    def _failed(self, exc: BaseException) -> None:
        if self.redis_up:
            logger.warning("limits: Redis unreachable, each replica limits alone: %r", exc)
        self.down_until = time.monotonic() + REDIS_RETRY_S

    async def admit(self, identity: Identity, tokens: int) -> KeyLease:
        """Admit one request that may use `tokens`, or say which limit refuses it."""
        # A reservation over the whole limit is charged the limit, and refunded against that.
        adm = KeyLease(identity, reserved=min(tokens, identity.tpm) if identity.tpm else tokens)
        if self.redis_up:
            lease = uuid.uuid4().hex if identity.concurrency else ""
            try:
                reply = await self._run(identity, "admit", tokens, lease)
            except (RedisError, OSError) as exc:
                self._failed(exc)
            else:
                refused, wait, r_left, r_reset, t_left, t_reset = (_text(v) for v in reply)
                adm.refused = refused or None
                adm.retry_after_s = float(wait)
                adm.lease = lease if (lease and adm.refused is None) else None
                units = (("requests", r_left, r_reset), ("tokens", t_left, t_reset))
                for unit, left, reset in units:
                    if left:
                        adm.remaining[f"{unit}_left"] = left
                        adm.remaining[f"{unit}_reset"] = reset
                        self.local.seen(identity.name, unit, float(reset))
                return adm
        self.local.admit(adm)
        return adm

    async def release(self, adm: KeyLease) -> None:
        """Free the request-in-flight slot an admission holds (once, however often asked)."""
        lease, adm.lease = adm.lease, None
        if lease is None:
            return
        if adm.local:
            self.local.release(adm)
            return
        try:
            await self._run(adm.identity, "release", lease=lease)
        except (RedisError, OSError) as exc:  # the lease expires on its own
            self._failed(exc)

    def settle(self, adm: KeyLease, used: int) -> None:
        """Charge the tokens a request really used instead of its estimate."""
        delta = used - adm.reserved
        if adm.identity.tpm is None or delta == 0:
            return
        if adm.local:
            self.local.adjust(adm.identity, delta)
            return
        _, pending = self.pending.get(adm.identity.name, (adm.identity, 0))
        self.pending[adm.identity.name] = (adm.identity, pending + delta)

    async def flush(self) -> None:
        """Send the token corrections gathered since the last flush."""
        pending, self.pending = self.pending, {}
        for identity, delta in pending.values():
            if not self.redis_up:
                self.local.adjust(identity, delta)
                continue
            try:
                await self._run(identity, "adjust", delta)
            except (RedisError, OSError) as exc:
                self._failed(exc)
                self.local.adjust(identity, delta)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
