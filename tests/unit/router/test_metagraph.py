"""Tests for router.metagraph: the models, the file format, and the reloading file source."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from router.metagraph import (
    Axon,
    FileMetagraphSource,
    Metagraph,
    MetagraphError,
    Neuron,
    load_metagraph,
    parse_metagraph,
)

# The example from DESIGN.md, plus a field bitgate does not know.
EXAMPLE = """
{"netuid": 1, "name": "sn1", "block": 4200000,
 "neurons": [
  {"uid": 0, "hotkey": "5F…", "coldkey": "5G…",
   "axon": {"ip": "127.0.0.1", "port": 9100, "protocol": "http"},
   "stake": 0.0, "incentive": 0.041, "trust": 0.0, "consensus": 0.0,
   "dividends": 0.0, "emission": 0.0, "validator_permit": false,
   "active": true, "last_update": 4199990, "rank": 0.5}
 ]}
"""


def document(**neuron_fields: Any) -> dict[str, Any]:
    """A one-neuron metagraph document with some neuron fields replaced."""
    neuron = {"uid": 0, "hotkey": "hk0", "axon": {"ip": "10.0.0.1", "port": 9100}}
    neuron.update(neuron_fields)
    return {"netuid": 7, "neurons": [neuron]}


def write(path: Path, doc: dict[str, Any] | str, mtime_ns: int | None = None) -> None:
    """Write a metagraph file; `mtime_ns` pins its modification time."""
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    if mtime_ns is not None:
        os.utime(path, ns=(mtime_ns, mtime_ns))


def neuron_at(ip: str, port: int = 9100) -> Neuron:
    """A neuron whose axon is at `ip:port`."""
    return Neuron(uid=0, hotkey="hk0", axon=Axon(ip=ip, port=port))


# --- models ---


def test_parses_the_design_example() -> None:
    metagraph = parse_metagraph(EXAMPLE)
    assert (metagraph.netuid, metagraph.name, metagraph.block) == (1, "sn1", 4200000)
    (neuron,) = metagraph.neurons
    assert neuron.hotkey == "5F…"
    assert neuron.incentive == 0.041
    assert neuron.last_update == 4199990
    assert neuron.base_url == "http://127.0.0.1:9100"
    assert neuron.serving is True


def test_unknown_fields_are_kept() -> None:
    neuron = parse_metagraph(EXAMPLE).neurons[0]
    assert neuron.model_dump()["rank"] == 0.5


def test_optional_fields_have_defaults() -> None:
    neuron = parse_metagraph(json.dumps(document())).neurons[0]
    assert neuron.active is True
    assert neuron.validator_permit is False
    assert neuron.incentive == 0.0
    assert neuron.axon.protocol == "http"


@pytest.mark.parametrize(
    ("ip", "port", "serving"),
    [
        ("10.0.0.1", 9100, True),
        ("0.0.0.0", 9100, False),
        ("", 9100, False),
        ("10.0.0.1", 0, False),
    ],
)
def test_serving_needs_a_real_ip_and_a_port(ip: str, port: int, serving: bool) -> None:
    assert neuron_at(ip, port).serving is serving


def test_base_url_brackets_ipv6() -> None:
    assert neuron_at("2001:db8::1", 8080).base_url == "http://[2001:db8::1]:8080"
    assert neuron_at("::1").base_url == "http://[::1]:9100"


def test_pool_name_is_the_name_else_the_netuid() -> None:
    assert Metagraph(netuid=7, name="chat", neurons=[]).pool_name == "chat"
    assert Metagraph(netuid=7, neurons=[]).pool_name == "sn7"


def test_by_uid_keys_neurons_by_uid() -> None:
    doc = document()
    doc["neurons"].append({"uid": 4, "hotkey": "hk4", "axon": {"ip": "10.0.0.4", "port": 1}})
    assert sorted(parse_metagraph(json.dumps(doc)).by_uid()) == [0, 4]


# --- bad documents ---


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        (document(axon={"ip": "10.0.0.1", "port": 70000}), "neurons.0.axon.port"),
        (document(axon={"ip": "10.0.0.1", "port": "nine"}), "neurons.0.axon.port"),
        (document(axon={"port": 9100}), "neurons.0.axon.ip"),
        (document(uid=-1), "neurons.0.uid"),
        (document(incentive=-0.5), "neurons.0.incentive"),
        ({"netuid": 1}, "neurons"),
    ],
)
def test_a_bad_document_names_the_field(doc: dict[str, Any], field: str) -> None:
    with pytest.raises(MetagraphError, match=rf"^pool\.json: {field}: "):
        parse_metagraph(json.dumps(doc), "pool.json")


def test_broken_json_is_a_metagraph_error() -> None:
    with pytest.raises(MetagraphError, match=r"^pool\.json: \(root\): Invalid JSON"):
        parse_metagraph('{"netuid": 1, "neurons": [', "pool.json")


def test_an_unreadable_file_says_so(tmp_path: Path) -> None:
    missing = tmp_path / "missing.json"
    with pytest.raises(MetagraphError, match=r"missing\.json: cannot read \(No such file"):
        load_metagraph(missing)


def test_load_metagraph_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "sn1.json"
    write(path, EXAMPLE)
    assert load_metagraph(path).pool_name == "sn1"


# --- the reloading file source ---


def test_poll_returns_the_metagraph_once_then_none_until_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "pool.json"
    write(path, document(incentive=0.1))
    source = FileMetagraphSource(path)
    first = source.poll()
    assert first is not None
    assert first.neurons[0].incentive == 0.1
    assert source.poll() is None
    assert source.poll() is None


def test_poll_returns_the_new_metagraph_after_a_change(tmp_path: Path) -> None:
    path = tmp_path / "pool.json"
    write(path, document(incentive=0.1), mtime_ns=1_000_000_000)
    source = FileMetagraphSource(path)
    source.load()
    write(path, document(incentive=0.2), mtime_ns=2_000_000_000)  # same size, newer
    changed = source.poll()
    assert changed is not None
    assert changed.neurons[0].incentive == 0.2
    assert source.last_error is None


def test_a_bad_new_file_keeps_the_last_good_one(tmp_path: Path) -> None:
    path = tmp_path / "pool.json"
    write(path, document(), mtime_ns=1_000_000_000)
    source = FileMetagraphSource(path)
    source.load()
    write(path, document(axon={"ip": "10.0.0.1", "port": -1}), mtime_ns=2_000_000_000)
    assert source.poll() is None
    assert source.last_error is not None
    assert "neurons.0.axon.port" in source.last_error
    assert source.poll() is None  # the bad version is not retried until it changes again
    assert source.last_error is not None

    write(path, document(incentive=0.3), mtime_ns=3_000_000_000)
    fixed = source.poll()
    assert fixed is not None
    assert fixed.neurons[0].incentive == 0.3
    assert source.last_error is None


def test_load_of_a_bad_file_raises_and_records_the_error(tmp_path: Path) -> None:
    path = tmp_path / "pool.json"
    write(path, "not json")
    source = FileMetagraphSource(path)
    with pytest.raises(MetagraphError):
        source.load()
    assert source.last_error is not None
    assert "pool.json" in source.last_error


def test_a_deleted_file_is_reported_and_the_last_good_one_kept(tmp_path: Path) -> None:
    path = tmp_path / "pool.json"
    write(path, document())
    source = FileMetagraphSource(path)
    source.load()
    path.unlink()
    assert source.poll() is None
    assert source.last_error is not None
    assert "cannot read" in source.last_error
