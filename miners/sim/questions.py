"""What a simulated miner says: answers of each quality, for known and unknown prompts."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from miners.sim.profiles import Quality
from miners.sim.question_bank import QUESTIONS, Question

__all__ = [
    "HOSTILE",
    "QUESTIONS",
    "REFUSAL",
    "Answer",
    "Question",
    "answer",
    "find_question",
    "keywords",
    "normalize",
]

REFUSAL = "I'm sorry, but I can't help with that."
# A reply that tries to run script in whatever renders it: raw HTML, event handlers,
# `javascript:` links, an image from another origin (loopback, so a test never leaves the host).
HOSTILE = "\n\n".join(
    (
        "Here is a **formatted** answer.",
        "<script>window.__pwned = 'script'</script>",
        "<img src=x onerror=\"window.__pwned = 'img'\">",
        "[click me](javascript:window.__pwned='link')",
        "<a href=\"javascript:window.__pwned = 'anchor'\">raw link</a>",
        "<iframe src=\"javascript:window.__pwned = 'iframe'\"></iframe>",
        '<div onmouseover="window.__pwned = \'div\'" style="position:fixed;inset:0">raw</div>',
        "![pixel](http://127.0.0.2:9/pixel.png)",
    )
)
REPEATS = 6
TRUNCATE_AT = 0.55
TERSE_WORDS = 6

_WORD = re.compile(r"[A-Za-z][A-Za-z0-9'+#-]*")
_STOPWORDS = frozenset(
    " ".join(
        [
            "a an the is are was were be been being am do does did doing to of in on at by",
            "for with from as into about over under and or but not no so if then than that",
            "this these those it its i me my we our you your he she they them his her their",
            "what which who whom whose when where why how can could should would will shall",
            "may might must please tell explain describe give show write make let get some",
            "any all each very just also there here know want like need use using",
        ]
    ).split()
)


@dataclass(frozen=True, slots=True)
class Answer:
    """A miner's reply text and why it stopped."""

    text: str
    finish_reason: str = "stop"


def normalize(prompt: str) -> str:
    """The prompt as a lookup key: lower case, whitespace collapsed."""
    return " ".join(prompt.lower().split())


_BY_PROMPT = {normalize(q.prompt): i for i, q in enumerate(QUESTIONS)}


def find_question(prompt: str) -> Question | None:
    """The built-in question this prompt asks, if any (case and space insensitive)."""
    index = _BY_PROMPT.get(normalize(prompt))
    return None if index is None else QUESTIONS[index]


@lru_cache(maxsize=4096)
def answer(prompt: str, quality: Quality) -> Answer:
    """The reply of a miner of this quality to the prompt."""
    if quality == "empty":
        return Answer("")
    if quality == "echo":
        return Answer(prompt)
    if quality == "refusal":
        return Answer(REFUSAL)
    if quality == "hostile":
        return Answer(HOSTILE)
    key = normalize(prompt)
    index = _BY_PROMPT.get(key)
    if quality == "off_topic":
        return Answer(_off_topic(index, key))
    good, partial, wrong = _known(QUESTIONS[index]) if index is not None else _composed(prompt)
    if quality == "truncated":
        return Answer(_truncate(good), "length")
    if quality == "repetitive":
        return Answer(" ".join([_first_sentence(good)] * REPEATS))
    if quality == "terse":
        return Answer(_terse(good))
    if quality == "rambling":
        return Answer(_rambling(good, _off_topic(index, key)))
    return Answer({"good": good, "partial": partial, "wrong": wrong}[quality])


def _known(question: Question) -> tuple[str, str, str]:
    """The good, partial and wrong answers of a built-in question."""
    return question.good, question.partial, question.wrong


def _off_topic(index: int | None, key: str) -> str:
    """The good answer of a question far from this one."""
    count = len(QUESTIONS)
    other = (index + count // 2) % count if index is not None else len(key) % count
    return QUESTIONS[other].good


def _truncate(text: str) -> str:
    """The text cut mid-sentence, without its final punctuation."""
    words = text.split()
    kept = words[: max(3, int(len(words) * TRUNCATE_AT))]
    return " ".join(kept).rstrip(".,;:!?")


def _terse(text: str) -> str:
    """Right but bare: the first few words of the good answer."""
    return " ".join(text.split()[:TERSE_WORDS]).rstrip(".,;:") + "."


def _rambling(good: str, other: str) -> str:
    """Long and mostly beside the point: a nod to the topic, then another subject at length."""
    return f"{_first_sentence(good)} That said, it is worth stepping back. {other} {other}"


def _first_sentence(text: str) -> str:
    """The first sentence of the text, with its full stop."""
    head, dot, _ = text.partition(". ")
    return head + "." if dot else text


def keywords(prompt: str, limit: int = 4) -> list[str]:
    """The prompt's content words, in order, without duplicates."""
    seen: dict[str, None] = {}
    for word in _WORD.findall(prompt):
        lower = word.lower()
        if len(lower) > 2 and lower not in _STOPWORDS:
            seen.setdefault(lower, None)
        if len(seen) == limit:
            break
    return list(seen)


def _composed(prompt: str) -> tuple[str, str, str]:
    """On-topic good, partial and wrong answers made from the prompt's words."""
    words = keywords(prompt) or ["this topic"]
    first, second, third = (words * 3)[:3]
    topic = " ".join(words[:3])
    good = (
        f"Here is a short answer about {topic}. {first.capitalize()} is the central idea: "
        f"it shapes how {second} behaves and why {third} matters in practice. In short, to "
        f"understand {topic}, start with {first}, then look at how {second} and {third} fit "
        "together."
    )
    partial = f"{topic.capitalize()} is mostly about {first}, though there is more to it."
    wrong = (
        f"{topic.capitalize()} has little to do with {first}; it is mainly a matter of chance, "
        f"and {second} plays no real role."
    )
    return good, partial, wrong
