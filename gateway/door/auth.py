"""Who is calling: bearer keys from the store or `BITGATE_API_KEYS`, and when auth is on."""

from __future__ import annotations

import hmac
import ipaddress
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass

from pydantic import SecretStr
from redis.exceptions import RedisError

from gateway.config import ConfigError, Settings
from gateway.door.keys import ApiKey, KeyStore, secret_hash
from gateway.errors import Unauthorized

logger = logging.getLogger(__name__)

MAX_CACHED_KEYS = 10_000
MAX_TOKEN_BYTES = 512


@dataclass(frozen=True, slots=True)
class Identity:
    """The caller a request is served and counted for."""

    name: str
    rpm: int | None = None
    tpm: int | None = None
    concurrency: int | None = None
    pools: tuple[str, ...] | None = None

    @property
    def limited(self) -> bool:
        """Whether any per-key limit applies."""
        return any(v is not None for v in (self.rpm, self.tpm, self.concurrency))


ANONYMOUS = Identity("anonymous")


class AuthFailure(Unauthorized):
    """401 with the reason it is counted under (missing, unknown, revoked, expired)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def is_loopback(host: str) -> bool:
    """Whether a bind address only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def auth_required(settings: Settings) -> bool:
    """`BITGATE_AUTH`, or when unset: required exactly when static keys are given."""
    if settings.access.auth is not None:
        return settings.access.auth == "required"
    return bool(settings.access.api_keys)


def check_exposure(settings: Settings) -> None:
    """Refuse, in one line, to serve an open API on a public bind or auth with no keys."""
    access, host = settings.access, settings.server.host
    if access.auth is None and not access.api_keys and not is_loopback(host):
        raise ConfigError(
            f"refusing to serve an open API on {host}: set BITGATE_AUTH=required "
            "(keys from `bitgate keys create` or BITGATE_API_KEYS) or BITGATE_AUTH=none"
        )
    if auth_required(settings) and not settings.access.api_keys and not settings.redis_url:
        raise ConfigError(
            "BITGATE_AUTH=required but no key can exist: set BITGATE_REDIS_URL "
            "(keys from `bitgate keys create`) or BITGATE_API_KEYS"
        )


def bearer_token(header: str | None) -> bytes | None:
    """The token of an `Authorization: Bearer …` header, or None."""
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > MAX_TOKEN_BYTES:
        return None
    return token.encode("utf-8", "surrogateescape")


class KeyRing:
    """Checks bearer keys; stored keys are cached for `cache_s`, so a revocation or an
    expiry reaches every replica within that time. While Redis is unreachable, keys seen
    before are judged by what was last read of them."""

    def __init__(
        self, static: list[SecretStr], store: KeyStore | None, cache_s: float, required: bool
    ) -> None:
        self.static = [
            (f"static-{i + 1}", key.get_secret_value().encode()) for i, key in enumerate(static)
        ]
        self.store = store
        self.cache_s = cache_s
        self.required = required
        self._cache: OrderedDict[str, tuple[float, ApiKey | None]] = OrderedDict()

    async def identify(self, authorization: str | None) -> Identity:
        """The caller, or `AuthFailure`; with auth off, everyone is `anonymous`."""
        if not self.required:
            return ANONYMOUS
        token = bearer_token(authorization)
        if token is None:
            raise AuthFailure("missing", "Missing API key: send 'Authorization: Bearer <key>'.")
        name = self._static_name(token)
        if name is not None:
            return Identity(name)
        key = await self._stored(token)
        if key is None:
            raise AuthFailure("unknown", "Incorrect API key provided.")
        refusal = key.refusal(time.time())
        if refusal is not None:
            raise AuthFailure(refusal, f"The API key '{key.name}' has been {refusal}.")
        return Identity(
            key.name,
            key.rpm,
            key.tpm,
            key.concurrency,
            tuple(key.pools) if key.pools is not None else None,
        )

    def _static_name(self, token: bytes) -> str | None:
        found = None
        for name, secret in self.static:  # every key compared, in constant time each
            if hmac.compare_digest(token, secret):
                found = name
        return found

    async def _stored(self, token: bytes) -> ApiKey | None:
        if self.store is None:
            return None
        # Looked up by SHA-256: timing can tell at most a hash prefix, never the secret.
        digest = secret_hash(token)
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            key = await self.store.lookup(digest)
        except (RedisError, OSError) as exc:
            if cached is not None:
                return cached[1]
            logger.warning("key store unreachable, key not seen before is refused: %r", exc)
            return None
        self._cache[digest] = (now + self.cache_s, key)
        self._cache.move_to_end(digest)
        while len(self._cache) > MAX_CACHED_KEYS:
            self._cache.popitem(last=False)
        return key
