"""Tests for miners.keys: btcli hotkey files and mnemonics, with real sr25519 keys."""

from __future__ import annotations

import json
import logging
import stat
from pathlib import Path

import pytest
from bittensor_wallet import Keypair
from bittensor_wallet.keyfile import serialized_keypair_to_keyfile_data

from gateway.commands.cli import main
from miners.keys import (
    HotkeyError,
    is_ss58,
    load_hotkey,
    load_hotkey_file,
    new_keypair,
    write_hotkey_file,
)


def keyfile_document(keypair: Keypair) -> dict[str, object]:
    """What btcli writes for a hotkey, as a dict."""
    document: dict[str, object] = json.loads(serialized_keypair_to_keyfile_data(keypair))
    return document


def write_json(path: Path, document: object) -> Path:
    """Write `document` as JSON to `path`."""
    path.write_text(json.dumps(document))
    return path


def test_written_hotkey_file_loads_back_to_the_same_key(tmp_path: Path) -> None:
    keypair = new_keypair()
    path = tmp_path / "hotkey"
    write_hotkey_file(path, keypair)
    loaded = load_hotkey_file(path)
    assert loaded.ss58_address == keypair.ss58_address
    assert keypair.verify(b"message", loaded.sign(b"message"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_writing_never_overwrites_a_key(tmp_path: Path) -> None:
    path = tmp_path / "hotkey"
    write_hotkey_file(path, new_keypair())
    before = path.read_bytes()
    with pytest.raises(FileExistsError):
        write_hotkey_file(path, new_keypair())
    assert path.read_bytes() == before


@pytest.mark.parametrize("keep", ["secretPhrase", "secretSeed", "privateKey"])
def test_any_one_secret_field_is_enough(tmp_path: Path, keep: str) -> None:
    keypair = new_keypair()
    document = keyfile_document(keypair)
    for field in {"secretPhrase", "secretSeed", "privateKey"} - {keep}:
        document.pop(field)
    loaded = load_hotkey_file(write_json(tmp_path / "hotkey", document))
    assert loaded.ss58_address == keypair.ss58_address


def test_mismatched_address_is_refused(tmp_path: Path) -> None:
    document = keyfile_document(new_keypair())
    document["ss58Address"] = new_keypair().ss58_address
    with pytest.raises(HotkeyError, match="does not match"):
        load_hotkey_file(write_json(tmp_path / "hotkey", document))


@pytest.mark.parametrize(
    ("content", "named"),
    [
        (b"$NACL\x00\x01secret", "encrypted"),
        (b"not json", "not a hotkey JSON"),
        (b"[1, 2]", "not a hotkey JSON"),
        (b'{"ss58Address": "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"}', "cannot sign"),
        (b'{"secretPhrase": "one two three"}', "not a valid mnemonic"),
        (b'{"secretSeed": "0x1234"}', "not a valid key"),
    ],
)
def test_unusable_files_are_named_without_secrets(
    tmp_path: Path, content: bytes, named: str
) -> None:
    path = tmp_path / "hotkey"
    path.write_bytes(content)
    with pytest.raises(HotkeyError, match=named) as caught:
        load_hotkey_file(path)
    assert str(path) in str(caught.value)
    assert "one two three" not in str(caught.value)


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(HotkeyError, match="cannot read"):
        load_hotkey_file(tmp_path / "absent")


def test_mnemonic_and_file_sources(tmp_path: Path) -> None:
    mnemonic = Keypair.generate_mnemonic()
    expected = Keypair.create_from_mnemonic(mnemonic).ss58_address
    loaded = load_hotkey(None, f"  {mnemonic}\n")
    assert loaded is not None and loaded.ss58_address == expected
    assert load_hotkey(None, None) is None
    with pytest.raises(HotkeyError, match="not both"):
        load_hotkey(tmp_path / "hotkey", mnemonic)
    with pytest.raises(HotkeyError) as caught:
        load_hotkey(None, "abandon " + mnemonic)
    assert mnemonic not in str(caught.value)


def test_ss58_check() -> None:
    assert is_ss58(new_keypair().ss58_address)
    assert not is_ss58("5Sim" + "x" * 44)
    assert not is_ss58("")


def test_keygen_prints_only_the_address(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    path = tmp_path / "hotkey"
    assert main(["miner", "keygen", str(path)]) == 0
    printed = capsys.readouterr().out.strip()
    document = json.loads(path.read_text())
    assert printed == document["ss58Address"]
    assert document["secretPhrase"] not in caplog.text
    assert main(["miner", "keygen", str(path)]) == 1
    assert "exists" in capsys.readouterr().err
