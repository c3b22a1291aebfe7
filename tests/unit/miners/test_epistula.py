"""Tests for Epistula v2 signing and verifying with real sr25519 keys, and who may sign."""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path

import pytest
from bittensor_wallet import Keypair

from miners.epistula_verify import EpistulaError, ReplayGuard, Verifier, parse_headers
from miners.keys import new_keypair
from miners.signers import SignerPolicy
from router.epistula import HEADERS, Signer, signing_message

BODY = b'{"model": "sn1", "messages": [{"role": "user", "content": "hi"}]}'
NOW_MS = 1_700_000_000_000


class Clock:
    """A settable millisecond clock."""

    def __init__(self, now: int = NOW_MS) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


@pytest.fixture(scope="module")
def validator() -> Keypair:
    """The gateway's hotkey."""
    return new_keypair()


@pytest.fixture(scope="module")
def miner() -> Keypair:
    """The miner's hotkey."""
    return new_keypair()


@pytest.fixture
def clock() -> Clock:
    """The one clock both sides read."""
    return Clock()


@pytest.fixture
def signer(validator: Keypair, clock: Clock) -> Signer:
    """Signs as the validator."""
    return Signer(validator, clock)


@pytest.fixture
def verifier(validator: Keypair, miner: Keypair, clock: Clock) -> Verifier:
    """The miner's verifier, allowing the validator only."""
    return Verifier(miner.ss58_address, SignerPolicy([validator.ss58_address]), clock=clock)


def refusal(verifier: Verifier, headers: dict[str, str], body: bytes = BODY) -> str:
    """The code of the EpistulaError the verifier raises."""
    with pytest.raises(EpistulaError) as caught:
        verifier.verify(headers, body)
    return caught.value.code


def test_headers_are_epistula_v2_and_sign_the_documented_message(
    signer: Signer, validator: Keypair, miner: Keypair
) -> None:
    headers = signer.headers(BODY, miner.ss58_address)
    assert set(headers) == set(HEADERS)
    assert headers["Epistula-Version"] == "2"
    assert headers["Epistula-Timestamp"] == str(NOW_MS)
    assert headers["Epistula-Signed-By"] == validator.ss58_address
    assert headers["Epistula-Signed-For"] == miner.ss58_address
    assert str(uuid.UUID(headers["Epistula-Uuid"])) == headers["Epistula-Uuid"]
    message = (
        f"{hashlib.sha256(BODY).hexdigest()}.{headers['Epistula-Uuid']}."
        f"{NOW_MS}.{miner.ss58_address}"
    )
    assert signing_message(
        hashlib.sha256(BODY).hexdigest(), headers["Epistula-Uuid"], NOW_MS, miner.ss58_address
    ) == (message)
    signature = headers["Epistula-Request-Signature"]
    assert signature.startswith("0x") and len(signature) == 130
    assert Keypair(ss58_address=validator.ss58_address).verify(
        message.encode(), bytes.fromhex(signature[2:])
    )


def test_round_trip_returns_the_signer(signer: Signer, verifier: Verifier, miner: Keypair) -> None:
    headers = signer.headers(BODY, miner.ss58_address)
    assert verifier.verify(headers, BODY) == signer.signed_by


def test_each_miner_gets_its_own_signature_and_uuid(signer: Signer) -> None:
    first, second = new_keypair().ss58_address, new_keypair().ss58_address
    a, b = signer.headers(BODY, first), signer.headers(BODY, second)
    assert a["Epistula-Request-Signature"] != b["Epistula-Request-Signature"]
    assert a["Epistula-Uuid"] != b["Epistula-Uuid"]


def test_the_body_hash_follows_the_body(signer: Signer, verifier: Verifier, miner: Keypair) -> None:
    signer.headers(BODY, miner.ss58_address)
    other = b'{"prompt": "other"}'
    assert verifier.verify(signer.headers(other, miner.ss58_address), other)


def test_secrets_stay_out_of_repr(signer: Signer, validator: Keypair) -> None:
    assert repr(signer) == f"Signer(signed_by={validator.ss58_address!r})"


@pytest.mark.parametrize("header", HEADERS)
def test_each_missing_header_is_refused(
    signer: Signer, verifier: Verifier, miner: Keypair, header: str
) -> None:
    headers = signer.headers(BODY, miner.ss58_address)
    del headers[header]
    with pytest.raises(EpistulaError, match=header):
        verifier.verify(headers, BODY)


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("Epistula-Version", "1"),
        ("Epistula-Timestamp", "soon"),
        ("Epistula-Timestamp", "-5"),
        ("Epistula-Uuid", "not-a-uuid"),
        ("Epistula-Request-Signature", "abc"),
        ("Epistula-Request-Signature", "0x" + "zz" * 64),
        ("Epistula-Request-Signature", "1x" + "00" * 64),
    ],
)
def test_malformed_headers_are_refused(
    signer: Signer, verifier: Verifier, miner: Keypair, header: str, value: str
) -> None:
    headers = signer.headers(BODY, miner.ss58_address) | {header: value}
    with pytest.raises(EpistulaError, match=f"malformed header {header}"):
        verifier.verify(headers, BODY)


def test_signer_that_is_not_ss58_is_malformed(
    validator: Keypair, miner: Keypair, clock: Clock
) -> None:
    verifier = Verifier(miner.ss58_address, SignerPolicy(allow_any=True), clock=clock)
    headers = Signer(validator, clock).headers(BODY, miner.ss58_address)
    headers["Epistula-Signed-By"] = "5Sim" + "x" * 44
    assert refusal(verifier, headers) == "epistula_malformed_header"


def test_tampered_body_is_refused(signer: Signer, verifier: Verifier, miner: Keypair) -> None:
    headers = signer.headers(BODY, miner.ss58_address)
    assert refusal(verifier, headers, BODY.replace(b"hi", b"ho")) == "epistula_bad_signature"


@pytest.mark.parametrize("header", ["Epistula-Uuid", "Epistula-Timestamp"])
def test_tampered_headers_are_refused(
    signer: Signer, verifier: Verifier, miner: Keypair, clock: Clock, header: str
) -> None:
    headers = signer.headers(BODY, miner.ss58_address)
    headers[header] = str(uuid.uuid4()) if header == "Epistula-Uuid" else str(clock.now - 1)
    assert refusal(verifier, headers) == "epistula_bad_signature"


def test_signature_of_another_key_is_refused(
    verifier: Verifier, validator: Keypair, miner: Keypair, clock: Clock
) -> None:
    headers = Signer(new_keypair(), clock).headers(BODY, miner.ss58_address)
    headers["Epistula-Signed-By"] = validator.ss58_address
    assert refusal(verifier, headers) == "epistula_bad_signature"


def test_stale_request_is_refused_and_the_window_is_configurable(
    signer: Signer, validator: Keypair, miner: Keypair, clock: Clock
) -> None:
    headers = signer.headers(BODY, miner.ss58_address)
    clock.now += 8_001
    default = Verifier(miner.ss58_address, SignerPolicy([validator.ss58_address]), clock=clock)
    assert refusal(default, headers) == "epistula_stale"
    wider = Verifier(
        miner.ss58_address, SignerPolicy([validator.ss58_address]), window_s=9, clock=clock
    )
    assert wider.verify(headers, BODY) == validator.ss58_address


def test_request_at_the_edge_of_the_window_passes(
    signer: Signer, verifier: Verifier, miner: Keypair, clock: Clock
) -> None:
    headers = signer.headers(BODY, miner.ss58_address)
    clock.now += 8_000
    assert verifier.verify(headers, BODY) == signer.signed_by


def test_future_request_is_refused(
    validator: Keypair, verifier: Verifier, miner: Keypair, clock: Clock
) -> None:
    ahead = Signer(validator, lambda: clock.now + 60_000)
    assert refusal(verifier, ahead.headers(BODY, miner.ss58_address)) == "epistula_future"


def test_request_for_another_miner_is_refused(signer: Signer, verifier: Verifier) -> None:
    headers = signer.headers(BODY, new_keypair().ss58_address)
    assert refusal(verifier, headers) == "epistula_wrong_miner"


def test_replayed_uuid_is_refused(signer: Signer, verifier: Verifier, miner: Keypair) -> None:
    headers = signer.headers(BODY, miner.ss58_address)
    verifier.verify(headers, BODY)
    assert refusal(verifier, headers) == "epistula_replay"


def test_signer_not_allowed_is_refused(verifier: Verifier, miner: Keypair, clock: Clock) -> None:
    stranger = Signer(new_keypair(), clock)
    assert refusal(verifier, stranger.headers(BODY, miner.ss58_address)) == (
        "epistula_signer_not_allowed"
    )


def test_refused_requests_do_not_burn_their_uuid(
    signer: Signer, verifier: Verifier, miner: Keypair
) -> None:
    headers = signer.headers(BODY, miner.ss58_address)
    refusal(verifier, headers, b"tampered")
    assert verifier.verify(headers, BODY) == signer.signed_by


def test_verify_reads_headers_case_insensitively(
    signer: Signer, verifier: Verifier, miner: Keypair
) -> None:
    from multidict import CIMultiDict

    headers = CIMultiDict(
        (k.lower(), v) for k, v in signer.headers(BODY, miner.ss58_address).items()
    )
    assert verifier.verify(headers, BODY) == signer.signed_by


def test_parse_headers_keeps_the_signed_fields(signer: Signer, miner: Keypair) -> None:
    headers = signer.headers(BODY, miner.ss58_address)
    parsed = parse_headers(headers)
    assert parsed.timestamp_ms == NOW_MS
    assert parsed.request_uuid == headers["Epistula-Uuid"]
    assert parsed.signed_for == miner.ss58_address
    assert len(parsed.signature) == 64


def test_replay_guard_forgets_expired_uuids() -> None:
    guard = ReplayGuard()
    assert guard.first_use("a", expires_ms=100, now=0)
    assert guard.first_use("b", expires_ms=300, now=0)
    assert not guard.first_use("a", expires_ms=100, now=50)
    assert guard.first_use("c", expires_ms=400, now=200)
    assert len(guard) == 2
    assert not guard.first_use("b", expires_ms=300, now=250)


def test_verifier_refuses_a_bad_window() -> None:
    with pytest.raises(ValueError):
        Verifier("x", SignerPolicy(allow_any=True), window_s=0)


def metagraph_file(path: Path, stakes: dict[str, float]) -> Path:
    """A metagraph whose neurons have these hotkeys and stakes."""
    neurons = [
        {
            "uid": uid,
            "hotkey": hotkey,
            "coldkey": hotkey,
            "stake": stake,
            "axon": {"ip": "0.0.0.0", "port": 0},
        }
        for uid, (hotkey, stake) in enumerate(stakes.items())
    ]
    path.write_text(json.dumps({"netuid": 1, "name": "sn1", "neurons": neurons}))
    return path


def test_policy_allows_staked_hotkeys_from_the_metagraph(tmp_path: Path) -> None:
    rich, poor, absent = (new_keypair().ss58_address for _ in range(3))
    path = metagraph_file(tmp_path / "mg.json", {rich: 5000.0, poor: 10.0})
    policy = SignerPolicy(metagraph=path, min_stake=1000.0)
    assert policy(rich)
    assert not policy(poor)
    assert not policy(absent)
    assert not policy.reload()
    metagraph_file(path, {rich: 5000.0, poor: 10.0, absent: 2000.0})
    assert policy.reload()
    assert policy(absent)


def test_policy_allowlist_and_any() -> None:
    known = new_keypair().ss58_address
    assert SignerPolicy([known])(known)
    assert not SignerPolicy([known])(new_keypair().ss58_address)
    assert SignerPolicy(allow_any=True)(new_keypair().ss58_address)
    with pytest.raises(ValueError, match="allowed signers"):
        SignerPolicy()
