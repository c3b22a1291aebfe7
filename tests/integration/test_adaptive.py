"""Adaptive fan-out end to end: real sim miners with capacity, a real gateway, the openai client."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import openai
import pytest

from tests.support import GatewayProcess, eventually, profiles

pytestmark = pytest.mark.integration

ASK = [{"role": "user", "content": "What is the capital of France?"}]


def client(gateway: GatewayProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.base_url + "/v1", api_key="-", max_retries=0)


def board(gateway: GatewayProcess) -> dict[int, dict[str, Any]]:
    rows = httpx.get(gateway.base_url + "/v1/pools/sim/miners", timeout=5).json()["data"]
    return {row["uid"]: row for row in rows}


def test_a_burst_past_the_pool_s_capacity_is_answered_not_refused(
    sim_pool: Callable[..., Any],
) -> None:
    # Three miners that take one request at a time (429 beyond): 12 requests at once.
    one_at_a_time = {"quality": "good", "latency": 300, "capacity": 1, "retry_after_s": 1}
    _, path = sim_pool(profiles(one_at_a_time, one_at_a_time, one_at_a_time))
    gateway = GatewayProcess("--metagraph", str(path), "--ranker", "heuristic")
    try:
        ask = (openai_client := client(gateway)).chat.completions.with_raw_response.create

        def one(_: int) -> Any:
            return ask(model="sim", messages=ASK).parse()  # type: ignore[arg-type]

        with ThreadPoolExecutor(12) as pool:
            answers = list(pool.map(one, range(12)))
        rows = board(gateway)
        openai_client.close()
    finally:
        gateway.stop()
    blocks = [a.model_extra["bitgate"] for a in answers]
    assert len(blocks) == 12
    assert any(b["wait"]["queue_ms"] > 0 or b["width"]["asked"] < 3 for b in blocks)
    assert {b["width"]["why"] for b in blocks} <= {"full", "pool", "load", "floor"}
    # What it learned: each miner takes one call at a time.
    assert [rows[uid]["concurrency"] for uid in (0, 1, 2)] == [1.0, 1.0, 1.0]


def test_best_of_answers_without_waiting_for_a_slow_miner_and_still_scores_it(
    sim_pool: Callable[..., Any],
) -> None:
    _, path = sim_pool(
        profiles({"quality": "good", "latency": 50}, {"quality": "good", "latency": 2500})
    )
    gateway = GatewayProcess("--metagraph", str(path), "--ranker", "heuristic")
    try:
        ask = (openai_client := client(gateway)).chat.completions.create
        started = time.perf_counter()
        fast = ask(model="sim", messages=ASK)  # type: ignore[arg-type]
        fast_s = time.perf_counter() - started
        assert eventually(lambda: board(gateway)[1]["requests"], 1, timeout=10)
        started = time.perf_counter()
        heard = ask(model="sim", messages=ASK, extra_body={"bitgate": {"wait": "all"}})  # type: ignore[arg-type]
        all_s = time.perf_counter() - started
        openai_client.close()
    finally:
        gateway.stop()
    block = fast.model_extra["bitgate"]
    assert block["wait"]["stopped"] in ("confident", "budget") and block["wait"]["replies"] == 1
    assert {c["uid"]: c["status"] for c in block["candidates"]}[1] == "pending"
    assert fast_s < 2.0 <= all_s
    assert heard.model_extra["bitgate"]["wait"] == {
        "mode": "all", "replies": 2, "stopped": "all", "queue_ms": 0.0
    }  # fmt: skip
