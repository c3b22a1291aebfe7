"""Fitting requests to the pinned vLLM: structured-output fields, context, tool parsers."""

from __future__ import annotations

from typing import Any

import pytest

from miners.fit import Context, DoesNotFit, fit
from miners.upstream import upstream_keepalive_s
from miners.validators import answer_availability
from miners.vllm_version import honours_guided, tool_call_parser_for

SCHEMA = {"type": "object"}


def chat(**fields: Any) -> dict[str, Any]:
    """A chat body."""
    return {"messages": [{"role": "user", "content": "Why is the sky blue?"}], **fields}


def test_guided_fields_become_structured_outputs() -> None:
    payload = chat(guided_json=SCHEMA, max_tokens=8)
    assert fit(payload, Context())
    assert payload["structured_outputs"] == {"json": SCHEMA} and "guided_json" not in payload


def test_structured_outputs_given_are_kept() -> None:
    payload = chat(guided_regex="a+", structured_outputs={"choice": ["x"]}, max_tokens=8)
    fit(payload, Context())
    assert payload["structured_outputs"] == {"choice": ["x"]} and "guided_regex" not in payload


def test_a_request_that_fits_is_left_alone() -> None:
    payload = chat(max_tokens=100)
    assert not fit(payload, Context(max_model_len=2048))
    assert payload["max_tokens"] == 100


def test_no_max_tokens_gets_the_default_within_the_room_left() -> None:
    payload = chat()
    assert fit(payload, Context(max_model_len=2048, default_max_tokens=512))
    assert payload["max_tokens"] == 512
    small = chat()
    fit(small, Context(max_model_len=10, default_max_tokens=512))
    assert 0 < small["max_tokens"] <= 10


def test_max_tokens_past_the_room_left_is_clamped() -> None:
    payload = {"prompt": "x" * 4000, "max_tokens": 1500}
    assert fit(payload, Context(max_model_len=2048))
    assert payload["max_tokens"] == 2048 - 1000


@pytest.mark.parametrize(
    ("payload", "param"),
    [
        (chat(max_tokens=2048), "max_tokens"),
        (chat(max_completion_tokens=4096.0), "max_completion_tokens"),
        ({"prompt": "x" * 9000, "max_tokens": 1}, "prompt"),
        ({"messages": [{"role": "user", "content": "x" * 9000}]}, "messages"),
    ],
)
def test_what_cannot_fit_is_refused_naming_the_field(payload: dict[str, Any], param: str) -> None:
    with pytest.raises(DoesNotFit) as refused:
        fit(payload, Context(max_model_len=2048))
    assert refused.value.param == param


def test_a_limit_that_is_not_a_number_is_left_to_vllm() -> None:
    payload = chat(max_tokens="many")
    assert not fit(payload, Context(max_model_len=2048))


@pytest.mark.parametrize(
    ("model", "parser"),
    [
        ("Qwen/Qwen2.5-1.5B-Instruct", "hermes"),
        ("Qwen/Qwen3-Coder-30B-A3B-Instruct", "qwen3_coder"),
        ("meta-llama/Llama-3.1-8B-Instruct", "llama3_json"),
        ("meta-llama/Llama-4-Scout-17B-16E-Instruct", "llama4_pythonic"),
        ("mistralai/Mistral-7B-Instruct-v0.3", "mistral"),
        ("openai/gpt-oss-20b", "openai"),
        ("/models/unknown", "hermes"),
    ],
)
def test_tool_call_parser_by_model_family(model: str, parser: str) -> None:
    assert tool_call_parser_for(model) == parser


def test_guided_fields_are_read_only_before_v0_12() -> None:
    assert honours_guided("0.9.2") and honours_guided("v0.11.1")
    assert not honours_guided("0.12.0") and not honours_guided("0.33.0")


def test_idle_upstream_connections_go_before_vllm_closes_them() -> None:
    assert upstream_keepalive_s({}) < 5.0
    assert upstream_keepalive_s({"VLLM_HTTP_TIMEOUT_KEEP_ALIVE": "60"}) < 60
    assert upstream_keepalive_s({"VLLM_HTTP_TIMEOUT_KEEP_ALIVE": "nope"}) < 5.0


def test_availability_answers_sn1_while_there_is_room() -> None:
    asked = {"task_availabilities": {"a": True}, "llm_model_availabilities": {"m": True, "x": 1}}
    room = answer_availability(asked, {"model": "m", "available": 3})
    full = answer_availability(asked, {"model": "m", "available": 0})
    assert room == {
        "task_availabilities": {"a": True},
        "llm_model_availabilities": {"m": True, "x": False},
    }
    assert full["task_availabilities"] == {"a": False}
    assert answer_availability({"task_availabilities": []}, {"available": 1}) == {}
