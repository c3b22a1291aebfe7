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
from gateway.errors import GatewayError, RateLimited
from gateway.runtime.metrics import Metrics
from gateway.runtime.pools import Pool
from gateway.runtime.supervisor import Supervisor
from gateway.serving.fanout_queue import FanoutQueue
from gateway.serving.plan import Planner
from gateway.serving.settle import Settler
from gateway.serving.strategies.registry import Strategies
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
    queue: FanoutQueue = field(default_factory=FanoutQueue)
    started_at: int = field(default_factory=lambda: int(time.time()))

    inflight: int = 0

    def busy(self) -> int:
        """Requests in flight plus finished races whose other miners are still answering."""
        return self.inflight + len(self.settler.settling)

    def admit(self) -> None:
        """Take an in-flight slot, or 429 when requests and background races fill them."""
        busy = self.busy()
        if busy >= self.settings.server.max_inflight:
            raise RateLimited(
                f"The gateway is serving {busy} requests, its limit; retry shortly.",
                headers={"Retry-After": "1"},
            )
        self.inflight += 1

    def release(self) -> None:
        """Give back the slot `admit` took."""
        self.inflight -= 1

    def count_refusal(self, status: int) -> None:
        """Count a request refused before a route saw it (429, 408, 413)."""
        self._count(Observation(status=status))

    @contextmanager
    def observe(self) -> Iterator[Observation]:
        """Count one API request by pool, strategy and status, and time it.

        The handler fills in the pool and strategy once it knows them; a request refused
        before that counts under pool `unknown`. Slots are taken by `gateway.door.inflight`.
        """
        seen = Observation()
        try:
            yield seen
        except GatewayError as exc:
            seen.status = exc.status
            raise
        except BaseException:
            seen.status = 500
            raise
        finally:
            self._count(seen)

    def _count(self, seen: Observation) -> None:
        self.metrics.requests.labels(seen.pool, seen.strategy, str(seen.status)).inc()
        if seen.status == 200:
            elapsed = time.perf_counter() - seen.started
            self.metrics.request_latency.labels(seen.pool, seen.strategy).observe(elapsed)

    def load(self) -> dict[str, int]:
        """What the gateway holds now: requests, background races, asyncio tasks."""
        return {
            "inflight": self.inflight,
            "settling": len(self.settler.settling),
            "max_inflight": self.settings.server.max_inflight,
            "asyncio_tasks": len(asyncio.all_tasks()),
        }

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
            self.planner.rankers, defaults, self.settings.ranking.allow_degraded_ranker
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
            "load": self.load(),
            "background_loops": self.supervisor.report(),
        }
