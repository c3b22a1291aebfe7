"""Property tests: no body a client sends makes parsing or forwarding raise anything but a 400."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import router.json_shape as bounds
from gateway.config import PoolConfig
from gateway.door.bounds import InputLimits, check_shape, json_shape
from gateway.door.ingress import parse_request
from gateway.errors import BadRequest
from gateway.protocol import ChatCompletionRequest, CompletionRequest
from gateway.serving.plan import miner_body, prompt_of

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Values well above what the bodies below hold, so that the depth limit alone stands
# between the 300-level example and the miners' serialiser.
LIMITS = InputLimits(max_depth=8, max_values=2000, max_messages=8, max_prompt_chars=2000)
POOL = PoolConfig(metagraph=Path("m.json"))

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=30,
)
roles = st.sampled_from(["system", "user", "assistant", "tool", "wizard", ""])
contents = (
    st.text()
    | st.none()
    | st.lists(
        st.dictionaries(st.sampled_from(["type", "text"]), json_values, max_size=2), max_size=3
    )
)
messages = st.lists(
    st.fixed_dictionaries({"role": roles, "content": contents}) | json_values, max_size=10
)
chat_bodies = st.fixed_dictionaries(
    {"model": st.text(max_size=8), "messages": messages},
    optional={
        "stream": json_values,
        "max_tokens": json_values,
        "temperature": json_values,
        "bitgate": json_values,
        "metadata": json_values,
        "stream_options": json_values,
        "guided_json": json_values,
    },
)
completion_bodies = st.fixed_dictionaries(
    {"model": st.text(max_size=8), "prompt": st.text() | st.lists(st.text()) | json_values},
    optional={"bitgate": json_values, "n": json_values, "extra": json_values},
)


def reference_depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((reference_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((reference_depth(v) for v in value), default=0)
    return 0


def reference_objects_and_strings(value: Any) -> tuple[int, int]:
    """Objects, and strings (keys included), of a parsed JSON value."""
    if isinstance(value, dict):
        inner = [reference_objects_and_strings(v) for v in value.values()]
        return 1 + sum(o for o, _ in inner), len(value) + sum(s for _, s in inner)
    if isinstance(value, list):
        inner = [reference_objects_and_strings(v) for v in value]
        return sum(o for o, _ in inner), sum(s for _, s in inner)
    return 0, int(isinstance(value, str))


@FAST
@given(json_values, st.sampled_from([1, 2, 3, 7, 64 * 1024]))
def test_json_depth_matches_the_parsed_document_however_the_bytes_are_chunked(
    value: Any, chunk: int
) -> None:
    document = json.dumps(value).encode()
    original = bounds.SCAN_CHUNK
    bounds.SCAN_CHUNK = chunk
    try:
        shape = json_shape(document)
        assert shape.depth == reference_depth(value)
        assert (shape.objects, shape.strings) == reference_objects_and_strings(value)
    finally:
        bounds.SCAN_CHUNK = original


@FAST
@given(st.binary(max_size=300))
def test_any_bytes_are_a_request_or_a_400(body: bytes) -> None:
    try:
        check_shape(json_shape(body), LIMITS)
        parse_request(body, ChatCompletionRequest, LIMITS)
    except BadRequest as exc:
        assert exc.status == 400 and exc.message


def nested(levels: int) -> Any:
    value: Any = []
    for _ in range(levels - 1):
        value = [value]
    return value


# What once reached the miners' serialiser and failed there (a 500): 300 levels, past the 254
# orjson can write, in a field the miners are sent, so only the shape check stands in its way.
DEEP_FORWARDED = {
    "model": "m",
    "messages": [{"role": "user", "content": "hi"}],
    "guided_json": nested(300),
}


@FAST
@example(("chat", DEEP_FORWARDED))
@given(
    st.one_of(
        chat_bodies.map(lambda b: ("chat", b)), completion_bodies.map(lambda b: ("completion", b))
    )
)
def test_whatever_validates_can_be_ranked_and_forwarded(
    kind_body: tuple[str, dict[str, Any]],
) -> None:
    kind, body = kind_body
    model = ChatCompletionRequest if kind == "chat" else CompletionRequest
    try:
        document = json.dumps(body).encode()
        check_shape(json_shape(document), LIMITS)
        raw, _ = parse_request(document, model, LIMITS)
    except BadRequest as exc:
        assert exc.status == 400
        return
    assert reference_depth(body) <= LIMITS.max_depth  # a deeper body never gets this far
    prompt = prompt_of("chat" if kind == "chat" else "completion", raw)
    assert isinstance(prompt.text, str)
    for stream in (False, True):
        forwarded = orjson.loads(
            miner_body("chat" if kind == "chat" else "completion", raw, POOL, stream)
        )
        assert "bitgate" not in forwarded and "metadata" not in forwarded
        assert forwarded["stream"] is stream


def test_at_the_default_depth_limit_a_body_is_forwarded_and_one_level_deeper_refused() -> None:
    limits = InputLimits()
    for levels, refused in ((limits.max_depth, False), (limits.max_depth + 1, True)):
        body = {**DEEP_FORWARDED, "guided_json": nested(levels - 1)}  # the object is a level
        document = json.dumps(body).encode()
        try:
            check_shape(json_shape(document), limits)
        except BadRequest as exc:
            assert refused and exc.code == "json_too_deep"
            continue
        assert not refused
        raw, _ = parse_request(document, ChatCompletionRequest, limits)
        forwarded = orjson.loads(miner_body("chat", raw, POOL, False))
        assert forwarded["guided_json"] == nested(levels - 1)
