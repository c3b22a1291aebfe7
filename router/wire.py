"""The OpenAI reply formats miners send: chat completions, text completions and their stream
chunks, parsed once into typed values.

A miner's document is read here and nowhere else: `answer_of` reads a whole reply,
`StreamAnswer` puts a stream's chunks back together (content, tool calls by index, finish,
usage), and both give the same `Answer`, so a live stream and a buffered reply of the same
words are one answer. Everything a miner says is a claim, bounded here in count and size.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Kind = Literal["chat", "completion"]

# More calls than this in one reply are dropped; longer arguments are cut (and so fail to
# parse): no real call needs more, and rankers and filters read every one.
MAX_CALLS = 16
MAX_CALL_NAME_CHARS = 64
MAX_ARGUMENT_CHARS = 32768


class InvalidReply(Exception):
    """A miner answered, but not with a usable OpenAI reply."""


@dataclass(frozen=True, slots=True)
class FunctionCall:
    """One tool call of a reply: the function's name and its arguments as the miner sent them."""

    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class Usage:
    """The token counts a miner reported: a claim, never a charge on its own."""

    prompt_tokens: int
    completion_tokens: int


@dataclass(slots=True)
class Answer:
    """What the first choice of a reply says, however it arrived."""

    content: str = ""
    tool_calls: tuple[FunctionCall, ...] = ()
    finish_reason: str | None = None
    usage: Usage | None = None
    model: str | None = None
    # The reasoning it showed beside its content (vLLM's `reasoning_content` or `reasoning`).
    reasoning: str = ""

    @property
    def said(self) -> str:
        """Its content and each call as `name(arguments)`: what tells two replies apart."""
        calls = "\n".join(f"{c.name}({c.arguments})" for c in self.tool_calls)
        return "\n".join(p for p in (self.content, calls) if p)


def chunk_object(kind: Kind) -> str:
    """The `object` of a stream chunk of this kind of request."""
    return "chat.completion.chunk" if kind == "chat" else "text_completion"


def first_choice(document: Any) -> dict[str, Any] | None:
    """The first choice of a reply document or chunk, if it has one that is an object."""
    choices = document.get("choices") if isinstance(document, dict) else None
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        return choices[0]
    return None


def usage_of(document: Any) -> Usage | None:
    """The usage a document reports, when both counts are non-negative integers."""
    usage = document.get("usage") if isinstance(document, dict) else None
    if not isinstance(usage, dict):
        return None
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    if type(prompt) is not int or type(completion) is not int or min(prompt, completion) < 0:
        return None
    return Usage(prompt, completion)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _reasoning(part: Any) -> str:
    """The reasoning text of a message or delta (vLLM's two names for it)."""
    if not isinstance(part, dict):
        return ""
    text = part.get("reasoning_content") or part.get("reasoning")
    return text if isinstance(text, str) else ""


@dataclass(frozen=True, slots=True)
class ChunkDelta:
    """What one chat stream chunk adds to its first choice: text, tool call parts as sent
    (each a dict), a finish reason, and reasoning text."""

    text: str = ""
    calls: tuple[dict[str, Any], ...] = ()
    finish_reason: str | None = None
    reasoning: str = ""


def delta_of(chunk: Any) -> ChunkDelta | None:
    """The delta a chat chunk carries for choice 0, or None when it carries none."""
    choices = chunk.get("choices") if isinstance(chunk, dict) else None
    for choice in choices if isinstance(choices, list) else ():
        if not isinstance(choice, dict) or choice.get("index", 0) != 0:
            continue
        delta = choice.get("delta")
        delta = delta if isinstance(delta, dict) else {}
        calls = delta.get("tool_calls")
        parts = tuple(c for c in calls if isinstance(c, dict)) if isinstance(calls, list) else ()
        finish = choice.get("finish_reason")
        finished = str(finish) if finish else None
        return ChunkDelta(_text(delta.get("content")), parts, finished, _reasoning(delta))
    return None


def holds_back(chunk: Any) -> bool:
    """Whether a stream chunk ends a choice or carries only usage: the chunks a forwarded
    stream keeps until last, where its `bitgate` block rides."""
    choices = chunk.get("choices") if isinstance(chunk, dict) else None
    if not choices or not isinstance(choices, list):
        return True
    return any(isinstance(c, dict) and c.get("finish_reason") for c in choices)


def _finish(choice: dict[str, Any]) -> str | None:
    finish = choice.get("finish_reason")
    return finish if isinstance(finish, str) else None


def calls_of(message: Any) -> tuple[FunctionCall, ...]:
    """The function calls of an assistant message, bounded (malformed ones kept nameless)."""
    calls = message.get("tool_calls") if isinstance(message, dict) else None
    if not isinstance(calls, list):
        return ()
    out = []
    for call in calls[:MAX_CALLS]:
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict):
            out.append(FunctionCall("", ""))
            continue
        # Arguments that are not a string break OpenAI clients: kept empty, so they fail.
        out.append(
            FunctionCall(
                _text(function.get("name"))[:MAX_CALL_NAME_CHARS],
                _text(function.get("arguments"))[:MAX_ARGUMENT_CHARS],
            )
        )
    return tuple(out)


def answer_of(document: Any, kind: Kind) -> Answer:
    """A whole reply's answer, or `InvalidReply` when it has none."""
    if not isinstance(document, dict):
        raise InvalidReply("reply is not a JSON object")
    choice = first_choice(document)
    if choice is None:
        raise InvalidReply("reply has no choices")
    reasoning = ""
    if kind == "chat":
        message = choice.get("message")
        content = message.get("content") if isinstance(message, dict) else None
        calls = calls_of(message)
        reasoning = _reasoning(message)
        if content is None and calls:
            content = ""
    else:
        content, calls = choice.get("text"), ()
    if not isinstance(content, str):
        raise InvalidReply("reply has no text")
    model = document.get("model")
    return Answer(
        content,
        calls,
        _finish(choice),
        usage_of(document),
        model if isinstance(model, str) else None,
        reasoning,
    )


@dataclass(slots=True)
class _CallParts:
    name: str = ""
    arguments: list[str] = field(default_factory=list)
    size: int = 0


class StreamAnswer:
    """A stream's chunks put back together as they come: content, tool calls by index,
    the finish reason and any usage, into the same `Answer` a whole reply gives."""

    def __init__(self, kind: Kind) -> None:
        self.kind = kind
        self.content: list[str] = []
        self.calls: dict[int, _CallParts] = {}
        self.finish_reason: str | None = None
        self.usage: Usage | None = None
        self.model: str | None = None
        self.reasoning: list[str] = []
        self.size = 0  # characters of content and arguments so far

    def add(self, chunk: Any) -> str:
        """Take one chunk; returns the text it adds (content, or a call's arguments)."""
        added = self._add(chunk)
        self.size += len(added)
        return added

    def _add(self, chunk: Any) -> str:
        if not isinstance(chunk, dict):
            raise InvalidReply("stream chunk is not an object")
        choices = chunk.get("choices")
        if not isinstance(choices, list):
            raise InvalidReply("stream chunk has no choices")
        if self.model is None and isinstance(chunk.get("model"), str):
            self.model = chunk["model"]
        self.usage = usage_of(chunk) or self.usage
        if not choices:
            return ""
        choice = choices[0]
        if not isinstance(choice, dict):
            raise InvalidReply("stream chunk choice is not an object")
        self.finish_reason = _finish(choice) or self.finish_reason
        if self.kind != "chat":
            text = _text(choice.get("text"))
            self.content.append(text)
            return text
        delta = choice.get("delta")
        if not isinstance(delta, dict):
            return ""
        self.reasoning.append(_reasoning(delta))
        text = _text(delta.get("content"))
        self.content.append(text)
        return text + self._add_calls(delta.get("tool_calls"))

    def _add_calls(self, parts: Any) -> str:
        added: list[str] = []
        for part in parts if isinstance(parts, list) else ():
            if not isinstance(part, dict):
                continue
            index = part.get("index", 0)
            index = index if type(index) is int else 0
            if index not in self.calls and len(self.calls) >= MAX_CALLS:
                continue
            call = self.calls.setdefault(index, _CallParts())
            function = part.get("function")
            if not isinstance(function, dict):
                continue
            if not call.name:
                call.name = _text(function.get("name"))[:MAX_CALL_NAME_CHARS]
            arguments = _text(function.get("arguments"))[: MAX_ARGUMENT_CHARS - call.size]
            call.arguments.append(arguments)
            call.size += len(arguments)
            added.append(arguments)
        return "".join(added)

    @property
    def answer(self) -> Answer:
        """What the stream has said so far."""
        calls = tuple(
            FunctionCall(c.name, "".join(c.arguments)) for _, c in sorted(self.calls.items())
        )
        return Answer(
            "".join(self.content),
            calls,
            self.finish_reason,
            self.usage,
            self.model,
            "".join(self.reasoning),
        )
