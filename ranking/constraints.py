"""What a request asks of a reply's form: JSON, a JSON schema, tool calls, its own stop and limit.

`constraints_of(request)` reads the OpenAI fields `response_format`, `tools`, `tool_choice`,
`stop`, `max_tokens`/`max_completion_tokens` once per request, checks them (schemas compiled
and bounded, see `ranking.schema`) and raises `ConstraintError` naming the parameter when the
client sent something unusable, which the gateway answers with a 400.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from ranking.base import ToolCall
from ranking.schema import Budget, CompiledSchema, SchemaRefused, compile_budget, compile_schema

JsonMode = Literal["text", "json_object", "json_schema"]
ToolChoice = Literal["auto", "none", "required", "named"]
MAX_TOOLS = 128
_TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_CALL_VALUE_CHARS = 200


class ConstraintError(ValueError):
    """A request field that cannot be honoured; `param` names it for the 400."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param


@dataclass(frozen=True, slots=True)
class Tool:
    """An offered function: its name, and its compiled `parameters` schema (None: any object)."""

    name: str
    parameters: CompiledSchema | None
    strict: bool = False


@dataclass(frozen=True, slots=True)
class Constraints:
    """The request's demands on a reply's form, checked and compiled."""

    json: JsonMode = "text"
    schema: CompiledSchema | None = None
    strict: bool = False
    tools: Mapping[str, Tool] = field(default_factory=dict)
    tool_choice: ToolChoice = "auto"
    named_tool: str | None = None
    has_stop: bool = False
    max_tokens: int | None = None

    @property
    def wants_json(self) -> bool:
        """Whether the reply's content must be JSON."""
        return self.json != "text"


def _size(value: Any) -> int:
    return len(orjson.dumps(value))


def _schema(value: Any, strict: bool, param: str, budget: Budget) -> CompiledSchema:
    try:
        return compile_schema(value, strict, _size(value), budget)
    except SchemaRefused as exc:
        raise ConstraintError(f"{param}: {exc}", param) from None


def _response_format(value: Any, budget: Budget) -> tuple[JsonMode, CompiledSchema | None, bool]:
    if value is None:
        return "text", None, False
    if not isinstance(value, dict):
        raise ConstraintError("response_format must be an object", "response_format")
    kind = value.get("type")
    if kind == "text":
        return "text", None, False
    if kind == "json_object":
        return "json_object", None, False
    if kind != "json_schema":
        raise ConstraintError(
            "response_format.type must be text, json_object or json_schema",
            "response_format.type",
        )
    spec = value.get("json_schema")
    if not isinstance(spec, dict):
        raise ConstraintError(
            "response_format.json_schema must be an object", "response_format.json_schema"
        )
    strict = spec.get("strict") is True
    schema = spec.get("schema", {})
    compiled = _schema(schema, strict, "response_format.json_schema.schema", budget)
    return "json_schema", compiled, strict


def _tools(value: Any, budget: Budget) -> dict[str, Tool]:
    if value is None:
        return {}
    if not isinstance(value, list) or len(value) > MAX_TOOLS:
        raise ConstraintError(f"tools must be a list of at most {MAX_TOOLS} tools", "tools")
    tools: dict[str, Tool] = {}
    for i, tool in enumerate(value):
        param = f"tools[{i}]"
        function = tool.get("function") if isinstance(tool, dict) else None
        if (
            not isinstance(tool, dict)
            or tool.get("type") != "function"
            or not isinstance(function, dict)
        ):
            raise ConstraintError(f"{param} must be a function tool", param)
        name = function.get("name")
        if not isinstance(name, str) or not _TOOL_NAME.match(name):
            raise ConstraintError(
                f"{param}.function.name must match {_TOOL_NAME.pattern}", f"{param}.function.name"
            )
        strict = function.get("strict") is True
        parameters = function.get("parameters")
        schema = (
            None
            if parameters is None
            else _schema(parameters, strict, f"{param}.function.parameters", budget)
        )
        tools[name] = Tool(name, schema, strict)
    return tools


def _tool_choice(value: Any, tools: Mapping[str, Tool]) -> tuple[ToolChoice, str | None]:
    if value is None or value == "auto":
        return ("auto" if tools else "none"), None
    if value == "none":
        return "none", None
    if value == "required":
        if not tools:
            raise ConstraintError("tool_choice 'required' needs tools", "tool_choice")
        return "required", None
    function = value.get("function") if isinstance(value, dict) else None
    name = function.get("name") if isinstance(function, dict) else None
    if not isinstance(name, str):
        raise ConstraintError(
            "tool_choice must be none, auto, required or {type: function, function: {name}}",
            "tool_choice",
        )
    if name not in tools:
        message = f"tool_choice names '{name[:64]}', which is not in tools"
        raise ConstraintError(message, "tool_choice")
    return "named", name


def _max_tokens(raw: Mapping[str, Any]) -> int | None:
    for key in ("max_completion_tokens", "max_tokens"):
        value = raw.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def constraints_of(raw: Mapping[str, Any], chat: bool = True) -> Constraints | None:
    """The request's constraints, or None when it asks only for text with no stop or limit."""
    json: JsonMode = "text"
    schema, strict, tools = None, False, {}
    choice: ToolChoice = "none"
    named = None
    if chat:
        budget = compile_budget()  # every schema of the request together
        json, schema, strict = _response_format(raw.get("response_format"), budget)
        tools = _tools(raw.get("tools"), budget)
        choice, named = _tool_choice(raw.get("tool_choice"), tools)
    stop = raw.get("stop")
    has_stop = bool(stop) and isinstance(stop, str | list)
    max_tokens = _max_tokens(raw)
    if json == "text" and not tools and not has_stop and max_tokens is None:
        return None
    return Constraints(json, schema, strict, tools, choice, named, has_stop, max_tokens)


def _value_text(value: Any) -> str:
    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    return text[:_CALL_VALUE_CHARS]


def call_text(calls: Sequence[ToolCall]) -> str:
    """Tool calls as text rankers can compare: `name(arg=value, ...)`, keys sorted."""
    lines = []
    for call in calls:
        try:
            arguments = orjson.loads(call.arguments)
        except orjson.JSONDecodeError:
            lines.append(f"{call.name}({call.arguments[:_CALL_VALUE_CHARS]})")
            continue
        if isinstance(arguments, dict):
            args = ", ".join(f"{k}={_value_text(arguments[k])}" for k in sorted(arguments))
        else:
            args = _value_text(arguments)
        lines.append(f"{call.name}({args})")
    return "\n".join(lines)


def tool_calls_of(message: Mapping[str, Any]) -> tuple[ToolCall, ...]:
    """The function calls of an OpenAI assistant message (malformed entries kept as nameless)."""
    calls = message.get("tool_calls")
    if not isinstance(calls, list):
        return ()
    out = []
    for call in calls:
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict):
            out.append(ToolCall("", ""))
            continue
        name, arguments = function.get("name"), function.get("arguments")
        # Arguments that are not a string break OpenAI clients: kept empty, so they fail.
        out.append(
            ToolCall(
                name if isinstance(name, str) else "",
                arguments if isinstance(arguments, str) else "",
            )
        )
    return tuple(out)
