"""Sim miners for load tests: capacity limits, empty replies, availability, Epistula, 256 miners."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import orjson
import pytest

from gateway.commands.cli import main
from miners.keys import new_keypair
from miners.signers import SignerPolicy
from miners.sim.pool import SimPool, start_pool
from miners.sim.profiles import MinerProfile, load_profiles
from router.epistula import Signer
from router.metagraph import load_metagraph
from tests.support import ROOT

pytestmark = pytest.mark.integration

CHAT = "/v1/chat/completions"
BODY = orjson.dumps({"messages": [{"role": "user", "content": "Why is the sky blue?"}]})
# 256 verifying sim miners in one process measured 58 MiB idle and after requests (2-core
# dev machine, Python 3.11); a quarter more fails the test, and so does growth from requests.
MEASURED_RSS_KIB = 58 * 1024
MAX_RSS_KIB = MEASURED_RSS_KIB * 5 // 4
MAX_GROWTH_KIB = 4 * 1024


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    """One client session per test."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session:
        yield session


async def post(
    client: aiohttp.ClientSession,
    url: str,
    body: bytes = BODY,
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes, dict[str, str]]:
    """POST raw bytes; status, body and headers."""
    async with client.post(url, data=body, headers=headers or {}) as resp:
        return resp.status, await resp.read(), dict(resp.headers)


async def get_json(client: aiohttp.ClientSession, url: str) -> Any:
    """GET a JSON document."""
    async with client.get(url) as resp:
        return await resp.json()


async def one(**fields: Any) -> SimPool:
    """A pool of one sim miner with these profile fields."""
    return await start_pool([MinerProfile.model_validate(fields)])


async def test_capacity_answers_429_with_retry_after(client: aiohttp.ClientSession) -> None:
    async with await one(failure="hang", capacity=2, retry_after_s=3) as pool:
        url = pool.urls[0]
        held = [asyncio.create_task(post(client, url + CHAT)) for _ in range(2)]
        while (await get_json(client, url + "/availability"))["in_flight"] < 2:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        status, raw, headers = await post(client, url + CHAT)
        busy = await get_json(client, url + "/availability")
        for task in held:
            task.cancel()
        await asyncio.gather(*held, return_exceptions=True)
    assert status == 429
    assert headers["Retry-After"] == "3"
    assert orjson.loads(raw)["error"]["type"] == "rate_limit_error"
    assert busy["saturated"] and busy["available"] == 0 and busy["refused"] == 1
    assert pool.request_counts() == [2]


async def test_no_capacity_limit_by_default(client: aiohttp.ClientSession) -> None:
    async with await one() as pool:
        statuses = await asyncio.gather(*(post(client, pool.urls[0] + CHAT) for _ in range(20)))
        available = await get_json(client, pool.urls[0] + "/availability")
    assert {s[0] for s in statuses} == {200}
    assert available == {
        "model": "sim",
        "capacity": None,
        "in_flight": 0,
        "available": None,
        "saturated": False,
        "refused": 0,
    }


async def test_empty_failure_sends_nothing(client: aiohttp.ClientSession) -> None:
    async with await one(failure="empty") as pool:
        plain = await post(client, pool.urls[0] + CHAT)
        stream_body = orjson.dumps({**orjson.loads(BODY), "stream": True})
        stream = await post(client, pool.urls[0] + CHAT, stream_body)
    assert plain[:2] == (200, b"")
    assert stream[:2] == (200, b"")
    assert stream[2]["Content-Type"].startswith("text/event-stream")


def test_yaml_profiles_carry_every_load_test_knob(tmp_path: Path) -> None:
    path = tmp_path / "profiles.yaml"
    path.write_text(
        """
miners:
  - name: tail
    latency: {kind: lognormal, ms: 400, sigma: 0.9, max_ms: 6000, tokens_per_s: 40}
    capacity: 8
    retry_after_s: 2
  - name: blank
    failure: empty
    failure_rate: 0.25
  - name: jitter
    latency: {kind: normal, ms: 200, sd_ms: 50}
"""
    )
    tail, blank, jitter = load_profiles(path)
    assert tail.latency.kind == "lognormal" and tail.latency.max_ms == 6000
    assert tail.latency.tokens_per_s == 40
    assert (tail.capacity, tail.retry_after_s) == (8, 2)
    assert (blank.failure, blank.failure_rate) == ("empty", 0.25)
    assert jitter.latency.kind == "normal" and jitter.capacity is None


async def test_verifying_sim_miner_takes_only_signed_requests(
    client: aiohttp.ClientSession,
) -> None:
    validator = new_keypair()
    signer = Signer(validator)
    async with await start_pool([MinerProfile(), MinerProfile()]) as pool:
        pool.require_epistula(SignerPolicy([validator.ss58_address]), name="sn9")
        hotkeys = [neuron.hotkey for neuron in pool.metagraph("sn9").neurons]
        url = pool.urls[0]
        unsigned = await post(client, url + CHAT)
        for_other = await post(client, url + CHAT, headers=signer(BODY, hotkeys[1]))
        stranger = await post(client, url + CHAT, headers=Signer(new_keypair())(BODY, hotkeys[0]))
        signed = await post(client, url + CHAT, headers=signer(BODY, hotkeys[0]))
        health = await client.get(url + "/health")
        health.release()
    codes = [orjson.loads(r[1])["error"]["code"] for r in (unsigned, for_other, stranger)]
    assert [r[0] for r in (unsigned, for_other, stranger)] == [401, 401, 401]
    assert codes == [
        "epistula_missing_header",
        "epistula_wrong_miner",
        "epistula_signer_not_allowed",
    ]
    assert signed[0] == 200
    assert health.status == 200
    assert pool.request_counts() == [1, 0]


def rss_kib(pid: int) -> int:
    """A process's resident memory in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
def test_256_verifying_miners_start_and_stay_small(tmp_path: Path) -> None:
    validator = new_keypair()
    out = tmp_path / "pool.json"
    command = [
        *(
            sys.executable,
            "-m",
            "gateway",
            "miner",
            "sim",
            "--count",
            "256",
            "--mix",
            "instant",
        ),
        *("--metagraph-out", str(out), "--name", "big"),
        *("--verify-epistula", "--allow-hotkey", validator.ss58_address),
    ]
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        assert proc.stdout is not None
        assert "256 miners" in proc.stdout.readline().decode()
        idle = rss_kib(proc.pid)
        neurons = load_metagraph(out).neurons
        signer = Signer(validator)
        replies = []
        for neuron in (neurons[0], neurons[127], neurons[255]):
            url = neuron.base_url + CHAT
            replies.append(httpx.post(url, content=BODY, headers=signer(BODY, neuron.hotkey)))
            replies.append(httpx.post(url, content=BODY))
        served = rss_kib(proc.pid)
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stdout:
            proc.stdout.close()
    assert len(neurons) == 256
    assert [r.status_code for r in replies] == [200, 401] * 3
    assert idle < MAX_RSS_KIB
    assert served < MAX_RSS_KIB and served - idle < MAX_GROWTH_KIB


def test_cli_verify_needs_an_allowed_signer(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["miner", "sim", "--count", "1", "--verify-epistula"]) == 1
    assert "--allow-hotkey" in capsys.readouterr().err
    assert main(["miner", "sim", "--verify-epistula", "--allow-hotkey", "5Sim"]) == 1
    assert "not an SS58" in capsys.readouterr().err
