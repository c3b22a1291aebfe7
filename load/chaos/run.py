"""`make chaos`: break the production topology under load and measure what users lose.

Phase 1 SIGKILLs the Redis master (Sentinel promotes the replica, HAProxy follows); phase 2
SIGKILLs one gateway (nginx sends to the other) and restarts it. Each fault's alert must fire
in Prometheus and resolve. Prints one JSON line; writes it, details and a plot to --out.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import signal
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import aiohttp
import redis.asyncio as aioredis

from gateway.door.keys import KeyStore, secret_hash
from gateway.door.usage import read_usage
from load.chaos import measure
from load.chaos.topology import Topology, TopologyError
from load.chaos.traffic import KeyLoad, Sent, drive
from load.chaos.watch import Watcher

SCALE = 0.05  # Prometheus's intervals and `for:` windows run 20x faster
LIMITED_RPM = 12
WARM_S = 15.0  # long enough for the limited keys to spend their burst
AFTER_S = 6.0
ALERT_SLACK_S = 5.0  # scrape, evaluation and the gateway's own detection
WAIT_S = 45.0
REDIS_ALERT, GATEWAY_ALERT = "BitgateStateStoreDown", "BitgateGatewayDown"
STATIC_KEY = "sk-chaos-static"


async def _keys(topo: Topology) -> list[KeyLoad]:
    """Keys made with the key store, as `bitgate keys create` makes them; replicated first."""
    redis = aioredis.Redis(port=topo.p.haproxy, socket_timeout=2.0)
    store = KeyStore(redis)
    loads = []
    for name, rpm, rate in [("steady", 6000, 4.0)] + [
        (f"limited-{i}", LIMITED_RPM, 1.0) for i in range(3)
    ]:
        _, secret = await store.create(name, rpm=rpm)
        loads.append(KeyLoad(name, secret, rate))
    replicas = await redis.execute_command("WAIT", 1, 5000)  # type: ignore[no-untyped-call]
    await redis.aclose()
    if replicas < 1:
        raise RuntimeError("the keys did not reach the replica")
    return loads


async def _valid_keys(topo: Topology, keys: list[KeyLoad]) -> float:
    """The share of keys the store still has and nginx still lets in."""
    redis = aioredis.Redis(port=topo.p.haproxy, socket_timeout=2.0)
    store, valid = KeyStore(redis), 0
    url = f"http://127.0.0.1:{topo.p.nginx}/v1/models"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        for key in keys:
            stored = await store.lookup(secret_hash(key.secret))
            headers = {"Authorization": f"Bearer {key.secret}"}
            async with session.get(url, headers=headers) as resp:
                valid += stored is not None and resp.status == 200
    await redis.aclose()
    return valid / len(keys)


async def _usage(topo: Topology, keys: list[KeyLoad]) -> dict[str, int]:
    redis = aioredis.Redis(port=topo.p.haproxy, socket_timeout=2.0)
    out = {}
    for key in keys:
        pools = (await read_usage(redis, key.name)).get(key.name, {})
        out[key.name] = sum(p.get("requests", 0) for p in pools.values())
    await redis.aclose()
    return out


async def _phase(
    topo: Topology, watcher: Watcher, keys: list[KeyLoad], fault: Any
) -> tuple[list[Sent], dict[str, Any]]:
    """Traffic through nginx while `fault()` runs; the requests and what the fault recorded."""
    stop = asyncio.Event()
    url = f"http://127.0.0.1:{topo.p.nginx}"
    load = asyncio.create_task(drive(url, topo.model, keys, stop, watcher.t0))
    try:
        await asyncio.sleep(WARM_S)
        facts: dict[str, Any] = await fault()
        await asyncio.sleep(AFTER_S)
    finally:
        stop.set()
    return await load, facts


async def _redis_fault(topo: Topology, watcher: Watcher) -> dict[str, Any]:
    t = time.monotonic() - watcher.t0
    topo.kill("redis-0")
    window = topo.windows[REDIS_ALERT]
    firing = await watcher.wait_for(lambda: watcher.first(REDIS_ALERT, "firing", t), WAIT_S)
    ok = await watcher.wait_for(lambda: watcher.stores_ok(firing or t), WAIT_S)
    cleared = None
    if firing is not None:
        cleared = await watcher.wait_for(lambda: watcher.cleared(REDIS_ALERT, firing), WAIT_S)
    promoted = next((s for s, m in watcher.masters if s >= t and m == topo.p.redis[1]), None)
    topo.restart_redis(0, topo.p.redis[1])
    return {"at": t, "alert": REDIS_ALERT, "for_s": window, "firing": firing,
            "resolved": cleared, "recovered": ok, "promoted": promoted,
            "old_master_rejoined": await _rejoined(topo)}  # fmt: skip


async def _rejoined(topo: Topology) -> bool:
    """The restarted old master is a synced replica, and HAProxy still sends to the new one."""
    old = aioredis.Redis(port=topo.p.redis[0], socket_timeout=1.0)
    proxy = aioredis.Redis(port=topo.p.haproxy, socket_timeout=1.0)
    try:
        for _ in range(40):
            info = await old.info("replication")
            if info.get("role") == "slave" and info.get("master_link_status") == "up":
                via = await proxy.info("server")
                return bool(via.get("tcp_port") == topo.p.redis[1])
            await asyncio.sleep(0.25)
        return False
    finally:
        await old.aclose()
        await proxy.aclose()


async def _gateway_fault(topo: Topology, watcher: Watcher) -> dict[str, Any]:
    t = time.monotonic() - watcher.t0
    topo.kill("gateway-1")
    window = topo.windows[GATEWAY_ALERT]
    firing = await watcher.wait_for(lambda: watcher.first(GATEWAY_ALERT, "firing", t), WAIT_S)
    topo.start_gateway(1)
    await asyncio.to_thread(topo.wait_gateway, 1)
    restarted = time.monotonic() - watcher.t0
    cleared = None
    if firing is not None:
        cleared = await watcher.wait_for(lambda: watcher.cleared(GATEWAY_ALERT, firing), WAIT_S)
    return {"at": t, "alert": GATEWAY_ALERT, "for_s": window, "firing": firing,
            "resolved": cleared, "restarted": restarted}  # fmt: skip


async def scenario(topo: Topology, out: Path) -> dict[str, Any]:
    """Both phases; the report and its details."""
    keys = await _keys(topo)
    t0 = time.monotonic()
    watcher = Watcher(
        f"http://127.0.0.1:{topo.p.prometheus}",
        [topo.gateway_url(i) for i in range(topo.gateways)],
        topo.p.sentinels[1],
        t0,
    )
    stop_watch = asyncio.Event()
    watching = asyncio.create_task(watcher.run(stop_watch))
    try:
        sent_1, redis_facts = await _phase(topo, watcher, keys, lambda: _redis_fault(topo, watcher))
        await asyncio.sleep(2.0)  # the gateways flush usage every 0.5 s
        recorded = await _usage(topo, keys)
        valid = await _valid_keys(topo, keys)
        sent_2, gw_facts = await _phase(topo, watcher, keys, lambda: _gateway_fault(topo, watcher))
    finally:
        stop_watch.set()
        await watching
    limited = {k.name: LIMITED_RPM for k in keys if k.name.startswith("limited")}
    report = {
        "redis_failover": {
            **measure.answers(sent_1, redis_facts["at"], exclude_in_flight=False),
            "keys_valid_after": valid,
            "limit_overshoot": measure.overshoot(sent_1 + sent_2, limited),
            "fallback_share": topo.fallback_share,
            "usage_lost": measure.usage_lost(sent_1, recorded),
            "recovery_s": measure.since(redis_facts["recovered"], redis_facts["at"]),
        },
        "gateway_killed": {
            **measure.answers(sent_2, gw_facts["at"], exclude_in_flight=True),
            "recovery_s": measure.gateway_recovery(sent_2, gw_facts["at"]),
        },
        "alerts_fired": [
            f["alert"] for f in (redis_facts, gw_facts) if measure.fired_in_time(f, ALERT_SLACK_S)
        ],
    }
    details = {
        "faults": [redis_facts, gw_facts],
        "alert_slack_s": ALERT_SLACK_S,
        "scale": SCALE,
        "requests": len(sent_1) + len(sent_2),
        "statuses": measure.statuses(sent_1 + sent_2),
        "in_flight_at_gateway_kill": sum(measure.in_flight(s, gw_facts["at"]) for s in sent_2),
    }
    measure.plot(out / "timeline.png", sent_1 + sent_2, watcher, [redis_facts, gw_facts])
    (out / "requests.json").write_text(json.dumps([asdict(s) for s in sent_1 + sent_2]))
    return {"report": report, "details": details}


def check(report: dict[str, Any], details: dict[str, Any]) -> list[str]:
    """The targets (docs/reliability.md) that the run missed."""
    r, g = report["redis_failover"], report["gateway_killed"]
    misses = []
    if not details["statuses"].get("429"):
        misses.append("no key was ever refused: the limits (or the gateways) were not in force")
    if not details["faults"][0].get("old_master_rejoined"):
        misses.append("the restarted old master did not rejoin as a replica behind HAProxy")
    for name, phase in (("redis_failover", r), ("gateway_killed", g)):
        if phase["answered_share"] < 0.99:
            misses.append(f"{name}: answered {phase['answered_share']:.2%} < 99%")
    if r["keys_valid_after"] < 1.0:
        misses.append(f"keys valid after the failover: {r['keys_valid_after']:.0%}")
    if r["limit_overshoot"] > r["fallback_share"]:
        misses.append(f"limit overshoot {r['limit_overshoot']} > {r['fallback_share']}")
    for alert in (REDIS_ALERT, GATEWAY_ALERT):
        if alert not in report["alerts_fired"]:
            misses.append(f"{alert} did not fire within its window and resolve")
    return misses


def main(argv: list[str] | None = None) -> int:
    """Run it; exit 1 when --check and a target is missed."""
    parser = argparse.ArgumentParser(prog="python -m load.chaos", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("out/chaos"))
    parser.add_argument("--report", type=Path, help="also copy report, details and plot here")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    out: Path = args.out.resolve()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    for attempt in (1, 2):  # a port taken between picking and binding: once more, new ports
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        topo = Topology(out, SCALE, gateway_env={"BITGATE_API_KEYS": STATIC_KEY})
        try:
            topo.start()
        except TopologyError as exc:
            topo.stop()
            if attempt == 2:
                raise
            print(f"chaos: the topology did not start ({exc}); again", file=sys.stderr)
            continue
        try:
            result = asyncio.run(asyncio.wait_for(scenario(topo, out), 240))
        finally:
            topo.stop()
        break
    report = result["report"]
    misses = check(report, result["details"])
    result["details"]["misses"] = misses
    (out / "report.json").write_text(json.dumps(report) + "\n")
    (out / "details.json").write_text(json.dumps(result["details"], indent=2) + "\n")
    if args.report is not None:
        args.report.mkdir(parents=True, exist_ok=True)
        for name in ("report.json", "details.json", "timeline.png"):
            shutil.copy(out / name, args.report / name)
    for miss in misses:
        print(f"chaos: target missed: {miss}", file=sys.stderr)
    print(json.dumps(report))
    return 1 if (args.check and misses) else 0
