"""What the run watches while it breaks things: alerts, each gateway's store, the master."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import redis.asyncio as aioredis

from load.chaos.render import MASTER_SET

POLL_S = 0.25


@dataclass
class Watcher:
    """Samples every `POLL_S`: alert states by name, each gateway's store state, the master."""

    prometheus: str
    gateways: list[str]
    sentinel_port: int
    t0: float
    alerts: list[tuple[float, dict[str, str]]] = field(default_factory=list)
    stores: list[tuple[float, list[str]]] = field(default_factory=list)
    masters: list[tuple[float, int | None]] = field(default_factory=list)

    async def run(self, stop: asyncio.Event) -> None:
        """Sample until `stop` is set."""
        timeout = aiohttp.ClientTimeout(total=1.0)
        sentinel = aioredis.Redis(port=self.sentinel_port, socket_timeout=1.0)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while not stop.is_set():
                now = time.monotonic() - self.t0
                alerts, stores, master = await asyncio.gather(
                    self._alerts(session),
                    asyncio.gather(*(self._store(session, g) for g in self.gateways)),
                    self._master(sentinel),
                )
                self.alerts.append((now, alerts))
                self.stores.append((now, list(stores)))
                self.masters.append((now, master))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), POLL_S)
        await sentinel.aclose()

    async def _alerts(self, session: aiohttp.ClientSession) -> dict[str, str]:
        try:
            async with session.get(self.prometheus + "/api/v1/alerts") as resp:
                data: dict[str, Any] = await resp.json()
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return {}
        out: dict[str, str] = {}
        for alert in data.get("data", {}).get("alerts", []):
            name, state = alert["labels"]["alertname"], alert["state"]
            if out.get(name) != "firing":
                out[name] = state
        return out

    async def _store(self, session: aiohttp.ClientSession, url: str) -> str:
        try:
            async with session.get(url + "/readyz") as resp:
                data: dict[str, Any] = await resp.json()
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return "unreachable"
        return str(data.get("store", {}).get("state", "?"))

    async def _master(self, sentinel: aioredis.Redis) -> int | None:
        try:
            addr = await sentinel.sentinel_get_master_addr_by_name(MASTER_SET)
        except Exception:  # a Sentinel that does not answer is just no reading
            return None
        return int(addr[1]) if isinstance(addr, tuple) else None

    def first(self, alert: str, state: str, after: float) -> float | None:
        """When `alert` was first seen in `state` after `after` (run seconds)."""
        for t, alerts in self.alerts:
            if t >= after and alerts.get(alert) == state:
                return t
        return None

    def cleared(self, alert: str, after: float) -> float | None:
        """When `alert` was first seen neither pending nor firing after `after`."""
        for t, alerts in self.alerts:
            if t >= after and alert not in alerts:
                return t
        return None

    def stores_ok(self, after: float) -> float | None:
        """When every gateway's store first read `ok` again after `after`."""
        for t, states in self.stores:
            if t >= after and all(s == "ok" for s in states):
                return t
        return None

    async def wait_for(self, check: Any, timeout_s: float) -> float | None:
        """Poll `check()` (a time or None) until it gives a time or `timeout_s` passes."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = check()
            if found is not None:
                return float(found)
            await asyncio.sleep(POLL_S)
        return None
