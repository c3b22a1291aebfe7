"""The remote reward model ranker against a real HTTP server speaking vLLM's pooling/score API."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from pydantic import TypeAdapter

from ranking.base import Candidate, Prompt, RankerUnavailable
from ranking.embedding import EmbeddingModel
from ranking.registry import RankerSpec, build_rankers
from ranking.remote import RemoteRewardRanker

QUESTION = "What is the capital of Australia?"
PROMPT = Prompt(QUESTION, QUESTION, ({"role": "user", "content": QUESTION},))
GOOD = "The capital of Australia is Canberra, a planned city chosen as a compromise in 1908."
WRONG = "The capital of Australia is Sydney, its largest and oldest city."
CANDIDATES = [Candidate(0, WRONG), Candidate(1, GOOD)]


@dataclass
class RewardServer:
    """What the fake vLLM server does next, and what it was sent."""

    mode: str = "ok"
    requests: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    url: str = ""


def reward_of(text: str) -> float:
    """The fake reward model: a logit that likes the right answer."""
    return 3.0 if "Canberra" in text else -2.0


def build_app(state: RewardServer) -> web.Application:
    """vLLM's `/pooling` and `/score` in their documented response shapes."""

    async def misbehave() -> web.Response | None:
        if state.mode == "slow":
            await asyncio.sleep(2)
        if state.mode == "500":
            return web.json_response({"error": "CUDA out of memory"}, status=500)
        if state.mode == "garbage":
            return web.Response(text="<html>proxy error</html>", content_type="text/html")
        return None

    async def pooling(request: web.Request) -> web.Response:
        body = await request.json()
        state.requests.append(("pooling", body))
        failure = await misbehave()
        if failure is not None:
            return failure
        reply = body["messages"][-1]["content"]
        data: Any = [reward_of(reply)]
        if state.mode == "wrong_shape":
            data = "not numbers"
        return web.json_response(
            {
                "id": "pool-1",
                "object": "list",
                "created": int(time.time()),
                "model": body["model"],
                "data": [{"index": 0, "object": "pooling", "data": data}],
                "usage": {"prompt_tokens": 20, "total_tokens": 20},
            }
        )

    async def score(request: web.Request) -> web.Response:
        body = await request.json()
        state.requests.append(("score", body))
        failure = await misbehave()
        if failure is not None:
            return failure
        rows = [
            {"index": i, "object": "score", "score": 0.97 if "Canberra" in t else 0.04}
            for i, t in enumerate(body["text_2"])
        ]
        if state.mode == "wrong_shape":
            rows = rows[:1]
        return web.json_response({"id": "score-1", "object": "list", "data": rows})

    app = web.Application()
    app.router.add_post("/pooling", pooling)
    app.router.add_post("/score", score)
    return app


@pytest.fixture
async def server() -> AsyncIterator[RewardServer]:
    """The fake reward model server on a loopback port."""
    state = RewardServer()
    test_server = TestServer(build_app(state), host="127.0.0.1")
    await test_server.start_server()
    state.url = str(test_server.make_url("")).rstrip("/")
    yield state
    await test_server.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """One client session per test."""
    async with aiohttp.ClientSession() as client:
        yield client


async def test_pooling_rewards_the_reply_the_reward_model_prefers(
    server: RewardServer, session: aiohttp.ClientSession
) -> None:
    ranker = RemoteRewardRanker("rm", server.url, "reward-model", session, api="pooling")
    ranking = await ranker.score(PROMPT, CANDIDATES)
    assert ranking.rewards[1] > 0.9 > 0.2 > ranking.rewards[0]
    assert len(server.requests) == 2
    sent = server.requests[0][1]
    assert sent["model"] == "reward-model"
    assert sent["messages"][0] == {"role": "user", "content": QUESTION}
    assert sent["messages"][-1]["role"] == "assistant"


async def test_score_api_asks_once_for_every_reply(
    server: RewardServer, session: aiohttp.ClientSession
) -> None:
    ranker = RemoteRewardRanker("rm", server.url, "reranker", session, api="score")
    ranking = await ranker.score(PROMPT, CANDIDATES)
    assert ranking.rewards == [0.04, 0.97]
    assert server.requests == [
        ("score", {"model": "reranker", "text_1": QUESTION, "text_2": [WRONG, GOOD]})
    ]


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("slow", "timeout"),
        ("500", "http_5xx"),
        ("wrong_shape", "bad_shape"),
        ("garbage", "bad_shape"),
    ],
)
@pytest.mark.parametrize("api", ["pooling", "score"])
async def test_failures_say_why(
    server: RewardServer, session: aiohttp.ClientSession, mode: str, reason: str, api: str
) -> None:
    server.mode = mode
    ranker = RemoteRewardRanker("rm", server.url, "m", session, api=api, timeout_s=0.3)  # type: ignore[arg-type]
    started = time.perf_counter()
    with pytest.raises(RankerUnavailable) as info:
        await ranker.score(PROMPT, CANDIDATES)
    assert info.value.reason == reason
    assert time.perf_counter() - started < 1.5


async def test_an_unreachable_server_is_reported(session: aiohttp.ClientSession) -> None:
    ranker = RemoteRewardRanker("rm", "http://127.0.0.1:9", "m", session, timeout_s=1)
    with pytest.raises(RankerUnavailable) as info:
        await ranker.score(PROMPT, CANDIDATES)
    assert info.value.reason == "unreachable"


async def test_a_failing_reward_model_falls_back_with_a_log_line_and_a_count(
    server: RewardServer, session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    specs = TypeAdapter(dict[str, RankerSpec]).validate_python(
        {"rm": {"kind": "remote", "url": server.url, "model": "m", "timeout_s": 0.3}}
    )
    seen: list[tuple[str, str]] = []
    rankers = build_rankers(specs, session, EmbeddingModel(), lambda r, w: seen.append((r, w)))
    assert (await rankers["rm"].score(PROMPT, CANDIDATES)).rewards[1] > 0.9
    assert seen == []
    server.mode = "500"
    with caplog.at_level(logging.WARNING):
        ranking = await rankers["rm"].score(PROMPT, CANDIDATES)
    assert seen == [("rm", "http_5xx")]
    assert "rm" in caplog.text and "http_5xx" in caplog.text
    assert ranking.rewards[1] > ranking.rewards[0]  # the heuristic ranker answered instead
