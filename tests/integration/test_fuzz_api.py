"""The API fuzzed against its own /openapi.json: no request gets a 500 or hangs.

Schemathesis generates the requests (valid ones, and ones that break the schema) and
hypothesis drives them, bounded in examples; they go over loopback to a real gateway in
front of real sim miners.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from gateway.app import create_app
from gateway.config import Settings
from tests.support import GatewayProcess, LoopThread, profiles

pytestmark = pytest.mark.integration

ENV = {"BITGATE_EMBEDDING_MODEL": "false", "BITGATE_AXON_ALLOW": "127.0.0.0/8"}
EXAMPLES = 25
# The document the gateway serves at /openapi.json (checked against the live one below).
OPENAPI: dict[str, Any] = create_app(Settings(metagraph=Path("unused.json"))).openapi()
SCHEMA = schemathesis.openapi.from_dict(OPENAPI)
# Every operation with valid input; those that take a body, with invalid bodies too.
CASES = [
    (path, method.upper(), mode)
    for path, methods in OPENAPI["paths"].items()
    for method, spec in methods.items()
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    if mode == GenerationMode.POSITIVE or spec.get("requestBody")
]


@pytest.fixture(scope="module")
def gateway_url(loop_thread: LoopThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from miners.sim.pool import start_pool

    pool = loop_thread.run(start_pool(profiles("good", "good", "wrong")))
    path = tmp_path_factory.mktemp("fuzz") / "sim.json"
    path.write_text(pool.metagraph(name="sim").model_dump_json())
    gateway = GatewayProcess("--metagraph", str(path), "--ranker", "heuristic", env=ENV)
    try:
        yield gateway.base_url
    finally:
        out = gateway.stop()
        loop_thread.run(pool.stop())
        assert "Traceback" not in out, out[-3000:]


def test_the_fuzzed_document_is_the_one_the_gateway_serves(gateway_url: str) -> None:
    served = httpx.get(gateway_url + "/openapi.json", timeout=10).json()
    assert served == OPENAPI
    body = served["paths"]["/v1/chat/completions"]["post"]["requestBody"]
    assert "messages" in body["content"]["application/json"]["schema"]["properties"]


def explained(gateway_url: str, status: int, body: Any) -> bool:
    """Whether a 502/503/504 is one the gateway gave on purpose, for a reason seen here: the
    client's own (fuzzed) deadline passed, or the miners had failed (sim miners refuse some
    fuzzed sampling options, as vLLM does, and are cooled down for it). A 500 never is."""
    options = body.get("bitgate") if isinstance(body, dict) else None
    if status == 504:
        return isinstance(options, dict) and "timeout_s" in options
    if status not in (502, 503):
        return False
    board = httpx.get(gateway_url + "/v1/pools/sim/miners", timeout=10).json()["data"]
    failed = [m for m in board if m["cooling_down"] or (m["success_rate"] or 1.0) < 1.0]
    return bool(failed)


@pytest.mark.parametrize(("path", "method", "mode"), CASES)
def test_no_request_gets_a_500(
    gateway_url: str, path: str, method: str, mode: GenerationMode
) -> None:
    strategy = SCHEMA[path][method].as_strategy(generation_mode=mode)

    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
    @given(case=strategy, aim_at_a_pool=st.booleans())
    def check(case: schemathesis.Case, aim_at_a_pool: bool) -> None:
        if aim_at_a_pool and isinstance(case.body, dict):
            case.body["model"] = "sim"  # so fuzzed requests also reach the miners
        response = case.call(base_url=gateway_url, timeout=20)
        status = response.status_code
        assert status < 500 or explained(gateway_url, status, case.body), response.text
        if response.status_code >= 400:
            error = response.json()["error"]
            assert set(error) == {"message", "type", "param", "code"}

    check()
