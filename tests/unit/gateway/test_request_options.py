"""Request options the plan reads: response_format, tools, tool_choice, n, uids, exclude_uids."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from gateway.config import PoolConfig, RoutingDefaults
from gateway.protocol import BitgateOptions
from gateway.serving.plan import miner_body, prompt_of
from tests.support import profiles
from tests.unit.gateway.test_api import CHAT, assert_error, gateway

Pools = Callable[..., Any]
TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}


@pytest.fixture
def five(sim_pool: Pools) -> Path:
    """Five good miners, uids 0..4."""
    _, path = sim_pool(profiles(*["good"] * 5))
    return Path(path)


def asked(body: dict[str, Any]) -> list[int]:
    """The uids a response's bitgate block says were asked."""
    return sorted(c["uid"] for c in body["bitgate"]["candidates"])


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"response_format": {"type": "yaml"}}, "response_format.type"),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"schema": {"type": 7}}}},
            "response_format.json_schema.schema",
        ),
        (
            {"tools": [{"type": "function", "function": {"name": "has space"}}]},
            "tools[0].function.name",
        ),
        (
            {"tools": [TOOL], "tool_choice": {"type": "function", "function": {"name": "x"}}},
            "tool_choice",
        ),
        ({"tool_choice": "required"}, "tool_choice"),
        ({"n": 0}, "n"),
        ({"n": 33}, "n"),
        ({"bitgate": {"uids": [0, 99]}}, "bitgate.uids"),
        ({"bitgate": {"exclude_uids": [-1]}}, "bitgate.exclude_uids"),
        ({"bitgate": {"uids": []}}, "bitgate.uids"),
    ],
)
def test_unusable_options_are_400_naming_the_parameter(
    five: Path, fields: dict[str, Any], param: str
) -> None:
    with gateway(five) as client:
        resp = client.post("/v1/chat/completions", json={**CHAT, **fields})
    assert_error(resp, 400, param)


def test_a_hostile_schema_is_refused_not_run(five: Path) -> None:
    deep: dict[str, Any] = {"type": "string"}
    for _ in range(40):
        deep = {"type": "object", "properties": {"a": deep}}
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": deep}}
    with gateway(five) as client:
        resp = client.post("/v1/chat/completions", json={**CHAT, "response_format": fmt})
    error = assert_error(resp, 400, "response_format.json_schema.schema")
    assert "deeper" in error["message"]


def test_uids_choose_the_miners_asked(five: Path) -> None:
    with gateway(five) as client:
        only = client.post("/v1/chat/completions", json={**CHAT, "bitgate": {"uids": [1, 3]}})
        without = client.post(
            "/v1/chat/completions", json={**CHAT, "bitgate": {"exclude_uids": [0, 2]}}
        )
    assert only.status_code == 200 and asked(only.json()) == [1, 3]
    assert without.status_code == 200 and asked(without.json()) == [1, 3, 4]


def test_uids_stay_within_the_eligible_miners(sim_pool: Pools) -> None:
    _, path = sim_pool(profiles("good", "good"))
    metagraph = orjson.loads(Path(path).read_text())
    metagraph["neurons"][1]["validator_permit"] = True  # a validator is never asked
    Path(path).write_bytes(orjson.dumps(metagraph))
    with gateway(Path(path)) as client:
        resp = client.post("/v1/chat/completions", json={**CHAT, "bitgate": {"uids": [1]}})
        everyone = client.post(
            "/v1/chat/completions", json={**CHAT, "bitgate": {"exclude_uids": [0]}}
        )
    assert_error(resp, 503, None, "no_eligible_miner")
    assert_error(everyone, 503, None, "no_eligible_miner")


def test_n_is_not_forwarded_to_miners_unless_the_pool_says_so() -> None:
    raw = {**CHAT, "n": 2, "bitgate": {"top_k": 3}}
    assert "n" not in orjson.loads(miner_body("chat", raw, PoolConfig(metagraph=Path("m")), False))
    forwarded = miner_body("chat", raw, PoolConfig(metagraph=Path("m"), forward_n=True), False)
    assert orjson.loads(forwarded)["n"] == 2


def test_the_prompt_is_bounded_and_carries_the_constraints() -> None:
    huge = "filler " * 500_000 + "What is the capital of France?"
    raw = {"model": "sim", "messages": [{"role": "user", "content": huge}], "tools": [TOOL]}
    prompt = prompt_of("chat", raw)
    assert len(prompt.last_user) < 20_000 and prompt.last_user.endswith("France?")
    assert prompt.constraints is not None and set(prompt.constraints.tools) == {"get_weather"}


def test_a_requests_options_merge_over_its_pools_defaults_in_one_place() -> None:
    pool = RoutingDefaults(top_k=8, sample=4, strategy="race", timeout_s=9.0, explore=0.3)
    asked = BitgateOptions(sample=2, strategy="best_of", wait="all", explore=0.0)
    merged = asked.over(pool, n=1)
    assert (merged.top_k, merged.sample, merged.strategy, merged.wait) == (8, 2, "best_of", "all")
    assert (merged.timeout_s, merged.explore, merged.ranker) == (9.0, 0.0, pool.ranker)
    assert BitgateOptions().over(pool, n=1).sample == 4
    assert BitgateOptions().over(RoutingDefaults(top_k=5), n=1).sample == 5  # sample: top_k
    wide = BitgateOptions(uids=[3, 3, 7]).over(pool, n=3)
    assert (wide.top_k, wide.sample, wide.only) == (3, 3, frozenset({3, 7}))
