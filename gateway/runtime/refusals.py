"""What to tell an operator whose miners the axon policy refuses: who, why, and the fix."""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Mapping

from router.axon_policy import PRIVATE
from router.metagraph import Metagraph

SHOWN_HOSTS = 3
# Refusals an operator may lift; the others (link-local, multicast…) are never dialled.
ALLOWABLE = frozenset({"loopback", "private"})


def allowing(host: str) -> str | None:
    """The network `--axon-allow` needs to dial `host` (a private range, else the address)."""
    try:
        address = ipaddress.ip_address(host.strip("[]").split("%")[0])
    except ValueError:
        return None
    for _, network in PRIVATE:
        if address.version == network.version and address in network:
            return str(network)
    return str(ipaddress.ip_network(address))


def refusal_note(metagraph: Metagraph, refused: Mapping[int, str]) -> str | None:
    """One line: how many miners are refused on which hosts and why, and the flag that
    allows them (`refused 4 miners on 127.0.0.1 (loopback); allow them with --axon-allow
    127.0.0.0/8`); None when none is refused."""
    if not refused:
        return None
    hosts = Counter((n.axon.ip, refused[n.uid]) for n in metagraph.neurons if n.uid in refused)
    where = ", ".join(
        f"{count} on {host} ({reason})" if len(hosts) > 1 else f"on {host} ({reason})"
        for (host, reason), count in hosts.most_common(SHOWN_HOSTS)
    )
    if len(hosts) > SHOWN_HOSTS:
        where += f" and {len(hosts) - SHOWN_HOSTS} more hosts"
    miners = f"{len(refused)} miner{'s' if len(refused) != 1 else ''}"
    note = f"refused {miners} {where}" if len(hosts) == 1 else f"refused {miners}: {where}"
    networks = sorted(
        {
            net
            for host, reason in hosts
            if reason in ALLOWABLE and (net := allowing(host)) is not None
        }
    )
    if not networks:
        return note + "; these addresses are never dialled"
    return f"{note}; allow them with --axon-allow {','.join(networks)} (or BITGATE_AXON_ALLOW)"
