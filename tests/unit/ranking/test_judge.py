"""The LLM judge against a small OpenAI-compatible server in the test, and its parser."""

from __future__ import annotations

import asyncio
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
from ranking.judge import JudgeRanker, parse_scores
from ranking.registry import RankerSpec, build_rankers

QUESTION = "Who wrote Pride and Prejudice?"
PROMPT = Prompt(QUESTION, QUESTION, ({"role": "user", "content": QUESTION},))
REPLIES = [
    "Pride and Prejudice was written by Charlotte Brontë.",
    "Jane Austen wrote Pride and Prejudice, published in 1813.",
    "",
]
CANDIDATES = [Candidate(i, t) for i, t in enumerate(REPLIES)]


@dataclass
class Judge:
    """What the fake judge answers next, and what it was asked."""

    answer: str = '{"scores": [2, 9, 0]}'
    status: int = 200
    delay_s: float = 0.0
    requests: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""


@pytest.fixture
async def judge() -> AsyncIterator[Judge]:
    """An OpenAI-compatible chat server on a loopback port."""
    state = Judge()

    async def chat(request: web.Request) -> web.Response:
        state.requests.append(await request.json())
        await asyncio.sleep(state.delay_s)
        if state.status != 200:
            return web.json_response({"error": {"message": "overloaded"}}, status=state.status)
        return web.json_response(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "model": "judge",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": state.answer},
                        "finish_reason": "stop",
                    }
                ],
            }
        )

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    state.url = str(server.make_url("/v1"))
    yield state
    await server.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """One client session per test."""
    async with aiohttp.ClientSession() as client:
        yield client


async def test_one_call_grades_every_candidate(
    judge: Judge, session: aiohttp.ClientSession
) -> None:
    ranker = JudgeRanker("judge", judge.url, "judge-model", session, api_key="sk-test")
    ranking = await ranker.score(PROMPT, CANDIDATES)
    assert ranking.rewards == pytest.approx([0.2, 0.9, 0.0])
    assert len(judge.requests) == 1
    sent = judge.requests[0]
    assert sent["model"] == "judge-model" and sent["temperature"] == 0
    asked = sent["messages"][-1]["content"]
    assert QUESTION in asked and all(r in asked for r in REPLIES if r)
    assert "[3]" in asked and "(empty)" in asked


@pytest.mark.parametrize(
    "answer",
    [
        'Sure!\n```json\n{"scores": [2, 9, 0]}\n```',
        "Grades:\n1: 2\n2: 9\n3: 0",
        "Reply 1 - 2/10\nReply 2 - 9/10\nReply 3 - 0/10",
        "[2, 9, 0]",
    ],
)
async def test_the_judges_answer_is_parsed_leniently(
    judge: Judge, session: aiohttp.ClientSession, answer: str
) -> None:
    judge.answer = answer
    ranking = await JudgeRanker("judge", judge.url, "m", session).score(PROMPT, CANDIDATES)
    assert ranking.rewards == pytest.approx([0.2, 0.9, 0.0])


@pytest.mark.parametrize(
    "answer", ["The second reply is clearly the best.", '{"scores": [9, 1]}', ""]
)
async def test_answers_without_usable_grades_are_refused(
    judge: Judge, session: aiohttp.ClientSession, answer: str
) -> None:
    judge.answer = answer
    with pytest.raises(RankerUnavailable) as info:
        await JudgeRanker("judge", judge.url, "m", session).score(PROMPT, CANDIDATES)
    assert info.value.reason == "bad_shape"


async def test_a_slow_or_failing_judge_falls_back_to_the_next_ranker(
    judge: Judge, session: aiohttp.ClientSession
) -> None:
    specs = TypeAdapter(dict[str, RankerSpec]).validate_python(
        {"judge": {"kind": "judge", "url": judge.url, "model": "m", "timeout_s": 0.3}}
    )
    seen: list[tuple[str, str]] = []
    rankers = build_rankers(specs, session, EmbeddingModel(), lambda r, w: seen.append((r, w)))
    judge.delay_s = 1.0
    ranking = await rankers["judge"].score(PROMPT, CANDIDATES)
    judge.delay_s, judge.status = 0.0, 503
    await rankers["judge"].score(PROMPT, CANDIDATES)
    assert seen == [("judge", "timeout"), ("judge", "http_5xx")]
    assert ranking.rewards[2] == 0.0  # the heuristic ranker zeroes the empty reply


def test_parse_scores_needs_one_grade_per_reply() -> None:
    assert parse_scores('{"scores": [1, "7", 3.5]}', 3) == [1.0, 7.0, 3.5]
    assert parse_scores('{"scores": [1, 2]}', 3) is None
    assert parse_scores("1: 5\n3: 6", 3) is None
    assert parse_scores("no numbers", 2) is None
