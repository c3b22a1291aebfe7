"""`bitgate keys create|list|revoke|usage`: API keys and their usage, in Redis."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from datetime import UTC, datetime

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from gateway.door.keys import ApiKey, KeyStore, KeyStoreError, dumps
from gateway.door.usage import FIELDS, read_usage


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def _days(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be more than 0")
    return value


def register(keys: argparse.ArgumentParser) -> None:
    """`bitgate keys` and its subcommands `create`, `list`, `revoke` and `usage`."""
    keys.add_argument("--redis-url", help="default: BITGATE_REDIS_URL")
    keys.set_defaults(run=run)
    sub = keys.add_subparsers(dest="keys_command", required=True, metavar="COMMAND")
    create = sub.add_parser("create", help="a new key; its secret is the last line printed")
    create.add_argument("--name", required=True)
    create.add_argument("--rpm", type=_positive, help="requests per minute")
    create.add_argument("--tpm", type=_positive, help="tokens per minute (the returned reply's)")
    create.add_argument("--concurrency", type=_positive, help="requests in flight at once")
    create.add_argument("--expires-in", type=_days, metavar="DAYS")
    create.add_argument("--pools", help="comma-separated pools (model ids) it may use")
    listing = sub.add_parser("list", help="every key: limits, created, expiry, last used")
    listing.add_argument("--json", action="store_true")
    revoke = sub.add_parser("revoke", help="refuse a key from now on (every replica)")
    revoke.add_argument("name")
    usage = sub.add_parser("usage", help="requests and tokens per key and pool")
    usage.add_argument("name", nargs="?")
    usage.add_argument("--json", action="store_true")


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%MZ")


def _state(key: ApiKey, now: float) -> str:
    return key.refusal(now) or "active"


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows
    )


async def _create(store: KeyStore, args: argparse.Namespace) -> None:
    pools = [p.strip() for p in args.pools.split(",") if p.strip()] if args.pools else None
    key, secret = await store.create(
        args.name,
        rpm=args.rpm,
        tpm=args.tpm,
        concurrency=args.concurrency,
        expires_in_days=args.expires_in,
        pools=pools,
    )
    limits = ", ".join(
        f"{label} {value}"
        for label, value in (("rpm", key.rpm), ("tpm", key.tpm), ("concurrency", key.concurrency))
        if value is not None
    )
    print(f"created key {key.name!r}: {limits or 'no limits'}")
    print(f"pools: {', '.join(key.pools) if key.pools else 'all'}; expires: {_when(key.expires)}")
    print("the secret follows; it is shown only now:")
    print(secret)


async def _list(store: KeyStore, args: argparse.Namespace) -> None:
    keys, used = await store.all(), await store.last_used()
    now = datetime.now(UTC).timestamp()
    if args.json:
        rows = [
            {**k.model_dump(), "last_used": used.get(k.name), "state": _state(k, now)} for k in keys
        ]
        print(dumps(rows))
        return
    header = ["name", "rpm", "tpm", "conc", "pools", "created", "expires", "last used", "state"]
    table = [header] + [
        [
            k.name,
            str(k.rpm or "-"),
            str(k.tpm or "-"),
            str(k.concurrency or "-"),
            ",".join(k.pools) if k.pools else "all",
            _when(k.created),
            _when(k.expires),
            _when(used.get(k.name)),
            _state(k, now),
        ]
        for k in keys
    ]
    print(_table(table) if keys else "no keys")


async def _usage(redis: aioredis.Redis, args: argparse.Namespace) -> None:
    usage = await read_usage(redis, args.name)
    if args.json:
        print(dumps(usage))
        return
    table = [["key", "pool", *FIELDS]]
    for name, pools in usage.items():
        for pool, counts in sorted(pools.items()):
            table.append([name, pool, *(str(counts[f]) for f in FIELDS)])
    print(_table(table) if len(table) > 1 else "no usage recorded")


async def _run(url: str, args: argparse.Namespace) -> None:
    redis = aioredis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
    try:
        store = KeyStore(redis)
        if args.keys_command == "create":
            await _create(store, args)
        elif args.keys_command == "list":
            await _list(store, args)
        elif args.keys_command == "revoke":
            key = await store.revoke(args.name)
            print(f"revoked key {key.name!r}; every gateway refuses it within seconds")
        else:
            await _usage(redis, args)
    finally:
        await redis.aclose()


def run(args: argparse.Namespace) -> int:
    """Run a parsed `bitgate keys …` command."""
    url = args.redis_url or os.environ.get("BITGATE_REDIS_URL")
    if not url:
        print("bitgate keys: set BITGATE_REDIS_URL (keys live in Redis)", file=sys.stderr)
        return 2
    try:
        asyncio.run(_run(url, args))
    except KeyStoreError as exc:
        print(f"bitgate keys: {exc}", file=sys.stderr)
        return 1
    except (RedisError, OSError) as exc:
        print(f"bitgate keys: Redis at {url} is unreachable: {exc}", file=sys.stderr)
        return 1
    return 0
