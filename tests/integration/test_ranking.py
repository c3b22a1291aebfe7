"""The gateway with the real rankers: the good miner's reply wins, rankers are chosen by name."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from gateway.app import create_app
from gateway.config import Settings
from miners.sim.profiles import QUALITIES
from miners.sim.questions import QUESTIONS
from ranking.blend import BlendRanker, FallbackRanker
from ranking.embedding import EmbeddingRanker
from tests.support import profiles

pytestmark = pytest.mark.integration
Pools = Callable[..., Any]
BAD = tuple(q for q in QUALITIES if q != "good")  # every bad kind a sim miner has


@contextmanager
def gateway(**settings: Any) -> Iterator[TestClient]:
    """The gateway in process with its lifespan running."""
    with TestClient(create_app(Settings(**settings))) as client:
        yield client


def wait_for_embeddings(client: TestClient, timeout: float = 60.0) -> None:
    """Block until the lifespan has loaded the embedding model."""
    blend = client.app.state.gateway.planner.rankers["blend"]  # type: ignore[attr-defined]
    assert isinstance(blend, FallbackRanker) and isinstance(blend.chain[0], BlendRanker)
    embedding = blend.chain[0].components[0][0]
    assert isinstance(embedding, EmbeddingRanker)
    deadline = time.monotonic() + timeout
    while not embedding.model.ready:
        assert embedding.model.error is None, embedding.model.error
        assert time.monotonic() < deadline, "the embedding model did not load"
        time.sleep(0.05)


def ask(client: TestClient, question: str, **options: Any) -> dict[str, Any]:
    """One chat request to pool `sim`; the JSON body."""
    body: dict[str, Any] = {"model": "sim", "messages": [{"role": "user", "content": question}]}
    if options:
        body["bitgate"] = options
    resp = client.post("/v1/chat/completions", json=body)
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def test_the_default_blend_returns_the_good_miners_reply(sim_pool: Pools) -> None:
    _, metagraph = sim_pool(profiles("good", *BAD))
    with gateway(metagraph=metagraph) as client:
        wait_for_embeddings(client)
        for question in QUESTIONS[:12]:
            body = ask(client, question.prompt)
            block = body["bitgate"]
            assert block["ranker"] == "blend"
            assert block["miner"]["uid"] == 0, (question.prompt, block)
            assert body["choices"][0]["message"]["content"] == question.good
        reasons = {c["uid"]: c.get("reasons", []) for c in block["candidates"]}
    assert reasons[0] == []
    quality = dict(enumerate(["good", *BAD]))
    for uid, why in reasons.items():
        if quality[uid] in ("empty", "echo", "refusal", "truncated", "repetitive"):
            assert why, quality[uid]
    assert "refusal" in reasons[BAD.index("refusal") + 1]
    assert "truncated" in reasons[BAD.index("truncated") + 1]


def test_rankers_are_chosen_per_pool_and_per_request_and_fallbacks_are_counted(
    sim_pool: Pools, tmp_path: Path
) -> None:
    _, metagraph = sim_pool(profiles("good", "wrong", "refusal"))
    pools = tmp_path / "pools.yaml"
    pools.write_text(
        "rankers:\n"
        "  rm: {kind: remote, url: 'http://127.0.0.1:9', model: reward, timeout_s: 1}\n"
        "pools:\n"
        f"  - {{name: sim, metagraph: {metagraph}, ranker: rm}}\n"
    )
    question = QUESTIONS[0]
    with gateway(pools=pools, embedding_model=False) as client:
        body = ask(client, question.prompt)
        assert body["bitgate"]["ranker"] == "rm"
        assert body["choices"][0]["message"]["content"] == question.good
        assert ask(client, question.prompt, ranker="heuristic")["bitgate"]["ranker"] == "heuristic"
        assert ask(client, question.prompt, ranker="filters")["bitgate"]["ranker"] == "filters"
        metrics = client.get("/metrics").text
    assert 'bitgate_ranker_fallbacks_total{ranker="rm",reason="unreachable"} 1.0' in metrics
