"""Which miner addresses the gateway may dial: public ones, and private ones the operator allows.

A metagraph is public: anyone who registers a hotkey sets their axon to any address, so an
axon is checked twice — at selection time (its literal address, cached per metagraph) and
at connect time (every address a name resolves to, in the socket factory, so a DNS answer
that changes between the two cannot reach an internal service).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Iterable, Sequence
from typing import Any

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

LOOPBACK = "127.0.0.0/8"

# Never dialled, whatever the operator allows: cloud metadata lives in link-local space.
NEVER: tuple[tuple[str, Network], ...] = (
    ("link_local", ipaddress.ip_network("169.254.0.0/16")),
    ("link_local", ipaddress.ip_network("fe80::/10")),
    ("multicast", ipaddress.ip_network("224.0.0.0/4")),
    ("multicast", ipaddress.ip_network("ff00::/8")),
    ("broadcast", ipaddress.ip_network("255.255.255.255/32")),
    ("unspecified", ipaddress.ip_network("0.0.0.0/8")),
    ("unspecified", ipaddress.ip_network("::/128")),
    ("reserved", ipaddress.ip_network("240.0.0.0/4")),
)
# Dialled only when an allowed network covers the address.
PRIVATE: tuple[tuple[str, Network], ...] = (
    ("loopback", ipaddress.ip_network("127.0.0.0/8")),
    ("loopback", ipaddress.ip_network("::1/128")),
    ("private", ipaddress.ip_network("10.0.0.0/8")),
    ("private", ipaddress.ip_network("172.16.0.0/12")),
    ("private", ipaddress.ip_network("192.168.0.0/16")),
    ("private", ipaddress.ip_network("100.64.0.0/10")),
    ("private", ipaddress.ip_network("fc00::/7")),
)

REASONS = (
    "invalid",
    "link_local",
    "multicast",
    "broadcast",
    "unspecified",
    "reserved",
    "loopback",
    "private",
)

# One DNS label; a name is checked label by label, so no pattern can backtrack over a whole name.
HOST_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")

AddrInfo = tuple[Any, Any, int, str, tuple[Any, ...]]


class AxonRefused(OSError):
    """The axon policy refused to dial an address."""

    def __init__(self, address: str, reason: str) -> None:
        super().__init__(f"axon address {address} refused: {reason}")
        self.reason = reason


def is_host_name(host: str) -> bool:
    """Whether `host` is a DNS name (labels of letters, digits and inner hyphens); linear time."""
    name = host[:-1] if host.endswith(".") else host
    if not 0 < len(name) <= 253:
        return False
    return all(HOST_LABEL.fullmatch(label) for label in name.split("."))


def parse_networks(cidrs: Iterable[str]) -> tuple[Network, ...]:
    """CIDR strings as networks (a bare address is a /32 or /128); ValueError names a bad one."""
    networks = []
    for cidr in cidrs:
        try:
            networks.append(ipaddress.ip_network(cidr.strip(), strict=False))
        except ValueError:
            raise ValueError(f"not a CIDR network: {cidr!r}") from None
    return tuple(networks)


def _unmapped(address: IPAddress) -> IPAddress:
    """The IPv4 address inside an IPv4-mapped or -translated IPv6 address; else itself."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address in ipaddress.ip_network("64:ff9b::/96"):
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


# Hosts whose verdict is remembered (every miner call checks its axon); past this, forgotten.
KNOWN_HOSTS = 4096


class AxonPolicy:
    """Classifies miner addresses: None for dialable, else the reason it is refused."""

    def __init__(self, allow: Sequence[Network] = ()) -> None:
        self.allow = tuple(allow)
        self._known: dict[str, str | None] = {}

    @classmethod
    def from_cidrs(cls, cidrs: Iterable[str]) -> AxonPolicy:
        """A policy allowing the given private networks on top of every public address."""
        return cls(parse_networks(cidrs))

    def refusal(self, host: str) -> str | None:
        """Why `host` may not be dialled, or None.

        A host name passes here (the socket factory checks what it resolves to); anything
        else that is not an IP address (`1.2.3.4@10.0.0.1`, a path) is `invalid`.
        """
        if host in self._known:
            return self._known[host]
        if len(self._known) >= KNOWN_HOSTS:
            self._known.clear()
        reason = self._classify(host)
        self._known[host] = reason
        return reason

    def _classify(self, host: str) -> str | None:
        try:
            address = _unmapped(ipaddress.ip_address(host.strip("[]").split("%")[0]))
        except ValueError:
            return None if is_host_name(host) else "invalid"
        for reason, network in NEVER:
            if address.version == network.version and address in network:
                return reason
        if self._allowed(address):
            return None
        for reason, network in PRIVATE:
            if address.version == network.version and address in network:
                return reason
        if address.is_reserved or getattr(address, "is_site_local", False):
            return "reserved"
        if address.is_private or address.is_loopback or not address.is_global:
            return "private"
        return None

    def _allowed(self, address: IPAddress) -> bool:
        return any(address.version == n.version and address in n for n in self.allow)

    def socket_factory(
        self, record: Callable[[str, str | None], None] | None = None
    ) -> Callable[[AddrInfo], socket.socket]:
        """aiohttp's `socket_factory`: refuses (AxonRefused) before a socket exists.

        It sees the address really dialled, after any DNS lookup; `record` (tests) hears
        every address and its refusal.
        """

        def factory(addr_info: AddrInfo) -> socket.socket:
            family, kind, proto, _, sockaddr = addr_info
            host = str(sockaddr[0])
            reason = self.refusal(host)
            if record is not None:
                record(host, reason)
            if reason is not None:
                raise AxonRefused(host, reason)
            return socket.socket(family=family, type=kind, proto=proto)

        return factory
