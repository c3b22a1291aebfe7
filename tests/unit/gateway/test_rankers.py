"""Which ranker ranked: the `bitgate` block, the metrics and /readyz tell the truth."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support import gateway, profiles

CHAT = {"model": "sim", "messages": [{"role": "user", "content": "What is the capital of France?"}]}
Pools = Callable[..., Any]


@pytest.fixture
def pool(sim_pool: Pools) -> Path:
    """A good miner and a wrong one."""
    _, path = sim_pool(profiles("good", "wrong"))
    return Path(path)


@pytest.fixture
def no_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A machine where `pip install bitgate` ran without the MiniLM weights."""
    monkeypatch.setenv("BITGATE_MINILM_DIR", str(tmp_path / "not-installed"))
    monkeypatch.setenv("BITGATE_CACHE_DIR", str(tmp_path / "cache"))


def test_the_default_ranker_is_ready_and_ranks(pool: Path) -> None:
    with gateway(pool) as client:
        ready = client.get("/readyz")
        # Hearing every miner: one ranking (an adaptive wait may rank twice, once late).
        heard = {**CHAT, "bitgate": {"wait": "all"}}
        body = client.post("/v1/chat/completions", json=heard).json()
        metrics = client.get("/metrics").text
    assert ready.status_code == 200
    rankers = ready.json()["rankers"]
    assert rankers["defaults"] == ["blend"] and rankers["degraded"] == []
    assert rankers["states"]["blend"] == rankers["states"]["static"] == "ready"
    assert rankers["states"]["embedding"] == "disabled"
    assert body["bitgate"]["ranker"] == "blend"
    assert 'bitgate_rankings_total{ranked_by="blend",ranker="blend"} 1.0' in metrics


def test_a_stand_in_ranker_is_named_in_the_block_and_counted(
    pool: Path, no_model: None, caplog: pytest.LogCaptureFixture
) -> None:
    with gateway(pool) as client:
        heard = {**CHAT, "bitgate": {"wait": "all"}}  # one ranking (see above)
        body = client.post("/v1/chat/completions", json=heard).json()
        ready = client.get("/readyz")
        metrics = client.get("/metrics").text
    assert body["bitgate"]["ranker"] == "heuristic (blend unavailable: model not installed)"
    assert body["choices"][0]["message"]["content"]  # served all the same
    assert 'bitgate_rankings_total{ranked_by="heuristic",ranker="blend"} 1.0' in metrics
    assert ready.status_code == 503
    report = ready.json()
    assert report["ready"] is False and report["rankers"]["degraded"] == ["blend"]
    assert report["rankers"]["states"]["blend"] == "failed: model not installed"
    hints = [r.getMessage() for r in caplog.records if "pip install" in r.getMessage()]
    assert len(hints) == 1, hints  # one line at start says what to install


def test_degraded_rankers_may_be_allowed(pool: Path, no_model: None) -> None:
    with gateway(pool, allow_degraded_ranker=True) as client:
        ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["rankers"]["states"]["static"] == "failed: model not installed"


def test_a_ranker_asked_for_by_name_is_the_one_named(pool: Path, no_model: None) -> None:
    with gateway(pool) as client:
        asked = {**CHAT, "bitgate": {"ranker": "heuristic"}}
        body = client.post("/v1/chat/completions", json=asked).json()
        ready = client.get("/readyz")
    assert body["bitgate"]["ranker"] == "heuristic"
    assert ready.status_code == 503  # the pool's default still cannot rank
