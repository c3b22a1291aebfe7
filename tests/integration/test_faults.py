"""Misbehaving miners never break a request that another miner answered."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import openai
import pytest

from tests.support import GatewayProcess, profiles

pytestmark = pytest.mark.integration

QUESTION = [{"role": "user", "content": "Why is the sky blue?"}]
FAULTS = ["hang", "error", "malformed", "drop_stream", "slow_drip"]
DEADLINE_S = 1.5


@pytest.fixture
def client(sim_pool: Callable[..., Any]) -> Iterator[openai.OpenAI]:
    """A gateway over one good miner and one miner per failure mode."""
    specs = [{"quality": "good", "latency": 50}]
    specs += [{"failure": mode, "drip_interval_s": 0.1} for mode in FAULTS]
    _, path = sim_pool(profiles(*specs))
    gateway = GatewayProcess("--metagraph", str(path), "--timeout-s", str(DEADLINE_S))
    with openai.OpenAI(base_url=gateway.base_url + "/v1", api_key="-", max_retries=0) as api:
        try:
            yield api
        finally:
            gateway.stop()


def test_best_of_returns_the_good_reply_by_the_deadline(client: openai.OpenAI) -> None:
    started = time.monotonic()
    reply = client.chat.completions.create(model="sim", messages=QUESTION)
    elapsed = time.monotonic() - started
    block = (reply.model_extra or {})["bitgate"]
    assert block["miner"]["uid"] == 0
    assert "scatter" in (reply.choices[0].message.content or "").lower()
    statuses = {c["uid"]: c["status"] for c in block["candidates"]}
    assert statuses == {0: "ok", 1: "timeout", 2: "error", 3: "invalid", 4: "error", 5: "timeout"}
    assert elapsed < DEADLINE_S + 1.0


def test_race_does_not_wait_for_the_broken_miners(client: openai.OpenAI) -> None:
    started = time.monotonic()
    reply = client.chat.completions.create(
        model="sim", messages=QUESTION, extra_body={"bitgate": {"strategy": "race"}}
    )
    assert (reply.model_extra or {})["bitgate"]["miner"]["uid"] == 0
    assert time.monotonic() - started < DEADLINE_S


def test_best_of_stream_survives_dropped_and_broken_streams(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(model="sim", messages=QUESTION, stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "scatter" in text.lower()
    assert (chunks[-1].model_extra or {})["bitgate"]["miner"]["uid"] == 0


def race_stream(gateway: GatewayProcess) -> openai.Stream[Any]:
    """A race-strategy chat stream from `gateway`."""
    api = openai.OpenAI(base_url=gateway.base_url + "/v1", api_key="-", max_retries=0)
    return api.chat.completions.create(
        model="sim", messages=QUESTION, stream=True, extra_body={"bitgate": {"strategy": "race"}}
    )


def test_race_stream_skips_miners_that_fail_before_any_text(sim_pool: Callable[..., Any]) -> None:
    specs = [{"quality": "good", "latency": 100}]
    specs += [{"failure": mode, "latency": 0} for mode in ("error", "malformed", "hang")]
    _, path = sim_pool(profiles(*specs))
    gateway = GatewayProcess("--metagraph", str(path), "--timeout-s", str(DEADLINE_S))
    try:
        chunks = list(race_stream(gateway))
    finally:
        gateway.stop()
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "scatter" in text.lower()
    assert (chunks[-1].model_extra or {})["bitgate"]["miner"]["uid"] == 0


def test_race_stream_reports_a_winner_that_breaks_off(sim_pool: Callable[..., Any]) -> None:
    specs = [{"failure": "drop_stream", "latency": 0}, {"quality": "good", "latency": 300}]
    _, path = sim_pool(profiles(*specs))
    gateway = GatewayProcess("--metagraph", str(path), "--timeout-s", str(DEADLINE_S))
    received: list[str] = []
    try:
        with pytest.raises(openai.APIError, match="stream broke off"):
            for chunk in race_stream(gateway):
                received.extend(c.delta.content or "" for c in chunk.choices)
    finally:
        gateway.stop()
    assert "".join(received).strip(), "the text streamed before the break reached the client"
