"""The gateway's egress policy: miners at public addresses, never link-local or metadata."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
import yaml

from tests.unit.deploy.manifests import K8S

POLICY = K8S / "base" / "networkpolicy.yaml"
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def policy() -> dict[str, Any]:
    """The egress NetworkPolicy."""
    document: dict[str, Any] = yaml.safe_load(POLICY.read_text())
    return document


def ip_blocks() -> list[dict[str, Any]]:
    """Every ipBlock peer of the policy."""
    return [
        peer["ipBlock"]
        for rule in policy()["spec"]["egress"]
        for peer in rule["to"]
        if "ipBlock" in peer
    ]


def reachable(address: str) -> bool:
    """Whether the policy lets the gateway open a connection to `address` (any port)."""
    ip = ipaddress.ip_address(address)
    for block in ip_blocks():
        network = ipaddress.ip_network(block["cidr"])
        if ip.version != network.version or ip not in network:
            continue
        if not any(ip in ipaddress.ip_network(cidr) for cidr in block.get("except", [])):
            return True
    return False


def test_policy_restricts_the_gateway_pods_egress() -> None:
    spec = policy()["spec"]
    assert spec["policyTypes"] == ["Egress"]
    gateway = yaml.safe_load_all((K8S / "base" / "gateway.yaml").read_text())
    (deployment,) = [d for d in gateway if d["kind"] == "Deployment"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert spec["podSelector"]["matchLabels"].items() <= labels.items()
    # Every rule names where it goes: none is an allow-all.
    assert all(rule.get("to") for rule in spec["egress"])


@pytest.mark.parametrize(
    "address",
    [
        "169.254.169.254",  # AWS, GCP, Azure metadata
        "169.254.170.2",  # ECS task metadata
        "fd00:ec2::254",  # AWS metadata over IPv6
        "fe80::1",
        "100.100.100.200",  # Alibaba metadata (CGNAT range)
        "127.0.0.1",
        "::1",
        "10.0.0.10",
        "172.16.5.4",
        "192.168.1.1",
        "0.0.0.0",
        "224.0.0.1",
        "255.255.255.255",
        "::ffff:169.254.169.254",
    ],
)
def test_internal_link_local_and_metadata_addresses_are_unreachable(address: str) -> None:
    assert not reachable(address)


@pytest.mark.parametrize("address", ["8.8.8.8", "203.0.113.7", "2001:4860:4860::8888"])
def test_public_miners_are_reachable(address: str) -> None:
    assert reachable(address)


def test_link_local_is_excluded_from_every_block_that_spans_it() -> None:
    for block in ip_blocks():
        network = ipaddress.ip_network(block["cidr"])
        for link_local in ("169.254.0.0/16", "fe80::/10"):
            forbidden = ipaddress.ip_network(link_local)
            if forbidden.version == network.version and forbidden.overlaps(network):
                excepted = [ipaddress.ip_network(c) for c in block.get("except", [])]
                assert any(
                    e.version == forbidden.version and forbidden.subnet_of(e) for e in excepted
                ), block


def test_in_cluster_miners_only_on_their_port_and_namespace() -> None:
    namespaced = [
        rule
        for rule in policy()["spec"]["egress"]
        for peer in rule["to"]
        if "namespaceSelector" in peer
        and peer["namespaceSelector"]["matchLabels"]
        != {"kubernetes.io/metadata.name": "kube-system"}
    ]
    (rule,) = namespaced
    miner = yaml.safe_load_all((K8S / "miner" / "miner.yaml").read_text())
    statefulset = next(d for d in miner if d["kind"] == "StatefulSet")
    (peer,) = rule["to"]
    assert (
        peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        == (statefulset["metadata"]["namespace"])
    )
    labels = statefulset["spec"]["template"]["metadata"]["labels"]
    assert peer["podSelector"]["matchLabels"].items() <= labels.items()
    ports = {
        p["containerPort"]
        for c in statefulset["spec"]["template"]["spec"]["containers"]
        for p in c.get("ports", [])
    }
    assert [p["port"] for p in rule["ports"]] == sorted(ports)
