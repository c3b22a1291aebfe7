"""Where load goes: one OpenAI base URL, or every serving miner of a metagraph file."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson

PATHS = {"chat": "/chat/completions", "completions": "/completions"}


class TargetError(ValueError):
    """A target that cannot be loaded: bad URL, bad metagraph, or a miner off loopback."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One place requests go: a miner (with its uid) or a gateway (uid None)."""

    url: str
    uid: int | None = None


@dataclass(frozen=True, slots=True)
class Target:
    """The endpoints of a run and what they are."""

    endpoints: tuple[Endpoint, ...]
    kind: str  # "url" or "pool"
    pool: str | None = None

    @property
    def direct(self) -> bool:
        """Whether requests go straight to miners (one per request)."""
        return self.kind == "pool"


def is_loopback(host: str) -> bool:
    """Whether a host name or address is loopback."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def base_url(url: str) -> str:
    """An OpenAI base URL: `http://host:port` gets `/v1`; no trailing slash."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TargetError(f"target {url!r} is not an http(s) URL")
    url = url.rstrip("/")
    return url if parts.path.strip("/") else url + "/v1"


def pool_endpoints(document: Any, source: str, allow_remote: bool) -> Target:
    """Every serving miner of a metagraph document, by uid."""
    if not isinstance(document, dict) or not isinstance(document.get("neurons"), list):
        raise TargetError(f"{source}: not a metagraph (no 'neurons' list)")
    endpoints = []
    for index, neuron in enumerate(document["neurons"]):
        axon = neuron.get("axon") if isinstance(neuron, dict) else None
        if not isinstance(axon, dict) or not isinstance(neuron.get("uid"), int):
            raise TargetError(f"{source}: neurons.{index} needs a uid and an axon")
        ip, port = str(axon.get("ip", "")), axon.get("port")
        if ip in ("", "0.0.0.0") or not isinstance(port, int) or port <= 0:
            continue
        if neuron.get("validator_permit"):
            continue
        if not allow_remote and not is_loopback(ip):
            raise TargetError(
                f"{source}: neurons.{index} (uid {neuron['uid']}) is at {ip}, not loopback; "
                "set allow_remote to load miners elsewhere"
            )
        host = f"[{ip}]" if ":" in ip else ip
        scheme = axon.get("protocol") if axon.get("protocol") in ("http", "https") else "http"
        endpoints.append(Endpoint(f"{scheme}://{host}:{port}/v1", neuron["uid"]))
    if not endpoints:
        raise TargetError(f"{source}: no serving miner")
    endpoints.sort(key=lambda e: e.uid or 0)
    name = document.get("name") or f"sn{document.get('netuid', '?')}"
    return Target(tuple(endpoints), "pool", str(name))


def resolve(target: str, allow_remote: bool = False) -> Target:
    """The endpoints of a scenario's target: a URL, or a metagraph file's miners."""
    if target.startswith(("http://", "https://")):
        return Target((Endpoint(base_url(target)),), "url")
    path = Path(target)
    try:
        document = orjson.loads(path.read_bytes())
    except OSError as exc:
        message = f"target {target!r}: not a URL and cannot read it ({exc.strerror})"
        raise TargetError(message) from None
    except orjson.JSONDecodeError:
        raise TargetError(f"target {target!r}: not valid JSON") from None
    return pool_endpoints(document, str(path), allow_remote)
