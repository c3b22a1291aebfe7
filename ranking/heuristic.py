"""A model-free ranker: word-overlap relevance, agreement and penalties, cheap enough to inline."""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from ranking.base import Candidate, Prompt, Ranking, bounded
from ranking.constraints import Constraints
from ranking.filters import cut_by_request

# Weights of a reward's three parts before penalties; they sum to 1.
RELEVANCE_WEIGHT = 0.6  # recall of the prompt's content words in the reply
LENGTH_WEIGHT = 0.2  # a complete reply beats a terse one
AGREEMENT_WEIGHT = 0.2  # mild self-consistency with the other unpenalised replies

# Used when there is nothing to compare against (a prompt with no content words, a lone reply).
NEUTRAL_SCORE = 0.5

# Length part: rises linearly to 1 at FULL_ANSWER_WORDS, then decays past RAMBLE_WORDS to a floor.
FULL_ANSWER_WORDS = 20
RAMBLE_WORDS = 400
RAMBLE_FLOOR = 0.5

# Fewer words than this is an empty reply, rewarded 0.
MIN_WORDS = 2

# Echo: this share of the reply's word bigrams also occurs in the prompt.
ECHO_COPY_FRACTION = 0.7
# Mid-sentence truncation is only judged on replies of at least this many words.
TRUNCATION_MIN_WORDS = 8
# Characters a finished reply may end on (sentence ends, closing brackets, quotes, code fences).
TERMINAL_CHARS = frozenset(".!?)]}\"'`*:;>|")
# Repetition: share of word trigrams that repeat an earlier one, judged once there are enough.
REPEAT_TRIGRAM_FRACTION = 0.3
REPEAT_MIN_TRIGRAMS = 6
# A sentence of at least this many words said twice marks the reply repetitive.
REPEAT_SENTENCE_WORDS = 5

# Multipliers applied to the reward for each penalty found.
PENALTIES = {
    "echo": 0.3,
    "truncated": 0.5,
    "repetitive": 0.4,
    "refusal": 0.3,
}

# Words too common to say whether a reply is on topic.
_STOP_WORDS_TEXT = """
    a about above after again all also am an and any are as at be because been being before but
    by can could did do does doing done for from get got had has have having he her here hers
    him his how i if in into is it its itself just let like me more most my no not now of off on
    once only or other our out over own per please same she should so some such than that the
    their them then there these they this those through to too under until up us use using very
    was we were what when where which while who whom why will with would you your yours
"""
STOP_WORDS = frozenset(_STOP_WORDS_TEXT.split())

_WORD = re.compile(r"[a-z0-9]+")
_SENTENCE_SPLIT = re.compile(r"[.!?\n]\s*")
_REFUSAL = re.compile(
    r"\b(?:i'?m sorry,? but i|i apologi[sz]e,? but i"
    r"|as an ai(?: language model| model| assistant|,)"
    r"|i (?:cannot|can't|can not|am unable to|'m unable to|am not able to|'m not able to|won't)"
    r" (?:help|assist|provide|comply|do that|fulfil|answer|support))"
)


# Stems of words up to this long are cached (8192 of them: well under a MiB); longer words,
# rare in any language and free for a client to invent, are stemmed afresh every time.
MAX_CACHED_WORD = 24


def stem(word: str) -> str:
    """Strip a common English suffix so 'lists', 'listed' and 'listing' match 'list'."""
    if len(word) > MAX_CACHED_WORD:
        return _strip_suffix(word)
    return _cached_stem(word)


def _strip_suffix(word: str) -> str:
    if len(word) > 5 and word.endswith("ing"):
        word = word[:-3]
    elif len(word) > 4 and word.endswith(("ed", "es")):
        word = word[:-2]
    elif len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        word = word[:-1]
    if len(word) > 3 and word.endswith("e"):
        word = word[:-1]
    return word


_cached_stem = lru_cache(maxsize=8192)(_strip_suffix)


def content_words(tokens: Sequence[str]) -> set[str]:
    """The stemmed tokens that carry meaning: no stop words, no single letters."""
    return {stem(t) for t in set(tokens) - STOP_WORDS if len(t) > 1}


@dataclass(slots=True)
class _Reply:
    """One candidate's text broken into the pieces the scores need."""

    tokens: list[str]
    content: set[str]
    reasons: list[str]


def _length_score(n_words: int) -> float:
    """Reward replies long enough to be complete, and stop rewarding rambling ones."""
    score = min(1.0, n_words / FULL_ANSWER_WORDS)
    if n_words > RAMBLE_WORDS:
        score *= max(RAMBLE_FLOOR, RAMBLE_WORDS / n_words)
    return score


def _bigrams(tokens: Sequence[str]) -> list[tuple[str, str]]:
    """Adjacent token pairs."""
    return list(itertools.pairwise(tokens))


def _is_echo(tokens: Sequence[str], prompt_bigrams: set[tuple[str, str]]) -> bool:
    """Whether the reply is mostly a copy of the prompt."""
    pairs = _bigrams(tokens)
    if not pairs or not prompt_bigrams:
        return False
    copied = sum(1 for p in pairs if p in prompt_bigrams)
    return copied / len(pairs) >= ECHO_COPY_FRACTION


def _is_truncated(text: str, n_words: int, finish_reason: str | None) -> bool:
    """Whether generation hit its limit or the reply stops mid-sentence."""
    if finish_reason == "length":
        return True
    return n_words >= TRUNCATION_MIN_WORDS and text[-1] not in TERMINAL_CHARS


def _is_repetitive(text: str, tokens: Sequence[str]) -> bool:
    """Whether the reply loops: many repeated word trigrams, or a sentence said twice."""
    trigrams = list(zip(tokens, tokens[1:], tokens[2:], strict=False))
    if len(trigrams) >= REPEAT_MIN_TRIGRAMS:
        repeated = 1 - len(set(trigrams)) / len(trigrams)
        if repeated >= REPEAT_TRIGRAM_FRACTION:
            return True
    seen: set[str] = set()
    for part in _SENTENCE_SPLIT.split(text):
        sentence = part.strip()
        if sentence.count(" ") < REPEAT_SENTENCE_WORDS - 1:
            continue
        if sentence in seen:
            return True
        seen.add(sentence)
    return False


def _cosine(a: set[str], b: set[str]) -> float:
    """Set cosine similarity; 0 when either set is empty."""
    if not a or not b:
        return 0.0
    return len(a & b) / math.sqrt(len(a) * len(b))


def _agreement(novel: Sequence[set[str]], pool: Sequence[int]) -> list[float]:
    """Each reply's mean similarity to the pooled replies other than itself."""
    sums = [0.0] * len(novel)
    for i, j in itertools.combinations(pool, 2):
        similarity = _cosine(novel[i], novel[j])
        sums[i] += similarity
        sums[j] += similarity
    pooled = set(pool)
    for i in set(range(len(novel))) - pooled:
        sums[i] = sum(_cosine(novel[i], novel[j]) for j in pool)
    peers = [len(pool) - (i in pooled) for i in range(len(novel))]
    return [total / n if n else NEUTRAL_SCORE for total, n in zip(sums, peers, strict=True)]


class HeuristicRanker:
    """Scores replies by word overlap with the prompt and each other, with penalties; no model."""

    name = "heuristic"

    async def score(self, prompt: Prompt, candidates: Sequence[Candidate]) -> Ranking:
        """Reward each candidate inline; the work is well under a millisecond."""
        return self.rank(prompt, candidates)

    def rank(self, prompt: Prompt, candidates: Sequence[Candidate]) -> Ranking:
        """Reward each candidate in [0, 1], in the order given, with penalty reasons."""
        question = bounded(prompt.last_user or prompt.text).lower()
        prompt_tokens = _WORD.findall(question)
        prompt_content = content_words(prompt_tokens)
        prompt_bigrams = set(_bigrams(prompt_tokens))

        replies = [self._inspect(c, prompt_bigrams, prompt.constraints) for c in candidates]
        # Agreement is judged on what replies add beyond the prompt, among unpenalised replies.
        novel = [r.content - prompt_content for r in replies]
        pool = [i for i, r in enumerate(replies) if not r.reasons]
        agreements = _agreement(novel, pool)

        rewards: list[float] = []
        for i, reply in enumerate(replies):
            if "empty" in reply.reasons:
                rewards.append(0.0)
                continue
            if prompt_content:
                relevance = len(reply.content & prompt_content) / len(prompt_content)
            else:
                relevance = NEUTRAL_SCORE
            reward = (
                RELEVANCE_WEIGHT * relevance
                + LENGTH_WEIGHT * _length_score(len(reply.tokens))
                + AGREEMENT_WEIGHT * agreements[i]
            )
            for reason in reply.reasons:
                reward *= PENALTIES[reason]
            rewards.append(min(1.0, max(0.0, reward)))
        return Ranking(rewards=rewards, reasons=[r.reasons for r in replies])

    @staticmethod
    def _inspect(
        candidate: Candidate,
        prompt_bigrams: set[tuple[str, str]],
        constraints: Constraints | None = None,
    ) -> _Reply:
        """Tokenise one reply and list the penalties it earns."""
        text = candidate.text.strip()
        lowered = text.lower().replace("\u2019", "'")
        tokens = _WORD.findall(lowered)
        # JSON and tool calls are judged by their form elsewhere: compact JSON has no spaces,
        # repeats its keys and ends on a brace, none of which makes it bad prose.
        shaped = bool(candidate.tool_calls) or (constraints is not None and constraints.wants_json)
        if len(tokens) < MIN_WORDS or (len(text.split()) < MIN_WORDS and not shaped):
            return _Reply(tokens, set(), ["empty"])
        reasons: list[str] = []
        if _is_echo(tokens, prompt_bigrams):
            reasons.append("echo")
        cut_short = not shaped and not cut_by_request(candidate, constraints)
        if cut_short and _is_truncated(text, len(tokens), candidate.finish_reason):
            reasons.append("truncated")
        if not shaped and _is_repetitive(lowered, tokens):
            reasons.append("repetitive")
        if _REFUSAL.search(lowered):
            reasons.append("refusal")
        return _Reply(tokens, content_words(tokens), reasons)
