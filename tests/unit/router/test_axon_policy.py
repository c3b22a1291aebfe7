"""Tests for router.axon_policy: which miner addresses may be dialled (no address is dialled)."""

from __future__ import annotations

import ipaddress
import socket
import subprocess
import sys

import pytest

from router.axon_policy import KNOWN_HOSTS, AxonPolicy, AxonRefused, parse_networks
from router.metagraph import Axon, Neuron


# Built in each test, not at import: a policy remembers its verdicts, and one built at import
# would be built before mutation testing swaps the code in (tests/mutation.py).
def public_only() -> AxonPolicy:
    return AxonPolicy()


def loopback_allowed() -> AxonPolicy:
    return AxonPolicy.from_cidrs(["127.0.0.0/8"])


def everything_allowed() -> AxonPolicy:
    return AxonPolicy.from_cidrs(["0.0.0.0/0", "::/0"])


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("169.254.169.254", "link_local"),  # AWS, GCP and Azure metadata
        ("169.254.170.2", "link_local"),  # ECS task metadata
        ("fe80::1", "link_local"),
        ("fe80::1%eth0", "link_local"),
        ("::ffff:169.254.169.254", "link_local"),  # IPv4-mapped
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("255.255.255.255", "broadcast"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("240.0.0.1", "reserved"),
        ("[fe80::1%eth0]", "link_local"),
    ],
)
def test_never_dialled_whatever_is_allowed(address: str, reason: str) -> None:
    assert public_only().refusal(address) == reason
    assert everything_allowed().refusal(address) == reason


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("[::ffff:7f00:1]", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.255", "private"),
        ("192.168.1.1", "private"),
        ("100.64.0.1", "private"),
        ("fc00::1", "private"),
        ("fd12:3456::1", "private"),
        ("::ffff:10.0.0.1", "private"),
        ("64:ff9b::a00:1", "private"),  # NAT64 form of 10.0.0.1
        ("192.0.2.1", "private"),  # documentation range: not global
        ("fec0::1", "reserved"),  # IPv6 site-local, deprecated
    ],
)
def test_private_only_when_allowed(address: str, reason: str) -> None:
    assert public_only().refusal(address) == reason
    assert everything_allowed().refusal(address) is None


def test_an_allowed_network_admits_only_itself() -> None:
    assert loopback_allowed().refusal("127.0.0.1") is None
    assert loopback_allowed().refusal("::ffff:127.0.0.2") is None
    assert loopback_allowed().refusal("10.0.0.1") == "private"
    assert loopback_allowed().refusal("::1") == "loopback"


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700::1111", "172.32.0.1"])
def test_public_addresses_are_dialled(address: str) -> None:
    assert public_only().refusal(address) is None


def test_a_name_is_left_to_the_socket_factory() -> None:
    assert public_only().refusal("miner.example") is None


def test_bad_cidrs_are_named() -> None:
    with pytest.raises(ValueError, match="not-a-net"):
        parse_networks(["10.0.0.0/8", "not-a-net"])


def test_the_socket_factory_refuses_before_a_socket_exists() -> None:
    heard: list[tuple[str, str | None]] = []
    factory = loopback_allowed().socket_factory(lambda host, reason: heard.append((host, reason)))
    with pytest.raises(AxonRefused) as refused:
        factory((socket.AF_INET, socket.SOCK_STREAM, 6, "", ("169.254.169.254", 80)))
    assert refused.value.reason == "link_local"
    with factory((socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", 80))) as sock:
        assert (sock.family, sock.type, sock.proto) == (socket.AF_INET, socket.SOCK_STREAM, 6)
    assert heard == [("169.254.169.254", "link_local"), ("127.0.0.1", None)]


@pytest.mark.parametrize(
    "host", ["1.2.3.4@10.0.0.1", "evil.example/#", "miner.example:80", "a" * 300, "-x.example"]
)
def test_an_axon_that_is_neither_address_nor_name_is_invalid(host: str) -> None:
    assert everything_allowed().refusal(host) == "invalid"


def test_an_axons_protocol_cannot_redirect_its_url() -> None:
    neuron = Neuron(
        uid=0, hotkey="h", axon=Axon(ip="8.8.8.8", port=80, protocol="http://10.0.0.1/#")
    )
    assert neuron.base_url == "http://8.8.8.8:80"


HOSTILE_NAMES = ["a" * 26 + "!", "a-" * 120 + "!", "a." * 120 + "-", "a" * 250 + "!"]


def test_hostile_axon_names_are_refused_in_linear_time() -> None:
    # Failed before: the old pattern backtracked exponentially (13 s at 27 characters, and
    # `re` holds the GIL while it does), so the check runs in a child with a deadline.
    check = (
        "import sys; from router.axon_policy import AxonPolicy; "
        "print([AxonPolicy().refusal(h) for h in sys.argv[1:]])"
    )
    done = subprocess.run(
        [sys.executable, "-c", check, *HOSTILE_NAMES],
        capture_output=True,
        text=True,
        timeout=20,
        check=True,
    )
    assert done.stdout.strip() == str(["invalid"] * len(HOSTILE_NAMES))


@pytest.mark.parametrize(
    "host", ["localhost", "miner-1.example.com", "miner.example.", "xn--80ak6aa92e.com", "a" * 63]
)
def test_dns_names_are_names(host: str) -> None:
    assert everything_allowed().refusal(host) is None


def test_a_cidr_with_host_bits_allows_its_whole_network() -> None:
    policy = AxonPolicy.from_cidrs([" 10.1.2.3/8 "])
    assert policy.refusal("10.200.0.1") is None
    assert policy.refusal("192.168.0.1") == "private"
    assert parse_networks(["10.1.2.3/8", "::1/128"]) == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("::1/128"),
    )


def test_verdicts_are_remembered_within_a_bound() -> None:
    policy = AxonPolicy.from_cidrs(["10.0.0.0/8"])
    hosts = [f"10.{i // 65536}.{i // 256 % 256}.{i % 256}" for i in range(KNOWN_HOSTS + 1)]
    assert [policy.refusal(host) for host in hosts[:3]] == [None, None, None]
    assert policy.refusal("169.254.169.254") == policy.refusal("169.254.169.254") == "link_local"
    for host in hosts:
        policy.refusal(host)
    assert policy.refusal("169.254.169.254") == "link_local"
    assert policy.refusal("8.8.8.8") is None


def test_a_refusal_names_the_address_and_why() -> None:
    refused = AxonRefused("169.254.169.254", "link_local")
    assert (refused.reason, str(refused)) == (
        "link_local",
        "axon address 169.254.169.254 refused: link_local",
    )


def _name(length: int) -> str:
    """A DNS name of `length` characters: labels of 63 letters, dot-separated."""
    labels, left = [], length
    while left > 0:
        size = min(63, left)
        labels.append("a" * size)
        left -= size + 1
    name = ".".join(labels)
    assert len(name) == length
    return name


@pytest.mark.parametrize(
    ("host", "verdict"),
    [
        (_name(253), None),  # the longest name DNS allows
        (_name(253) + ".", None),  # fully qualified: the root's dot does not count
        (_name(254), "invalid"),
        (".", "invalid"),  # the root alone names no host
        ("a", None),
        ("a" * 64, "invalid"),  # a label is 63 characters at most
        ("miner..example", "invalid"),
        ("miner.example..", "invalid"),
    ],
)
def test_a_names_length_is_bounded_as_dns_bounds_it(host: str, verdict: str | None) -> None:
    assert everything_allowed().refusal(host) == verdict
