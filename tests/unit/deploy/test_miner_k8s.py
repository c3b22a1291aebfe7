"""The GPU miner StatefulSet (k8s/miner/) agrees with the miner CLI, its image and vLLM's flags."""

from __future__ import annotations

import json
import re
from pathlib import PurePosixPath
from typing import Any

import yaml

from gateway.commands.cli import build_parser
from miners.vllm_launch import VllmOptions, build_command
from tests.support import ROOT, dockerfile_instructions
from tests.unit.deploy.manifests import K8S

MINER = K8S / "miner"
DOCKERFILE = ROOT / "deploy" / "miner.Dockerfile"
REFERENCE = re.compile(r"\$\((\w+)\)")


def documents() -> list[dict[str, Any]]:
    """The miner's manifests."""
    return [d for d in yaml.safe_load_all((MINER / "miner.yaml").read_text()) if d]


def statefulset() -> dict[str, Any]:
    """The miner StatefulSet."""
    (found,) = [d for d in documents() if d["kind"] == "StatefulSet"]
    return found


def containers() -> dict[str, dict[str, Any]]:
    """The pod's containers by name."""
    return {c["name"]: c for c in statefulset()["spec"]["template"]["spec"]["containers"]}


def filled(args: list[str]) -> list[str]:
    """Arguments with each $(MINER_MAX_MODEL_LEN) as the ConfigMap sets it (a number)."""
    kustomization = yaml.safe_load((MINER / "kustomization.yaml").read_text())
    (generator,) = kustomization["configMapGenerator"]
    literals = dict(item.split("=", 1) for item in generator["literals"])
    return [a.replace("$(MINER_MAX_MODEL_LEN)", literals["max-model-len"]) for a in args]


def flag(command: list[str], name: str) -> str:
    """The value after `name` in an argument list."""
    return command[command.index(name) + 1]


def test_vllm_holds_a_gpu_and_listens_on_the_pods_loopback_only() -> None:
    vllm = containers()["vllm"]
    assert vllm["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert flag(vllm["args"], "--host") == "127.0.0.1" and "ports" not in vllm
    launcher = build_command(
        VllmOptions(
            model="m", port=1, max_model_len=1, gpu_memory_utilization=0.5, tool_call_parser="p"
        )
    )
    flags = {arg for arg in vllm["args"] if arg.startswith("--")}
    assert flags <= {arg for arg in launcher if arg.startswith("--")} | {"--model"}
    assert 0 < float(flag(vllm["args"], "--gpu-memory-utilization")) <= 1


def test_miner_serves_the_vllm_beside_it_with_its_own_hotkey() -> None:
    pod = containers()
    miner, vllm = pod["miner"], pod["vllm"]
    # The image's ENTRYPOINT is `bitgate miner serve`: the manifest passes arguments only.
    entrypoint = json.loads(dict(dockerfile_instructions(DOCKERFILE))["ENTRYPOINT"])
    assert entrypoint == ["bitgate", "miner", "serve"] and "command" not in miner
    args = build_parser().parse_args(["miner", "serve", *filled(miner["args"])])
    assert args.upstream == f"http://127.0.0.1:{flag(vllm['args'], '--port')}"
    assert args.model == flag(vllm["args"], "--served-model-name")
    assert args.allow_hotkey and not args.allow_any_signer
    # Every $(VAR) in the arguments is defined in the container's env.
    for container in (miner, vllm):
        defined = {e["name"] for e in container["env"]}
        for arg in container["args"]:
            assert set(REFERENCE.findall(arg)) <= defined, arg
    # Pod bitgate-miner-N reads key bitgate-miner-N of the hotkeys Secret.
    assert PurePosixPath(str(args.hotkey_file)).name == "$(POD_NAME)"
    pod_name = next(e for e in miner["env"] if e["name"] == "POD_NAME")
    assert pod_name["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    (mount,) = [m for m in miner["volumeMounts"] if m["name"] == "hotkeys"]
    assert PurePosixPath(mount["mountPath"]) == PurePosixPath(str(args.hotkey_file)).parent
    volume = next(
        v for v in statefulset()["spec"]["template"]["spec"]["volumes"] if v["name"] == "hotkeys"
    )
    assert volume["secret"]["optional"] is False
    # The Secret's files are readable by the miner's user through the pod's fsGroup.
    user = miner["securityContext"]["runAsUser"]
    assert statefulset()["spec"]["template"]["spec"]["securityContext"]["fsGroup"] == user


def test_axon_port_is_the_images_and_the_services() -> None:
    miner = containers()["miner"]
    args = build_parser().parse_args(["miner", "serve", *filled(miner["args"])])
    exposed = int(dict(dockerfile_instructions(DOCKERFILE))["EXPOSE"])
    assert args.port == exposed
    assert [p["containerPort"] for p in miner["ports"]] == [exposed]
    (service,) = [d for d in documents() if d["kind"] == "Service"]
    assert service["metadata"]["name"] == statefulset()["spec"]["serviceName"]
    assert [p["targetPort"] for p in service["spec"]["ports"]] == [miner["ports"][0]["name"]]
    assert service["spec"]["selector"].items() <= (
        statefulset()["spec"]["template"]["metadata"]["labels"].items()
    )
    probe = miner["readinessProbe"]["httpGet"]
    assert (
        probe["path"] == "/health"
        and "/health" in dict(dockerfile_instructions(DOCKERFILE))["HEALTHCHECK"]
    )


def test_configmap_names_a_model_and_the_validator_to_allow() -> None:
    kustomization = yaml.safe_load((MINER / "kustomization.yaml").read_text())
    (generator,) = kustomization["configMapGenerator"]
    literals = dict(item.split("=", 1) for item in generator["literals"])
    referenced = {
        e["valueFrom"]["configMapKeyRef"]["key"]
        for c in containers().values()
        for e in c["env"]
        if "configMapKeyRef" in e.get("valueFrom", {})
    }
    assert referenced <= set(literals)
    assert generator["name"] == "bitgate-miner"
