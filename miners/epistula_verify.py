"""Epistula v2 verification on the miner side: headers, clock window, replay, signer, signature."""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from bittensor_wallet import Keypair

from router.epistula import (
    HEADERS,
    SIGNATURE_HEADER,
    SIGNED_BY_HEADER,
    TIMESTAMP_HEADER,
    UUID_HEADER,
    VERSION,
    VERSION_HEADER,
    body_digest,
    now_ms,
    signing_message,
)

DEFAULT_WINDOW_S = 8.0
# Validators' clocks run ahead by seconds (SN1's own check allows any future time).
DEFAULT_SKEW_S = 5.0
SIGNATURE_HEX_CHARS = 128

SignerCheck = Callable[[str], bool]


class EpistulaError(Exception):
    """A request refused with 401; the message says why, the code names the check."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class SignedHeaders:
    """The Epistula headers of one request, parsed."""

    timestamp_ms: int
    request_uuid: str
    signed_by: str
    signed_for: str
    signature: bytes


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if value is None or not value.strip():
        raise EpistulaError(f"missing header {name}", "epistula_missing_header")
    return value.strip()


def _malformed(name: str, why: str) -> EpistulaError:
    return EpistulaError(f"malformed header {name}: {why}", "epistula_malformed_header")


def parse_headers(headers: Mapping[str, str]) -> SignedHeaders:
    """The Epistula v2 headers of a request, or `EpistulaError` naming the one that is wrong."""
    version, stamp, request_uuid, signed_by, signed_for, signature = (
        _header(headers, name) for name in HEADERS
    )
    if version != VERSION:
        raise _malformed(VERSION_HEADER, f"version {version[:8]!r} is not {VERSION}")
    if not stamp.isascii() or not stamp.isdigit() or len(stamp) > 16:
        raise _malformed(TIMESTAMP_HEADER, "not a time in milliseconds")
    try:
        uuid.UUID(request_uuid)
    except ValueError:
        raise _malformed(UUID_HEADER, "not a UUID") from None
    hex_part = signature.removeprefix("0x")
    if len(signature) != SIGNATURE_HEX_CHARS + 2 or not signature.startswith("0x"):
        raise _malformed(SIGNATURE_HEADER, "not 0x and 64 bytes of hex")
    try:
        raw_signature = bytes.fromhex(hex_part)
    except ValueError:
        raise _malformed(SIGNATURE_HEADER, "not 0x and 64 bytes of hex") from None
    return SignedHeaders(int(stamp), request_uuid, signed_by, signed_for, raw_signature)


class ReplayGuard:
    """Request uuids seen, each kept until its timestamp has left the window."""

    def __init__(self) -> None:
        self._expiry: dict[str, int] = {}
        self._order: deque[tuple[int, str]] = deque()

    def __len__(self) -> int:
        return len(self._expiry)

    def first_use(self, key: str, expires_ms: int, now: int) -> bool:
        """Record `key`; False if it was already recorded and has not expired."""
        order, expiry = self._order, self._expiry
        while order and order[0][0] < now:
            old_expiry, old = order.popleft()
            if expiry.get(old) == old_expiry:
                del expiry[old]
        if key in expiry:
            return False
        expiry[key] = expires_ms
        order.append((expires_ms, key))
        return True


class Verifier:
    """Checks the Epistula v2 headers of requests to the miner whose hotkey is `hotkey`."""

    def __init__(
        self,
        hotkey: str,
        allowed: SignerCheck,
        window_s: float = DEFAULT_WINDOW_S,
        skew_s: float = DEFAULT_SKEW_S,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        if window_s <= 0 or skew_s < 0:
            raise ValueError("window_s must be positive and skew_s not negative")
        self.hotkey = hotkey
        self.allowed = allowed
        self.window_ms = round(window_s * 1000)
        self.skew_ms = round(skew_s * 1000)
        self.clock = clock
        self.replays = ReplayGuard()

    def verify(self, headers: Mapping[str, str], body: bytes) -> str:
        """The signer's hotkey if the request is signed for this miner, else `EpistulaError`."""
        return self.verify_body(self.check_headers(headers), body)

    def check_headers(self, headers: Mapping[str, str]) -> SignedHeaders:
        """Every check the headers alone allow (format, time, addressee, signer), before the
        body is read; `EpistulaError` if one fails."""
        signed = parse_headers(headers)
        now = self.clock()
        if signed.timestamp_ms < now - self.window_ms:
            raise EpistulaError(
                f"request is stale: signed more than {self.window_ms / 1000:g} s ago",
                "epistula_stale",
            )
        if signed.timestamp_ms > now + self.skew_ms:
            raise EpistulaError("request timestamp is in the future", "epistula_future")
        if signed.signed_for != self.hotkey:
            raise EpistulaError(
                f"request is signed for {signed.signed_for[:64]!r}, not this miner's hotkey",
                "epistula_wrong_miner",
            )
        if not self.allowed(signed.signed_by):
            raise EpistulaError(
                f"signer {signed.signed_by[:64]!r} is not allowed", "epistula_signer_not_allowed"
            )
        return signed

    def verify_body(self, signed: SignedHeaders, body: bytes) -> str:
        """The signer's hotkey if the signature covers this body and the uuid is new."""
        self._check_signature(signed, body)
        now = self.clock()
        key = str(uuid.UUID(signed.request_uuid))
        if not self.replays.first_use(key, signed.timestamp_ms + self.window_ms, now):
            raise EpistulaError("request uuid was already used (replay)", "epistula_replay")
        return signed.signed_by

    @staticmethod
    def _check_signature(signed: SignedHeaders, body: bytes) -> None:
        """The signature must be the signer's over this body's hash and these headers."""
        try:
            signer = Keypair(ss58_address=signed.signed_by)
        except (ValueError, TypeError):
            raise _malformed(SIGNED_BY_HEADER, "not an SS58 address") from None
        message = signing_message(
            body_digest(body), signed.request_uuid, signed.timestamp_ms, signed.signed_for
        )
        try:
            valid = signer.verify(message.encode(), signed.signature)
        except (ValueError, TypeError):
            valid = False
        if not valid:
            raise EpistulaError(
                "bad signature: it does not match the body, uuid, timestamp and signed_for",
                "epistula_bad_signature",
            )
