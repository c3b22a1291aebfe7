"""The labelled evaluation set: built from the hand-written topic files, read by `bitgate eval`.

Each topic file (ranking/data/topics/*.yaml) gives a prompt, optionally a system prompt and
earlier turns, and four hand-written replies: the best one, a wrong-fact one, a partly right
one and a right-but-terse one. This module adds the failures that machines make mechanically
(truncated, repetitive, empty, echo, refusal, off-topic, long but irrelevant), varied and
seeded per item, keeps ten candidates per prompt (the best and nine worse), shuffles them and
writes ranking/data/eval.jsonl. A third of the items, chosen by a hash of their id, form the
`dev` split that any tuning may look at; the rest are `test`, held out.

Run `python -m ranking.evalset` to rebuild the JSONL after editing a topic file.
"""

from __future__ import annotations

import json
import random
import re
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

DATA = Path(__file__).resolve().parent / "data"
TOPICS = DATA / "topics"
EVAL_FILE = DATA / "eval.jsonl"

WORSE_KINDS = (
    "wrong",
    "partial",
    "terse",
    "off_topic",
    "truncated",
    "repetitive",
    "empty",
    "echo",
    "refusal",
    "long_irrelevant",
)
CANDIDATES = 10
DEV_MODULUS = 3

_REFUSALS = (
    "I'm sorry, but I can't help with that.",
    "I'm sorry, but I can't help with questions about {topic}.",
    "As an AI language model, I don't have the ability to provide that information.",
    "I am unable to assist with this request. Please consult a qualified professional.",
    "Unfortunately, I cannot provide an answer to that question.",
    "I apologize, but I won't be able to answer questions about {topic}.",
    "That's outside what I'm able to help with. Is there anything else I can do for you?",
    "I can't answer that, but I'm happy to help with something else!",
)
_OPENERS = (
    "Great question about {topic}! Before getting to it, some background is useful.",
    "There is a lot to say about {topic}, so let me start with the wider picture.",
    "People often wonder about {topic}. To understand it, consider the following.",
    "When it comes to {topic}, context matters a great deal.",
)
_EMPTY = ("", " ", "\n", ".", "...")
_STOP_TEXT = """
    what which when where why how does do is are was were the a an and or of to in on for with
    about from into that this these those your my you can could should would will explain tell
    give write make between difference there their have has been
"""
_STOP = frozenset(_STOP_TEXT.split())


@dataclass(frozen=True, slots=True)
class EvalItem:
    """One prompt of the set: the conversation, ten candidates, and which is best."""

    id: str
    topic: str
    split: str
    messages: list[dict[str, str]]
    candidates: list[dict[str, Any]]
    best: int
    request: dict[str, Any] = field(default_factory=dict)

    @property
    def last_user(self) -> str:
        """The final user turn."""
        return str(self.messages[-1]["content"])


def _topic_word(question: str) -> str:
    """A content word of the question, for refusals and rambling openers."""
    words: list[str] = [
        w for w in re.findall(r"[A-Za-z][A-Za-z'-]+", question) if w.lower() not in _STOP
    ]
    long_words = [w for w in words if len(w) > 4] or words or ["this"]
    return long_words[0].lower()


def _truncate(text: str, rng: random.Random) -> str:
    """The text cut somewhere between a third and three quarters, mid-sentence."""
    words = text.split(" ")
    keep = max(3, int(len(words) * rng.uniform(0.35, 0.75)))
    cut = " ".join(words[:keep]).rstrip(".,;:!?")
    if rng.random() < 0.3 and len(cut) > 12:
        cut = cut[: -rng.randint(1, 3)]  # stopped mid-word
    return cut


def _sentences(text: str) -> list[str]:
    """Sentences of a reply, roughly."""
    return [s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s]


def _repetitive(text: str, rng: random.Random) -> str:
    """A degenerate loop of the kinds small models fall into."""
    sentences = _sentences(text) or [text]
    variant = rng.randrange(4)
    if variant == 0:
        return " ".join([sentences[0]] * rng.randint(4, 7))
    if variant == 1:
        words = text.split()
        phrase = " ".join(words[: rng.randint(5, 9)])
        return " ".join([phrase] * rng.randint(7, 10))
    if variant == 2:
        return " ".join([*sentences, *([sentences[-1]] * rng.randint(4, 6))])
    head = " ".join(sentences[: max(1, len(sentences) // 2)])
    return "\n\n".join([head] * rng.randint(3, 5))


def _echo(question: str, rng: random.Random) -> str:
    """The prompt handed back."""
    variant = rng.randrange(3)
    if variant == 0:
        return question
    if variant == 1:
        return f"You asked: {question}"
    return f"{question}\n\n{question}"


def _ramble(topic: str, others: list[str], rng: random.Random) -> str:
    """A long reply that names the topic once and then talks about other things."""
    opener = rng.choice(_OPENERS).format(topic=topic)
    body = rng.sample(others, k=min(len(others), rng.randint(3, 4)))
    link = rng.choice(("Also worth noting:", "On a related note,", "Moreover,", "In addition,"))
    return "\n\n".join([opener, body[0], *(f"{link} {p}" for p in body[1:])])


def _messages(raw: dict[str, Any]) -> list[dict[str, str]]:
    """The conversation of a topic-file item: system, earlier turns, the question."""
    messages: list[dict[str, str]] = []
    if raw.get("system"):
        messages.append({"role": "system", "content": raw["system"]})
    for turn in raw.get("history") or []:
        messages.append({"role": "user", "content": turn["user"]})
        messages.append({"role": "assistant", "content": turn["assistant"]})
    messages.append({"role": "user", "content": raw["q"]})
    return messages


def load_topics() -> dict[str, list[dict[str, Any]]]:
    """Every topic file's items, by topic name."""
    return {p.stem: yaml.safe_load(p.read_text()) for p in sorted(TOPICS.glob("*.yaml"))}


def build_items(topics: dict[str, list[dict[str, Any]]]) -> list[EvalItem]:
    """Derive the mechanical failures, pick nine worse replies, shuffle; deterministic."""
    bests = {(t, i): raw["best"] for t, items in topics.items() for i, raw in enumerate(items)}
    out: list[EvalItem] = []
    counter = 0
    for topic, items in topics.items():
        elsewhere = [text for (t, _), text in bests.items() if t != topic]
        for index, raw in enumerate(items):
            item_id = f"{topic}-{index:03d}"
            rng = random.Random(zlib.crc32(item_id.encode()))
            question = raw["q"]
            word = _topic_word(question)
            kinds = {
                "wrong": raw["wrong"],
                "partial": raw["partial"],
                "terse": raw["terse"],
                "off_topic": rng.choice(elsewhere),
                "truncated": _truncate(raw["best"], rng),
                "repetitive": _repetitive(raw["best"], rng),
                "empty": rng.choice(_EMPTY),
                "echo": _echo(question, rng),
                "refusal": rng.choice(_REFUSALS).format(topic=word),
                "long_irrelevant": _ramble(word, elsewhere, rng),
            }
            dropped = WORSE_KINDS[counter % len(WORSE_KINDS)]
            counter += 1
            candidates = [{"kind": "best", "text": raw["best"], "finish_reason": "stop"}]
            for kind in WORSE_KINDS:
                if kind == dropped:
                    continue
                finish = "length" if kind == "truncated" and rng.random() < 0.6 else "stop"
                candidates.append({"kind": kind, "text": kinds[kind], "finish_reason": finish})
            rng.shuffle(candidates)
            best = next(i for i, c in enumerate(candidates) if c["kind"] == "best")
            split = "dev" if zlib.crc32(item_id.encode()) % DEV_MODULUS == 0 else "test"
            out.append(EvalItem(item_id, topic, split, _messages(raw), candidates, best))
    return out


def write_items(items: list[EvalItem], path: Path = EVAL_FILE) -> None:
    """One JSON object per line."""
    with path.open("w", encoding="utf-8") as f:
        for item in items:
            row = {
                "id": item.id,
                "topic": item.topic,
                "split": item.split,
                "messages": item.messages,
                "candidates": item.candidates,
                "best": item.best,
            }
            if item.request:
                row["request"] = item.request
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def load_items(path: Path = EVAL_FILE, split: str | None = None) -> list[EvalItem]:
    """The evaluation set, or one split of it (`dev` or `test`)."""
    items = []
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if split is None or row["split"] == split:
            items.append(
                EvalItem(
                    row["id"],
                    row["topic"],
                    row["split"],
                    row["messages"],
                    row["candidates"],
                    row["best"],
                    row.get("request", {}),
                )
            )
    return items


def main() -> int:
    """Rebuild eval.jsonl from the topic files."""
    items = build_items(load_topics())
    write_items(items)
    dev = sum(1 for i in items if i.split == "dev")
    print(f"wrote {len(items)} items ({dev} dev, {len(items) - dev} test) to {EVAL_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
