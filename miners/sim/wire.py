"""The OpenAI wire shapes simulated miners speak: request fields, bodies, stream chunks, errors."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import orjson

from miners.sim.structured import Asked

JSON_HEADERS = {"Content-Type": "application/json"}
SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
DONE = b"data: [DONE]\n\n"
WORDS_PER_PIECE = 3
ARGUMENT_PIECE_CHARS = 8

_PIECE = re.compile(rf"(?:\s*\S+){{1,{WORDS_PER_PIECE}}}\s*|\s+")


class BadRequest(ValueError):
    """A request an OpenAI server answers with 400, naming the parameter."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


def error_body(message: str, kind: str, param: str | None = None, code: str | None = None) -> bytes:
    """An OpenAI error document."""
    error = {"message": message, "type": kind, "param": param, "code": code}
    return orjson.dumps({"error": error})


def sse(event: dict[str, Any]) -> bytes:
    """One server-sent event carrying a JSON chunk."""
    return b"data: " + orjson.dumps(event) + b"\n\n"


def split_pieces(text: str) -> list[str]:
    """The text as stream deltas of a few words each; they concatenate back to the text."""
    return _PIECE.findall(text)


def count_tokens(text: str) -> int:
    """A cheap token count: whitespace-separated words."""
    return len(text.split())


@dataclass(frozen=True, slots=True)
class Request:
    """What a simulated miner needs from a completion request."""

    prompt: str
    prompt_tokens: int
    model: str | None
    stream: bool
    include_usage: bool
    max_tokens: int | None
    asked: Asked = field(default_factory=lambda: Asked(None, [], None))
    logprobs: bool = False


@dataclass(frozen=True, slots=True)
class Reply:
    """One completion to send, in either endpoint's shape.

    With `tool_call` (name, arguments) the reply calls that function instead of talking;
    `reasoning` rides in `reasoning_content`; `logprobs` adds a logprob per piece.
    """

    id: str
    created: int
    model: str
    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    tool_call: tuple[str, str] | None = None
    reasoning: str | None = None
    logprobs: bool = False

    def call(self, arguments: str) -> dict[str, Any]:
        """The reply's tool call, with these arguments."""
        name = self.tool_call[0] if self.tool_call else ""
        function = {"name": name, "arguments": arguments}
        return {"id": f"call_{self.id}", "type": "function", "function": function}

    def spoken(self) -> list[str]:
        """What the reply streams as pieces: its arguments when it calls, else its text."""
        if self.tool_call:
            arguments = self.tool_call[1]
            step = ARGUMENT_PIECE_CHARS
            return [arguments[i : i + step] for i in range(0, len(arguments), step)]
        return split_pieces(self.text)

    def usage(self) -> dict[str, int]:
        """OpenAI's usage block."""
        total = self.prompt_tokens + self.completion_tokens
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": total,
        }


def parse_request(payload: dict[str, Any], prompt: str, prompt_tokens: int) -> Request:
    """The common options of a completion request, checked."""
    model = payload.get("model")
    stream = payload.get("stream", False)
    if not isinstance(stream, bool):
        raise BadRequest("'stream' must be a boolean", "stream")
    options = payload.get("stream_options")
    include_usage = isinstance(options, dict) and options.get("include_usage") is True
    max_tokens = payload.get("max_tokens", payload.get("max_completion_tokens"))
    if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
        raise BadRequest("'max_tokens' must be a positive integer", "max_tokens")
    return Request(
        prompt,
        prompt_tokens,
        model if isinstance(model, str) else None,
        stream,
        include_usage,
        max_tokens,
        Asked.of(payload),
        payload.get("logprobs") is True,
    )


def _text_of(content: Any) -> str:
    """A message's text: a string, or the text parts of a content list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            part["text"]
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""


class ChatEndpoint:
    """`/v1/chat/completions`: messages in, `chat.completion` out."""

    id_prefix = "chatcmpl-"
    chunk_object = "chat.completion.chunk"

    def parse(self, payload: dict[str, Any]) -> Request:
        """The last user message and the request's options."""
        messages = payload.get("messages")
        if not isinstance(messages, list) or not messages:
            raise BadRequest("'messages' must be a non-empty list", "messages")
        if not all(isinstance(message, dict) for message in messages):
            raise BadRequest("each message must be an object", "messages")
        texts = [_text_of(message.get("content")) for message in messages]
        users = [t for m, t in zip(messages, texts, strict=True) if m.get("role") == "user"]
        prompt = users[-1] if users else texts[-1]
        return parse_request(payload, prompt, sum(count_tokens(t) for t in texts))

    def body(self, reply: Reply) -> dict[str, Any]:
        """The non-stream `chat.completion` document."""
        message: dict[str, Any] = {"role": "assistant", "content": reply.text}
        if reply.tool_call:
            message = {**message, "content": None, "tool_calls": [reply.call(reply.tool_call[1])]}
        if reply.reasoning:
            message["reasoning_content"] = reply.reasoning
        choice = {
            "index": 0,
            "message": message,
            "logprobs": _logprobs(reply.spoken()) if reply.logprobs else None,
            "finish_reason": reply.finish_reason,
        }
        return _document(reply, "chat.completion", choice) | {"usage": reply.usage()}

    def head(self, reply: Reply) -> list[bytes]:
        """The first chunks: the assistant role, any reasoning, the start of any tool call."""
        head = [self.chunk(reply, {"role": "assistant", "content": ""}, None)]
        if reply.reasoning:
            head.append(self.chunk(reply, {"reasoning_content": reply.reasoning}, None))
        if reply.tool_call:
            head.append(self.chunk(reply, {"tool_calls": [{"index": 0, **reply.call("")}]}, None))
        return head

    def piece(self, reply: Reply, text: str) -> bytes:
        """A content delta chunk (arguments of the tool call when the reply calls one)."""
        if reply.tool_call:
            delta = {"tool_calls": [{"index": 0, "function": {"arguments": text}}]}
            return self.chunk(reply, delta, None)
        logprobs = _logprobs([text]) if reply.logprobs else None
        return self.chunk(reply, {"content": text}, None, logprobs)

    def last(self, reply: Reply) -> bytes:
        """The chunk carrying the finish reason."""
        return self.chunk(reply, {}, reply.finish_reason)

    def chunk(
        self,
        reply: Reply,
        delta: dict[str, Any],
        finish_reason: str | None,
        logprobs: dict[str, Any] | None = None,
    ) -> bytes:
        """One `chat.completion.chunk` event."""
        choice = {"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish_reason}
        return sse(_document(reply, self.chunk_object, choice))


class CompletionEndpoint:
    """`/v1/completions`: a prompt in, `text_completion` out."""

    id_prefix = "cmpl-"
    chunk_object = "text_completion"

    def parse(self, payload: dict[str, Any]) -> Request:
        """The prompt (the first one of a list) and the request's options."""
        prompt = payload.get("prompt")
        if isinstance(prompt, list):
            prompt = prompt[0] if prompt and isinstance(prompt[0], str) else ""
        if not isinstance(prompt, str):
            raise BadRequest("'prompt' must be a string or a list of strings", "prompt")
        return parse_request(payload, prompt, count_tokens(prompt))

    def body(self, reply: Reply) -> dict[str, Any]:
        """The non-stream `text_completion` document."""
        return _document(
            reply, "text_completion", self._choice(reply.text, reply.finish_reason)
        ) | {"usage": reply.usage()}

    def head(self, reply: Reply) -> list[bytes]:
        """Nothing precedes the text in a completion stream."""
        return []

    def piece(self, reply: Reply, text: str) -> bytes:
        """A text chunk."""
        return sse(_document(reply, "text_completion", self._choice(text, None)))

    def last(self, reply: Reply) -> bytes:
        """The chunk carrying the finish reason."""
        return sse(_document(reply, "text_completion", self._choice("", reply.finish_reason)))

    @staticmethod
    def _choice(text: str, finish_reason: str | None) -> dict[str, Any]:
        """One `text_completion` choice."""
        return {"index": 0, "text": text, "logprobs": None, "finish_reason": finish_reason}


Endpoint = ChatEndpoint | CompletionEndpoint
SYSTEM_FINGERPRINT = "fp_bitgate_sim"


def _logprobs(pieces: list[str]) -> dict[str, Any]:
    """Chat logprobs for the pieces: one made-up entry per piece."""
    entries: list[dict[str, Any]] = [
        {"token": p, "logprob": -0.01, "bytes": None, "top_logprobs": []} for p in pieces
    ]
    return {"content": entries}


def _document(reply: Reply, kind: str, choice: dict[str, Any]) -> dict[str, Any]:
    """The envelope every completion document and chunk shares."""
    return {
        "id": reply.id,
        "object": kind,
        "created": reply.created,
        "model": reply.model,
        "system_fingerprint": SYSTEM_FINGERPRINT,
        "choices": [choice],
    }


@dataclass(frozen=True, slots=True)
class StreamPlan:
    """A reply as stream frames: head, one frame per text piece, and a tail ending in [DONE]."""

    head: list[bytes]
    pieces: list[str]
    frames: list[bytes]
    tail: list[bytes]

    def whole(self) -> bytes:
        """Every frame at once, for an unpaced stream."""
        return b"".join([*self.head, *self.frames, *self.tail])


def plan_stream(endpoint: Endpoint, reply: Reply, include_usage: bool) -> StreamPlan:
    """The frames of a reply's stream; with `include_usage` a usage chunk precedes [DONE]."""
    pieces = reply.spoken()
    tail = [endpoint.last(reply)]
    if include_usage:
        usage = {
            **_document(reply, endpoint.chunk_object, {}),
            "choices": [],
            "usage": reply.usage(),
        }
        tail.append(sse(usage))
    tail.append(DONE)
    frames = [endpoint.piece(reply, piece) for piece in pieces]
    return StreamPlan(endpoint.head(reply), pieces, frames, tail)
