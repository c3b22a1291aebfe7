"""`bitgate miner serve` in front of the vLLM double, and a gateway in front of it, on loopback.

The miner is the real process launching the double as its `vllm`; the gateway signs with a
validator hotkey. What a real vLLM would show (tools refused without the flags, context
overflows, `guided_*` ignored, errors mid-stream) the double shows too.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest
from bittensor_wallet import Keypair

from miners.keys import new_keypair, write_hotkey_file
from router.epistula import Signer
from tests.support import ROOT, GatewayProcess, free_port, wait_http
from tests.vllm_double import KEEP_ALIVE_S, MIDSTREAM_FAILURE, write_fake_vllm

pytestmark = pytest.mark.integration

MODEL = "Qwen/Qwen2.5-0.5B-Instruct"
SERVED = "qwen"
CONTEXT = 2048
POOL = "sn1"
QUESTION = [{"role": "user", "content": "Why is the sky blue?"}]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
ANSWER_SCHEMA = {
    "type": "object",
    "properties": {"answer": {"type": "string"}, "confidence": {"type": "number"}},
    "required": ["answer", "confidence"],
}


@dataclass
class Miner:
    """The running miner: its URL, the double's URL, who signs and who it is."""

    url: str
    vllm_url: str
    signer: Signer
    validator: Keypair
    hotkey: str
    record: Path

    def post(self, path: str, body: dict[str, Any], ahead_ms: int = 0) -> httpx.Response:
        """A request signed by the validator (its clock `ahead_ms` fast)."""
        raw = orjson.dumps(body)
        signer = Signer(self.validator, lambda: int(time.time() * 1000) + ahead_ms)
        headers = {"Content-Type": "application/json", **signer(raw, self.hotkey)}
        return httpx.post(self.url + path, content=raw, headers=headers, timeout=20)

    def upstream_saw(self) -> dict[str, Any]:
        """The last body the double received."""
        seen: dict[str, Any] = httpx.get(self.vllm_url + "/_double/last", timeout=5).json()
        return seen


@pytest.fixture(scope="module")
def miner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Miner]:
    """`bitgate miner serve --launch-vllm` with the double as its vllm."""
    workdir = tmp_path_factory.mktemp("miner")
    executable = write_fake_vllm(workdir)
    validator, hotkey = new_keypair(), new_keypair()
    write_hotkey_file(workdir / "miner-hotkey", hotkey)
    port, vllm_port = free_port(), free_port()
    command = [
        *(sys.executable, "-m", "gateway", "miner", "serve", "--launch-vllm"),
        *("--model", MODEL, "--served-model-name", SERVED, "--max-model-len", str(CONTEXT)),
        *("--vllm-bin", str(executable), "--vllm-port", str(vllm_port), "--port", str(port)),
        *("--hotkey-file", str(workdir / "miner-hotkey")),
        *("--allow-hotkey", validator.ss58_address),
    ]
    env = {"PATH": "/usr/bin:/bin", "FAKE_VLLM_RECORD": str(workdir / "record.json")}
    log = (workdir / "miner.log").open("wb")
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/health", timeout=60, proc=proc)
        yield Miner(
            url,
            f"http://127.0.0.1:{vllm_port}",
            Signer(validator),
            validator,
            hotkey.ss58_address,
            workdir / "record.json",
        )
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def start_gateway(miner: Miner, workdir: Path, declared: bool) -> GatewayProcess:
    """`bitgate serve` with one pool of that miner, its context declared in the pools file or
    left for the gateway to read from the miner's /v1/models."""
    validator_file = workdir / "validator-hotkey"
    write_hotkey_file(validator_file, miner.validator)
    port = int(miner.url.rsplit(":", 1)[1])
    neuron = {
        "uid": 0,
        "hotkey": miner.hotkey,
        "coldkey": miner.hotkey,
        "axon": {"ip": "127.0.0.1", "port": port, "protocol": "http"},
        "stake": 0.0,
        "incentive": 1.0,
        "active": True,
    }
    (workdir / "metagraph.json").write_text(
        json.dumps({"netuid": 1, "name": POOL, "block": 1, "neurons": [neuron]})
    )
    pool: dict[str, Any] = {"name": POOL, "metagraph": "metagraph.json"}
    if declared:
        pool["max_model_len"] = CONTEXT
    (workdir / "pools.json").write_text(json.dumps({"pools": [pool]}))
    return GatewayProcess(
        "--pools", str(workdir / "pools.json"), env={"BITGATE_HOTKEY_FILE": str(validator_file)}
    )


@pytest.fixture(scope="module")
def gateway(miner: Miner, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    """A gateway whose pool declares its miners' context."""
    process = start_gateway(miner, tmp_path_factory.mktemp("gateway"), declared=True)
    try:
        yield process
    finally:
        process.stop()


def api(gateway: GatewayProcess) -> openai.OpenAI:
    """An OpenAI client for the gateway."""
    return openai.OpenAI(base_url=gateway.base_url + "/v1", api_key="-", max_retries=0)


def test_the_launched_vllm_has_tool_calling_and_the_declared_context(miner: Miner) -> None:
    argv = json.loads(miner.record.read_text())["argv"]
    assert argv[argv.index("--tool-call-parser") + 1] == "hermes"
    assert "--enable-auto-tool-choice" in argv
    cards = httpx.get(miner.url + "/v1/models", timeout=5).json()["data"]
    assert [(c["id"], c["max_model_len"]) for c in cards] == [(SERVED, CONTEXT)]


def test_chat_and_completions_stream_and_not_through_the_gateway(
    gateway: GatewayProcess,
) -> None:
    with api(gateway) as client:
        reply = client.chat.completions.create(model=POOL, messages=QUESTION, max_tokens=8)
        chunks = list(
            client.chat.completions.create(model=POOL, messages=QUESTION, max_tokens=8, stream=True)
        )
        completion = client.completions.create(model=POOL, prompt="The sky is", max_tokens=8)
        pieces = list(
            client.completions.create(model=POOL, prompt="The sky is", max_tokens=8, stream=True)
        )
    assert (reply.choices[0].message.content or "").startswith("token")
    assert "token" in "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert completion.choices[0].text.strip()
    assert "token" in "".join(p.choices[0].text for p in pieces if p.choices)


def test_tool_calls_come_back_through_the_gateway(gateway: GatewayProcess) -> None:
    with api(gateway) as client:
        reply = client.chat.completions.create(
            model=POOL, messages=QUESTION, tools=[WEATHER_TOOL], max_tokens=32
        )
    (call,) = reply.choices[0].message.tool_calls or []
    assert call.function.name == "get_weather"
    assert "city" in json.loads(call.function.arguments)


def test_guided_json_is_held_to_by_the_pinned_vllm(gateway: GatewayProcess, miner: Miner) -> None:
    with api(gateway) as client:
        reply = client.chat.completions.create(
            model=POOL, messages=QUESTION, max_tokens=64, extra_body={"guided_json": ANSWER_SCHEMA}
        )
    document = json.loads(reply.choices[0].message.content or "")
    assert set(document) >= {"answer", "confidence"}
    seen = miner.upstream_saw()
    assert seen["structured_outputs"] == {"json": ANSWER_SCHEMA} and "guided_json" not in seen


def test_the_gateway_caps_max_tokens_at_the_miners_context(gateway: GatewayProcess) -> None:
    with api(gateway) as client, pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=POOL, messages=QUESTION, max_tokens=CONTEXT + 100)
    body = caught.value.body
    assert isinstance(body, dict) and body.get("param") == "max_tokens"


def test_a_gateway_reads_the_context_its_miners_report(miner: Miner, tmp_path: Path) -> None:
    process = start_gateway(miner, tmp_path, declared=False)
    statuses = []
    try:
        with api(process) as client:
            for _ in range(50):  # until the gateway has read the miner's /v1/models (bounded)
                try:
                    client.chat.completions.create(
                        model=POOL, messages=QUESTION, max_tokens=CONTEXT + 100
                    )
                    statuses.append(200)
                except openai.APIStatusError as exc:
                    statuses.append(exc.status_code)
                    if exc.status_code == 400:
                        break
                time.sleep(0.1)
    finally:
        process.stop()
    assert statuses[-1] == 400


def test_the_miner_refuses_or_clamps_what_cannot_fit_before_vllm_does(miner: Miner) -> None:
    too_many = miner.post("/v1/chat/completions", {"messages": QUESTION, "max_tokens": CONTEXT})
    long_prompt = [{"role": "user", "content": "word " * CONTEXT}]
    too_long = miner.post("/v1/chat/completions", {"messages": long_prompt, "max_tokens": 8})
    assert too_many.status_code == 400 and too_many.json()["error"]["param"] == "max_tokens"
    assert too_long.status_code == 400 and too_long.json()["error"]["param"] == "messages"
    unbounded = miner.post("/v1/completions", {"prompt": "The sky is"})
    assert unbounded.status_code == 200
    assert 0 < miner.upstream_saw()["max_tokens"] < CONTEXT


def test_an_error_mid_stream_reaches_the_caller_as_vllm_sends_it(miner: Miner) -> None:
    body = {"messages": [{"role": "user", "content": MIDSTREAM_FAILURE}], "stream": True}
    reply = miner.post("/v1/chat/completions", body)
    events = [line[6:] for line in reply.text.splitlines() if line.startswith("data: ")]
    assert reply.status_code == 200
    assert "error" in json.loads(events[-2]) and events[-1] == "[DONE]"


def test_a_validator_whose_clock_runs_3_s_fast_is_served(miner: Miner) -> None:
    reply = miner.post("/v1/chat/completions", {"messages": QUESTION, "max_tokens": 4}, 3000)
    assert reply.status_code == 200, reply.text


def test_sn1_availability_poll_is_answered(miner: Miner) -> None:
    asked = {
        "task_availabilities": {"InferenceTask": True, "WebRetrievalTask": True},
        "llm_model_availabilities": {SERVED: True, "other/model": True},
    }
    posted = httpx.post(miner.url + "/availability", json=asked, timeout=5)
    got = httpx.get(miner.url + "/availability", timeout=5)
    assert posted.status_code == 200 and got.status_code == 200
    answer = posted.json()
    assert answer["task_availabilities"] == {"InferenceTask": True, "WebRetrievalTask": True}
    assert answer["llm_model_availabilities"] == {SERVED: True, "other/model": False}
    assert got.json()["model"] == SERVED


def test_a_connection_left_idle_past_vllms_keep_alive_is_not_a_502(miner: Miner) -> None:
    body = {"messages": QUESTION, "max_tokens": 4}
    assert miner.post("/v1/chat/completions", body).status_code == 200
    time.sleep(KEEP_ALIVE_S + 0.2)  # vLLM has closed the idle upstream connection by now
    assert miner.post("/v1/chat/completions", body).status_code == 200


def test_liveness_does_not_depend_on_vllm(miner: Miner) -> None:
    assert httpx.get(miner.url + "/livez", timeout=5).status_code == 200
    assert httpx.get(miner.url + "/health", timeout=5).status_code == 200


async def _forged_connection(port: int, miner: Miner) -> asyncio.StreamWriter:
    """A connection with Epistula headers made from public data and a body never finished."""
    headers = {
        "Epistula-Version": "2",
        "Epistula-Timestamp": str(int(time.time() * 1000)),
        "Epistula-Uuid": str(uuid.uuid4()),
        "Epistula-Signed-By": miner.validator.ss58_address,
        "Epistula-Signed-For": miner.hotkey,
        "Epistula-Request-Signature": "0x" + "00" * 64,
    }
    lines = ["POST /v1/chat/completions HTTP/1.1", "Host: miner", "Content-Length: 65536"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + b'{"messages": [')
    await writer.drain()
    return writer


async def test_signed_requests_reach_the_miner_under_a_forged_header_flood(miner: Miner) -> None:
    port = int(miner.url.rsplit(":", 1)[1])
    body = {"messages": QUESTION, "max_tokens": 4}
    flood: list[asyncio.StreamWriter] = []
    statuses = []
    try:
        for _ in range(3):  # waves of 80: each keeps every unverified slot taken
            flood += [await _forged_connection(port, miner) for _ in range(80)]
            await asyncio.sleep(0.6)
            reply = await asyncio.to_thread(miner.post, "/v1/chat/completions", body)
            statuses.append(reply.status_code)
    finally:
        for writer in flood:
            writer.close()
    assert statuses == [200, 200, 200]


def test_the_gpu_check_passes_against_the_double(tmp_path: Path) -> None:
    executable = write_fake_vllm(tmp_path)
    command = [sys.executable, "-m", "miners.gpu_check", "--model", MODEL]
    command += ["--vllm-bin", str(executable), "--startup-s", "60"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    (line,) = done.stdout.splitlines()
    assert done.returncode == 0 and line.startswith("gpu-check PASS"), line + done.stderr[-500:]
    assert "failed=-" in line
