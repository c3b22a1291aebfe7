"""A test double of vLLM's OpenAI server, shaped where it matters to a miner in front of it.

What it copies from vLLM (the version pinned in `miners/vllm_version.py`):
- idle connections are closed after 5 s (`VLLM_HTTP_TIMEOUT_KEEP_ALIVE`), and a request sent
  on one as it closes is lost: here, deterministically, any request on a connection idle past
  5 s has its connection dropped unanswered (the race a client reusing it would lose);
- `/health` is 503 until the model is "loaded" (`load_s`), and so is every other route;
- `/v1/models` lists the served model with its `max_model_len`;
- `tools` with `tool_choice` auto (or unset) is a 400 unless started with
  `--enable-auto-tool-choice --tool-call-parser P`;
- `prompt + max_tokens` past `max_model_len` is a 400; with no `max_tokens` it generates up
  to the rest of the context;
- `structured_outputs` is honoured; `guided_*` only before v0.12, ignored after (200, prose);
- an error mid-stream is `data: {"error": …}` then `data: [DONE]`;
- it never answers 429: past `max_num_seqs` requests wait their turn.

Tokens are words. A prompt holding `FAIL_MIDSTREAM` breaks its stream after two chunks.
`GET /_double/last` returns the last completion body it received.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler

from miners.sim.structured import instance

KEEP_ALIVE_S = 5.0
HOLD_IDLE_S = 60.0  # the socket itself stays open this long, so that the race can be lost
MIDSTREAM_FAILURE = "FAIL_MIDSTREAM"
WORD = "token"
JSON = {"Content-Type": "application/json"}


@dataclass
class VllmShape:
    """How the double behaves: its model, context, version and flags."""

    served_model_name: str = "double"
    max_model_len: int = 2048
    version: str = "0.33.0"
    auto_tool_choice: bool = False
    tool_call_parser: str | None = None
    load_s: float = 0.0
    max_num_seqs: int = 256
    token_delay_s: float = 0.0
    started: float = field(default_factory=time.monotonic)

    @property
    def honours_guided(self) -> bool:
        """Whether this version still reads the `guided_*` fields (dropped in v0.12)."""
        major, minor = (int(part) for part in self.version.split(".")[:2])
        return (major, minor) < (0, 12)


def _error(status: int, message: str, param: str | None = None) -> web.Response:
    """vLLM's error document."""
    kind = "BadRequestError" if status == 400 else "NotFoundError"
    body = {"error": {"message": message, "type": kind, "param": param, "code": status}}
    return web.Response(status=status, body=orjson.dumps(body), headers=JSON)


def _words(text: str) -> int:
    return len(text.split())


def _content(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


class VllmDouble:
    """The double's routes over one `VllmShape`."""

    def __init__(self, shape: VllmShape) -> None:
        self.shape = shape
        self.running = asyncio.Semaphore(shape.max_num_seqs)
        self.last: dict[str, Any] | None = None
        self.served = 0
        self.idle_since: dict[object, float] = {}  # transport → when its last reply ended
        self.dropped = 0

    @web.middleware
    async def keep_alive(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Drop, unanswered, a request on a connection idle past vLLM's keep-alive."""
        transport = request.transport
        idle = self.idle_since.pop(transport, None)
        if transport is not None and idle is not None and time.monotonic() - idle > KEEP_ALIVE_S:
            self.dropped += 1
            transport.abort()
            return web.Response(status=499)  # never reaches the client
        try:
            return await handler(request)
        finally:
            if transport is not None and not transport.is_closing():
                self.idle_since[transport] = time.monotonic()

    def app(self) -> web.Application:
        """The aiohttp application."""
        app = web.Application(middlewares=[self.keep_alive])
        app.router.add_get("/health", self.health)
        app.router.add_get("/version", self.version)
        app.router.add_get("/v1/models", self.models)
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_post("/v1/completions", self.completions)
        app.router.add_get("/_double/last", self.last_body)
        return app

    @property
    def loaded(self) -> bool:
        """Whether the model has finished loading."""
        return time.monotonic() - self.shape.started >= self.shape.load_s

    async def health(self, request: web.Request) -> web.Response:
        """200 once loaded."""
        return web.Response(status=200 if self.loaded else 503)

    async def version(self, request: web.Request) -> web.Response:
        """`{"version": …}`."""
        return web.json_response({"version": self.shape.version})

    async def last_body(self, request: web.Request) -> web.Response:
        """The last completion request body received."""
        return web.json_response(self.last)

    async def models(self, request: web.Request) -> web.Response:
        """The served model with its context length."""
        if not self.loaded:
            return web.Response(status=503)
        name = self.shape.served_model_name
        card = {
            "id": name,
            "object": "model",
            "created": int(time.time()),
            "owned_by": "vllm",
            "root": name,
            "parent": None,
            "max_model_len": self.shape.max_model_len,
            "permission": [],
        }
        return web.json_response({"object": "list", "data": [card]})

    async def chat(self, request: web.Request) -> web.StreamResponse:
        """`POST /v1/chat/completions`."""
        return await self._serve(request, chat=True)

    async def completions(self, request: web.Request) -> web.StreamResponse:
        """`POST /v1/completions`."""
        return await self._serve(request, chat=False)

    async def _serve(self, request: web.Request, chat: bool) -> web.StreamResponse:
        if not self.loaded:
            return web.Response(status=503)
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return _error(400, "request body is not valid JSON")
        if not isinstance(body, dict):
            return _error(400, "request body must be an object")
        self.last = body
        if body.get("model") not in (None, self.shape.served_model_name):
            return _error(404, f"The model `{body.get('model')}` does not exist.", "model")
        if chat:
            messages = body.get("messages")
            if not isinstance(messages, list) or not messages:
                return _error(400, "messages must be a non-empty list", "messages")
            prompt = " ".join(_content(m.get("content")) for m in messages if isinstance(m, dict))
            prompt_tokens = _words(prompt) + 4 * len(messages)
        else:
            asked = body.get("prompt")
            if not isinstance(asked, str):
                return _error(400, "prompt must be a string", "prompt")
            prompt = asked
            prompt_tokens = _words(prompt)
        refused = self._refusal(body, prompt_tokens, chat)
        if refused is not None:
            return refused
        limit = self.shape.max_model_len - prompt_tokens
        max_tokens = body.get("max_tokens") or body.get("max_completion_tokens") or limit
        async with self.running:  # never a 429: a request past max_num_seqs waits
            self.served += 1
            text, call = self._answer(body, int(max_tokens))
            if body.get("stream") is True:
                fail = MIDSTREAM_FAILURE in prompt
                return await self._stream(request, chat, text, call, fail)
            await asyncio.sleep(self.shape.token_delay_s * _words(text))
            return web.json_response(self._document(body, chat, text, call, prompt_tokens))

    def _refusal(self, body: dict[str, Any], prompt_tokens: int, chat: bool) -> web.Response | None:
        """The 400 vLLM answers before generating, if any."""
        tools, choice = body.get("tools"), body.get("tool_choice")
        if chat and tools and choice in (None, "auto") and not self.shape.auto_tool_choice:
            return _error(
                400,
                '"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser '
                "to be set",
            )
        max_tokens = body.get("max_tokens") or body.get("max_completion_tokens") or 0
        context = self.shape.max_model_len
        if prompt_tokens >= context or prompt_tokens + int(max_tokens) > context:
            return _error(
                400,
                f"This model's maximum context length is {context} tokens. However, you "
                f"requested {prompt_tokens + int(max_tokens)} tokens ({prompt_tokens} in the "
                f"messages, {max_tokens} in the completion). Please reduce the length of the "
                "messages or completion.",
            )
        return None

    def _answer(self, body: dict[str, Any], max_tokens: int) -> tuple[str, dict[str, Any] | None]:
        """The text (or tool call) it generates."""
        tools = body.get("tools")
        if tools and self.shape.auto_tool_choice and body.get("tool_choice") != "none":
            function = tools[0].get("function", {})
            arguments = instance(function.get("parameters", {"type": "object"}), "sky")
            call = {
                "id": f"chatcmpl-tool-{uuid.uuid4().hex}",
                "type": "function",
                "function": {
                    "name": function.get("name"),
                    "arguments": orjson.dumps(arguments).decode(),
                },
            }
            return "", call
        schema = self._schema(body)
        if schema is not None:
            return orjson.dumps(instance(schema, "sky")).decode(), None
        return " ".join([WORD] * max(1, min(max_tokens, 4096))), None

    def _schema(self, body: dict[str, Any]) -> Any:
        """The JSON schema it is held to, if any."""
        structured = body.get("structured_outputs")
        if isinstance(structured, dict) and "json" in structured:
            return structured["json"]
        if self.shape.honours_guided and "guided_json" in body:
            return body["guided_json"]
        response_format = body.get("response_format")
        if isinstance(response_format, dict) and response_format.get("type") == "json_schema":
            return response_format.get("json_schema", {}).get("schema", {})
        return None

    def _document(
        self,
        body: dict[str, Any],
        chat: bool,
        text: str,
        call: dict[str, Any] | None,
        prompt_tokens: int,
    ) -> dict[str, Any]:
        completion_tokens = _words(text) or 1
        if chat:
            message: dict[str, Any] = {"role": "assistant", "content": text or None}
            if call is not None:
                message["tool_calls"] = [call]
            choice: dict[str, Any] = {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if call else "stop",
            }
        else:
            choice = {"index": 0, "text": text, "finish_reason": "stop", "logprobs": None}
        return {
            "id": f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex}",
            "object": "chat.completion" if chat else "text_completion",
            "created": int(time.time()),
            "model": self.shape.served_model_name,
            "choices": [choice],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }

    async def _stream(
        self,
        request: web.Request,
        chat: bool,
        text: str,
        call: dict[str, Any] | None,
        fail: bool,
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        ident = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex}"
        pieces = [word + " " for word in text.split()] or [""]
        for index, piece in enumerate(pieces):
            if fail and index == 2:
                error = {
                    "message": "engine failed mid-stream",
                    "type": "InternalServerError",
                    "param": None,
                    "code": 500,
                }
                await response.write(b"data: " + orjson.dumps({"error": error}) + b"\n\n")
                break
            await response.write(self._chunk(ident, chat, piece, call if index == 0 else None))
            await asyncio.sleep(self.shape.token_delay_s)
        else:
            finish = "tool_calls" if call else "stop"
            await response.write(self._chunk(ident, chat, "", None, finish))
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    def _chunk(
        self,
        ident: str,
        chat: bool,
        piece: str,
        call: dict[str, Any] | None,
        finish: str | None = None,
    ) -> bytes:
        if chat:
            delta: dict[str, Any] = {"content": piece} if piece else {}
            if call is not None:
                delta["tool_calls"] = [{"index": 0, **call}]
            choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": finish}
        else:
            choice = {"index": 0, "text": piece, "finish_reason": finish, "logprobs": None}
        chunk = {
            "id": ident,
            "object": "chat.completion.chunk" if chat else "text_completion",
            "created": int(time.time()),
            "model": self.shape.served_model_name,
            "choices": [choice],
        }
        return b"data: " + orjson.dumps(chunk) + b"\n\n"


async def start_double(shape: VllmShape, host: str, port: int) -> web.AppRunner:
    """Serve the double on host:port."""
    runner = web.AppRunner(VllmDouble(shape).app(), access_log=None, keepalive_timeout=HOLD_IDLE_S)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


def write_fake_vllm(directory: Path) -> Path:
    """An executable `vllm` in `directory` that runs tests/fake_vllm.py (the double)."""
    root = Path(__file__).resolve().parents[1]
    executable = directory / "vllm"
    executable.write_text(
        f'#!/bin/sh\nPYTHONPATH={root} exec {sys.executable} {root}/tests/fake_vllm.py "$@"\n'
    )
    executable.chmod(0o755)
    return executable
