"""The registry of strategies: every one built once per app, served by name."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

from gateway.serving.plan import Plan
from gateway.serving.strategies.base import LiveStream, Served, Stages, Strategy, StrategyFactory
from gateway.serving.strategies.best_of import BestOf
from gateway.serving.strategies.cascade import Cascade
from gateway.serving.strategies.race import Race
from router.miner_client import MinerCalls

__all__ = ["STRATEGIES", "LiveStream", "Served", "Stages", "Strategies", "Strategy"]

STRATEGIES: dict[str, StrategyFactory] = {"best_of": BestOf, "race": Race, "cascade": Cascade}


class Strategies:
    """Every strategy, built once per app; `serve` hands a plan to the one it names."""

    def __init__(self, client: MinerCalls, stages: Stages) -> None:
        self.by_name: dict[str, Strategy] = {
            name: factory(client, stages) for name, factory in STRATEGIES.items()
        }

    def serve(self, plan: Plan) -> Coroutine[Any, Any, Served]:
        """Serve `plan` with its strategy (a coroutine, so the route can cancel it)."""
        return self.by_name[plan.strategy].serve(plan)
