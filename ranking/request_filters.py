"""Request-aware filters: a reply must take the form the request asked for.

`RequestAwareRanker` wraps every ranker the registry builds, so they hold whichever ranker
(or fallback) scores a request; a race also runs them alone on each reply before returning it.

| reason    | fires when                                                                 | factor  |
|-----------|----------------------------------------------------------------------------|---------|
| schema    | `response_format` json_object: the content is not a JSON object;           | 0 / 0.3 |
|           | json_schema: it does not validate against the schema (`strict`: no extra   |         |
|           | text around the JSON, objects closed, every property required)             |         |
| tool_call | a call names a function not offered, or its arguments do not parse as an   | 0 / 0.3 |
|           | object or do not validate against the function's `parameters`;             |         |
|           | `tool_choice` required or named and the reply is prose (or calls another); |         |
|           | `tool_choice` none and the reply calls a tool                              |         |
| outvoted  | `tool_choice` auto: prose while most miners called a tool, or the reverse  | 0.5     |

`schema` and `tool_call` zero a reply when any other candidate passes the same check; when
none does, they only shrink it (0.3), so the least bad reply still wins on its merits. When
some reply fails them, every reply that passes keeps at least `PASSING_FLOOR`, so it outranks
the failures even if the ranker gave it nothing.
A reply that makes tool calls is not held to `response_format`: that is for the final answer.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from ranking.base import Candidate, Prompt, Ranker, Ranking, ToolCall, ranker_state
from ranking.constraints import Constraints
from ranking.schema import Budget

REQUEST_FACTORS = {"schema": 0.0, "tool_call": 0.0, "outvoted": 0.5}
NONE_PASSED_FACTOR = 0.3
PASSING_FLOOR = 1e-3
# A request's schema checks share this much work, split evenly among its candidates.
REQUEST_STEPS = 100_000
REQUEST_SECONDS = 0.05
_FENCED = re.compile(r"^```(?:json)?\s*\n(.*)\n```$", re.DOTALL | re.IGNORECASE)
_MISSING = object()


@dataclass(frozen=True, slots=True)
class Verdict:
    """One reply against the request: each check passed (True), failed, or did not apply."""

    schema: bool | None
    tool_call: bool | None
    calls: bool


def parse_json(text: str, strict: bool) -> Any:
    """The reply's JSON value, or `_MISSING`; outside strict mode a ```json fence is allowed."""
    body = text.strip()
    if not strict:
        fenced = _FENCED.match(body)
        if fenced:
            body = fenced.group(1).strip()
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return _MISSING


def conforms(constraints: Constraints, text: str, budget: Budget) -> bool:
    """Whether the content is what `response_format` asked for."""
    value = parse_json(text, constraints.strict)
    if value is _MISSING:
        return False
    if constraints.json == "json_object":
        return isinstance(value, dict)
    return constraints.schema is None or constraints.schema.conforms(value, budget)


def call_is_valid(constraints: Constraints, call: ToolCall, budget: Budget) -> bool:
    """The call names an offered function, and its arguments parse and validate."""
    tool = constraints.tools.get(call.name)
    if tool is None:
        return False
    arguments = parse_json(call.arguments, strict=True)
    if not isinstance(arguments, dict):
        return False
    return tool.parameters is None or tool.parameters.conforms(arguments, budget)


def tools_pass(constraints: Constraints, calls: Sequence[ToolCall], budget: Budget) -> bool:
    """The reply's calls (or their absence) are what `tools` and `tool_choice` allow."""
    choice = constraints.tool_choice
    if not calls:
        return choice in ("auto", "none")
    if choice == "none":
        return False
    if choice == "named" and any(c.name != constraints.named_tool for c in calls):
        return False
    return all(call_is_valid(constraints, call, budget) for call in calls)


def verdict(constraints: Constraints, candidate: Candidate, budget: Budget) -> Verdict:
    """How one reply fares against the request's constraints."""
    calls = bool(candidate.tool_calls)
    schema = None
    if constraints.wants_json and not calls:
        schema = conforms(constraints, candidate.said, budget)
    tool_call = None
    if constraints.tools or calls:
        tool_call = tools_pass(constraints, candidate.tool_calls, budget)
    return Verdict(schema, tool_call, calls)


def _budget(n: int) -> Budget:
    share = max(n, 1)
    return Budget(steps=REQUEST_STEPS // share, seconds=REQUEST_SECONDS / share)


def verdicts(constraints: Constraints, candidates: Sequence[Candidate]) -> list[Verdict]:
    """Every reply's verdict; the request's budget is split evenly among them."""
    return [verdict(constraints, c, _budget(len(candidates))) for c in candidates]


def blocking_reasons(constraints: Constraints | None, candidate: Candidate) -> list[str]:
    """The request-aware checks one reply fails on its own (what a race needs to know)."""
    if constraints is None:
        return []
    judged = verdict(constraints, candidate, _budget(1))
    return [name for name in ("schema", "tool_call") if getattr(judged, name) is False]


def _outvoted(
    constraints: Constraints, candidates: Sequence[Candidate], judged: Sequence[Verdict]
) -> list[bool]:
    """Under tool_choice auto: the replies whose form (call or prose) most miners did not take."""
    if constraints.tool_choice != "auto" or not constraints.tools:
        return [False] * len(judged)
    spoke = [bool(v.calls or c.said.strip()) for c, v in zip(candidates, judged, strict=True)]
    calls = sum(1 for v, s in zip(judged, spoke, strict=True) if s and v.calls)
    prose = sum(spoke) - calls
    if calls == prose:
        return [False] * len(judged)
    majority = calls > prose
    return [s and v.calls != majority for v, s in zip(judged, spoke, strict=True)]


def request_reasons(
    constraints: Constraints | None, candidates: Sequence[Candidate]
) -> tuple[list[list[str]], dict[str, float]]:
    """The request-aware reasons per candidate, and each reason's factor for this request."""
    factors = dict(REQUEST_FACTORS)
    reasons: list[list[str]] = [[] for _ in candidates]
    if constraints is None or not candidates:
        return reasons, factors
    judged = verdicts(constraints, candidates)
    for name in ("schema", "tool_call"):
        results = [getattr(v, name) for v in judged]
        if not any(r is True for r in results):
            factors[name] = NONE_PASSED_FACTOR
        for i, passed in enumerate(results):
            if passed is False:
                reasons[i].append(name)
    for i, outvoted in enumerate(_outvoted(constraints, candidates, judged)):
        if outvoted and "tool_call" not in reasons[i]:
            reasons[i].append("outvoted")
    return reasons, factors


class RequestAwareRanker:
    """A ranker's rewards times the request-aware masks; its reasons after theirs."""

    def __init__(self, ranker: Ranker) -> None:
        self.ranker = ranker
        self.name = ranker.name

    def state(self) -> str:
        """The wrapped ranker's state: the filters themselves are always ready."""
        return ranker_state(self.ranker)

    async def score(self, prompt: Prompt, candidates: Sequence[Candidate]) -> Ranking:
        """The inner ranking, masked when the request asks for JSON or offers tools."""
        base = await self.ranker.score(prompt, candidates)
        constraints = prompt.constraints
        if constraints is None or not (constraints.wants_json or constraints.tools):
            return base
        asked, factors = request_reasons(constraints, candidates)
        inner = base.reasons or [[] for _ in candidates]
        failing = [any(r in ("schema", "tool_call") for r in why) for why in asked]
        rewards = []
        for reward, why, failed in zip(base.rewards, asked, failing, strict=True):
            for reason in why:
                reward *= factors[reason]
            if any(failing) and not failed:
                reward = max(reward, PASSING_FLOOR)
            rewards.append(reward)
        reasons = [list(dict.fromkeys([*a, *b])) for a, b in zip(asked, inner, strict=True)]
        return dataclasses.replace(base, rewards=rewards, reasons=reasons)
