"""The `Ranker` protocol every reward model implements."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


def message_text(content: object) -> str:
    """A chat message's text: a string, or the text parts of a content list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


@dataclass(frozen=True, slots=True)
class Prompt:
    """What the user asked: the conversation flattened to text, and the last user turn."""

    text: str
    last_user: str
    messages: tuple[dict[str, object], ...] = ()


@dataclass(frozen=True, slots=True)
class Candidate:
    """One miner's reply, as a ranker sees it."""

    uid: int
    text: str
    finish_reason: str | None = None
    latency_ms: float = 0.0


@dataclass(slots=True)
class Ranking:
    """A ranker's rewards, one per candidate in [0, 1], and why any were penalised."""

    rewards: list[float]
    reasons: list[list[str]] = field(default_factory=list)


@runtime_checkable
class Ranker(Protocol):
    """Scores candidate replies to one prompt; higher is better.

    A ranker may be slow (a model); it must then run its work off the event loop.
    """

    name: str

    async def score(self, prompt: Prompt, candidates: Sequence[Candidate]) -> Ranking:
        """Reward each candidate, in the order given."""
        ...


class RankerUnavailable(RuntimeError):
    """A ranker could not score this time (loading, timeout, 5xx, wrong shape); try the next."""

    def __init__(self, ranker: str, reason: str, detail: str = "") -> None:
        super().__init__(f"ranker {ranker} unavailable: {reason}{': ' + detail if detail else ''}")
        self.ranker = ranker
        self.reason = reason
