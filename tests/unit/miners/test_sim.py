"""The simulated miner pool over real loopback sockets: shapes, qualities, failures, CLI."""

from __future__ import annotations

import asyncio
import json
import random
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.commands.cli import main
from miners.cli import format_ports
from miners.sim.pool import SimPool, start_pool
from miners.sim.profiles import (
    FAILURE_MODES,
    QUALITIES,
    Latency,
    MinerProfile,
    ProfileError,
    build_mix,
    load_profiles,
)
from miners.sim.questions import HOSTILE, QUESTIONS, REFUSAL, answer, find_question
from miners.sim.wire import split_pieces
from router.metagraph import Metagraph, load_metagraph
from tests.support import ROOT

QUESTION = QUESTIONS[8]
CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"

pytestmark = pytest.mark.integration


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    """One client session per test, closed at the end."""
    async with aiohttp.ClientSession() as session:
        yield session


def chat_body(prompt: str = QUESTION.prompt, **extra: Any) -> dict[str, Any]:
    """A chat request asking one question."""
    return {"model": "sim", "messages": [{"role": "user", "content": prompt}], **extra}


def completion_body(prompt: str = QUESTION.prompt, **extra: Any) -> dict[str, Any]:
    """A completions request with one prompt."""
    return {"model": "sim", "prompt": prompt, **extra}


def sse_events(raw: bytes) -> list[str]:
    """The data fields of an SSE body, in order."""
    return [part.removeprefix("data: ") for part in raw.decode().split("\n\n") if part]


async def post(
    client: aiohttp.ClientSession, url: str, body: dict[str, Any], limit_s: float = 5
) -> tuple[int, bytes]:
    """POST JSON and return the status and the raw body."""
    async with client.post(url, json=body, timeout=aiohttp.ClientTimeout(total=limit_s)) as resp:
        return resp.status, await resp.read()


async def one_miner(**fields: Any) -> SimPool:
    """A pool of one miner with these profile fields."""
    return await start_pool([MinerProfile.model_validate(fields)])


async def test_chat_non_stream_has_openai_shape(client: aiohttp.ClientSession) -> None:
    async with await one_miner() as pool:
        status, raw = await post(client, pool.urls[0] + CHAT, chat_body())
    assert status == 200
    doc = json.loads(raw)
    assert set(doc) >= {"id", "object", "created", "model", "choices", "usage"}
    assert doc["object"] == "chat.completion" and doc["id"].startswith("chatcmpl-")
    assert doc["model"] == "sim" and isinstance(doc["created"], int)
    choice = doc["choices"][0]
    assert choice["index"] == 0 and choice["finish_reason"] == "stop"
    assert choice["message"] == {"role": "assistant", "content": QUESTION.good}
    usage = doc["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0


async def test_completions_non_stream_has_openai_shape(client: aiohttp.ClientSession) -> None:
    async with await one_miner() as pool:
        status, raw = await post(client, pool.urls[0] + COMPLETIONS, completion_body())
    doc = json.loads(raw)
    assert status == 200 and doc["object"] == "text_completion" and doc["id"].startswith("cmpl-")
    assert doc["choices"][0]["text"] == QUESTION.good
    assert doc["choices"][0]["finish_reason"] == "stop"
    assert doc["usage"]["prompt_tokens"] == len(QUESTION.prompt.split())


@pytest.mark.parametrize(("path", "make_body"), [(CHAT, chat_body), (COMPLETIONS, completion_body)])
async def test_stream_deltas_add_up_to_the_non_stream_reply(
    client: aiohttp.ClientSession, path: str, make_body: Any
) -> None:
    async with await one_miner() as pool:
        _, whole = await post(client, pool.urls[0] + path, make_body())
        status, raw = await post(client, pool.urls[0] + path, make_body(stream=True))
    events = sse_events(raw)
    assert status == 200 and events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    choices = [chunk["choices"][0] for chunk in chunks]
    if path == CHAT:
        assert choices[0]["delta"]["role"] == "assistant"
        text = "".join(c["delta"].get("content") or "" for c in choices)
        expected = json.loads(whole)["choices"][0]["message"]["content"]
    else:
        text = "".join(c["text"] for c in choices)
        expected = json.loads(whole)["choices"][0]["text"]
    assert text == expected and len(chunks) > 3
    assert choices[-1]["finish_reason"] == "stop"
    assert all(c["finish_reason"] is None for c in choices[:-1])
    assert {chunk["object"] for chunk in chunks} <= {"chat.completion.chunk", "text_completion"}


async def test_stream_usage_chunk_when_asked(client: aiohttp.ClientSession) -> None:
    body = chat_body(stream=True, stream_options={"include_usage": True})
    async with await one_miner() as pool:
        _, raw = await post(client, pool.urls[0] + CHAT, body)
    usage_event = json.loads(sse_events(raw)[-2])
    assert usage_event["choices"] == [] and usage_event["usage"]["completion_tokens"] > 0


def test_split_pieces_rejoin_exactly() -> None:
    text = "  Hello  there, world.\nNew line   here "
    pieces = split_pieces(text)
    assert "".join(pieces) == text and len(pieces) > 1
    assert split_pieces("") == []


@pytest.mark.parametrize("quality", QUALITIES)
async def test_each_quality_answers_as_described(
    client: aiohttp.ClientSession, quality: str
) -> None:
    async with await one_miner(quality=quality) as pool:
        _, raw = await post(client, pool.urls[0] + CHAT, chat_body())
    choice = json.loads(raw)["choices"][0]
    content, finish = choice["message"]["content"], choice["finish_reason"]
    expected = {
        "good": QUESTION.good,
        "partial": QUESTION.partial,
        "wrong": QUESTION.wrong,
        "empty": "",
        "echo": QUESTION.prompt,
        "refusal": REFUSAL,
        "hostile": HOSTILE,
    }
    if quality in expected:
        assert content == expected[quality] and finish == "stop"
    elif quality == "off_topic":
        assert content in {q.good for q in QUESTIONS} and content != QUESTION.good
    elif quality == "truncated":
        assert QUESTION.good.startswith(content) and len(content) < len(QUESTION.good)
        assert finish == "length" and not content.endswith(".")
    elif quality == "terse":
        assert len(content.split()) <= 6 and QUESTION.good.startswith(content.rstrip("."))
    elif quality == "rambling":
        assert content.startswith(QUESTION.good.split(". ")[0])
        assert len(content) > len(QUESTION.good)
    else:
        sentence = QUESTION.good.split(". ")[0] + "."
        assert content.count(sentence) >= 3


async def test_a_miner_counts_the_requests_its_caller_abandons(
    client: aiohttp.ClientSession,
) -> None:
    async with await one_miner(latency=60_000) as pool:
        asking = asyncio.ensure_future(post(client, pool.urls[0] + CHAT, chat_body(), limit_s=30))
        for _ in range(200):
            if pool.in_flight() == [1]:
                break
            await asyncio.sleep(0.01)
        assert pool.in_flight() == [1] and pool.cancelled_counts() == [0]
        asking.cancel()
        for _ in range(200):
            if pool.cancelled_counts() == [1]:
                break
            await asyncio.sleep(0.01)
        assert pool.cancelled_counts() == [1] and pool.in_flight() == [0]


def test_prompt_match_ignores_case_and_spaces() -> None:
    assert find_question("  why IS the   sky blue? ") == QUESTION
    assert answer("WHY is the sky blue?", "good").text == QUESTION.good


def test_unknown_prompt_gets_on_topic_answers() -> None:
    prompt = "Explain how sourdough fermentation affects bread flavour"
    good, partial, wrong = (answer(prompt, q).text for q in ("good", "partial", "wrong"))
    assert "sourdough" in good and "fermentation" in good
    assert "sourdough" in partial and len(partial) < len(good)
    assert wrong not in (good, partial)
    assert answer(prompt, "off_topic").text in {q.good for q in QUESTIONS}
    assert answer(prompt, "truncated").finish_reason == "length"


def test_question_bank_is_varied_and_complete() -> None:
    assert len(QUESTIONS) >= 25
    assert len({q.prompt for q in QUESTIONS}) == len(QUESTIONS)
    assert {q.kind for q in QUESTIONS} >= {"fact", "science", "how-to", "code", "definition"}
    assert all(len({q.good, q.partial, q.wrong}) == 3 for q in QUESTIONS)


async def test_max_tokens_cuts_the_reply(client: aiohttp.ClientSession) -> None:
    async with await one_miner() as pool:
        _, raw = await post(client, pool.urls[0] + CHAT, chat_body(max_tokens=5))
    doc = json.loads(raw)
    assert len(doc["choices"][0]["message"]["content"].split()) == 5
    assert doc["choices"][0]["finish_reason"] == "length"
    assert doc["usage"]["completion_tokens"] == 5


@pytest.mark.parametrize(
    ("path", "payload", "param"),
    [
        (CHAT, b"{not json", None),
        (CHAT, b"[1, 2]", None),
        (CHAT, b'{"model": "sim"}', "messages"),
        (CHAT, json.dumps(chat_body(max_tokens=0)).encode(), "max_tokens"),
        (COMPLETIONS, b'{"prompt": 3}', "prompt"),
    ],
)
async def test_bad_requests_get_400_openai_errors(
    client: aiohttp.ClientSession, path: str, payload: bytes, param: str | None
) -> None:
    async with await one_miner() as pool, client.post(pool.urls[0] + path, data=payload) as resp:
        status, doc = resp.status, await resp.json()
    assert status == 400
    assert set(doc["error"]) == {"message", "type", "param", "code"}
    assert doc["error"]["type"] == "invalid_request_error" and doc["error"]["param"] == param


async def test_models_and_health(client: aiohttp.ClientSession) -> None:
    async with await one_miner(model="tiny") as pool:
        async with client.get(pool.urls[0] + "/v1/models") as resp:
            models = await resp.json()
        async with client.get(pool.urls[0] + "/health") as resp:
            health = resp.status
    assert models["object"] == "list" and models["data"][0]["id"] == "tiny"
    assert health == 200


async def test_error_failure_is_a_500_openai_error(client: aiohttp.ClientSession) -> None:
    async with await one_miner(failure="error") as pool:
        status, raw = await post(client, pool.urls[0] + CHAT, chat_body())
    assert status == 500
    assert set(json.loads(raw)["error"]) == {"message", "type", "param", "code"}


@pytest.mark.parametrize("stream", [False, True])
async def test_hang_failure_times_the_client_out(
    client: aiohttp.ClientSession, stream: bool
) -> None:
    async with await one_miner(failure="hang") as pool:
        started = time.perf_counter()
        with pytest.raises(TimeoutError):
            await post(client, pool.urls[0] + CHAT, chat_body(stream=stream), limit_s=0.3)
        assert time.perf_counter() - started < 2


async def test_malformed_failure_sends_broken_json(client: aiohttp.ClientSession) -> None:
    async with await one_miner(failure="malformed") as pool:
        status, raw = await post(client, pool.urls[0] + CHAT, chat_body())
        _, streamed = await post(client, pool.urls[0] + CHAT, chat_body(stream=True))
    assert status == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(raw)
    events = sse_events(streamed)
    with pytest.raises(json.JSONDecodeError):
        [json.loads(event) for event in events[:-1]]


async def test_drop_stream_failure_cuts_the_stream_before_done(
    client: aiohttp.ClientSession,
) -> None:
    received = b""
    async with await one_miner(failure="drop_stream") as pool:
        async with client.post(pool.urls[0] + CHAT, json=chat_body(stream=True)) as resp:
            with pytest.raises(aiohttp.ClientPayloadError):
                async for line in resp.content:
                    received += line
        with pytest.raises(aiohttp.ClientPayloadError):
            await post(client, pool.urls[0] + CHAT, chat_body())
    assert b"[DONE]" not in received
    assert received.count(b"chat.completion.chunk") >= 2


@pytest.mark.parametrize("stream", [False, True])
async def test_slow_drip_failure_never_finishes(
    client: aiohttp.ClientSession, stream: bool
) -> None:
    pool = await one_miner(failure="slow_drip", drip_interval_s=0.05)
    async with pool, client.post(pool.urls[0] + CHAT, json=chat_body(stream=stream)) as resp:
        assert resp.status == 200
        first = await asyncio.wait_for(resp.content.read(1), 2)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(resp.read(), 0.3)
    assert first


async def test_failure_rate_fails_about_that_share(client: aiohttp.ClientSession) -> None:
    async with await one_miner(failure="error", failure_rate=0.5) as pool:
        statuses = [(await post(client, pool.urls[0] + CHAT, chat_body()))[0] for _ in range(200)]
    assert 60 < statuses.count(500) < 140
    assert statuses.count(500) + statuses.count(200) == 200


def test_every_failure_mode_is_covered_by_the_faults_mix() -> None:
    profiles = build_mix("faults", len(FAILURE_MODES))
    assert {p.failure for p in profiles} == set(FAILURE_MODES)
    assert all(p.quality == "good" for p in profiles)


async def test_fixed_latency_delays_the_reply(client: aiohttp.ClientSession) -> None:
    async with await one_miner(latency=150) as pool:
        started = time.perf_counter()
        await post(client, pool.urls[0] + CHAT, chat_body())
    assert time.perf_counter() - started >= 0.15


async def test_tokens_per_s_paces_the_stream(client: aiohttp.ClientSession) -> None:
    words = len(QUESTION.good.split())
    async with await one_miner(latency={"tokens_per_s": words * 4}) as pool:
        started = time.perf_counter()
        _, raw = await post(client, pool.urls[0] + CHAT, chat_body(stream=True))
    assert time.perf_counter() - started >= 0.2
    assert sse_events(raw)[-1] == "[DONE]"


def test_latency_samples_follow_their_distribution() -> None:
    rng = random.Random(7)
    assert Latency().sample_s(rng) == 0.0 and Latency().instant
    assert Latency.model_validate(250).sample_s(rng) == 0.25
    normal = [Latency(kind="normal", ms=100, sd_ms=10).sample_s(rng) for _ in range(2000)]
    assert 0.098 < sum(normal) / len(normal) < 0.102
    lognormal = sorted(
        Latency(kind="lognormal", ms=200, sigma=0.5).sample_s(rng) for _ in range(2001)
    )
    assert 0.18 < lognormal[1000] < 0.22 and min(lognormal) > 0
    capped = Latency(kind="normal", ms=100, sd_ms=500, max_ms=150)
    assert all(0 <= capped.sample_s(rng) <= 0.15 for _ in range(500))


def test_same_seed_gives_the_same_samples() -> None:
    latency = Latency(kind="lognormal", ms=100)
    first, second = random.Random("1/0"), random.Random("1/0")
    assert [latency.sample_s(first) for _ in range(5)] == [
        latency.sample_s(second) for _ in range(5)
    ]


async def test_metagraph_validates_and_matches_the_ports(tmp_path: Path) -> None:
    async with await start_pool(build_mix("demo", 12)) as pool:
        metagraph = pool.metagraph(name="pool-a", netuid=7)
        written = pool.write_metagraph(tmp_path / "mg.json", name="pool-a", netuid=7)
    assert Metagraph.model_validate_json(metagraph.model_dump_json()) == metagraph
    assert load_metagraph(tmp_path / "mg.json") == written == metagraph
    assert metagraph.pool_name == "pool-a" and metagraph.netuid == 7
    neurons = metagraph.neurons
    assert [n.uid for n in neurons] == list(range(12))
    assert [n.axon.port for n in neurons] == pool.ports
    assert all(n.axon.ip == "127.0.0.1" and n.serving and n.active for n in neurons)
    assert not any(n.validator_permit for n in neurons)
    incentives = [n.incentive for n in neurons]
    assert incentives == sorted(incentives, reverse=True) and len(set(incentives)) == 12
    assert abs(sum(incentives) - 1) < 1e-3
    hotkeys = {n.hotkey for n in neurons}
    assert len(hotkeys) == 12 and all(k.startswith("5Sim") and len(k) == 48 for k in hotkeys)


async def test_profile_incentive_overrides_the_default() -> None:
    profiles = [MinerProfile(incentive=0.9), MinerProfile()]
    async with await start_pool(profiles) as pool:
        assert pool.metagraph().neurons[0].incentive == 0.9


def test_yaml_profiles_load(tmp_path: Path) -> None:
    path = tmp_path / "pool.yaml"
    path.write_text(
        "miners:\n"
        "  - {name: fast, quality: good, latency: 0}\n"
        "  - name: slow\n"
        "    quality: partial\n"
        "    latency: {kind: lognormal, ms: 800, sigma: 0.4, tokens_per_s: 30}\n"
        "    failure: error\n"
        "    failure_rate: 0.2\n"
    )
    fast, slow = load_profiles(path)
    assert fast.name == "fast" and fast.latency.instant
    assert slow.latency.kind == "lognormal" and slow.latency.tokens_per_s == 30
    assert slow.failure == "error" and slow.failure_rate == 0.2


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("miners:\n  - {quality: good}\n  - {quality: great}\n", "miners.1.quality"),
        ("- {latency: {kind: normal, ms: -5}}\n", "miners.0.latency.ms"),
        ("miners:\n  - {failure: error, failure_rate: 2}\n", "miners.0.failure_rate"),
        ("miners:\n  - {qualty: good}\n", "miners.0.qualty"),
        ("miners: []\n", "miners"),
        ("miners: [unclosed\n", "invalid YAML"),
    ],
)
def test_bad_yaml_profiles_name_the_field(tmp_path: Path, text: str, named: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ProfileError, match=named.replace(".", r"\.")) as caught:
        load_profiles(path)
    assert str(path) in str(caught.value)


def test_named_mixes() -> None:
    assert all(p.quality == "good" and p.latency.instant for p in build_mix("instant", 10))
    demo = build_mix("demo", 10)
    qualities = [p.quality for p in demo]
    assert qualities.count("good") >= 2
    assert {"partial", "wrong", "off_topic", "refusal"} <= set(qualities)
    assert any(p.failure == "error" and 0 < p.failure_rate < 1 for p in demo)
    assert any(p.latency.kind == "lognormal" for p in demo)
    assert len(build_mix("demo", 25)) == 25
    with pytest.raises(ProfileError, match="unknown mix"):
        build_mix("nope", 3)


async def test_a_64_miner_pool_starts_quickly(client: aiohttp.ClientSession) -> None:
    started = time.perf_counter()
    async with await start_pool(build_mix("instant", 64)) as pool:
        elapsed = time.perf_counter() - started
        statuses = []
        for url in pool.urls:
            async with client.get(url + "/health") as resp:
                statuses.append(resp.status)
    assert elapsed < 3 and statuses == [200] * 64 and len(set(pool.ports)) == 64


async def test_request_counts_follow_the_traffic(client: aiohttp.ClientSession) -> None:
    async with await start_pool(build_mix("instant", 3)) as pool:
        for _ in range(2):
            await post(client, pool.urls[1] + CHAT, chat_body())
        assert pool.request_counts() == [0, 2, 0]


def test_format_ports() -> None:
    assert format_ports([9100, 9101, 9102]) == "9100-9102"
    assert format_ports([9100, 9102, 9103]) == "9100,9102-9103"


def test_cli_reports_a_bad_profile_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("- {quality: great}\n")
    assert main(["miner", "sim", "--profiles", str(path)]) == 1
    assert "miners.0.quality" in capsys.readouterr().err


def test_cli_serves_a_pool_and_writes_its_metagraph(tmp_path: Path) -> None:
    out = tmp_path / "mg.json"
    command = [
        sys.executable,
        "-m",
        "gateway",
        "miner",
        "sim",
        "--count",
        "3",
        "--base-port",
        "0",
    ]
    command += ["--mix", "instant", "--metagraph-out", str(out), "--name", "cli-pool"]
    with subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            metagraph = load_metagraph(out)
            assert metagraph.name == "cli-pool" and len(metagraph.neurons) == 3
            assert str(out) in line and str(metagraph.neurons[0].axon.port) in line
            url = metagraph.neurons[0].base_url + "/health"
            with urllib.request.urlopen(url, timeout=5) as resp:
                assert resp.status == 200
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=10) == 0
