"""API keys kept in Redis: only a key's SHA-256 is stored; the secret is shown once."""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from typing import Any

import orjson
import redis.asyncio as aioredis
from pydantic import BaseModel, Field

SECRET_PREFIX = "bg-"
KEYS_HASH = "bitgate:keys"  # sha256 of the secret → the key's record (JSON)
NAMES_HASH = "bitgate:keys:names"  # name → sha256
LAST_USED_HASH = "bitgate:keys:used"  # name → unix time of the last request
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class KeyStoreError(ValueError):
    """A key that cannot be created or found (the CLI prints it as one line)."""


class ApiKey(BaseModel):
    """What is stored of a key: its name and limits, never its secret."""

    name: str
    rpm: int | None = Field(default=None, ge=1)
    tpm: int | None = Field(default=None, ge=1)
    concurrency: int | None = Field(default=None, ge=1)
    pools: list[str] | None = None
    created: float
    expires: float | None = None
    revoked: float | None = None

    def refusal(self, now: float) -> str | None:
        """Why this key may not be used now (`revoked`, `expired`), or None."""
        if self.revoked is not None:
            return "revoked"
        if self.expires is not None and now >= self.expires:
            return "expired"
        return None


def new_secret() -> str:
    """A fresh secret key, recognisable by its prefix."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def secret_hash(secret: str | bytes) -> str:
    """The SHA-256 (hex) a secret is stored and looked up by."""
    raw = secret.encode() if isinstance(secret, str) else secret
    return hashlib.sha256(raw).hexdigest()


class KeyStore:
    """Create, look up, list and revoke keys in Redis."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis

    async def create(
        self,
        name: str,
        *,
        rpm: int | None = None,
        tpm: int | None = None,
        concurrency: int | None = None,
        expires_in_days: float | None = None,
        pools: list[str] | None = None,
    ) -> tuple[ApiKey, str]:
        """A new key and its secret; a name is never reused, even after revocation."""
        if not NAME_PATTERN.match(name):
            raise KeyStoreError(f"bad key name {name!r}: use letters, digits, '.', '_' or '-'")
        now = time.time()
        expires = now + expires_in_days * 86400 if expires_in_days is not None else None
        key = ApiKey(
            name=name,
            rpm=rpm,
            tpm=tpm,
            concurrency=concurrency,
            pools=pools,
            created=now,
            expires=expires,
        )
        secret = new_secret()
        digest = secret_hash(secret)
        if not await self.redis.hsetnx(NAMES_HASH, name, digest):
            raise KeyStoreError(f"a key named {name!r} exists already")
        await self.redis.hset(KEYS_HASH, digest, key.model_dump_json())
        return key, secret

    async def lookup(self, digest: str) -> ApiKey | None:
        """The key stored under this secret hash, if any."""
        raw: Any = await self.redis.hget(KEYS_HASH, digest)
        return ApiKey.model_validate_json(raw) if raw is not None else None

    async def all(self) -> list[ApiKey]:
        """Every key, by name."""
        raw: dict[Any, Any] = await self.redis.hgetall(KEYS_HASH)
        return sorted((ApiKey.model_validate_json(v) for v in raw.values()), key=lambda k: k.name)

    async def last_used(self) -> dict[str, float]:
        """When each key was last used (unix time)."""
        raw: dict[Any, Any] = await self.redis.hgetall(LAST_USED_HASH)
        return {_text(k): float(v) for k, v in raw.items()}

    async def revoke(self, name: str) -> ApiKey:
        """Mark a key revoked; replicas refuse it once their cache of it expires."""
        digest: Any = await self.redis.hget(NAMES_HASH, name)
        key = await self.lookup(_text(digest)) if digest is not None else None
        if key is None:
            raise KeyStoreError(f"no key named {name!r}")
        if key.revoked is None:
            key.revoked = time.time()
            await self.redis.hset(KEYS_HASH, _text(digest), key.model_dump_json())
        return key


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def dumps(value: Any) -> str:
    """JSON for the CLI's output."""
    return orjson.dumps(value).decode()
