"""The incentive loop over real sockets: `bitgate serve` with a `source: local` pool and Redis.

Rewards become scores, scores become this gateway's weights, Yuma Consensus (with a second,
dishonest validator from the pools file) turns them into incentive, and selection follows.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import redis
import yaml

from router.store import bonds_key, metagraph_key, weights_key
from tests.support import GatewayProcess, eventually, profiles

pytestmark = pytest.mark.integration

POOL = "house"
QUESTION = [{"role": "user", "content": "Who wrote Pride and Prejudice?"}]
# uid 0 answers well; uid 2 only refuses, and the dishonest validator puts all its weight there.
# The file starts them the other way round: the refusing miner has the most incentive.
MINERS = profiles(
    {"quality": "good", "incentive": 0.1},
    {"quality": "partial", "incentive": 0.2},
    {"quality": "refusal", "incentive": 0.4},
    {"quality": "off_topic", "incentive": 0.3},
)


@pytest.fixture
def served(
    sim_pool: Callable[..., Any], tmp_path: Path, clean_redis: str
) -> Iterator[tuple[GatewayProcess, str]]:
    """A gateway over a local pool of four miners; epochs every second; state in Redis."""
    _, metagraph = sim_pool(MINERS, name=POOL)
    validators = [
        {"hotkey": "gateway", "stake": 600},
        {"hotkey": "cheat", "stake": 400, "weights": {2: 1.0}},
    ]
    pool = {
        "name": POOL,
        "source": "local",
        "metagraph": str(metagraph),
        "epoch_s": 1.0,
        "top_k": 4,
        # The heuristic ranks from the first request; the default blend would switch over
        # when its model finishes loading, mid-test, and reorder the weak miners.
        "ranker": "heuristic",
        "local": {"validators": validators},
    }
    pools = tmp_path / "pools.yaml"
    pools.write_text(yaml.safe_dump({"pools": [pool]}))
    gateway = GatewayProcess("--pools", str(pools), "--redis-url", clean_redis)
    try:
        yield gateway, clean_redis
    finally:
        gateway.stop()


def board(gateway: GatewayProcess) -> dict[str, dict[str, Any]]:
    """The leaderboard by hotkey."""
    rows = httpx.get(f"{gateway.base_url}/v1/pools/{POOL}/miners", timeout=5).json()["data"]
    return {row["hotkey"]: row for row in rows}


def test_rewards_become_incentive_and_selection_follows(
    served: tuple[GatewayProcess, str],
) -> None:
    gateway, redis_url = served
    rows = board(gateway)
    by_uid = {row["uid"]: key for key, row in rows.items()}
    assert sorted(by_uid) == [0, 1, 2, 3]  # no epoch yet: only the file's miners
    assert rows[by_uid[2]]["incentive"] == 0.4
    with openai.OpenAI(base_url=gateway.base_url + "/v1", api_key="-", max_retries=0) as client:
        for _ in range(8):
            client.chat.completions.create(model=POOL, messages=QUESTION)

        def ranked() -> bool:
            rows = board(gateway)
            incentive = [rows[by_uid[uid]]["incentive"] for uid in range(4)]
            # The good miner leads, the refusing one trails, whatever the file said.
            return (
                "cheat" in rows
                and incentive[0] == max(incentive)
                and incentive[2] == min(incentive)
            )

        assert eventually(ranked, True, timeout=30)
        rows = board(gateway)
        good, refusing = rows[by_uid[0]], rows[by_uid[2]]
        assert good["weight"] > refusing["weight"] >= 0
        assert rows["cheat"]["validator_permit"] and rows["gateway"]["validator_permit"]

        # Selection reads the metagraph the epoch wrote: the top miner by incentive answers.
        reply = client.chat.completions.create(
            model=POOL, messages=QUESTION, extra_body={"bitgate": {"top_k": 1}}
        )
        block = (reply.model_extra or {})["bitgate"]
        assert [c["uid"] for c in block["candidates"]] == [0]

    # The epoch's results and state are in Redis for every replica.
    client_redis = redis.Redis.from_url(redis_url)
    try:
        snapshot = json.loads(client_redis.get(metagraph_key(POOL)) or b"{}")
        validators = {n["hotkey"]: n for n in snapshot["neurons"] if n["validator_permit"]}
        # The dishonest validator's weight on the refusing miner was clipped to consensus.
        assert validators["cheat"]["dividends"] < 0.4 < 0.6 < validators["gateway"]["dividends"]
        assert validators["cheat"]["validator_trust"] < validators["gateway"]["validator_trust"]
        assert client_redis.hkeys(weights_key(POOL)) == [b"gateway"]
        assert json.loads(client_redis.get(bonds_key(POOL)) or b"{}")["validators"] == [
            "gateway",
            "cheat",
        ]
    finally:
        client_redis.close()

    ready = httpx.get(gateway.base_url + "/readyz", timeout=5).json()["pools"][POOL]["sync"]
    assert ready["source"] == "local" and ready["epochs_run"] >= 1 and ready["epoch_error"] is None
    metrics = httpx.get(gateway.base_url + "/metrics", timeout=5).text
    assert f'bitgate_epochs_total{{pool="{POOL}"}}' in metrics
