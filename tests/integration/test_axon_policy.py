"""The axon policy in a running gateway: refused miners are never dialled, and say why.

Nothing here is dialled outside 127.0.0.0/8: the gateway's address hook records every
address its miner session would connect to, and refuses any off loopback besides.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from fastapi.testclient import TestClient

from gateway.app import create_app
from gateway.config import Settings
from router.axon_policy import AxonRefused
from tests.integration.faults import miners as m
from tests.support import LoopThread

pytestmark = pytest.mark.integration

ALLOWED = "127.0.0.2"  # the one loopback address this gateway may dial
QUESTION = [{"role": "user", "content": "Why is the sky blue?"}]


def hostile_metagraph(path: Path, port: int) -> Path:
    """A pool whose miners point at every kind of address an attacker would register."""
    axons = {
        0: (ALLOWED, port),  # the honest miner
        1: ("169.254.169.254", 80),  # cloud metadata
        2: ("10.0.0.1", 8000),  # an internal service
        3: ("localhost", port),  # a name that resolves to a refused address
        4: ("::ffff:127.0.0.1", port),  # loopback in IPv4-mapped form
        5: ("224.0.0.1", 80),  # multicast
    }
    neurons = [
        {
            "uid": uid,
            "hotkey": f"hk{uid}",
            "incentive": 1.0 - uid / 10,
            "axon": {"ip": ip, "port": p},
        }
        for uid, (ip, p) in axons.items()
    ]
    path.write_bytes(orjson.dumps({"name": "hostile", "neurons": neurons}))
    return path


@pytest.fixture
def gateway(
    loop_thread: LoopThread, tmp_path: Path
) -> Iterator[tuple[TestClient, list[tuple[str, str | None]]]]:
    """A gateway over the hostile pool, allowed only 127.0.0.2, with its dials recorded."""
    miner = loop_thread.run(m.FaultServer(m.healthy, delay_s=0, host=ALLOWED).start())
    dialled: list[tuple[str, str | None]] = []

    def hook(host: str, reason: str | None) -> None:
        dialled.append((host, reason))
        if ipaddress.ip_address(host) not in ipaddress.ip_network("127.0.0.0/8"):
            raise AxonRefused(host, "outside loopback (test guard)")

    settings = Settings(
        metagraph=hostile_metagraph(tmp_path / "hostile.json", miner.port),
        axon_allow=[f"{ALLOWED}/32"],
        embedding_model=False,
        routing={"timeout_s": 2.0, "ranker": "heuristic"},
    )
    try:
        with TestClient(create_app(settings, address_hook=hook)) as client:
            yield client, dialled
    finally:
        loop_thread.run(miner.stop())


def test_refused_miners_are_never_dialled(
    gateway: tuple[TestClient, list[tuple[str, str | None]]],
) -> None:
    client, dialled = gateway
    for _ in range(2):
        resp = client.post("/v1/chat/completions", json={"model": "hostile", "messages": QUESTION})
        assert resp.status_code == 200
        block = resp.json()["bitgate"]
        assert block["miner"]["uid"] == 0
        candidates = {c["uid"]: c for c in block["candidates"]}
        assert set(candidates) == {0, 3}  # the others are refused before selection
        assert candidates[3]["status"] == "error"
        assert candidates[3]["error"] == "address refused by the axon policy"
    assert set(dialled) == {(ALLOWED, None), ("127.0.0.1", "loopback")}


def test_refusals_show_in_the_leaderboard_and_metrics(
    gateway: tuple[TestClient, list[tuple[str, str | None]]],
) -> None:
    client, dialled = gateway
    rows = client.get("/v1/pools/hostile/miners").json()["data"]
    assert {row["uid"]: row["refused"] for row in rows} == {
        0: None,
        1: "link_local",
        2: "private",
        3: None,  # a name: checked when dialled
        4: "loopback",
        5: "multicast",
    }
    metrics = client.get("/metrics").text
    for reason, count in [("link_local", 1), ("private", 1), ("loopback", 1), ("multicast", 1)]:
        line = f'bitgate_miners_refused{{pool="hostile",reason="{reason}"}} {float(count)}'
        assert line in metrics
    # Only the context probe of the top miners dials here: the allowed one, and the name
    # whose address is refused as it resolves; no refused address is ever dialled.
    assert set(dialled) <= {(ALLOWED, None), ("127.0.0.1", "loopback")}
