"""Validator filters: multiplicative masks that zero or shrink degenerate replies, with reasons.

Each filter looks at one reply (and the prompt) and, when it fires, multiplies the reply's
reward by its factor and names itself. A blend multiplies its weighted reward by the product
of the masks, so a filtered reply loses whatever the reward models thought of it.

| reason       | fires when                                                          | factor |
|--------------|---------------------------------------------------------------------|--------|
| empty        | no word characters at all                                           | 0      |
| too_short    | fewer than `min_words` words                                        | 0.5    |
| echo         | most of the reply's word pairs are copied from the last user turn   | 0.1    |
| repetitive   | many repeated word trigrams, or a sentence or paragraph said twice  | 0.3    |
| refusal      | refusal boilerplate ("I'm sorry, but I can't…", "As an AI…")        | 0.1    |
| blocked      | a configured blocklist pattern matches                              | 0      |
| truncated    | finish_reason "length", or it stops mid-sentence (not when the      | 0.4    |
|              | request's own `max_tokens` or `stop` cut it)                        |        |

When the request asks for JSON, `too_short`, `repetitive` and `truncated` do not run (the
schema check judges the form). A reply that only calls tools is not judged by them at all.
The request-aware filters (`schema`, `tool_call`, `outvoted`) wrap every ranker instead
(ranking.request_filters.RequestAwareRanker), so they hold whichever ranker a request uses.

The prompt's words and word pairs are computed once per request, from at most
`MAX_PROMPT_CHARS` of it (`ranking.base.bounded`): a megabyte prompt costs no more per
candidate than a short one.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from ranking.base import Candidate, Prompt, bounded
from ranking.constraints import Constraints
from ranking.request_filters import blocking_reasons

FACTORS = {
    "empty": 0.0,
    "too_short": 0.5,
    "echo": 0.1,
    "repetitive": 0.3,
    "refusal": 0.1,
    "blocked": 0.0,
    "truncated": 0.4,
}
# What a race checks before returning a reply at once: cheap, and each needs no other reply.
CHEAP = ("empty", "echo", "refusal")
# Filters that judge prose and mislead on JSON (short values, repeated keys, a closing brace).
PROSE_ONLY = frozenset({"too_short", "repetitive", "truncated"})
ECHO_COPY_FRACTION = 0.6
REPEAT_TRIGRAM_FRACTION = 0.3
REPEAT_MIN_TRIGRAMS = 8
REPEAT_SENTENCE_WORDS = 6
TRUNCATION_MIN_WORDS = 8
# A last line shorter than this (a sign-off, a name, a heading) is not a cut-off sentence.
TRUNCATION_LAST_LINE_WORDS = 6
# A finished reply ends on one of these (after trailing spaces): sentence ends, brackets,
# quotes, emphasis, code fences, a table border, a list item's closing, or an emoji-free
# symbol such as a unit or percent sign.
TERMINAL = frozenset(".!?)]}\"'`*:;>|%°…")

_WORD = re.compile(r"\w+", re.UNICODE)
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_REFUSAL = re.compile(
    r"\bas an ai(?: language model| model| assistant)?\b"
    r"|\bi (?:cannot|can't|can not|won't|will not|am unable to|'m unable to|am not able to"
    r"|'m not able to|won't be able to|will not be able to|do not have the ability to"
    r"|don't have the ability to)\s+(?:help|assist|provide|comply|do that|fulfil|fulfill"
    r"|answer|support|share|give|discuss|respond)"
    r"|\bi (?:must|have to) decline\b|\bi'?m not going to (?:help|assist|do)\b",
    re.IGNORECASE,
)
# "I can't give an exact figure, but ..." is a hedge that goes on to answer, not a refusal.
_HEDGE = re.compile(r"\bbut\b|\bhowever\b|\balthough\b", re.IGNORECASE)
_LIST_ITEM = re.compile(r"^\s*(?:[-*+•]|\d+[.)])\s")
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'"})


@dataclass(frozen=True, slots=True)
class FilterConfig:
    """Which filters run, and their thresholds."""

    min_words: int = 2
    blocklist: tuple[str, ...] = ()
    disabled: frozenset[str] = field(default_factory=frozenset)


@dataclass(slots=True)
class FilterResult:
    """One mask in [0, 1] per candidate, and the reasons each mask is below 1."""

    masks: list[float]
    reasons: list[list[str]]


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _pairs(words: Sequence[str]) -> list[tuple[str, str]]:
    return list(itertools.pairwise(words))


@dataclass(frozen=True, slots=True)
class PromptFeatures:
    """What the filters need from the prompt, computed once per request."""

    words: tuple[str, ...]
    pairs: frozenset[tuple[str, str]]

    @classmethod
    def of(cls, prompt: Prompt) -> PromptFeatures:
        """The (bounded) last user turn's words and word pairs."""
        words = _words(bounded(prompt.last_user or prompt.text))
        return cls(tuple(words), frozenset(_pairs(words)))


def is_echo(reply_words: Sequence[str], prompt: PromptFeatures) -> bool:
    """Most of the reply's word pairs occur in the prompt (and the reply adds little)."""
    pairs = _pairs(reply_words)
    if not pairs or not prompt.pairs:
        return bool(reply_words) and tuple(reply_words) == prompt.words
    copied = sum(1 for p in pairs if p in prompt.pairs)
    return copied / len(pairs) >= ECHO_COPY_FRACTION


def is_repetitive(text: str, words: Sequence[str]) -> bool:
    """The reply loops: repeated trigrams, or a long sentence or paragraph said again."""
    trigrams = list(zip(words, words[1:], words[2:], strict=False))
    repeated = 1 - len(set(trigrams)) / len(trigrams) if trigrams else 0.0
    if len(trigrams) >= REPEAT_MIN_TRIGRAMS and repeated >= REPEAT_TRIGRAM_FRACTION:
        return True
    seen: set[str] = set()
    for part in _SENTENCE.split(text.lower()):
        sentence = " ".join(_words(part))
        if sentence.count(" ") + 1 < REPEAT_SENTENCE_WORDS:
            continue
        if sentence in seen:
            return True
        seen.add(sentence)
    return False


def cut_by_request(candidate: Candidate, constraints: Constraints | None) -> bool:
    """The reply ended where the request itself said to: its `max_tokens` or a `stop` string."""
    if constraints is None:
        return False
    if candidate.finish_reason == "length" and constraints.max_tokens is not None:
        used = candidate.completion_tokens
        return used is None or used >= constraints.max_tokens
    return candidate.finish_reason == "stop" and constraints.has_stop


def is_truncated(text: str, n_words: int, finish_reason: str | None) -> bool:
    """Generation hit its token limit, or the text stops mid-sentence."""
    if finish_reason == "length":
        return True
    end = text.rstrip()
    if end.count("```") % 2 == 1:
        return True  # a code block that never closed
    if n_words < TRUNCATION_MIN_WORDS:
        return False
    if not end or end[-1] in TERMINAL or end[-1].isdigit():
        return False
    last_line = end.rsplit("\n", 1)[-1]
    if finish_reason == "stop" and ("```" in end or _LIST_ITEM.match(last_line)):
        return False  # lists and code explanations often end without a full stop
    return len(_words(last_line)) >= TRUNCATION_LAST_LINE_WORDS


def is_refusal(text: str) -> bool:
    """Refusal boilerplate in the reply's opening (a long answer that mentions one is fine)."""
    head = text.translate(_APOSTROPHES)[:300]
    match = _REFUSAL.search(head)
    if match is None:
        return False
    sentence_end = _SENTENCE.search(head, match.end())
    rest_of_sentence = head[match.end() : sentence_end.start() if sentence_end else None]
    return not _HEDGE.search(rest_of_sentence)


class Filters:
    """Runs the configured filters over a request's candidates."""

    def __init__(self, config: FilterConfig | None = None) -> None:
        self.config = config or FilterConfig()
        self.blocklist = [re.compile(p, re.IGNORECASE) for p in self.config.blocklist]

    def apply(self, prompt: Prompt, candidates: Sequence[Candidate]) -> FilterResult:
        """A mask and reasons per candidate, in order."""
        features = PromptFeatures.of(prompt)
        masks: list[float] = []
        reasons: list[list[str]] = []
        for candidate in candidates:
            fired = self.reasons(candidate, features, prompt.constraints)
            mask = 1.0
            for reason in fired:
                mask *= FACTORS[reason]
            masks.append(mask)
            reasons.append(fired)
        return FilterResult(masks, reasons)

    def reasons(
        self,
        candidate: Candidate,
        prompt: PromptFeatures,
        constraints: Constraints | None = None,
    ) -> list[str]:
        """The prose filters that fire on one reply (none on a reply that only calls tools)."""
        text = candidate.said.strip()
        if candidate.tool_calls and not text:
            return []
        words = _words(text)
        checks: list[tuple[str, bool]] = []
        if not words:
            checks.append(("empty", True))
        else:
            truncated = not cut_by_request(candidate, constraints) and is_truncated(
                text, len(words), candidate.finish_reason
            )
            checks += [
                ("too_short", len(words) < self.config.min_words),
                ("echo", is_echo(words, prompt)),
                ("repetitive", is_repetitive(text, words)),
                ("refusal", is_refusal(text)),
                ("blocked", any(p.search(text) for p in self.blocklist)),
                ("truncated", truncated),
            ]
        skipped = self.config.disabled
        if constraints is not None and constraints.wants_json:
            skipped = skipped | PROSE_ONLY
        return [name for name, fired in checks if fired and name not in skipped]


def cheap_reasons(prompt: Prompt, candidate: Candidate) -> list[str]:
    """Why a race must not return this reply at once: empty, echo, refusal, schema, tool call."""
    reasons = [r for r in Filters().reasons(candidate, PromptFeatures.of(prompt)) if r in CHEAP]
    return [*reasons, *blocking_reasons(prompt.constraints, candidate)]
