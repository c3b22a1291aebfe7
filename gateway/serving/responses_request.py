"""`POST /v1/responses` in: the request type, and its translation to a chat completion.

The gateway is stateless: a Responses request becomes one chat request for the miners (which
stay plain chat servers), so the strategies, filters and rankers serve it unchanged. What
needs stored state (`previous_response_id`, `store`, `background`, item references) and the
built-in tools OpenAI runs itself are refused with a 400 naming the field.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from gateway.errors import BadRequest
from gateway.protocol import BitgateOptions, OpenAIModel

# OpenAI's own tools: they run inside OpenAI, not in a miner.
BUILT_IN_TOOLS = frozenset(
    {
        "web_search",
        "web_search_preview",
        "web_search_preview_2025_03_11",
        "file_search",
        "computer_use_preview",
        "code_interpreter",
        "image_generation",
        "mcp",
        "local_shell",
        "custom",
    }
)
ROLES = frozenset({"user", "system", "developer", "assistant"})
MAX_METADATA_KEYS = 16
# Where a chat field's error points in a Responses request.
PARAMS = {
    "max_tokens": "max_output_tokens",
    "response_format": "text.format",
    "response_format.type": "text.format.type",
    "response_format.json_schema": "text.format",
    "response_format.json_schema.schema": "text.format.schema",
    "messages": "input",
}


class ResponsesRequest(OpenAIModel):
    """`POST /v1/responses`: the fields the gateway checks itself (the rest are ignored)."""

    model: str = Field(min_length=1)
    input: str | list[dict[str, Any]] = Field(min_length=1)
    instructions: str | None = None
    max_output_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    stream: bool | None = False
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    text: dict[str, Any] | None = None
    metadata: dict[str, str] | None = None
    store: bool | None = None
    background: bool | None = None
    previous_response_id: str | None = None
    user: str | None = None
    bitgate: BitgateOptions | None = Field(
        default=None, description="The gateway's routing options for this request."
    )


def responses_param(param: str | None) -> str | None:
    """A chat request's parameter name as the Responses request calls it."""
    if param is None:
        return None
    if param in PARAMS:
        return PARAMS[param]
    return param.replace(".function.", ".") if param.startswith("tools[") else param


def refuse_stateful(request: ResponsesRequest, raw: dict[str, Any]) -> None:
    """400 for what a stateless gateway cannot do: stored responses, background runs."""
    if request.previous_response_id is not None:
        raise BadRequest(
            "This gateway is stateless and keeps no responses: send the whole conversation "
            "in 'input' instead of previous_response_id.",
            param="previous_response_id",
            code="unsupported_parameter",
        )
    if request.store:
        raise BadRequest(
            "This gateway keeps no responses; send store: false (or leave it out).",
            param="store",
            code="unsupported_parameter",
        )
    if request.background:
        raise BadRequest(
            "This gateway does not run responses in the background; leave out background.",
            param="background",
            code="unsupported_parameter",
        )
    if raw.get("conversation") is not None:
        raise BadRequest(
            "This gateway keeps no conversations; send the whole conversation in 'input'.",
            param="conversation",
            code="unsupported_parameter",
        )
    if raw.get("prompt") is not None:
        raise BadRequest(
            "This gateway has no stored prompt templates; send 'input'.",
            param="prompt",
            code="unsupported_parameter",
        )
    if request.metadata is not None and len(request.metadata) > MAX_METADATA_KEYS:
        raise BadRequest(f"metadata may hold at most {MAX_METADATA_KEYS} keys.", param="metadata")


def _part(part: Any, param: str) -> dict[str, Any]:
    """One content part as chat spells it."""
    kind = part.get("type") if isinstance(part, dict) else None
    if kind in ("input_text", "output_text", "text") and isinstance(part.get("text"), str):
        return {"type": "text", "text": part["text"]}
    if kind == "input_image":
        url = part.get("image_url")
        if not isinstance(url, str):
            raise BadRequest(
                "input_image needs an image_url (file_id needs stored files, which this "
                "gateway does not keep).",
                param=f"{param}.image_url",
            )
        image: dict[str, Any] = {"url": url}
        if isinstance(part.get("detail"), str):
            image["detail"] = part["detail"]
        return {"type": "image_url", "image_url": image}
    raise BadRequest(
        f"Content parts of type '{str(kind)[:64]}' are not supported here; "
        "send input_text or input_image.",
        param=f"{param}.type",
    )


def _content(content: Any, param: str) -> str | list[dict[str, Any]]:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise BadRequest("content must be a string or a list of parts.", param=param)
    parts = [_part(p, f"{param}[{i}]") for i, p in enumerate(content)]
    if all(p["type"] == "text" for p in parts):
        return "\n".join(p["text"] for p in parts)
    return parts


def _function_call(item: dict[str, Any], param: str) -> dict[str, Any]:
    """A `function_call` input item as one tool call of an assistant message."""
    call_id, name, arguments = item.get("call_id"), item.get("name"), item.get("arguments")
    if not (isinstance(call_id, str) and isinstance(name, str) and isinstance(arguments, str)):
        raise BadRequest(
            "function_call items need call_id, name and arguments as strings.", param=param
        )
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def messages_of(request: ResponsesRequest) -> list[dict[str, Any]]:
    """The chat messages of `instructions` and `input`."""
    messages: list[dict[str, Any]] = []
    if request.instructions:
        messages.append({"role": "system", "content": request.instructions})
    if isinstance(request.input, str):
        return [*messages, {"role": "user", "content": request.input}]
    for i, item in enumerate(request.input):
        _add_item(messages, item, f"input[{i}]")
    if not messages:
        raise BadRequest("input holds no message.", param="input")
    return messages


def _add_item(messages: list[dict[str, Any]], item: dict[str, Any], param: str) -> None:
    """One input item appended to `messages` as chat spells it."""
    kind = item.get("type", "message")
    if kind == "message":
        role = item.get("role")
        if not isinstance(role, str) or role not in ROLES:
            raise BadRequest(
                f"role must be one of {', '.join(sorted(ROLES))}.", param=f"{param}.role"
            )
        messages.append(
            {"role": role, "content": _content(item.get("content"), f"{param}.content")}
        )
    elif kind == "function_call":
        call = _function_call(item, param)
        last = messages[-1] if messages else None
        if last is not None and last["role"] == "assistant" and "tool_calls" in last:
            last["tool_calls"].append(call)
        else:
            messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
    elif kind == "function_call_output":
        if not isinstance(item.get("call_id"), str):
            raise BadRequest("function_call_output items need a call_id.", param=f"{param}.call_id")
        output = _content(item.get("output"), f"{param}.output")
        messages.append({"role": "tool", "tool_call_id": item["call_id"], "content": output})
    elif kind == "item_reference":
        raise BadRequest(
            "This gateway is stateless and cannot resolve item references; send the item "
            "itself (with the AI SDK, set providerOptions.openai.store to false).",
            param=f"{param}.type",
            code="unsupported_parameter",
        )
    elif kind != "reasoning":  # a model's reasoning is not sent back to a miner
        raise BadRequest(
            f"Input items of type '{str(kind)[:64]}' are not supported by this stateless gateway; "
            "send message, function_call or function_call_output items.",
            param=f"{param}.type",
        )


def _tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Function tools as chat spells them; OpenAI's built-in tools refused."""
    chat: list[dict[str, Any]] = []
    for i, tool in enumerate(tools):
        kind = tool.get("type")
        if isinstance(kind, str) and kind in BUILT_IN_TOOLS:
            raise BadRequest(
                f"The built-in tool '{kind}' runs inside OpenAI; this gateway offers only "
                "function tools.",
                param=f"tools[{i}].type",
                code="unsupported_parameter",
            )
        if kind != "function":
            raise BadRequest(f"tools[{i}] must be a function tool.", param=f"tools[{i}].type")
        function = {
            k: tool[k] for k in ("name", "description", "parameters", "strict") if k in tool
        }
        chat.append({"type": "function", "function": function})
    return chat


def _tool_choice(choice: str | dict[str, Any]) -> str | dict[str, Any]:
    if isinstance(choice, str):
        return choice
    if choice.get("type") == "function" and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}
    raise BadRequest(
        "tool_choice must be none, auto, required or {type: function, name}.",
        param="tool_choice",
    )


def _response_format(text: dict[str, Any]) -> dict[str, Any] | None:
    """`text.format` as chat's `response_format`."""
    spec = text.get("format")
    if spec is None:
        return None
    if not isinstance(spec, dict) or spec.get("type") not in ("text", "json_object", "json_schema"):
        raise BadRequest(
            "text.format.type must be text, json_object or json_schema.", param="text.format.type"
        )
    if spec["type"] != "json_schema":
        return {"type": spec["type"]}
    schema = {k: spec[k] for k in ("name", "description", "schema", "strict") if k in spec}
    return {"type": "json_schema", "json_schema": schema}


def chat_request(request: ResponsesRequest, raw: dict[str, Any]) -> dict[str, Any]:
    """The chat completion request a Responses request asks for."""
    refuse_stateful(request, raw)
    chat: dict[str, Any] = {
        "model": request.model,
        "messages": messages_of(request),
        "stream": bool(request.stream),
        "stream_options": {"include_usage": True},
    }
    if request.max_output_tokens is not None:
        chat["max_tokens"] = request.max_output_tokens
    for name in ("temperature", "top_p", "parallel_tool_calls", "user"):
        if raw.get(name) is not None:
            chat[name] = raw[name]
    if request.tools:
        chat["tools"] = _tools(request.tools)
    if request.tool_choice is not None:
        chat["tool_choice"] = _tool_choice(request.tool_choice)
    response_format = _response_format(request.text or {})
    if response_format is not None:
        chat["response_format"] = response_format
    if raw.get("bitgate") is not None:
        chat["bitgate"] = raw["bitgate"]
    return chat
