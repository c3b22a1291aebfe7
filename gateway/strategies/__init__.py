"""Serving strategies, one module each, and the registry the route serves through.

| name      | what it does                                                              |
|-----------|---------------------------------------------------------------------------|
| `best_of` | waits for the candidates that can still win (`wait: all`: every one), ranks |
| `race`    | returns the first usable reply; a streaming client gets it live            |
| `cascade` | asks the best-known candidates first, widens only while not confident      |

A new strategy is one module with a class that takes `(client, settler)` and has
`async serve(plan) -> Served`, and one line in `STRATEGIES`.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

from gateway.pipeline import Settler
from gateway.plan import Plan
from gateway.strategies.base import LiveStream, Served, Strategy, StrategyFactory
from gateway.strategies.best_of import BestOf
from gateway.strategies.cascade import Cascade
from gateway.strategies.race import Race
from router.miner_client import MinerClient

__all__ = ["STRATEGIES", "LiveStream", "Served", "Strategies", "Strategy"]

STRATEGIES: dict[str, StrategyFactory] = {"best_of": BestOf, "race": Race, "cascade": Cascade}


class Strategies:
    """Every strategy, built once per app; `serve` hands a plan to the one it names."""

    def __init__(self, client: MinerClient, settler: Settler) -> None:
        self.by_name: dict[str, Strategy] = {
            name: factory(client, settler) for name, factory in STRATEGIES.items()
        }

    def serve(self, plan: Plan) -> Coroutine[Any, Any, Served]:
        """Serve `plan` with its strategy (a coroutine, so the route can cancel it)."""
        return self.by_name[plan.strategy].serve(plan)
