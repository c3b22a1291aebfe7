"""Every manifest against the Kubernetes schemas, and the overlays as kustomize renders them."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import kubernetes_validate
import pytest
import yaml

from gateway.commands.cli import build_parser
from gateway.config import load_pools_file
from tests.unit.deploy.manifests import DASHBOARD, DEPLOY, K8S, kustomize_command, render

# The oldest Kubernetes the manifests are for (native sidecars, used by the dev overlay: 1.29).
KUBERNETES = "1.29"
# Kinds of the Prometheus Operator: no schema ships for them; test_alerts checks the rule.
CUSTOM_KINDS = {"ServiceMonitor", "PrometheusRule"}
OVERLAYS = {"dev": K8S / "overlays" / "dev", "production": K8S / "overlays" / "production"}
# What an operator creates before applying production (README, Deployment section).
OPERATOR_SECRETS = {"bitgate-api-keys", "bitgate-hotkey"}
needs_kustomize = pytest.mark.skipif(
    kustomize_command() is None,
    reason="neither kustomize nor kubectl is installed: the overlays are not rendered",
)


def kustomizations() -> list[Path]:
    """Every kustomization.yaml of the project."""
    return sorted([*K8S.rglob("kustomization.yaml"), *DEPLOY.rglob("kustomization.yaml")])


def resource_files() -> Iterator[Path]:
    """Every file a kustomization lists as a resource (complete manifests, not patches)."""
    for kustomization in kustomizations():
        for entry in yaml.safe_load(kustomization.read_text()).get("resources", []):
            path = kustomization.parent / entry
            if path.is_file():
                yield path


def validate(document: dict[str, Any]) -> None:
    """Fail with the schema's message if `document` is not a valid Kubernetes object."""
    if document["kind"] in CUSTOM_KINDS:
        return
    try:
        kubernetes_validate.validate(document, KUBERNETES, strict=True)
    except kubernetes_validate.ValidationError as error:
        name = document["metadata"]["name"]
        pytest.fail(f"{document['kind']}/{name}: {list(error.path)}: {error.message}")


@pytest.fixture(scope="module", params=sorted(OVERLAYS))
def overlay(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    """The manifests kustomize renders from an overlay."""
    if kustomize_command() is None:
        pytest.skip("neither kustomize nor kubectl is installed: the overlays are not rendered")
    return render(OVERLAYS[request.param])


def find(documents: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    """The one document of this kind and name."""
    (document,) = [d for d in documents if d["kind"] == kind and d["metadata"]["name"] == name]
    return document


def pod_templates(documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The pod template of every Deployment and StatefulSet."""
    return [d["spec"]["template"] for d in documents if d["kind"] in {"Deployment", "StatefulSet"}]


def gateway_env(documents: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The gateway container's environment by name."""
    spec = find(documents, "Deployment", "bitgate-gateway")["spec"]["template"]["spec"]
    (gateway,) = [c for c in spec["containers"] if c["name"] == "gateway"]
    return {e["name"]: e for e in gateway["env"]}


def test_every_kustomization_lists_files_that_exist() -> None:
    for kustomization in kustomizations():
        document = yaml.safe_load(kustomization.read_text())
        listed = [
            *document.get("resources", []),
            *document.get("components", []),
            *(p["path"] for p in document.get("patches", []) if "path" in p),
            *(
                f
                for generator in document.get("configMapGenerator", [])
                for f in generator.get("files", [])
            ),
        ]
        for entry in listed:
            assert (kustomization.parent / entry).exists(), f"{kustomization}: {entry}"


def test_every_manifest_file_is_valid_for_kubernetes() -> None:
    checked = 0
    for path in resource_files():
        for document in yaml.safe_load_all(path.read_text()):
            if document is not None:
                validate(document)
                checked += 1
    assert checked >= 20


def test_an_invalid_manifest_is_refused() -> None:
    hpa = yaml.safe_load((K8S / "base" / "hpa.yaml").read_text())
    hpa["spec"]["minReplicas"] = "two"
    with pytest.raises(pytest.fail.Exception, match="minReplicas"):
        validate(hpa)


def test_rendered_overlays_are_valid_for_kubernetes(
    overlay: list[dict[str, Any]],
) -> None:
    documents = overlay
    assert documents
    for document in documents:
        validate(document)
        if document["kind"] != "Namespace":
            assert document["metadata"]["namespace"] == "bitgate", document["metadata"]["name"]


def test_rendered_references_resolve(overlay: list[dict[str, Any]]) -> None:
    documents = overlay
    configmaps = {d["metadata"]["name"] for d in documents if d["kind"] == "ConfigMap"}
    for template in pod_templates(documents):
        spec = template["spec"]
        for volume in spec.get("volumes", []):
            if "configMap" in volume:
                assert volume["configMap"]["name"] in configmaps, volume
            if "secret" in volume:
                assert volume["secret"]["secretName"] in OPERATOR_SECRETS, volume
        for container in [*spec["containers"], *spec.get("initContainers", [])]:
            for env in container.get("env", []):
                source = env.get("valueFrom", {})
                if "configMapKeyRef" in source:
                    assert source["configMapKeyRef"]["name"] in configmaps
                if "secretKeyRef" in source:
                    assert source["secretKeyRef"]["name"] in OPERATOR_SECRETS
    templates = [t["metadata"]["labels"] for t in pod_templates(documents)]
    for service in (d for d in documents if d["kind"] == "Service"):
        selector = service["spec"]["selector"].items()
        assert any(selector <= labels.items() for labels in templates), service["metadata"]


def test_gateway_reaches_the_pods_behind_the_redis_service(
    overlay: list[dict[str, Any]],
) -> None:
    documents = overlay
    url = gateway_env(documents)["BITGATE_REDIS_URL"]["value"]
    assert url.startswith("redis://redis.bitgate.svc.cluster.local:6379/")
    selector = find(documents, "Service", "redis")["spec"]["selector"].items()
    policy = find(documents, "NetworkPolicy", "bitgate-gateway-egress")["spec"]
    allowed = [
        peer["podSelector"]["matchLabels"].items()
        for rule in policy["egress"]
        if {"port": 6379, "protocol": "TCP"} in rule.get("ports", [])
        for peer in rule["to"]
    ]
    behind = [
        t["metadata"]["labels"].items()
        for t in pod_templates(documents)
        if selector <= t["metadata"]["labels"].items()
    ]
    assert behind and all(any(a <= labels for a in allowed) for labels in behind)


def test_dashboard_configmap_is_the_compose_dashboard_file(
    overlay: list[dict[str, Any]],
) -> None:
    documents = overlay
    configmap = find(documents, "ConfigMap", "bitgate-grafana-dashboard")
    assert configmap["data"] == {DASHBOARD.name: DASHBOARD.read_text()}
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"


@needs_kustomize
def test_production_requires_keys_hotkey_and_a_redis_with_no_single_point() -> None:
    documents = render(OVERLAYS["production"])
    env = gateway_env(documents)
    assert env["BITGATE_AUTH"]["value"] == "required"
    assert env["BITGATE_API_KEYS"]["valueFrom"]["secretKeyRef"]["optional"] is False
    spec = find(documents, "Deployment", "bitgate-gateway")["spec"]["template"]["spec"]
    hotkey = PurePosixPath(env["BITGATE_HOTKEY_FILE"]["value"])
    secrets = {v["name"]: v["secret"] for v in spec["volumes"] if "secret" in v}
    (gateway,) = spec["containers"]
    (mount,) = [
        m for m in gateway["volumeMounts"] if PurePosixPath(m["mountPath"]) == hotkey.parent
    ]
    assert secrets[mount["name"]]["optional"] is False
    assert not gateway["image"].startswith("bitgate-gateway")  # the overlay names the registry
    redis = find(documents, "StatefulSet", "redis")
    assert redis["spec"]["replicas"] >= 3
    names = {c["name"] for c in redis["spec"]["template"]["spec"]["containers"]}
    assert names == {"redis", "sentinel"}
    assert redis["spec"]["volumeClaimTemplates"]
    assert find(documents, "Deployment", "redis-proxy")["spec"]["replicas"] >= 2
    assert find(documents, "PodDisruptionBudget", "redis")["spec"]["minAvailable"] >= 2
    assert {"ServiceMonitor", "PrometheusRule"} <= {d["kind"] for d in documents}


@needs_kustomize
def test_dev_runs_without_secrets_in_front_of_its_sim_sidecar(tmp_path: Path) -> None:
    documents = render(OVERLAYS["dev"])
    env = gateway_env(documents)
    assert env["BITGATE_AUTH"]["value"] == "none"
    assert "BITGATE_API_KEYS" not in env and "BITGATE_HOTKEY_FILE" not in env
    spec = find(documents, "Deployment", "bitgate-gateway")["spec"]["template"]["spec"]
    assert not [v for v in spec["volumes"] if "secret" in v]
    (sim,) = spec["initContainers"]
    assert sim["restartPolicy"] == "Always"
    args = build_parser().parse_args(sim["command"][1:])
    assert ipaddress.ip_address(args.host) in ipaddress.ip_network(
        env["BITGATE_AXON_ALLOW"]["value"]
    )
    # The pools file names the metagraph the sidecar writes, on a volume both mount.
    pools_file = tmp_path / "pools.yaml"
    pools_file.write_text(find(documents, "ConfigMap", "bitgate-pools")["data"]["pools.yaml"])
    (pool,) = load_pools_file(pools_file).pools
    written = PurePosixPath(str(args.metagraph_out))
    assert pool.metagraph is not None and PurePosixPath(pool.metagraph) == written
    assert pool.name == args.name
    (gateway,) = spec["containers"]
    mounts = {m["name"]: PurePosixPath(m["mountPath"]) for m in gateway["volumeMounts"]}
    sim_mounts = {m["name"]: PurePosixPath(m["mountPath"]) for m in sim["volumeMounts"]}
    shared = {n for n in mounts if n in sim_mounts and mounts[n] == sim_mounts[n]}
    assert any(mounts[n] in written.parents for n in shared)
