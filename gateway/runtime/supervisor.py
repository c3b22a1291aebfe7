"""The gateway's long-lived loops: each restarted with backoff when it dies, and reported."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Literal

logger = logging.getLogger(__name__)

LoopFactory = Callable[[], Coroutine[Any, Any, None]]
LoopState = Literal["running", "restarting"]
FIRST_BACKOFF_S = 1.0
MAX_BACKOFF_S = 60.0


@dataclass(slots=True)
class Loop:
    """One supervised loop: how to start it, and how it has fared."""

    name: str
    start: LoopFactory
    state: LoopState = "running"
    restarts: int = 0
    last_error: str | None = None
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    def report(self) -> dict[str, Any]:
        """The loop as /readyz shows it."""
        return {"state": self.state, "restarts": self.restarts, "last_error": self.last_error}


class Supervisor:
    """Owns the loops that live as long as the app; only `stop` ends them.

    A loop that raises, or returns, is logged and started again after a backoff that
    doubles up to `max_backoff_s` (and starts over once the loop has run that long).
    """

    def __init__(
        self,
        first_backoff_s: float = FIRST_BACKOFF_S,
        max_backoff_s: float = MAX_BACKOFF_S,
    ) -> None:
        self.first_backoff_s = first_backoff_s
        self.max_backoff_s = max_backoff_s
        self.loops: dict[str, Loop] = {}

    def start(self, name: str, start: LoopFactory) -> Loop:
        """Run `start()` under supervision from now until `stop`."""
        if name in self.loops:
            raise ValueError(f"a loop named {name!r} is already supervised")
        loop = self.loops[name] = Loop(name, start)
        loop.task = asyncio.get_running_loop().create_task(self._keep(loop), name=name)
        return loop

    async def _keep(self, loop: Loop) -> None:
        backoff = self.first_backoff_s
        while True:
            began = time.monotonic()
            loop.state = "running"
            try:
                await loop.start()
                error = "returned"
            except Exception as exc:
                error = repr(exc)
                logger.error("background loop %s died", loop.name, exc_info=exc)
            else:
                logger.error("background loop %s returned; restarting it", loop.name)
            if time.monotonic() - began >= self.max_backoff_s:
                backoff = self.first_backoff_s
            loop.state, loop.last_error = "restarting", error
            await asyncio.sleep(backoff)
            loop.restarts += 1
            backoff = min(backoff * 2, self.max_backoff_s)

    def down(self) -> list[str]:
        """The loops that are not running now (died, waiting to restart)."""
        return sorted(name for name, loop in self.loops.items() if loop.state != "running")

    def report(self) -> dict[str, dict[str, Any]]:
        """Every loop's state, restarts and last error."""
        return {name: loop.report() for name, loop in sorted(self.loops.items())}

    async def stop(self) -> None:
        """Cancel every loop and wait for it to unwind."""
        tasks = [loop.task for loop in self.loops.values() if loop.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
