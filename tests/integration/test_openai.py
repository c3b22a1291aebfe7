"""The official `openai` client against `bitgate serve` and sim miners, all over sockets."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import openai
import pytest

from miners.sim.questions import answer
from tests.support import GatewayProcess, eventually, profiles

pytestmark = pytest.mark.integration

QUALITIES = ("good", "wrong", "off_topic", "refusal")

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture
def served(sim_pool: Callable[..., Any]) -> Iterator[tuple[GatewayProcess, openai.OpenAI]]:
    """A gateway over one good miner and three bad ones, and an OpenAI client for it."""
    _, path = sim_pool(profiles(*QUALITIES))
    gateway = GatewayProcess("--metagraph", str(path))
    client = openai.OpenAI(base_url=gateway.base_url + "/v1", api_key="unused", max_retries=0)
    try:
        yield gateway, client
    finally:
        client.close()
        gateway.stop()


def test_chat_returns_the_best_miner_reply(served: tuple[GatewayProcess, openai.OpenAI]) -> None:
    _, client = served
    raw = client.chat.completions.with_raw_response.create(model="sim", messages=QUESTION)
    reply = raw.parse()
    assert "Paris" in (reply.choices[0].message.content or "")
    assert reply.model == "sim"
    assert raw.headers["x-bitgate-miner-uid"] == "0"
    block = (reply.model_extra or {})["bitgate"]
    assert block["miner"]["uid"] == 0 and len(block["candidates"]) == 4


@pytest.mark.parametrize("strategy", ["best_of", "race"])
def test_chat_stream_ends_with_the_bitgate_block(
    served: tuple[GatewayProcess, openai.OpenAI], strategy: str
) -> None:
    _, client = served
    raw = client.chat.completions.with_raw_response.create(
        model="sim", messages=QUESTION, stream=True, extra_body={"bitgate": {"strategy": strategy}}
    )
    chunks = list(raw.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop" and finishes.count("stop") == 1
    block = (chunks[-1].model_extra or {})["bitgate"]
    assert block["strategy"] == strategy
    winner = block["miner"]["uid"]
    assert raw.headers["x-bitgate-miner-uid"] == str(winner)
    # The text is exactly what the chosen miner says to this question.
    assert text == answer(QUESTION[0]["content"], QUALITIES[winner]).text
    if strategy == "best_of":
        assert winner == 0


def test_race_returns_the_first_usable_reply(sim_pool: Callable[..., Any]) -> None:
    _, path = sim_pool(
        profiles({"quality": "good", "latency": 600}, {"quality": "partial", "latency": 0})
    )
    gateway = GatewayProcess("--metagraph", str(path), "--strategy", "race")
    try:
        with openai.OpenAI(base_url=gateway.base_url + "/v1", api_key="-", max_retries=0) as client:
            reply = client.chat.completions.create(model="sim", messages=QUESTION)
            block = (reply.model_extra or {})["bitgate"]
            assert block["miner"]["uid"] == 1
            assert {c["uid"]: c["status"] for c in block["candidates"]}[0] == "pending"
            # The slow miner is still ranked in the background, so it counts in the scores.

            def requests_seen() -> dict[int, int]:
                board = httpx.get(gateway.base_url + "/v1/pools/sim/miners").json()["data"]
                return {row["uid"]: row["requests"] for row in board}

            assert eventually(requests_seen, {0: 1, 1: 1})
    finally:
        gateway.stop()


def test_completions_stream_and_not(served: tuple[GatewayProcess, openai.OpenAI]) -> None:
    _, client = served
    reply = client.completions.create(model="sim", prompt="What is the capital of France?")
    assert "Paris" in reply.choices[0].text
    chunks = list(
        client.completions.create(model="sim", prompt="What is the capital of France?", stream=True)
    )
    assert "Paris" in "".join(c.choices[0].text for c in chunks if c.choices)


def test_models_list(served: tuple[GatewayProcess, openai.OpenAI]) -> None:
    _, client = served
    assert [m.id for m in client.models.list()] == ["sim"]


def test_unknown_model_raises_not_found(served: tuple[GatewayProcess, openai.OpenAI]) -> None:
    _, client = served
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="gpt-9", messages=QUESTION)
    assert caught.value.code == "model_not_found"
    assert caught.value.param == "model"


def test_bad_request_raises_bad_request(served: tuple[GatewayProcess, openai.OpenAI]) -> None:
    _, client = served
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="sim", messages=QUESTION, temperature=7)
    assert caught.value.param == "temperature"
