"""The `Ranker` protocol every reward model implements."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from ranking.constraints import Constraints

# Filters and rankers read at most this much of a prompt: its head and its tail, where the
# question usually is. Beyond it a big prompt would cost every candidate's checks.
MAX_PROMPT_CHARS = 16384


def message_text(content: object) -> str:
    """A chat message's text: a string, or the text parts of a content list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def bounded(text: str, limit: int = MAX_PROMPT_CHARS) -> str:
    """The text if short enough, else its head and tail, `limit` characters in all."""
    if len(text) <= limit:
        return text
    half = limit // 2
    return text[:half] + "\n" + text[-half:]


@dataclass(frozen=True, slots=True)
class Prompt:
    """What the user asked: the conversation flattened to text, and the last user turn.

    `constraints` is what the request asked of a reply's form (JSON, a schema, tool calls,
    its own stop and max_tokens); None when it asked for nothing but text.
    """

    text: str
    last_user: str
    messages: tuple[dict[str, object], ...] = ()
    constraints: Constraints | None = None


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One function call a reply makes: the function's name and its arguments as sent."""

    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class Candidate:
    """One miner's reply, as a ranker sees it.

    `text` is what rankers compare: the reply's content, followed by its tool calls written
    as `name(arg=value, ...)` when it makes any (see `ranking.constraints.call_text`).
    """

    uid: int
    text: str
    finish_reason: str | None = None
    latency_ms: float = 0.0
    tool_calls: tuple[ToolCall, ...] = ()
    content: str | None = None
    completion_tokens: int | None = None

    @property
    def said(self) -> str:
        """The reply's content alone (its text when no separate content was given)."""
        return self.text if self.content is None else self.content


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
