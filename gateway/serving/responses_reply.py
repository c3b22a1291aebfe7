"""`POST /v1/responses` out: chat completion chunks rewritten as a Responses object and events.

One writer serves both shapes: a finished result is replayed as chat chunks and fed through
it (its last state is the JSON response), and a live stream's chat events are fed as they
arrive, each turned into the Responses events OpenAI sends, `sequence_number`s in order.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncGenerator
from typing import Any

import orjson

from gateway.serving.replay import replay_chunks
from gateway.serving.responses_request import ResponsesRequest
from gateway.serving.result import Result
from router.wire import delta_of

INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def _id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _usage(chat: dict[str, Any] | None) -> dict[str, Any]:
    """Chat usage in the Responses shape (zeros when the miner reported none)."""
    chat = chat or {}
    prompt, output = _count(chat.get("prompt_tokens")), _count(chat.get("completion_tokens"))
    details = chat.get("completion_tokens_details")
    reasoning = _count(details.get("reasoning_tokens")) if isinstance(details, dict) else 0
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens": min(reasoning, output)},
        "total_tokens": prompt + output,
    }


def response_shell(request: ResponsesRequest, pool: str) -> dict[str, Any]:
    """The response object before any output: what the request asked, echoed."""
    text = request.text if request.text and "format" in request.text else None
    return {
        "id": _id("resp"),
        "object": "response",
        "created_at": int(time.time()),
        "status": "in_progress",
        "error": None,
        "incomplete_details": None,
        "model": pool,
        "output": [],
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "store": False,
        "text": text or {"format": {"type": "text"}},
        "tool_choice": request.tool_choice or "auto",
        "tools": request.tools or [],
        "truncation": "disabled",
        "usage": None,
        "user": request.user,
        "metadata": request.metadata or {},
        "instructions": request.instructions,
        "max_output_tokens": request.max_output_tokens,
        "parallel_tool_calls": request.parallel_tool_calls is not False,
        "temperature": request.temperature,
        "top_p": request.top_p,
    }


class ResponseWriter:
    """Turns chat completion chunks into Responses events, and keeps the response they build."""

    def __init__(self, response: dict[str, Any]) -> None:
        self.response = response
        self.sequence = 0
        self.output: list[dict[str, Any]] = response["output"]
        self.open: dict[str, Any] | None = None  # the item receiving deltas
        self.calls: dict[int, dict[str, Any]] = {}  # function_call items by chat tool index
        self.finish: str | None = None
        self.usage: dict[str, Any] | None = None
        self.block: dict[str, Any] | None = None

    def event(self, kind: str, **fields: Any) -> bytes:
        """One server-sent event, numbered."""
        payload = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"

    def start(self) -> list[bytes]:
        """`response.created` and `response.in_progress`."""
        return [
            self.event("response.created", response=self.response),
            self.event("response.in_progress", response=self.response),
        ]

    def feed(self, chunk: dict[str, Any]) -> list[bytes]:
        """The events of one chat completion chunk."""
        events: list[bytes] = []
        if isinstance(chunk.get("bitgate"), dict):
            self.block = chunk["bitgate"]
        if isinstance(chunk.get("usage"), dict):
            self.usage = chunk["usage"]
        delta = delta_of(chunk)
        if delta is None:
            return events
        if delta.reasoning:
            events += self._reasoning(delta.reasoning)
        if delta.text:
            events += self._text(delta.text)
        for position, call in enumerate(delta.calls):
            events += self._call(call, position)
        if delta.finish_reason:
            self.finish = delta.finish_reason
        return events

    def _close(self) -> list[bytes]:
        item, self.open = self.open, None
        if item is None:
            return []
        index = self.output.index(item)
        item["status"] = "completed"
        if item["type"] == "reasoning":
            text = item["content"][0]["text"]
            where = {"item_id": item["id"], "output_index": index, "content_index": 0}
            return [
                self.event("response.reasoning_text.done", **where, text=text),
                self.event("response.output_item.done", output_index=index, item=item),
            ]
        if item["type"] == "message":
            part = item["content"][0]
            where = {"item_id": item["id"], "output_index": index, "content_index": 0}
            return [
                self.event("response.output_text.done", **where, text=part["text"], logprobs=[]),
                self.event("response.content_part.done", **where, part=part),
                self.event("response.output_item.done", output_index=index, item=item),
            ]
        return [
            self.event(
                "response.function_call_arguments.done",
                item_id=item["id"],
                output_index=index,
                name=item["name"],
                arguments=item["arguments"],
            ),
            self.event("response.output_item.done", output_index=index, item=item),
        ]

    def _add(self, item: dict[str, Any]) -> list[bytes]:
        events = self._close()
        self.output.append(item)
        self.open = item
        shown = {**item, "content": []} if item["type"] == "message" else dict(item)
        if item["type"] == "function_call":
            shown["arguments"] = ""
        return [
            *events,
            self.event("response.output_item.added", output_index=len(self.output) - 1, item=shown),
        ]

    def _text(self, text: str) -> list[bytes]:
        events: list[bytes] = []
        item = self.open
        if item is None or item["type"] != "message":
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            item = {
                "id": _id("msg"),
                "type": "message",
                "status": "in_progress",
                "role": "assistant",
                "content": [part],
            }
            events += self._add(item)
            where = {"item_id": item["id"], "output_index": len(self.output) - 1}
            events.append(
                self.event("response.content_part.added", **where, content_index=0, part=dict(part))
            )
        item["content"][0]["text"] += text
        where = {"item_id": item["id"], "output_index": self.output.index(item)}
        return [
            *events,
            self.event(
                "response.output_text.delta", **where, content_index=0, delta=text, logprobs=[]
            ),
        ]

    def _reasoning(self, text: str) -> list[bytes]:
        """A miner's reasoning, as a `reasoning` item of `reasoning_text` (as vLLM sends it)."""
        events: list[bytes] = []
        item = self.open
        if item is None or item["type"] != "reasoning":
            item = {
                "id": _id("rs"),
                "type": "reasoning",
                "status": "in_progress",
                "summary": [],
                "content": [{"type": "reasoning_text", "text": ""}],
            }
            events += self._add(item)
        item["content"][0]["text"] += text
        where = {"item_id": item["id"], "output_index": self.output.index(item)}
        return [
            *events,
            self.event("response.reasoning_text.delta", **where, content_index=0, delta=text),
        ]

    def _call(self, call: dict[str, Any], position: int) -> list[bytes]:
        events: list[bytes] = []
        index = call.get("index", position)
        index = index if isinstance(index, int) else position
        function = call.get("function")
        function = function if isinstance(function, dict) else {}
        item = self.calls.get(index)
        arguments = function.get("arguments")
        if item is None:
            call_id = call.get("id")
            item = {
                "id": _id("fc"),
                "type": "function_call",
                "status": "in_progress",
                "call_id": call_id if isinstance(call_id, str) and call_id else _id("call"),
                "name": str(function.get("name") or ""),
                "arguments": "",
            }
            self.calls[index] = item
            events += self._add(item)
        if isinstance(arguments, str) and arguments:
            item["arguments"] += arguments
            where = {"item_id": item["id"], "output_index": self.output.index(item)}
            events.append(
                self.event("response.function_call_arguments.delta", **where, delta=arguments)
            )
        return events

    def complete(self) -> list[bytes]:
        """Close the open item and send `response.completed` (or `.incomplete`)."""
        events = self._close()
        response = self.response
        response["usage"] = _usage(self.usage)
        reason = INCOMPLETE.get(self.finish or "")
        response["status"] = "incomplete" if reason else "completed"
        if reason:
            response["incomplete_details"] = {"reason": reason}
        if self.block is not None:
            response["bitgate"] = self.block
        kind = "response.incomplete" if reason else "response.completed"
        return [*events, self.event(kind, response=response)]

    def fail(self, error: dict[str, Any]) -> list[bytes]:
        """An `error` event and `response.failed`, for a stream that broke after it began."""
        message = str(error.get("message") or "The response failed.")
        code = error.get("code") or "server_error"
        self.response["status"] = "failed"
        self.response["error"] = {"code": code, "message": message}
        if self.block is not None:
            self.response["bitgate"] = self.block
        return [
            self.event("error", code=code, message=message, param=error.get("param")),
            self.event("response.failed", response=self.response),
        ]


def response_document(result: Result, shell: dict[str, Any]) -> dict[str, Any]:
    """A finished result as one Responses object, `bitgate` block included."""
    writer = ResponseWriter(shell)
    for chunk in replay_chunks(result):
        writer.feed(chunk)
    writer.complete()
    return writer.response


def _chat_events(data: bytes) -> list[dict[str, Any] | None]:
    """The chat chunks in SSE bytes (None for `[DONE]`); comments and junk skipped."""
    chunks: list[dict[str, Any] | None] = []
    for line in data.split(b"\n"):
        if not line.startswith(b"data: "):
            continue
        payload = line[6:].strip()
        if payload == b"[DONE]":
            chunks.append(None)
            continue
        try:
            chunk = orjson.loads(payload)
        except orjson.JSONDecodeError:
            continue
        if isinstance(chunk, dict):
            chunks.append(chunk)
    return chunks


async def response_events(
    chat: AsyncGenerator[bytes, None], writer: ResponseWriter
) -> AsyncGenerator[bytes, None]:
    """A chat completion event stream rewritten as Responses events.

    The chat stream is closed when this one ends or the client leaves, so a race settles
    (or abandons) its miner calls at once.
    """
    try:
        for event in writer.start():
            yield event
        async for data in chat:
            if data.startswith(b":"):
                yield data  # keep-alive comment
                continue
            for chunk in _chat_events(data):
                if chunk is None:
                    break
                if isinstance(chunk.get("bitgate"), dict):
                    writer.block = chunk["bitgate"]
                if isinstance(chunk.get("error"), dict):
                    for event in writer.fail(chunk["error"]):
                        yield event
                    return
                for event in writer.feed(chunk):
                    yield event
        for event in writer.complete():
            yield event
    finally:
        await chat.aclose()
