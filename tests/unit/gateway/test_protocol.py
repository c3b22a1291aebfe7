"""The typed response blocks: the OpenAPI document shows them, and real responses have them."""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_type_hints, is_typeddict

import pytest
from fastapi.testclient import TestClient
from pydantic import TypeAdapter

from gateway.app import create_app
from gateway.config import Settings
from gateway.protocol import (
    BitgateOptions,
    CompletionReply,
    Health,
    Leaderboard,
    ModelList,
    Readiness,
)
from tests.support import profiles

CHAT = {"model": "sim", "messages": [{"role": "user", "content": "What is the capital of France?"}]}


@pytest.fixture
def client(sim_pool: Any) -> Any:
    """A gateway over a good miner and a wrong one, lifespan running."""
    _, path = sim_pool(profiles("good", "wrong"))
    with TestClient(create_app(Settings(metagraph=Path(path)))) as client:
        yield client


def assert_shape(value: Any, shape: Any) -> None:
    """`value` validates as `shape`, and no dict in it has a key its TypedDict does not name."""
    TypeAdapter(shape).validate_python(value, strict=False)
    _no_stray_keys(value, shape)


def _no_stray_keys(value: Any, shape: Any) -> None:
    if is_typeddict(shape):
        hints = get_type_hints(shape)
        assert set(value) <= set(hints), f"{shape.__name__}: {set(value) - set(hints)}"
        assert shape.__required_keys__ <= set(value), shape.__name__
        for key, item in value.items():
            _no_stray_keys(item, hints[key])
        return
    for arg in getattr(shape, "__args__", ()):
        if isinstance(value, list) and is_typeddict(arg):
            for item in value:
                _no_stray_keys(item, arg)
        elif isinstance(value, dict) and is_typeddict(arg):
            for item in value.values():
                _no_stray_keys(item, arg)


def response_ref(doc: dict[str, Any], path: str, method: str, status: str = "200") -> str:
    """The schema name a route's response points at."""
    content = doc["paths"][path][method]["responses"][status]["content"]
    return str(content["application/json"]["schema"]["$ref"]).rsplit("/", 1)[-1]


def test_openapi_shows_every_response_shape(client: Any) -> None:
    doc = client.get("/openapi.json").json()
    schemas = doc["components"]["schemas"]
    assert response_ref(doc, "/v1/chat/completions", "post") == "CompletionReply"
    assert response_ref(doc, "/v1/completions", "post") == "CompletionReply"
    assert response_ref(doc, "/v1/chat/completions", "post", "404") == "ErrorResponse"
    assert response_ref(doc, "/v1/models", "get") == "ModelList"
    assert response_ref(doc, "/v1/pools/{pool}/miners", "get") == "Leaderboard"
    assert response_ref(doc, "/readyz", "get") == response_ref(doc, "/readyz", "get", "503")
    assert response_ref(doc, "/readyz", "get") == "Readiness"
    assert response_ref(doc, "/healthz", "get") == "Health"
    block = schemas["BitgateBlock"]["properties"]
    assert set(block) == {
        "pool", "strategy", "ranker", "miner", "candidates", "overhead_ms", "fanout_usage",
        "choices", "width", "wait",
    }  # fmt: skip
    assert set(schemas["WaitBlock"]["properties"]) == {"mode", "replies", "stopped", "queue_ms"}
    assert set(schemas["WidthBlock"]["properties"]) == {"asked", "sample", "why"}
    assert block["candidates"]["items"]["$ref"].endswith("/CandidateBlock")
    status = schemas["CandidateBlock"]["properties"]["status"]
    assert {v for option in status["anyOf"] for v in option.get("enum", [option.get("const")])} == {
        "ok", "timeout", "error", "invalid", "busy", "pending"
    }  # fmt: skip
    assert {"uid", "hotkey", "score", "weight", "p50_latency_ms", "concurrency"} <= set(
        schemas["LeaderboardRow"]["properties"]
    )


def test_openapi_describes_every_bitgate_request_option(client: Any) -> None:
    doc = client.get("/openapi.json").json()
    for path in ("/v1/chat/completions", "/v1/completions"):
        body = doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]
        bitgate = body["schema"]["properties"]["bitgate"]
        options = next(o for o in bitgate["anyOf"] if o.get("type") == "object")["properties"]
        assert set(options) == set(BitgateOptions.model_fields)
        assert all(len(option["description"]) > 20 for option in options.values())


def test_responses_have_the_declared_shapes(client: Any) -> None:
    reply = client.post("/v1/chat/completions", json=CHAT).json()
    assert_shape(reply, CompletionReply)
    assert reply["bitgate"]["miner"]["uid"] == 0
    assert_shape(client.get("/v1/models").json(), ModelList)
    assert_shape(client.get("/v1/pools/sim/miners").json(), Leaderboard)
    assert_shape(client.get("/healthz").json(), Health)
    ready = client.get("/readyz").json()
    assert_shape(ready, Readiness)
    assert "sync" in ready["pools"]["sim"]


def test_a_race_block_names_its_pending_candidates(sim_pool: Any) -> None:
    _, path = sim_pool(profiles("good", {"quality": "good", "latency": 3000}))
    race = {**CHAT, "bitgate": {"strategy": "race"}}
    with TestClient(create_app(Settings(metagraph=Path(path)))) as client:
        reply = client.post("/v1/chat/completions", json=race).json()
    assert_shape(reply, CompletionReply)
    statuses = {c["uid"]: c["status"] for c in reply["bitgate"]["candidates"]}
    assert statuses == {0: "ok", 1: "pending"}
