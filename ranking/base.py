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
    """A ranker's rewards, one per candidate in [0, 1], why any were penalised, and who ranked.

    `ranked_by` names the ranker that actually produced the rewards (empty: the one asked);
    `note` says why that is not the ranker asked, or what it ranked without.
    """

    rewards: list[float]
    reasons: list[list[str]] = field(default_factory=list)
    ranked_by: str = ""
    note: str = ""

    def label(self, asked: str) -> str:
        """The ranker that ranked, as clients read it: `heuristic (blend unavailable: ...)`."""
        name = self.ranked_by or asked
        return f"{name} ({self.note})" if self.note else name


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

    def __init__(
        self, ranker: str, reason: str, detail: str = "", cause: RankerUnavailable | None = None
    ) -> None:
        super().__init__(f"ranker {ranker} unavailable: {reason}{': ' + detail if detail else ''}")
        self.ranker = ranker
        self.reason = reason
        self.cause = cause

    @property
    def why(self) -> str:
        """A short phrase for clients (`model not installed`), never a raw error's text."""
        return self.cause.why if self.cause is not None else self.reason.replace("_", " ")


READY = "ready"
LOADING = "loading"
DISABLED = "disabled"


def ranker_state(ranker: object) -> str:
    """`ready`, `loading`, `disabled` or `failed: why`; `ready` for a ranker that cannot say."""
    state = getattr(ranker, "state", None)
    return str(state()) if callable(state) else READY
