"""The HTTP API in process (TestClient runs the lifespan) against sim miners on real ports."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support import gateway, profiles

CHAT = {"model": "sim", "messages": [{"role": "user", "content": "What is the capital of France?"}]}
Pools = Callable[..., Any]


def assert_error(
    resp: Any, status: int, param: str | None, code: str | None = None
) -> dict[str, Any]:
    """The response is an OpenAI error with this status, param and code."""
    assert resp.status_code == status, resp.text
    error = resp.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["param"] == param
    if code is not None:
        assert error["code"] == code
    assert error["message"]
    return dict(error)


@pytest.fixture
def good_pool(sim_pool: Pools) -> Path:
    """Three miners: a good one, a wrong one, an off-topic one."""
    _, path = sim_pool(profiles("good", "wrong", "off_topic"))
    return Path(path)


def test_best_of_returns_the_good_reply_with_the_bitgate_block(good_pool: Path) -> None:
    with gateway(good_pool) as client:  # every miner heard: each has a status and a reward
        resp = client.post("/v1/chat/completions", json={**CHAT, "bitgate": {"wait": "all"}})
    assert resp.status_code == 200
    body = resp.json()
    assert "Paris" in body["choices"][0]["message"]["content"]
    block = body["bitgate"]
    assert block["pool"] == "sim" and block["strategy"] == "best_of"
    assert block["miner"]["uid"] == 0
    assert sorted(c["uid"] for c in block["candidates"]) == [0, 1, 2]
    assert all(c["status"] == "ok" for c in block["candidates"])
    rewards = {c["uid"]: c["reward"] for c in block["candidates"]}
    assert rewards[0] == max(rewards.values())
    assert resp.headers["x-bitgate-miner-uid"] == "0"
    assert float(resp.headers["x-bitgate-overhead-ms"]) >= 0


def test_leaderboard_shows_scores_after_requests(good_pool: Path) -> None:
    with gateway(good_pool) as client:
        for _ in range(3):
            assert client.post("/v1/chat/completions", json=CHAT).status_code == 200
        board = client.get("/v1/pools/sim/miners").json()["data"]
    top = board[0]
    assert top["uid"] == 0
    assert top["requests"] == 3 and top["wins"] == 3 and top["success_rate"] == 1.0
    assert top["score"] > 0 and top["p50_latency_ms"] is not None


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": CHAT["messages"]}, "model"),
        ({"model": "sim"}, "messages"),
        ({"model": "sim", "messages": []}, "messages"),
        ({"model": "sim", "messages": [{"role": "wizard", "content": "hi"}]}, "messages.0.role"),
        ({**CHAT, "temperature": "hot"}, "temperature"),
        ({**CHAT, "max_tokens": 0}, "max_tokens"),
        ({**CHAT, "bitgate": {"top_k": 0}}, "bitgate.top_k"),
        ({**CHAT, "bitgate": {"strategy": "fastest"}}, "bitgate.strategy"),
        ({**CHAT, "bitgate": {"colour": "red"}}, "bitgate.colour"),
        ({**CHAT, "bitgate": {"ranker": "oracle"}}, "bitgate.ranker"),
    ],
)
def test_bad_requests_name_the_parameter(good_pool: Path, body: dict[str, Any], param: str) -> None:
    with gateway(good_pool) as client:
        resp = client.post("/v1/chat/completions", json=body)
    assert_error(resp, 400, param)


def test_invalid_json_and_non_object_bodies_are_400(good_pool: Path) -> None:
    with gateway(good_pool) as client:
        bad = client.post(
            "/v1/chat/completions",
            content=b"{not json",
            headers={"content-type": "application/json"},
        )
        listed = client.post("/v1/completions", json=["a"])
    assert "not valid JSON" in assert_error(bad, 400, None)["message"]
    assert_error(listed, 400, None)


def test_body_over_the_limit_is_413(good_pool: Path) -> None:
    with gateway(good_pool, max_body_bytes=2048) as client:
        big = {**CHAT, "messages": [{"role": "user", "content": "x" * 4096}]}
        resp = client.post("/v1/chat/completions", json=big)
    assert_error(resp, 413, None, "request_too_large")


def test_unknown_model_is_404_model_not_found(good_pool: Path) -> None:
    with gateway(good_pool) as client:
        resp = client.post("/v1/chat/completions", json={**CHAT, "model": "gpt-9"})
        pool = client.get("/v1/pools/gpt-9/miners")
    assert_error(resp, 404, "model", "model_not_found")
    assert_error(pool, 404, "pool", "model_not_found")


def test_unknown_route_is_an_openai_error(good_pool: Path) -> None:
    with gateway(good_pool) as client:
        resp = client.get("/v1/nothing")
    assert_error(resp, 404, None)


def test_api_keys_are_checked(good_pool: Path) -> None:
    with gateway(good_pool, api_keys=["sekrit"]) as client:
        missing = client.post("/v1/chat/completions", json=CHAT)
        wrong = client.post(
            "/v1/chat/completions", json=CHAT, headers={"authorization": "Bearer nope"}
        )
        right = client.post(
            "/v1/chat/completions", json=CHAT, headers={"authorization": "Bearer sekrit"}
        )
    assert_error(missing, 401, None, "invalid_api_key")
    assert_error(wrong, 401, None, "invalid_api_key")
    assert right.status_code == 200


def test_no_eligible_miner_is_503(sim_pool: Pools) -> None:
    pool, path = sim_pool(profiles("good", "good"))
    metagraph = pool.metagraph(name="sim")
    neurons = [n.model_copy(update={"validator_permit": True}) for n in metagraph.neurons]
    path.write_text(metagraph.model_copy(update={"neurons": neurons}).model_dump_json())
    with gateway(path) as client:
        resp = client.post("/v1/chat/completions", json=CHAT)
    assert_error(resp, 503, None, "no_eligible_miner")


def test_every_miner_failing_is_502(sim_pool: Pools) -> None:
    _, path = sim_pool(profiles({"failure": "error"}, {"failure": "malformed"}))
    with gateway(path) as client:
        resp = client.post("/v1/chat/completions", json=CHAT)
    error = assert_error(resp, 502, None, "all_miners_failed")
    assert "uid 0: error" in error["message"] and "uid 1: invalid" in error["message"]


def test_deadline_with_no_reply_is_504(sim_pool: Pools) -> None:
    _, path = sim_pool(
        profiles({"failure": "hang"}, {"failure": "slow_drip", "drip_interval_s": 0.05})
    )
    with gateway(path) as client:
        resp = client.post("/v1/chat/completions", json={**CHAT, "bitgate": {"timeout_s": 0.5}})
    assert_error(resp, 504, None, "deadline_exceeded")


def test_repeated_failures_put_a_miner_in_cool_down(sim_pool: Pools) -> None:
    _, path = sim_pool(profiles("good", {"failure": "error"}))
    with gateway(path, cooldown_after=2, cooldown_s=60) as client:
        for _ in range(2):
            assert client.post("/v1/chat/completions", json=CHAT).status_code == 200
        resp = client.post("/v1/chat/completions", json=CHAT)
        board = {row["uid"]: row for row in client.get("/v1/pools/sim/miners").json()["data"]}
    assert [c["uid"] for c in resp.json()["bitgate"]["candidates"]] == [0]
    assert board[1]["cooling_down"] is True and board[0]["cooling_down"] is False


def test_sample_limits_the_miners_asked(sim_pool: Pools) -> None:
    _, path = sim_pool(profiles(*["good"] * 6))
    with gateway(path) as client:
        resp = client.post(
            "/v1/chat/completions", json={**CHAT, "bitgate": {"top_k": 4, "sample": 2}}
        )
    uids = [c["uid"] for c in resp.json()["bitgate"]["candidates"]]
    assert len(uids) == 2 and set(uids) <= {0, 1, 2, 3}


def test_models_health_ready_and_metrics(good_pool: Path) -> None:
    with gateway(good_pool) as client:
        client.post("/v1/chat/completions", json=CHAT)
        models = client.get("/v1/models").json()
        health = client.get("/healthz")
        ready = client.get("/readyz").json()
        metrics = client.get("/metrics").text
    assert [m["id"] for m in models["data"]] == ["sim"]
    assert health.status_code == 200
    assert ready["ready"] is True
    assert ready["store"]["kind"] == "memory"
    assert (ready["store"]["healthy"], ready["store"]["state"]) == (True, "ok")
    assert 'bitgate_requests_total{pool="sim",status="200",strategy="best_of"} 1.0' in metrics
    assert 'bitgate_miner_wins_total{pool="sim",uid="0"} 1.0' in metrics
    assert "bitgate_overhead_seconds_bucket" in metrics


def test_a_failed_miner_never_wins_over_a_valid_reply(sim_pool: Pools) -> None:
    _, path = sim_pool(profiles({"quality": "empty", "latency": 200}, {"failure": "error"}))
    with gateway(path) as client:
        resp = client.post("/v1/chat/completions", json=CHAT)
    assert resp.status_code == 200
    body = resp.json()
    assert body["bitgate"]["miner"]["uid"] == 0
    assert body["choices"][0]["message"]["content"] == ""


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "sim", "prompt": ["one", "two"]}, "prompt"),
        ({**CHAT, "bitgate": {"top_k": 33}}, "bitgate.top_k"),
        ({**CHAT, "bitgate": {"timeout_s": 500}}, "bitgate.timeout_s"),
    ],
)
def test_requests_beyond_what_the_gateway_serves_are_400(
    good_pool: Path, body: dict[str, Any], param: str
) -> None:
    path = "/v1/completions" if "prompt" in body else "/v1/chat/completions"
    with gateway(good_pool) as client:
        resp = client.post(path, json=body)
    assert_error(resp, 400, param)


def test_openai_nulls_and_lenient_booleans_are_accepted(good_pool: Path) -> None:
    with gateway(good_pool) as client:
        nulls = client.post("/v1/chat/completions", json={**CHAT, "stream": None, "n": None})
        text_false = client.post("/v1/chat/completions", json={**CHAT, "stream": "false"})
    assert nulls.status_code == 200 and nulls.headers["content-type"] == "application/json"
    assert text_false.status_code == 200
    assert text_false.headers["content-type"] == "application/json"


def test_api_keys_guard_models_and_leaderboard_and_any_token_bytes(good_pool: Path) -> None:
    with gateway(good_pool, api_keys=["sekrit"]) as client:
        models = client.get("/v1/models")
        board = client.get("/v1/pools/sim/miners")
        accented = client.post(
            "/v1/chat/completions", json=CHAT, headers={"authorization": "Bearer sékrit".encode()}
        )
        keyed = client.get("/v1/models", headers={"authorization": "Bearer sekrit"})
    assert_error(models, 401, None, "invalid_api_key")
    assert_error(board, 401, None, "invalid_api_key")
    assert_error(accented, 401, None, "invalid_api_key")
    assert keyed.status_code == 200


def test_refused_requests_are_counted_in_the_metrics(good_pool: Path) -> None:
    with gateway(good_pool) as client:
        client.post("/v1/chat/completions", json={**CHAT, "model": "gpt-9"})
        client.post("/v1/chat/completions", json={**CHAT, "temperature": 9})
        metrics = client.get("/metrics").text
    assert 'bitgate_requests_total{pool="unknown",status="404",strategy="none"} 1.0' in metrics
    assert 'bitgate_requests_total{pool="unknown",status="400",strategy="none"} 1.0' in metrics


def test_a_dying_loop_is_restarted_and_shown_in_readyz(good_pool: Path) -> None:
    with gateway(good_pool) as client:
        state = client.app.state.gateway  # type: ignore[attr-defined]
        client.portal.call(_supervise_flaky_loop, state.supervisor)  # type: ignore[union-attr]
        ready = client.get("/readyz")
    assert ready.status_code == 200
    loop = ready.json()["background_loops"]["flaky"]
    assert loop["state"] == "running" and loop["restarts"] == 1
    assert "boom" in loop["last_error"]
    assert ready.json()["dead_background_tasks"] == []
    assert {"store-sync", "metagraphs", "epochs:sim"} <= set(ready.json()["background_loops"])


def test_a_loop_waiting_to_restart_makes_the_gateway_not_ready(good_pool: Path) -> None:
    with gateway(good_pool) as client:
        state = client.app.state.gateway  # type: ignore[attr-defined]
        state.supervisor.first_backoff_s = 3600.0
        client.portal.call(_supervise_crashing_loop, state.supervisor)  # type: ignore[union-attr]
        ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["dead_background_tasks"] == ["crash-loop"]
    assert ready.json()["background_loops"]["crash-loop"]["state"] == "restarting"


def test_finished_settle_tasks_never_make_the_gateway_not_ready(good_pool: Path) -> None:
    race = {**CHAT, "bitgate": {"strategy": "race"}}
    with gateway(good_pool) as client:
        state = client.app.state.gateway  # type: ignore[attr-defined]
        for _ in range(3):
            assert client.post("/v1/chat/completions", json=race).status_code == 200
        client.portal.call(_drain, state.settler)  # type: ignore[union-attr]
        # A settle task seen done before its done-callback removed it (once enough to flip
        # readiness to 503), and one that failed: neither is a loop of the gateway.
        for coro_fn in (_settled, _crash):
            task = client.portal.call(_start_task, coro_fn)  # type: ignore[union-attr]
            state.settler.settling.add(task)
        ready = client.get("/readyz")
        board = client.get("/v1/pools/sim/miners").json()["data"]
    assert ready.status_code == 200, ready.text
    assert ready.json()["dead_background_tasks"] == []
    assert sum(row["requests"] for row in board) == 9  # every race's miners were settled


async def _drain(settler: Any) -> None:
    """Wait until every settle task has finished."""
    async with asyncio.timeout(30):
        while settler.settling:
            await asyncio.gather(*settler.settling, return_exceptions=True)


async def _settled() -> None:
    return None


async def _crash() -> None:
    raise RuntimeError("boom")


async def _start_task(coro_fn: Any) -> Any:
    """A named task on the app's loop that has already finished."""
    task = asyncio.get_running_loop().create_task(coro_fn(), name="crash-loop")
    await asyncio.gather(task, return_exceptions=True)
    return task


async def _supervise_crashing_loop(supervisor: Any) -> None:
    """A loop that dies at once, supervised; returns once it has died."""
    died = asyncio.Event()

    async def crash() -> None:
        died.set()
        raise RuntimeError("boom")

    supervisor.start("crash-loop", crash)
    await died.wait()
    await asyncio.sleep(0)  # let the supervisor see it die


async def _supervise_flaky_loop(supervisor: Any) -> None:
    """A loop that dies on its first run and lives on its second; returns once restarted."""
    supervisor.first_backoff_s = 0.0
    runs: list[int] = []
    restarted = asyncio.Event()

    async def flaky() -> None:
        runs.append(1)
        if len(runs) == 1:
            raise RuntimeError("boom")
        restarted.set()
        await asyncio.Event().wait()

    supervisor.start("flaky", flaky)
    async with asyncio.timeout(10):
        await restarted.wait()
