"""A pool whose miners the axon policy refuses says why and how to allow them: log and 503."""

from __future__ import annotations

import logging
from pathlib import Path

import orjson
import pytest
from fastapi.testclient import TestClient

from gateway.app import create_app
from gateway.config import Settings
from gateway.runtime.refusals import refusal_note
from router.metagraph import Metagraph

FIX = "refused 4 miners on 127.0.0.1 (loopback); allow them with --axon-allow 127.0.0.0/8"


def metagraph(*hosts: str) -> Metagraph:
    """A pool with one miner on each host."""
    neurons = [
        {"uid": uid, "hotkey": f"hk{uid}", "axon": {"ip": host, "port": 9000 + uid}}
        for uid, host in enumerate(hosts)
    ]
    return Metagraph.model_validate({"name": "local", "neurons": neurons})


def test_the_note_names_hosts_reasons_and_the_networks_to_allow() -> None:
    pool = metagraph("127.0.0.1", "127.0.0.1", "10.1.2.3", "169.254.169.254", "8.8.8.8")
    refused = {0: "loopback", 1: "loopback", 2: "private", 3: "link_local"}
    note = refusal_note(pool, refused)
    assert note == (
        "refused 4 miners: 2 on 127.0.0.1 (loopback), 1 on 10.1.2.3 (private), "
        "1 on 169.254.169.254 (link_local); allow them with --axon-allow "
        "10.0.0.0/8,127.0.0.0/8 (or BITGATE_AXON_ALLOW)"
    )
    assert refusal_note(pool, {}) is None
    only_metadata = refusal_note(pool, {3: "link_local"})
    assert only_metadata == (
        "refused 1 miner on 169.254.169.254 (link_local); these addresses are never dialled"
    )


def test_a_refused_loopback_pool_logs_the_fix_and_the_503_says_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "local.json"
    path.write_bytes(orjson.dumps(metagraph(*["127.0.0.1"] * 4).model_dump()))
    settings = Settings(metagraph=path, axon_allow=[], embedding_model=False)
    with caplog.at_level(logging.WARNING), TestClient(create_app(settings)) as client:
        chat = {"model": "local", "messages": [{"role": "user", "content": "Hi"}]}
        reply = client.post("/v1/chat/completions", json=chat)
    assert reply.status_code == 503
    assert FIX in reply.json()["error"]["message"]
    assert sum(FIX in record.getMessage() for record in caplog.records) == 1
