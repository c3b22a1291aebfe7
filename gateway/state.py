"""What the lifespan builds and the routes use: one `GatewayState` per app."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from gateway.config import Settings
from gateway.errors import GatewayError
from gateway.metrics import Metrics
from gateway.pipeline import Pipeline
from gateway.plan import Plan, Planner
from gateway.pools import Pool
from router.scores import Scoreboard
from router.store import StateStore


@dataclass(slots=True)
class GatewayState:
    """The gateway's long-lived parts, hung off `app.state.gateway`."""

    settings: Settings
    pools: dict[str, Pool]
    store: StateStore
    scoreboard: Scoreboard
    session: aiohttp.ClientSession
    planner: Planner
    pipeline: Pipeline
    metrics: Metrics
    background: set[asyncio.Task[Any]] = field(default_factory=set)
    started_at: int = field(default_factory=lambda: int(time.time()))

    @contextmanager
    def observe(self, plan: Plan, started: float) -> Iterator[None]:
        """Count the request by outcome and time it."""
        status = 200
        try:
            yield
        except GatewayError as exc:
            status = exc.status
            raise
        finally:
            pool, strategy = plan.pool.name, plan.strategy
            self.metrics.requests.labels(pool, strategy, str(status)).inc()
            self.metrics.request_latency.labels(pool, strategy).observe(
                time.perf_counter() - started
            )

    def readiness(self) -> dict[str, Any]:
        """Whether the gateway can serve, and what is degraded."""
        pools: dict[str, dict[str, Any]] = {
            name: {
                "neurons": len(pool.metagraph.neurons),
                "block": pool.metagraph.block,
                "metagraph_error": pool.source.last_error,
            }
            for name, pool in self.pools.items()
        }
        return {
            "ready": all(p["neurons"] > 0 for p in pools.values()),
            "store": {"kind": self.store.name, "healthy": self.scoreboard.store_healthy},
            "pools": pools,
        }
