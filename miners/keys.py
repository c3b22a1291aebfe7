"""Hotkeys: read from a btcli hotkey file or a mnemonic; secrets are never logged or returned."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from bittensor_wallet import Keypair
from bittensor_wallet.keyfile import serialized_keypair_to_keyfile_data

# How btcli marks an encrypted keyfile (NaCl, Ansible vault, legacy Fernet).
ENCRYPTED_PREFIXES = (b"$NACL", b"$ANSIBLE_VAULT", b"gAAAAA")


class HotkeyError(ValueError):
    """A hotkey that cannot be used; the message names the file, never a secret."""


def keypair_from_mnemonic(mnemonic: str, source: str = "mnemonic") -> Keypair:
    """The sr25519 keypair of a BIP39 mnemonic."""
    try:
        return Keypair.create_from_mnemonic(" ".join(mnemonic.split()))
    except (ValueError, TypeError):
        raise HotkeyError(f"{source}: not a valid mnemonic") from None


def _keypair_from_document(document: dict[str, Any], source: str) -> Keypair:
    """The keypair of a btcli keyfile's JSON: `secretPhrase`, `secretSeed` or `privateKey`."""
    phrase, seed, private = (document.get(k) for k in ("secretPhrase", "secretSeed", "privateKey"))
    if isinstance(phrase, str) and phrase.strip():
        return keypair_from_mnemonic(phrase, f"{source}: secretPhrase")
    try:
        if isinstance(seed, str) and seed:
            return Keypair.create_from_seed(seed)  # type: ignore[arg-type]
        if isinstance(private, str) and private:
            return Keypair.create_from_private_key(private)
    except (ValueError, TypeError):
        raise HotkeyError(f"{source}: secretSeed or privateKey is not a valid key") from None
    raise HotkeyError(f"{source}: no secretPhrase, secretSeed or privateKey; it cannot sign")


def load_hotkey_file(path: Path) -> Keypair:
    """The keypair in a btcli hotkey file; its `ss58Address`, when present, must match."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise HotkeyError(f"{path}: cannot read ({exc.strerror})") from None
    if raw.startswith(ENCRYPTED_PREFIXES):
        raise HotkeyError(f"{path}: the keyfile is encrypted; use an unencrypted hotkey")
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise HotkeyError(f"{path}: not a hotkey JSON file") from None
    if not isinstance(document, dict):
        raise HotkeyError(f"{path}: not a hotkey JSON file")
    keypair = _keypair_from_document(document, str(path))
    address = document.get("ss58Address")
    if address is not None and address != keypair.ss58_address:
        raise HotkeyError(f"{path}: ss58Address does not match the key's secret")
    return keypair


def load_hotkey(path: Path | None, mnemonic: str | None) -> Keypair | None:
    """The hotkey from a file or a mnemonic (not both), or None when neither is given."""
    if path is not None and mnemonic:
        raise HotkeyError("give a hotkey file or a mnemonic, not both")
    if path is not None:
        return load_hotkey_file(path)
    if mnemonic:
        return keypair_from_mnemonic(mnemonic)
    return None


def write_hotkey_file(path: Path, keypair: Keypair) -> None:
    """Write a keypair as a new btcli hotkey file, readable by its owner only; never overwrites."""
    document = serialized_keypair_to_keyfile_data(keypair)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(document)


def new_keypair() -> Keypair:
    """A fresh sr25519 keypair from a new 12-word mnemonic."""
    return Keypair.create_from_mnemonic(Keypair.generate_mnemonic())


def is_ss58(address: str) -> bool:
    """Whether `address` is a well-formed SS58 address (checksum included)."""
    try:
        Keypair(ss58_address=address)
    except (ValueError, TypeError):
        return False
    return True
