"""Bounded client input: JSON depth, messages, prompt text, max_tokens, forwarded fields."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from gateway.config import PoolConfig
from gateway.door.bounds import InputLimits, check_request, check_shape, json_shape
from gateway.errors import BadRequest
from gateway.serving.plan import miner_body
from tests.support import gateway, profiles

CHAT = {"model": "sim", "messages": [{"role": "user", "content": "What is the capital of France?"}]}


def nested(levels: int) -> bytes:
    """A JSON array `levels` deep (orjson itself cannot write one past 254)."""
    return b"[" * levels + b"]" * levels


def with_extra(levels: int) -> bytes:
    """The chat request with an extra field nested `levels` deep."""
    return orjson.dumps(CHAT)[:-1] + b',"metadata":' + nested(levels) + b"}"


@pytest.mark.parametrize(
    ("document", "depth"),
    [
        (b"1", 0),
        (b'"[[[{{{"', 0),
        (b"[]", 1),
        (b'{"a": [1, {"b": "]]]"}]}', 3),
        (b'{"a": "x\\"[[", "b": [[]]}', 3),
        (nested(300), 300),
    ],
)
def test_json_depth_counts_objects_and_arrays_not_brackets_in_strings(
    document: bytes, depth: int
) -> None:
    assert json_shape(document).depth == depth


def test_json_values_count_containers_and_commas_outside_strings() -> None:
    assert json_shape(b'{"a": [1, 2, 3], "b": ",,,[{"}').values == 5


def _check(raw: dict[str, Any], limits: InputLimits, body: bytes | None = None) -> BadRequest:
    with pytest.raises(BadRequest) as caught:
        check_shape(json_shape(body or orjson.dumps(raw)), limits)
        check_request(raw, limits)
    return caught.value


def test_check_input_names_the_limit_a_request_passes() -> None:
    limits = InputLimits(max_depth=8, max_values=50, max_messages=2, max_prompt_chars=10)
    deep = _check(orjson.loads(with_extra(20)), limits, with_extra(20))
    wide = _check({**CHAT, "metadata": [0] * 60}, limits)
    many = _check({"model": "sim", "messages": [{"role": "user", "content": "a"}] * 3}, limits)
    long = _check({"model": "sim", "prompt": "x" * 11}, limits)
    parts = [{"type": "text", "text": "y" * 6}] * 2
    long_parts = _check({"model": "sim", "messages": [{"role": "user", "content": parts}]}, limits)
    assert (deep.code, deep.param) == ("json_too_deep", None)
    assert (wide.code, wide.param) == ("json_too_large", None)
    assert (many.code, many.param) == ("too_many_messages", "messages")
    assert (long.code, long.param) == ("prompt_too_long", "prompt")
    assert (long_parts.code, long_parts.param) == ("prompt_too_long", "messages")
    short = {"model": "sim", "messages": [{"role": "user", "content": "a"}] * 2}
    check_shape(json_shape(orjson.dumps(short)), limits)
    check_request(short, limits)


def test_limits_admit_a_request_exactly_at_them() -> None:
    limits = InputLimits(max_depth=4, max_values=10, max_messages=2, max_prompt_chars=10)
    at = {"model": "sim", "messages": [{"role": "user", "content": "x" * 10}]}
    check_shape(json_shape(b"[" + b",".join([b"1"] * 10) + b"]"), limits)  # the array, 9 commas
    check_request(at, limits)
    over = _check({"model": "sim", "messages": [{"role": "user", "content": "x" * 11}]}, limits)
    assert over.code == "prompt_too_long"
    with pytest.raises(BadRequest, match="more than 10 JSON values"):
        check_shape(json_shape(b"[" + b",".join([b"1"] * 11) + b"]"), limits)


def test_a_responses_requests_instructions_and_input_count_toward_the_prompt() -> None:
    limits = InputLimits(max_prompt_chars=10)
    check_request({"model": "sim", "instructions": "x" * 5, "input": "y" * 5}, limits)
    over = _check({"model": "sim", "instructions": "x" * 6, "input": "y" * 5}, limits)
    assert (over.code, over.param) == ("prompt_too_long", "input")
    items = [{"role": "user", "content": [{"type": "input_text", "text": "y" * 6}]}] * 2
    listed = _check({"model": "sim", "input": items}, limits)
    assert (listed.code, listed.param) == ("prompt_too_long", "input")
    alone = _check({"model": "sim", "instructions": "x" * 11}, limits)
    assert alone.code == "prompt_too_long"


def test_only_allowed_fields_reach_the_miners() -> None:
    raw = {
        **CHAT,
        "temperature": 0.5,
        "tools": [],
        "min_p": 0.1,
        "bitgate": {"top_k": 2},
        "internal_debug": {"x": 1},
        "stream_options": {"include_usage": True},
    }
    default = orjson.loads(miner_body("chat", raw, PoolConfig(metagraph=Path("m")), False))
    own_list = PoolConfig(metagraph=Path("m"), forward_fields=["temperature"])
    narrowed = orjson.loads(miner_body("chat", raw, own_list, False))
    assert set(default) == {"messages", "temperature", "tools", "min_p", "stream"}
    assert set(narrowed) == {"messages", "temperature", "stream"}


@pytest.fixture
def pool_path(sim_pool: Callable[..., Any]) -> Path:
    _, path = sim_pool(profiles("good", "good"))
    return Path(path)


@pytest.fixture
def parsed(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of every document orjson parses while the test runs."""
    sizes: list[int] = []
    loads = orjson.loads

    def spy(document: Any) -> Any:
        sizes.append(len(document))
        return loads(document)

    monkeypatch.setattr(orjson, "loads", spy)
    return sizes


def test_json_nested_hundreds_of_levels_is_a_400_not_a_500(
    pool_path: Path, parsed: list[int]
) -> None:
    body = with_extra(400)
    with gateway(pool_path) as client:
        resp = client.post(
            "/v1/chat/completions", content=body, headers={"content-type": "application/json"}
        )
        after = client.post("/v1/chat/completions", json=CHAT)
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error["code"] == "json_too_deep" and "128 levels" in error["message"]
    assert after.status_code == 200
    assert len(body) not in parsed  # refused from its bytes, before anything parsed it


def test_a_body_of_a_million_tiny_elements_is_refused_before_it_is_parsed(
    pool_path: Path, parsed: list[int]
) -> None:
    body = orjson.dumps(CHAT)[:-1] + b',"metadata":[' + b",".join([b"{}"] * 500_000) + b"]}"
    with gateway(pool_path) as client:
        resp = client.post(
            "/v1/chat/completions", content=body, headers={"content-type": "application/json"}
        )
        refused_unparsed = len(body) not in parsed
        after = client.post("/v1/chat/completions", json=CHAT)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["code"] == "json_too_large"
    assert refused_unparsed  # refused from its bytes: orjson never saw it
    assert after.status_code == 200 and parsed  # ...though it parses the bodies it accepts


def test_too_many_messages_and_too_much_text_are_400(pool_path: Path) -> None:
    turns = [{"role": "user", "content": "hi"}] * 6
    with gateway(pool_path, max_messages=5, max_prompt_chars=100) as client:
        many = client.post("/v1/chat/completions", json={"model": "sim", "messages": turns})
        long = client.post("/v1/completions", json={"model": "sim", "prompt": "x" * 101})
    assert many.status_code == 400 and many.json()["error"]["param"] == "messages"
    assert long.status_code == 400 and long.json()["error"]["param"] == "prompt"


def test_max_tokens_over_the_pools_limit_is_400(pool_path: Path) -> None:
    with gateway(pool_path, routing={"max_tokens_limit": 64}) as client:
        over = client.post("/v1/chat/completions", json={**CHAT, "max_tokens": 65})
        newer = client.post("/v1/chat/completions", json={**CHAT, "max_completion_tokens": 100})
        within = client.post("/v1/chat/completions", json={**CHAT, "max_tokens": 64})
    assert over.status_code == 400 and over.json()["error"]["param"] == "max_tokens"
    assert newer.status_code == 400 and newer.json()["error"]["param"] == "max_completion_tokens"
    assert within.status_code == 200


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_tokens", b"65.0"),
        ("max_tokens", b"1e7"),
        ("max_tokens", b"10000000.0"),
        ("max_completion_tokens", b"5e6"),
        ("max_tokens", b"true"),
        ("max_tokens", b'"100000"'),
        ("n", b"true"),
    ],
)
def test_integer_caps_hold_for_floats_bools_and_strings(
    pool_path: Path, field: str, value: bytes
) -> None:
    # Failed before: the caps checked Python ints only, so 1e7 reached the miners.
    body = orjson.dumps(CHAT)[:-1] + b',"' + field.encode() + b'":' + value + b"}"
    with gateway(pool_path, routing={"max_tokens_limit": 64}) as client:
        resp = client.post(
            "/v1/chat/completions", content=body, headers={"content-type": "application/json"}
        )
        whole = client.post("/v1/chat/completions", json={**CHAT, "max_tokens": 64.0})
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["param"] == field
    assert whole.status_code == 200, whole.text
