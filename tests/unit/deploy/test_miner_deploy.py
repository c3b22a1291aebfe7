"""The miner's place in deploy/: its compose services and image agree with the miner CLI."""

from __future__ import annotations

import json
import shlex
import tomllib
from typing import Any

import pytest
import yaml

from gateway.commands.cli import build_parser
from miners.keys import is_ss58, new_keypair
from miners.vllm_launch import VllmOptions, build_command
from tests.support import ROOT, dockerfile_instructions
from tests.unit.deploy.manifests import MissingVariable, interpolate

COMPOSE = ROOT / "deploy" / "compose.miner.yaml"
DOCKERFILE = ROOT / "deploy" / "miner.Dockerfile"


def compose(env: dict[str, str]) -> dict[str, Any]:
    """The miner compose file with these variables set."""
    document: dict[str, Any] = interpolate(yaml.safe_load(COMPOSE.read_text()), env)
    return document


def flag(command: list[str], name: str) -> str:
    """The value after `name` in an argument list."""
    return command[command.index(name) + 1]


@pytest.fixture
def services() -> dict[str, Any]:
    """The compose services, with the required variables set."""
    env = {
        "MINER_HOTKEY_FILE": "/home/me/.bittensor/wallets/m/hotkeys/default",
        "BITGATE_VALIDATOR_HOTKEY": new_keypair().ss58_address,
    }
    services: dict[str, Any] = compose(env)["services"]
    return services


def test_required_variables_are_named_when_missing() -> None:
    with pytest.raises(MissingVariable, match=r"BITGATE_VALIDATOR_HOTKEY|MINER_HOTKEY_FILE"):
        compose({})


def test_miner_command_parses_and_points_at_the_vllm_service(services: dict[str, Any]) -> None:
    vllm, miner = services["vllm"], services["miner"]
    args = build_parser().parse_args(["miner", "serve", *miner["command"]])
    assert args.upstream == f"http://vllm:{flag(vllm['command'], '--port')}"
    assert args.model == flag(vllm["command"], "--served-model-name")
    assert all(is_ss58(hotkey) for hotkey in args.allow_hotkey) and args.allow_hotkey
    assert miner["ports"] == [f"{args.port}:{args.port}"]
    mounts = [volume.split(":")[1] for volume in miner["volumes"]]
    assert str(args.hotkey_file) in mounts
    assert miner["depends_on"]["vllm"]["condition"] == "service_healthy"


def test_vllm_service_uses_the_flags_the_launcher_uses(services: dict[str, Any]) -> None:
    vllm = services["vllm"]
    launcher = build_command(
        VllmOptions(
            model="m", port=1, max_model_len=1, gpu_memory_utilization=0.5, tool_call_parser="p"
        )
    )
    flags = {arg for arg in vllm["command"] if arg.startswith("--")}
    assert flags <= {arg for arg in launcher if arg.startswith("--")} | {"--model"}
    assert "ports" not in vllm
    gpu = vllm["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["capabilities"] == ["gpu"]
    assert 0 < float(flag(vllm["command"], "--gpu-memory-utilization")) <= 1


def test_image_copies_every_package_and_runs_the_miner(services: dict[str, Any]) -> None:
    instructions = dockerfile_instructions(DOCKERFILE)
    copied = {shlex.split(rest)[0] for kind, rest in instructions if kind == "COPY"}
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = {
        name.rstrip("*") for name in project["tool"]["setuptools"]["packages"]["find"]["include"]
    }
    assert packages <= copied
    assert all((ROOT / source).exists() for source in copied)
    entrypoint = json.loads(dict(instructions)["ENTRYPOINT"])
    assert entrypoint == ["bitgate", "miner", "serve"]
    exposed = dict(instructions)["EXPOSE"]
    assert services["miner"]["ports"] == [f"{exposed}:{exposed}"]
    assert f"127.0.0.1:{exposed}/health" in dict(instructions)["HEALTHCHECK"]
