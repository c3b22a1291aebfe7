"""Hostile input, second round: no attacker-sized work on the event loop, no charge a miner
invents, the door before the queue, bounded replies (issue 19), against a real gateway."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.integration.hostile import chat_reply, longest_stall, miners, pool_file
from tests.support import GatewayProcess, LoopThread

pytestmark = pytest.mark.integration

STALL_S = 0.25
QUESTION = [{"role": "user", "content": "Call the tool."}]


def post(gateway: GatewayProcess, body: dict[str, Any], **kwargs: Any) -> httpx.Response:
    return httpx.post(gateway.base_url + "/v1/chat/completions", json=body, timeout=60, **kwargs)


def tool(name: str, parameters: dict[str, Any]) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name, "parameters": parameters}}


SCHEMA_FLOODS: dict[str, dict[str, Any]] = {
    "response_format": {
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "x", "schema": {"anyOf": [{}] * 21000}},
        }
    },
    "three_tools": {
        "tools": [
            tool(f"f{i}", {"type": "object", "properties": {"a": {"anyOf": [{}] * 16300}}})
            for i in range(3)
        ]
    },
}


@pytest.mark.parametrize("flood", list(SCHEMA_FLOODS))
def test_a_schema_that_costs_seconds_to_check_never_stalls_the_gateway(
    loop_thread: LoopThread, tmp_path: Path, flood: str
) -> None:
    # Failed before: jsonschema's check_schema ran outside the budget (7.7 s, 20 s).
    with miners(loop_thread, chat_reply({"content": "{}"})) as ports:
        gateway = GatewayProcess("--metagraph", str(pool_file(tmp_path / "p.json", ports)))
        try:
            body = {"model": "sim", "messages": QUESTION, **SCHEMA_FLOODS[flood]}
            resp, stall = longest_stall(gateway.base_url, lambda: post(gateway, body))
        finally:
            gateway.stop()
    assert resp.status_code == 400, resp.text
    assert "too large or complex" in resp.json()["error"]["message"]
    assert stall < STALL_S, f"/healthz waited {stall:.3f} s"


def test_a_tool_call_whose_unique_items_cost_seconds_never_stalls_the_gateway(
    loop_thread: LoopThread, tmp_path: Path
) -> None:
    # Failed before: uniqueItems compared 6,700 numbers and a string pairwise (20 s).
    arguments = orjson.dumps({"xs": [*range(6700), "s"]}).decode()
    call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": arguments}}
    reply = chat_reply({"content": None, "tool_calls": [call]})
    parameters = {"type": "object", "properties": {"xs": {"type": "array", "uniqueItems": True}}}
    body = {"model": "sim", "messages": QUESTION, "tools": [tool("f", parameters)]}
    with miners(loop_thread, reply, reply) as ports:
        gateway = GatewayProcess("--metagraph", str(pool_file(tmp_path / "p.json", ports)))
        try:
            resp, stall = longest_stall(gateway.base_url, lambda: post(gateway, body))
        finally:
            gateway.stop()
    assert resp.status_code == 200, resp.text
    assert stall < STALL_S, f"/healthz waited {stall:.3f} s"
