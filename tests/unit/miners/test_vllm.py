"""Launching vLLM for a miner, with a fake `vllm` executable (a sim miner) in its place."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from miners.keys import new_keypair, write_hotkey_file
from miners.vllm_launch import VllmError, VllmOptions, VllmProcess, build_command
from router.epistula import Signer
from tests.support import ROOT, free_port, wait_http
from tests.vllm_double import write_fake_vllm

pytestmark = pytest.mark.integration

CHAT_BODY = orjson.dumps({"messages": [{"role": "user", "content": "Why is the sky blue?"}]})


@pytest.fixture
def fake_vllm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An executable `vllm` that runs tests/fake_vllm.py; it records its argv and pid."""
    executable = write_fake_vllm(tmp_path)
    monkeypatch.setenv("FAKE_VLLM_RECORD", str(tmp_path / "record.json"))
    return executable


def record(executable: Path) -> dict[str, object]:
    """What the fake vllm wrote about itself."""
    document: dict[str, object] = json.loads((executable.parent / "record.json").read_text())
    return document


def gone(pid: object) -> bool:
    """Whether no process has this pid."""
    assert isinstance(pid, int)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_command_carries_port_model_name_length_and_gpu_share() -> None:
    options = VllmOptions(
        model="Qwen/Qwen2.5-0.5B-Instruct",
        port=8101,
        host="0.0.0.0",
        served_model_name="qwen",
        max_model_len=4096,
        gpu_memory_utilization=0.45,
        executable="/opt/vllm/bin/vllm",
        extra_args=("--enforce-eager",),
    )
    assert build_command(options) == [
        "/opt/vllm/bin/vllm",
        "serve",
        "Qwen/Qwen2.5-0.5B-Instruct",
        "--host",
        "0.0.0.0",
        "--port",
        "8101",
        "--served-model-name",
        "qwen",
        "--max-model-len",
        "4096",
        "--gpu-memory-utilization",
        "0.45",
        "--enforce-eager",
    ]
    assert options.url == "http://0.0.0.0:8101"


def test_minimal_command_serves_the_model_under_its_own_name() -> None:
    command = build_command(VllmOptions(model="tiny", port=9000))
    assert command == [
        "vllm",
        "serve",
        "tiny",
        "--host",
        "127.0.0.1",
        "--port",
        "9000",
        "--served-model-name",
        "tiny",
    ]


async def test_launch_waits_for_health_and_stops_on_exit(fake_vllm: Path) -> None:
    options = VllmOptions(
        model="tiny", port=free_port(), served_model_name="tiny-served", executable=str(fake_vllm)
    )
    async with VllmProcess(options, startup_timeout_s=60) as vllm:
        async with httpx.AsyncClient(timeout=10) as client:
            reply = await client.post(options.url + "/v1/chat/completions", content=CHAT_BODY)
        pid = record(fake_vllm)["pid"]
        assert vllm.proc is not None and vllm.proc.returncode is None
    assert reply.status_code == 200
    assert reply.json()["model"] == "tiny-served"
    assert record(fake_vllm)["argv"] == build_command(options)[1:]
    assert vllm.proc.returncode is not None
    assert gone(pid)


async def test_vllm_that_exits_early_is_an_error(
    fake_vllm: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_VLLM_MODE", "exit")
    options = VllmOptions(model="tiny", port=free_port(), executable=str(fake_vllm))
    with pytest.raises(VllmError, match="exited with status 3"):
        await VllmProcess(options, startup_timeout_s=60).start()


async def test_vllm_that_never_turns_healthy_is_stopped(
    fake_vllm: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_VLLM_MODE", "unhealthy")
    options = VllmOptions(model="tiny", port=free_port(), executable=str(fake_vllm))
    vllm = VllmProcess(options, startup_timeout_s=1.5)
    with pytest.raises(VllmError, match="not healthy within"):
        await vllm.start()
    assert vllm.proc is not None and vllm.proc.returncode is not None
    assert gone(vllm.proc.pid)


async def test_vllm_that_ignores_sigterm_is_killed(
    fake_vllm: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_VLLM_MODE", "stubborn")
    options = VllmOptions(model="tiny", port=free_port(), executable=str(fake_vllm))
    vllm = VllmProcess(options, startup_timeout_s=60, stop_grace_s=0.5)
    await vllm.start()
    await vllm.stop()
    assert vllm.proc is not None and vllm.proc.returncode == -signal.SIGKILL


async def test_missing_executable_is_an_error(tmp_path: Path) -> None:
    options = VllmOptions(model="tiny", port=free_port(), executable=str(tmp_path / "nope"))
    with pytest.raises(VllmError, match="cannot run"):
        await VllmProcess(options).start()


def start_miner_cli(
    fake_vllm: Path, tmp_path: Path
) -> tuple[subprocess.Popen[bytes], str, Signer, str]:
    """`bitgate miner serve --launch-vllm` with the fake vllm; process, URL, signer, hotkey."""
    validator, hotkey = new_keypair(), new_keypair()
    write_hotkey_file(tmp_path / "miner-hotkey", hotkey)
    port = free_port()
    command = [
        *(sys.executable, "-m", "gateway", "miner", "serve", "--launch-vllm"),
        *("--model", "tiny", "--vllm-bin", str(fake_vllm), "--port", str(port)),
        *("--hotkey-file", str(tmp_path / "miner-hotkey")),
        *("--allow-hotkey", validator.ss58_address),
    ]
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/health", timeout=60, proc=proc)
    except BaseException:
        end(proc)
        raise
    return proc, url, Signer(validator), hotkey.ss58_address


def end(proc: subprocess.Popen[bytes]) -> None:
    """Kill the process if it still runs and close its pipe."""
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    if proc.stdout:
        proc.stdout.close()


@pytest.fixture
def miner_process(fake_vllm: Path, tmp_path: Path) -> Iterator[tuple[str, Signer, str]]:
    """The miner CLI with its fake vllm; SIGTERM at the end must stop both."""
    proc, url, signer, hotkey = start_miner_cli(fake_vllm, tmp_path)
    try:
        yield url, signer, hotkey
        pid = record(fake_vllm)["pid"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        assert gone(pid)
    finally:
        end(proc)


def test_cli_stops_when_its_vllm_dies(fake_vllm: Path, tmp_path: Path) -> None:
    proc, _, _, _ = start_miner_cli(fake_vllm, tmp_path)
    try:
        pid = record(fake_vllm)["pid"]
        assert isinstance(pid, int)
        os.kill(pid, signal.SIGKILL)
        assert proc.wait(30) == 1
    finally:
        end(proc)


def test_cli_serves_in_front_of_the_vllm_it_launched(
    miner_process: tuple[str, Signer, str],
) -> None:
    url, signer, hotkey = miner_process
    signed = httpx.post(
        url + "/v1/chat/completions",
        content=CHAT_BODY,
        headers={"Content-Type": "application/json", **signer(CHAT_BODY, hotkey)},
        timeout=10,
    )
    unsigned = httpx.post(url + "/v1/chat/completions", content=CHAT_BODY, timeout=10)
    models = httpx.get(url + "/v1/models", timeout=10).json()
    available = httpx.get(url + "/availability", timeout=10).json()
    assert signed.status_code == 200
    assert signed.json()["model"] == "tiny"
    assert unsigned.status_code == 401
    assert [card["id"] for card in models["data"]] == ["tiny"]
    assert available["model"] == "tiny" and available["capacity"] == 32


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--upstream", "http://127.0.0.1:1"], "say who may sign"),
        (["--upstream", "http://127.0.0.1:1", "--allow-hotkey", "5Sim"], "not an SS58"),
        (["--upstream", "http://127.0.0.1:1", "--min-stake", "5"], "--min-stake needs"),
        (["--launch-vllm", "--allow-any-signer"], "needs --model"),
        (["--upstream", "http://127.0.0.1:1", "--allow-any-signer"], "give the miner's hotkey"),
    ],
)
def test_cli_refuses_incomplete_arguments(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from gateway.commands.cli import main

    assert main(["miner", "serve", *args]) == 2
    assert message in capsys.readouterr().err


async def test_vllm_never_sees_the_miners_secrets(
    fake_vllm: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BITGATE_MINER_HOTKEY_MNEMONIC", "word " * 12)
    monkeypatch.setenv("BITGATE_MINER_UPSTREAM_API_KEY", "sk-upstream")
    monkeypatch.setenv("WALLET_PASSWORD", "hunter2")
    monkeypatch.setenv("HF_TOKEN", "hf_for_gated_models")
    options = VllmOptions(model="tiny", port=free_port(), executable=str(fake_vllm))
    async with VllmProcess(options, startup_timeout_s=60):
        seen = record(fake_vllm)["env"]
    assert isinstance(seen, list)
    assert "HF_TOKEN" in seen and "PATH" in seen
    assert not {"BITGATE_MINER_HOTKEY_MNEMONIC", "BITGATE_MINER_UPSTREAM_API_KEY"} & set(seen)
    assert "WALLET_PASSWORD" not in seen


async def test_launch_refuses_a_vllm_other_than_the_pinned_one(
    fake_vllm: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_VLLM_VERSION", "0.9.2")
    options = VllmOptions(model="tiny", port=free_port(), executable=str(fake_vllm))
    with pytest.raises(VllmError, match=r"0\.9\.2, not the pinned 0\.33\.0"):
        await VllmProcess(options, startup_timeout_s=60, any_version=False).start()
    async with VllmProcess(options, startup_timeout_s=60) as _:  # unless told any version will do
        pass


def test_command_turns_tool_calling_on_with_the_families_parser() -> None:
    options = VllmOptions(model="m", port=1, tool_call_parser="hermes")
    command = build_command(options)
    assert command[command.index("--tool-call-parser") + 1] == "hermes"
    assert "--enable-auto-tool-choice" in command
    assert "--enable-auto-tool-choice" not in build_command(VllmOptions(model="m", port=1))


def test_metagraph_signers_need_sn1_validator_stake_by_default(tmp_path: Path) -> None:
    from gateway.commands.cli import build_parser
    from miners.serve_cli import build_policy

    staked, poor = new_keypair().ss58_address, new_keypair().ss58_address
    not_serving = {"ip": "0.0.0.0", "port": 0}
    neurons = [
        {"uid": i, "hotkey": key, "coldkey": key, "stake": stake, "axon": not_serving}
        for i, (key, stake) in enumerate(((staked, 5000.0), (poor, 100.0)))
    ]
    path = tmp_path / "metagraph.json"
    path.write_text(json.dumps({"netuid": 1, "neurons": neurons}))
    base = ["miner", "serve", "--upstream", "http://127.0.0.1:1", "--metagraph", str(path)]
    default = build_policy(build_parser().parse_args(base))
    anyone = build_policy(build_parser().parse_args([*base, "--min-stake", "0"]))
    assert default(staked) and not default(poor)
    assert anyone(poor)
