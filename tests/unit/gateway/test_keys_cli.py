"""`bitgate keys …` against a real Redis, as a user runs it."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from gateway.commands.cli import main
from gateway.door.keys import SECRET_PREFIX, KeyStore, secret_hash
from gateway.door.usage import UsageLedger
from gateway.runtime.metrics import Metrics


def keys(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["keys", *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(autouse=True)
def redis_env(clean_redis: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("BITGATE_REDIS_URL", clean_redis)
    return clean_redis


def test_create_prints_the_secret_last_and_list_never_shows_it(
    capsys: pytest.CaptureFixture[str], redis_env: str
) -> None:
    code, out, _ = keys(
        capsys, "create", "--name", "alice", "--rpm", "60", "--tpm", "5000",
        "--expires-in", "30", "--pools", "sim,other",
    )  # fmt: skip
    assert code == 0
    secret = out.strip().splitlines()[-1]
    assert secret.startswith(SECRET_PREFIX)
    assert "rpm 60" in out and "tpm 5000" in out and "sim, other" in out

    async def stored() -> object:
        client = aioredis.Redis.from_url(redis_env)
        try:
            return await KeyStore(client).lookup(secret_hash(secret))
        finally:
            await client.aclose()

    assert asyncio.run(stored()) is not None
    code, listing, _ = keys(capsys, "list")
    assert code == 0 and "alice" in listing and "active" in listing
    assert secret not in listing and secret_hash(secret) not in listing


def test_revoke_marks_the_key_and_unknown_names_fail_in_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    keys(capsys, "create", "--name", "bob")
    code, out, _ = keys(capsys, "revoke", "bob")
    assert code == 0 and "revoked" in out
    assert "revoked" in keys(capsys, "list")[1]
    code, _, err = keys(capsys, "revoke", "nobody")
    assert code == 1 and err.count("\n") == 1 and "nobody" in err
    code, _, err = keys(capsys, "create", "--name", "bob")
    assert code == 1 and "exists" in err


def test_usage_reports_requests_and_tokens_per_pool(
    capsys: pytest.CaptureFixture[str], redis_env: str
) -> None:
    async def record() -> None:
        client = aioredis.Redis.from_url(redis_env)
        ledger = UsageLedger(client, Metrics())
        ledger.record("alice", "sim", winner=30, fanout=250)
        ledger.record("alice", "sim", winner=10, fanout=90)
        await ledger.flush()
        await client.aclose()

    asyncio.run(record())
    code, out, _ = keys(capsys, "usage", "alice")
    assert code == 0
    row = next(line.split() for line in out.splitlines() if line.startswith("alice"))
    assert row == ["alice", "sim", "2", "40", "340"]
    assert '"fanout_tokens":340' in keys(capsys, "usage", "--json")[1]


def test_without_redis_the_command_says_which_variable_to_set(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BITGATE_REDIS_URL")
    code, _, err = keys(capsys, "list")
    assert code == 2 and "BITGATE_REDIS_URL" in err
