"""What a load run learns from the `bitgate` blocks: good answers, widths, why waits stopped."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


def is_good(block: dict[str, Any] | None, good_uids: frozenset[int] | None) -> bool:
    """Whether the reply came from a miner the sim pool says answers well."""
    if block is None or not good_uids:
        return False
    miner = block.get("miner")
    return isinstance(miner, dict) and miner.get("uid") in good_uids


@dataclass(slots=True)
class FanoutTally:
    """Miners asked, replies waited for, queue wait, and why waiting stopped, over a run."""

    answers: int = 0
    asked: int = 0
    waited: int = 0
    queue_ms: float = 0.0
    stops: Counter[str] = field(default_factory=Counter)
    widths: Counter[str] = field(default_factory=Counter)

    def add(self, block: dict[str, Any] | None) -> None:
        """Fold in one answered request's block."""
        if block is None:
            return
        width, wait = block.get("width"), block.get("wait")
        if not isinstance(width, dict) or not isinstance(wait, dict):
            return
        self.answers += 1
        self.asked += int(width.get("asked") or 0)
        self.widths[str(width.get("why"))] += 1
        self.waited += int(wait.get("replies") or 0)
        self.queue_ms += float(wait.get("queue_ms") or 0.0)
        self.stops[str(wait.get("stopped"))] += 1

    def summary(self) -> dict[str, Any] | None:
        """Means per answered request, and the counts of each reason (None: no blocks)."""
        if not self.answers:
            return None
        n = self.answers
        return {
            "mean_asked": round(self.asked / n, 3),
            "mean_waited": round(self.waited / n, 3),
            "mean_queue_ms": round(self.queue_ms / n, 3),
            "width_why": dict(self.widths.most_common()),
            "stopped": dict(self.stops.most_common()),
        }
