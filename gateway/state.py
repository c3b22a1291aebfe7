"""What the lifespan builds and the routes use: one `GatewayState` per app."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from gateway.config import Settings
from gateway.errors import GatewayError, RateLimited
from gateway.metrics import Metrics
from gateway.pipeline import Settler
from gateway.plan import Planner
from gateway.pools import Pool
from gateway.strategies import Strategies
from gateway.supervisor import Supervisor
from ranking.registry import rankers_report
from router.scores import Scoreboard
from router.store import StateStore


@dataclass(slots=True)
class Observation:
    """What the metrics say of one request."""

    pool: str = "unknown"
    strategy: str = "none"
    status: int = 200
    started: float = field(default_factory=time.perf_counter)


@dataclass(slots=True)
class GatewayState:
    """The gateway's long-lived parts, hung off `app.state.gateway`."""

    settings: Settings
    pools: dict[str, Pool]
    store: StateStore
    scoreboard: Scoreboard
    session: aiohttp.ClientSession
    planner: Planner
    settler: Settler
    strategies: Strategies
    metrics: Metrics
    supervisor: Supervisor = field(default_factory=Supervisor)
    started_at: int = field(default_factory=lambda: int(time.time()))

    inflight: int = 0

    @contextmanager
    def observe(self) -> Iterator[Observation]:
        """Count one API request by pool, strategy and status, time it, and hold a slot.

        The handler fills in the pool and strategy once it knows them; a request refused
        before that counts under pool `unknown`. Past `max_inflight` requests, 429.
        """
        seen = Observation()
        if self.inflight >= self.settings.max_inflight:
            seen.status = 429
            self._count(seen)
            raise RateLimited(
                f"The gateway is serving {self.inflight} requests, its limit; retry shortly.",
                headers={"Retry-After": "1"},
            )
        self.inflight += 1
        try:
            yield seen
        except GatewayError as exc:
            seen.status = exc.status
            raise
        except BaseException:
            seen.status = 500
            raise
        finally:
            self.inflight -= 1
            self._count(seen)

    def _count(self, seen: Observation) -> None:
        self.metrics.requests.labels(seen.pool, seen.strategy, str(seen.status)).inc()
        if seen.status == 200:
            elapsed = time.perf_counter() - seen.started
            self.metrics.request_latency.labels(seen.pool, seen.strategy).observe(elapsed)

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
        # Only the long-lived loops count: per-request settle tasks come and go.
        dead = self.supervisor.down()
        defaults = [c.ranker for c in self.settings.pool_configs()]
        rankers_ok, rankers = rankers_report(
            self.planner.rankers, defaults, self.settings.allow_degraded_ranker
        )
        return {
            "ready": all(p["neurons"] > 0 for p in pools.values()) and not dead and rankers_ok,
            "rankers": rankers,
            "store": {
                "kind": self.store.name,
                "healthy": self.scoreboard.store_healthy,
                "state": self.scoreboard.store_state,  # ok | slow | down
                "last_sync_s": round(self.scoreboard.last_round_s, 3),
            },
            "pools": pools,
            "dead_background_tasks": dead,
            "background_loops": self.supervisor.report(),
        }
