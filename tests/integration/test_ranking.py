"""The gateway with the real rankers: the good miner's reply wins, rankers are chosen by name."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from miners.sim.profiles import QUALITIES
from miners.sim.questions import QUESTIONS
from tests.support import gateway, profiles

pytestmark = pytest.mark.integration
Pools = Callable[..., Any]
BAD = tuple(q for q in QUALITIES if q != "good")  # every bad kind a sim miner has


def wait_until_ready(client: TestClient, ranker: str, timeout: float = 60.0) -> None:
    """Block until /readyz says the ranker has loaded its model."""
    deadline = time.monotonic() + timeout
    while (state := client.get("/readyz").json()["rankers"]["states"][ranker]) != "ready":
        assert not state.startswith("failed"), state
        assert time.monotonic() < deadline, f"{ranker} did not load"
        time.sleep(0.05)


def ask(client: TestClient, question: str, **options: Any) -> dict[str, Any]:
    """One chat request to pool `sim`; the JSON body."""
    body: dict[str, Any] = {"model": "sim", "messages": [{"role": "user", "content": question}]}
    if options:
        body["bitgate"] = options
    resp = client.post("/v1/chat/completions", json=body)
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


@pytest.mark.parametrize(("ranker", "model"), [("blend", "static"), ("minilm", "embedding")])
def test_the_default_blend_returns_the_good_miners_reply(
    sim_pool: Pools, ranker: str, model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, metagraph = sim_pool(profiles("good", *BAD))
    # `minilm`: the full model's embeddings times the filters (the default before `static`).
    minilm = {"minilm": {"kind": "blend", "weights": {"embedding": 1}}}
    monkeypatch.setenv("BITGATE_RANKERS", json.dumps(minilm))
    with gateway(metagraph=metagraph) as client:
        wait_until_ready(client, model)
        for question in QUESTIONS[:12]:
            # Every miner heard, so every candidate carries its reasons.
            body = ask(client, question.prompt, ranker=ranker, wait="all")
            block = body["bitgate"]
            assert block["ranker"] == ranker
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
        body = ask(client, question.prompt, wait="all")  # ranked once: one fallback counted
        assert body["bitgate"]["ranker"] == "heuristic (rm unavailable: unreachable)"
        assert body["choices"][0]["message"]["content"] == question.good
        assert ask(client, question.prompt, ranker="heuristic")["bitgate"]["ranker"] == "heuristic"
        assert ask(client, question.prompt, ranker="filters")["bitgate"]["ranker"] == "filters"
        metrics = client.get("/metrics").text
    assert 'bitgate_ranker_fallbacks_total{ranker="rm",reason="unreachable"} 1.0' in metrics
