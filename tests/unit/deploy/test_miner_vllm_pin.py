"""The miner's deploy files run the pinned vLLM with tool calling, one context, and probes that
let vLLM load: liveness on a route that does not follow vLLM, readiness on one that does."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
import yaml

from gateway.commands.cli import build_parser
from miners.keys import new_keypair
from miners.server import MinerConfig, MinerServer, start_miner
from miners.vllm_version import VLLM_IMAGE, VLLM_VERSION
from tests.support import ROOT, free_port
from tests.unit.deploy.manifests import K8S, interpolate, kustomize_command, render

FIRST_LOAD_S = 900  # a first start downloads the weights: up to 15 minutes


def flag(command: list[str], name: str) -> str:
    """The value after `name` in an argument list."""
    return command[command.index(name) + 1]


@pytest.fixture(scope="module")
def rendered() -> dict[str, Any]:
    """The miner's pod template and ConfigMap as kustomize renders them."""
    if kustomize_command() is None:
        pytest.skip("neither kustomize nor kubectl is installed")
    documents = render(K8S / "miner")
    (sts,) = [d for d in documents if d["kind"] == "StatefulSet"]
    (config,) = [d for d in documents if d["kind"] == "ConfigMap"]
    return {"pod": sts["spec"]["template"]["spec"], "config": config["data"]}


def resolved(container: dict[str, Any], config: dict[str, str]) -> list[str]:
    """A container's args with its $(VAR)s from the ConfigMap filled in."""
    values = {
        e["name"]: config[e["valueFrom"]["configMapKeyRef"]["key"]]
        for e in container.get("env", [])
        if "configMapKeyRef" in e.get("valueFrom", {})
    }
    args = []
    for arg in container["args"]:
        for name, value in values.items():
            arg = arg.replace(f"$({name})", value)
        args.append(arg)
    return args


def test_k8s_runs_the_pinned_vllm_with_tool_calling_and_one_context(
    rendered: dict[str, Any],
) -> None:
    pod = {c["name"]: c for c in rendered["pod"]["containers"]}
    vllm = resolved(pod["vllm"], rendered["config"])
    miner = resolved(pod["miner"], rendered["config"])
    assert pod["vllm"]["image"] == VLLM_IMAGE
    assert "--enable-auto-tool-choice" in vllm and flag(vllm, "--tool-call-parser")
    assert flag(miner, "--max-model-len") == flag(vllm, "--max-model-len")
    assert build_parser().parse_args(["miner", "serve", *miner]).max_model_len > 0


def test_k8s_probes_let_vllm_load(rendered: dict[str, Any]) -> None:
    miner = {c["name"]: c for c in rendered["pod"]["containers"]}["miner"]
    live, ready = miner["livenessProbe"]["httpGet"], miner["readinessProbe"]["httpGet"]
    startup = miner["startupProbe"]
    assert live["path"] == "/livez" and ready["path"] == "/health"
    assert startup["periodSeconds"] * startup["failureThreshold"] >= FIRST_LOAD_S
    vllm_startup = {c["name"]: c for c in rendered["pod"]["containers"]}["vllm"]["startupProbe"]
    assert vllm_startup["periodSeconds"] * vllm_startup["failureThreshold"] >= FIRST_LOAD_S


def test_compose_runs_the_pinned_vllm_with_tool_calling_and_one_context() -> None:
    env = {"MINER_HOTKEY_FILE": "/k", "BITGATE_VALIDATOR_HOTKEY": new_keypair().ss58_address}
    document = yaml.safe_load((ROOT / "deploy" / "compose.miner.yaml").read_text())
    services = interpolate(document, env)["services"]
    vllm, miner = services["vllm"]["command"], services["miner"]["command"]
    assert services["vllm"]["image"] == VLLM_IMAGE
    assert "--enable-auto-tool-choice" in vllm and flag(vllm, "--tool-call-parser") == "hermes"
    assert flag(miner, "--max-model-len") == flag(vllm, "--max-model-len")


def test_the_gpu_guide_installs_the_pinned_vllm() -> None:
    guide = (ROOT / "miners" / "GPU.md").read_text()
    assert f"vllm=={VLLM_VERSION}" in guide and "pip install vllm\n" not in guide
    assert VLLM_IMAGE in guide or f"v{VLLM_VERSION}" in guide


async def test_liveness_holds_while_vllm_is_down_and_readiness_does_not() -> None:
    server = MinerServer(MinerConfig(upstream=f"http://127.0.0.1:{free_port()}"), None)
    port = free_port()
    runner = await start_miner(server, "127.0.0.1", port)
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/livez") as live:
                live_status = live.status
            async with session.get(f"http://127.0.0.1:{port}/health") as ready:
                ready_status = ready.status
    finally:
        await runner.cleanup()
    assert (live_status, ready_status) == (200, 503)
