"""`GET /v1/models/{id}` through openai-python, and the error of every route the gateway lacks."""

from __future__ import annotations

from pathlib import Path

import openai
import pytest

from tests.support import profiles
from tests.unit.gateway.test_api import Pools, assert_error, gateway

OFFERED = (
    "POST /v1/chat/completions",
    "POST /v1/completions",
    "POST /v1/responses",
    "GET /v1/models",
    "GET /v1/models/{model}",
)


@pytest.fixture
def pool(sim_pool: Pools) -> Path:
    """One good sim miner."""
    _, path = sim_pool(profiles("good"))
    return Path(path)


def test_models_retrieve_finds_a_pool_and_404s_the_rest(pool: Path) -> None:
    with gateway(pool) as http:
        client = openai.OpenAI(base_url="http://testserver/v1", api_key="-", http_client=http)
        model = client.models.retrieve("sim")
        assert (model.id, model.object, model.owned_by) == ("sim", "model", "bitgate")
        with pytest.raises(openai.NotFoundError) as missing:
            client.models.retrieve("gpt-9")
    assert missing.value.code == "model_not_found"


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("POST", "/v1/embeddings", 404, "unknown_url"),
        ("POST", "/v1/images/generations", 404, "unknown_url"),
        ("GET", "/v1/nothing", 404, "unknown_url"),
        ("GET", "/v1/chat/completions", 405, "method_not_allowed"),
        ("DELETE", "/v1/models", 405, "method_not_allowed"),
    ],
)
def test_a_route_the_gateway_lacks_says_so_and_lists_what_it_offers(
    pool: Path, method: str, path: str, status: int, code: str
) -> None:
    with gateway(pool) as client:
        resp = client.request(method, path, json={"model": "sim", "input": "hi"})
    error = assert_error(resp, status, None, code)
    assert error["type"] == "invalid_request_error"
    assert f"does not offer {method} {path}" in error["message"]
    assert all(endpoint in error["message"] for endpoint in OFFERED), error["message"]


def test_embeddings_through_the_client_is_a_not_found_naming_the_endpoint(pool: Path) -> None:
    with gateway(pool) as http:
        client = openai.OpenAI(base_url="http://testserver/v1", api_key="-", http_client=http)
        with pytest.raises(openai.NotFoundError, match="does not offer POST /v1/embeddings"):
            client.embeddings.create(model="sim", input="hi")
