"""Keys in a real Redis and who the key ring lets in; when a gateway may serve openly."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from pydantic import SecretStr

from gateway.config import ConfigError, Settings
from gateway.door.auth import AuthFailure, KeyRing, bearer_token, check_exposure, is_loopback
from gateway.door.keys import SECRET_PREFIX, KeyStore, KeyStoreError, secret_hash
from tests.support import free_port


@pytest.fixture
async def store(clean_redis: str) -> AsyncIterator[KeyStore]:
    client = aioredis.Redis.from_url(clean_redis)
    yield KeyStore(client)
    await client.aclose()


async def reason(ring: KeyRing, header: str | None) -> str:
    with pytest.raises(AuthFailure) as refused:
        await ring.identify(header)
    assert refused.value.status == 401
    return refused.value.reason


async def test_a_created_key_is_stored_only_as_its_hash(store: KeyStore) -> None:
    key, secret = await store.create("alice", rpm=60, tpm=1000, pools=["sim"])
    assert secret.startswith(SECRET_PREFIX) and len(secret) > 40
    dump = await store.redis.hgetall("bitgate:keys")
    stored = b"".join(k + v for k, v in dump.items())
    assert secret.encode() not in stored
    assert secret_hash(secret).encode() in dump
    assert (await store.lookup(secret_hash(secret))) == key
    with pytest.raises(KeyStoreError, match="exists already"):
        await store.create("alice")
    with pytest.raises(KeyStoreError, match="bad key name"):
        await store.create("no spaces")


async def test_the_ring_names_the_caller_and_each_refusal(store: KeyStore) -> None:
    _, good = await store.create("alice", rpm=5, concurrency=2, pools=["sim"])
    _, old = await store.create("old", expires_in_days=1)
    _, gone = await store.create("gone")
    await store.revoke("gone")
    expired = await store.lookup(secret_hash(old))
    assert expired is not None
    expired.expires = time.time() - 1
    await store.redis.hset("bitgate:keys", secret_hash(old), expired.model_dump_json())
    ring = KeyRing([SecretStr("static-secret")], store, cache_s=2.0, required=True)

    who = await ring.identify(f"Bearer {good}")
    assert (who.name, who.rpm, who.concurrency, who.pools) == ("alice", 5, 2, ("sim",))
    assert (await ring.identify("Bearer static-secret")).name == "static-1"
    assert await reason(ring, None) == "missing"
    assert await reason(ring, "Basic abc") == "missing"
    assert await reason(ring, "Bearer bg-not-a-key") == "unknown"
    assert await reason(ring, f"Bearer {gone}") == "revoked"
    assert await reason(ring, f"Bearer {old}") == "expired"


async def test_a_revocation_reaches_a_caching_ring_once_its_cache_expires(
    store: KeyStore,
) -> None:
    _, secret = await store.create("alice")
    ring = KeyRing([], store, cache_s=0.2, required=True)
    assert (await ring.identify(f"Bearer {secret}")).name == "alice"
    await store.revoke("alice")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            await ring.identify(f"Bearer {secret}")
        except AuthFailure as exc:
            assert exc.reason == "revoked"
            return
        await asyncio.sleep(0.05)
    pytest.fail("the revoked key was still accepted after 5 s")


async def test_keys_seen_before_still_work_while_redis_is_down(store: KeyStore) -> None:
    _, secret = await store.create("alice")
    ring = KeyRing([], store, cache_s=0.01, required=True)
    await ring.identify(f"Bearer {secret}")
    ring.store = KeyStore(
        aioredis.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.2)
    )
    await asyncio.sleep(0.02)
    assert (await ring.identify(f"Bearer {secret}")).name == "alice"
    assert await reason(ring, "Bearer bg-never-seen") == "unknown"
    await ring.store.redis.aclose()


async def test_with_auth_off_everyone_is_anonymous() -> None:
    ring = KeyRing([], None, cache_s=1.0, required=False)
    assert (await ring.identify(None)).name == "anonymous"


def test_bearer_tokens_are_bounded_and_any_bytes_are_safe() -> None:
    assert bearer_token("Bearer  abc ") == b"abc"
    assert bearer_token("bearer x" + "y" * 600) is None
    assert bearer_token("Bearer s\udce9krit") is not None


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("::1", True), ("localhost", True), ("0.0.0.0", False), ("::", False)],
)
def test_loopback_binds(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_an_open_api_on_a_public_bind_is_refused_in_one_line() -> None:
    public = Settings(metagraph="m.json", host="0.0.0.0")
    with pytest.raises(ConfigError) as refused:
        check_exposure(public)
    assert "BITGATE_AUTH" in str(refused.value) and "\n" not in str(refused.value)
    check_exposure(Settings(metagraph="m.json", host="0.0.0.0", auth="none"))
    check_exposure(Settings(metagraph="m.json", host="0.0.0.0", api_keys=["k"]))
    check_exposure(Settings(metagraph="m.json"))
    with pytest.raises(ConfigError, match="no key can exist"):
        check_exposure(Settings(metagraph="m.json", auth="required"))
