"""Prompt sets: the built-in ones and JSONL files of prompts or chat messages."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

SHORT = (
    "What is the capital of France?",
    "Why is the sky blue?",
    "How many legs does a spider have?",
    "What is the boiling point of water at sea level?",
    "Who wrote Pride and Prejudice?",
    "What is photosynthesis?",
    "Translate 'good morning' into Spanish.",
    "What is 17 times 23?",
    "Name three primary colours.",
    "What does a compiler do?",
    "Why do cats purr?",
    "What is the speed of light?",
)

_TOPICS = (
    "the history of the printing press and how it changed the spread of ideas in Europe",
    "how a transformer language model turns a prompt into tokens and predicts the next one",
    "the water cycle, from evaporation over the oceans to rain over the mountains",
    "why interest rates rise when inflation does, and who decides them",
    "how vaccines train the immune system without causing the disease",
    "the trade-offs between a relational database and a key-value store",
)
_LONG_CONTEXT = (
    "You are a careful assistant. Answer in plain words, with one example, and say what "
    "is uncertain. The reader is curious but not an expert, and has a few minutes. "
)

LONG = tuple(
    _LONG_CONTEXT * 6 + f"Explain {topic}. Keep it under three paragraphs." for topic in _TOPICS
)

BUILTIN: dict[str, tuple[str, ...]] = {
    "short": SHORT,
    "long": LONG,
    "mixed": SHORT + LONG,
}


class PromptError(ValueError):
    """A prompt set that cannot be used; the message names the file and line."""


@dataclass(frozen=True, slots=True)
class Prompt:
    """One prompt: chat messages (always), and the text for the completions endpoint."""

    messages: tuple[dict[str, Any], ...]
    text: str
    max_tokens: int | None = None


def from_text(text: str) -> Prompt:
    """A one-message prompt."""
    return Prompt(({"role": "user", "content": text},), text)


def _from_line(document: Any, where: str) -> Prompt:
    """A prompt from one JSONL object: `{"prompt": ...}` or `{"messages": [...]}`."""
    if not isinstance(document, dict):
        raise PromptError(f"{where}: expected a JSON object")
    max_tokens = document.get("max_tokens")
    if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
        raise PromptError(f"{where}: max_tokens must be a positive integer")
    if isinstance(document.get("prompt"), str):
        return Prompt(
            ({"role": "user", "content": document["prompt"]},), document["prompt"], max_tokens
        )
    messages = document.get("messages")
    if not isinstance(messages, list) or not messages:
        raise PromptError(f"{where}: needs a 'prompt' string or a non-empty 'messages' list")
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("content"), str):
            raise PromptError(f"{where}: messages.{index} needs a 'content' string")
        if message.get("role") not in ("system", "user", "assistant"):
            raise PromptError(f"{where}: messages.{index}.role must be system, user or assistant")
    text = "\n".join(str(m["content"]) for m in messages)
    return Prompt(tuple(messages), text, max_tokens)


def load_jsonl(path: Path) -> list[Prompt]:
    """Every prompt of a JSONL file; `PromptError` naming the first bad line."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise PromptError(f"{path}: cannot read ({exc.strerror})") from None
    prompts = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            document = orjson.loads(line)
        except orjson.JSONDecodeError:
            raise PromptError(f"{where}: not valid JSON") from None
        prompts.append(_from_line(document, where))
    if not prompts:
        raise PromptError(f"{path}: no prompts")
    return prompts


def load_prompts(name: str, base: Path | None = None) -> list[Prompt]:
    """A built-in set by name, or a JSONL file (relative to `base`)."""
    if name in BUILTIN:
        return [from_text(text) for text in BUILTIN[name]]
    path = Path(name)
    if base is not None and not path.is_absolute():
        path = base / path
    if path.suffix != ".jsonl":
        raise PromptError(
            f"prompts {name!r}: not a built-in set ({', '.join(BUILTIN)}) nor a .jsonl file"
        )
    return load_jsonl(path)
