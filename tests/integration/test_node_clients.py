"""Node clients against a live gateway: the AI SDK's default OpenAI provider (`openai("model")`,
which calls /v1/responses), its `openai.chat(...)`, and openai-node.

`make node-clients` installs `ai`, `@ai-sdk/openai` and `openai` from tests/clients/node's lock
file; `make test` runs it first. Each scenario is one node process against a live gateway.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_structured import JSON_POOL, RIGHT, TOOL_POOL
from tests.support import GatewayProcess, profiles

pytestmark = pytest.mark.integration

NODE_DIR = Path(__file__).parents[1] / "clients" / "node"
PARIS = {"city": "Paris", "days": 1}


def run_scenario(
    sim_pool: Callable[..., Any], pool: Any, scenario: str, script: str = "ai_sdk.mjs"
) -> dict[str, Any]:
    """Run one scenario of a node script against a gateway over `pool`; its JSON result."""
    node = shutil.which("node")
    if node is None or not (NODE_DIR / "node_modules" / "ai").is_dir():
        pytest.fail("node or the node clients are missing: run `make node-clients`")
    _, path = sim_pool(pool)
    gateway = GatewayProcess("--metagraph", str(path))
    try:
        done = subprocess.run(
            [node, script, gateway.base_url + "/v1", scenario],
            cwd=NODE_DIR,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        gateway.stop()
    assert done.returncode == 0, done.stdout + done.stderr
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def test_text_generated_and_streamed(sim_pool: Callable[..., Any]) -> None:
    result = run_scenario(sim_pool, profiles("good", "good", "good"), "text")
    assert result["text"] and result["finishReason"] == "stop"
    assert result["usage"]["outputTokens"] > 0
    assert result["bitgate"]["pool"] == "sim"
    assert result["streamed"] and result["streamed"] == result["streamedText"]
    assert result["streamedUsage"]["outputTokens"] > 0 and result["streamedFinish"] == "stop"


def test_objects_follow_the_schema(sim_pool: Callable[..., Any]) -> None:
    result = run_scenario(sim_pool, JSON_POOL, "object")
    assert result["object"] == PARIS and result["streamed"] == PARIS and result["partials"] > 0
    assert result["bitgate"]["miner"]["uid"] == RIGHT


def test_tool_calls_come_back_as_tool_calls(sim_pool: Callable[..., Any]) -> None:
    result = run_scenario(sim_pool, TOOL_POOL, "tools")
    expected = [{"name": "get_weather", "input": PARIS}]
    assert result["calls"] == expected and result["streamed"] == expected
    assert result["bitgate"]["miner"]["uid"] == RIGHT
    assert result["streamedFinish"] == "tool-calls"


def test_the_ai_sdk_chat_provider(sim_pool: Callable[..., Any]) -> None:
    result = run_scenario(sim_pool, profiles("good", "good"), "chat")
    assert result["text"] and result["streamed"] and result["finishReason"] == "stop"


def test_openai_node_chat_responses_models_and_a_missing_endpoint(
    sim_pool: Callable[..., Any],
) -> None:
    result = run_scenario(sim_pool, profiles("good", "good"), "", script="openai_node.mjs")
    assert result["chat"] and result["chatStreamed"] and result["response"]
    assert result["chatBitgate"]["pool"] == "sim" and result["responseBitgate"]["pool"] == "sim"
    assert result["streamed"] and result["streamed"] == result["streamedFinal"]
    assert result["model"] == "sim" and result["streamedStatus"] == "completed"
    assert result["embeddings"]["status"] == 404
    assert "does not offer POST /v1/embeddings" in result["embeddings"]["message"]


def test_a_second_turn_works_once_the_ai_sdk_stores_nothing(sim_pool: Callable[..., Any]) -> None:
    result = run_scenario(sim_pool, profiles("good", "good"), "turns")
    assert result["first"] and result["second"]
    # Left to store (its default), the AI SDK sends the first answer as an item reference:
    # a 400 that says what to set.
    assert result["refused"]["status"] == 400
    assert "providerOptions.openai.store" in result["refused"]["body"]
