"""What a simulated miner says when asked for JSON or offered tools: right, wrong or prose.

- `follow`: JSON that conforms to the schema; the right call with conforming arguments.
- `prose`: its usual prose answer to both.
- `broken_json`: the conforming JSON cut in half; the right function with arguments cut.
- `wrong_json`: JSON missing a required field (or mistyped); the right function, a field
  missing.
- `wrong_tool`: as wrong_json for `response_format`; a function that was not offered.

Values come from the prompt: a string is the prompt's first proper noun (or keyword).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

from miners.sim.profiles import Structured
from miners.sim.questions import keywords

MAX_DEPTH = 8
_FORMATS = {
    "date-time": "2026-01-01T12:00:00Z",
    "date": "2026-01-01",
    "time": "12:00:00Z",
    "email": "sim@example.com",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "ipv4": "127.0.0.1",
    "ipv6": "::1",
}
_PROPER = re.compile(r"(?<=[\s,;:(])([A-Z][a-z]+)")


@dataclass(frozen=True, slots=True)
class Asked:
    """The structured-output fields of a request, as a sim miner reads them."""

    response_format: dict[str, Any] | None
    tools: list[dict[str, Any]]
    tool_choice: Any

    @classmethod
    def of(cls, payload: dict[str, Any]) -> Asked:
        """The fields, ignoring any that are not the right shape."""
        fmt = payload.get("response_format")
        tools = payload.get("tools")
        return cls(
            fmt if isinstance(fmt, dict) and fmt.get("type") != "text" else None,
            [t for t in tools if isinstance(t, dict)] if isinstance(tools, list) else [],
            payload.get("tool_choice"),
        )

    @property
    def wants_call(self) -> bool:
        """Whether the request offers tools and does not forbid calling them."""
        return bool(self.tools) and self.tool_choice != "none"

    def tool(self) -> dict[str, Any]:
        """The function to call: the named one, else the first offered."""
        functions = [t.get("function") or {} for t in self.tools]
        named = self.tool_choice.get("function") if isinstance(self.tool_choice, dict) else None
        if isinstance(named, dict):
            for function in functions:
                if function.get("name") == named.get("name"):
                    return function
        return functions[0]


def subject(prompt: str) -> str:
    """The word a string value takes: the prompt's first proper noun, else its first keyword."""
    proper = _PROPER.findall(prompt)
    return proper[0] if proper else (keywords(prompt) or ["sim"])[0]


def instance(schema: Any, word: str, root: Any = None, depth: int = 0) -> Any:
    """A value that conforms to the schema (for the keywords sim requests use)."""
    root = schema if root is None else root
    if not isinstance(schema, dict) or depth > MAX_DEPTH:
        return {}
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part, {}) if isinstance(target, dict) else {}
        return instance(target, word, root, depth + 1)
    for combined in ("anyOf", "oneOf", "allOf"):
        if isinstance(schema.get(combined), list) and schema[combined]:
            return instance(schema[combined][0], word, root, depth + 1)
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        properties = schema.get("properties") or {}
        return {k: instance(v, word, root, depth + 1) for k, v in properties.items()}
    if kind == "array":
        count = max(1, int(schema.get("minItems", 1)))
        return [instance(schema.get("items", {}), word, root, depth + 1)] * count
    if kind in ("integer", "number"):
        low, above = schema.get("minimum"), schema.get("exclusiveMinimum")
        if not isinstance(low, int | float):
            low = above + 1 if isinstance(above, int | float) else 1
        return int(low) if kind == "integer" else float(low)
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return _string(schema, word)


def _string(schema: dict[str, Any], word: str) -> str:
    text = _FORMATS.get(str(schema.get("format")), word)
    text = text.ljust(int(schema.get("minLength", 0)), "x")
    return text[: int(schema["maxLength"])] if "maxLength" in schema else text


def spoil(value: Any, schema: Any) -> Any:
    """The value made to miss the schema: a required field dropped, or a field mistyped."""
    if not isinstance(value, dict):
        return {"unexpected": value}
    required = schema.get("required") if isinstance(schema, dict) else None
    if isinstance(required, list) and required and required[0] in value:
        return {k: v for k, v in value.items() if k != required[0]}
    if value:
        key = next(iter(value))
        return {**value, key: 12345 if isinstance(value[key], str) else "12345"}
    return ["not", "an", "object"]


def _schema_of(response_format: dict[str, Any]) -> Any:
    spec = response_format.get("json_schema")
    if response_format.get("type") == "json_schema" and isinstance(spec, dict):
        return spec.get("schema", {})
    return {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}


def _shaped(schema: Any, word: str, behaviour: Structured) -> str:
    """The JSON text a miner of this behaviour writes for the schema."""
    value = instance(schema, word)
    if behaviour in ("wrong_json", "wrong_tool"):
        value = spoil(value, schema)
    text = orjson.dumps(value).decode()
    return text[: max(1, len(text) // 2)] if behaviour == "broken_json" else text


def json_reply(asked: Asked, prompt: str, behaviour: Structured) -> str | None:
    """The content a miner writes for `response_format`, or None to answer in prose."""
    if asked.response_format is None or behaviour == "prose":
        return None
    return _shaped(_schema_of(asked.response_format), subject(prompt), behaviour)


def tool_call(asked: Asked, prompt: str, behaviour: Structured) -> tuple[str, str] | None:
    """The (function name, arguments) a miner calls with, or None to answer in prose."""
    if not asked.wants_call or behaviour == "prose":
        return None
    function = asked.tool()
    name = str(function.get("name", "tool"))
    parameters = function.get("parameters") or {"type": "object", "properties": {}}
    if behaviour == "wrong_tool":
        return f"{name}_v2", _shaped(parameters, subject(prompt), "follow")
    return name, _shaped(parameters, subject(prompt), behaviour)
