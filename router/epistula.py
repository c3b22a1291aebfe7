"""Epistula v2: the signed headers a validator puts on each request to a miner."""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable

from bittensor_wallet import Keypair

VERSION = "2"
VERSION_HEADER = "Epistula-Version"
TIMESTAMP_HEADER = "Epistula-Timestamp"
UUID_HEADER = "Epistula-Uuid"
SIGNED_BY_HEADER = "Epistula-Signed-By"
SIGNED_FOR_HEADER = "Epistula-Signed-For"
SIGNATURE_HEADER = "Epistula-Request-Signature"
HEADERS = (
    VERSION_HEADER,
    TIMESTAMP_HEADER,
    UUID_HEADER,
    SIGNED_BY_HEADER,
    SIGNED_FOR_HEADER,
    SIGNATURE_HEADER,
)


def body_digest(body: bytes) -> str:
    """The hex SHA-256 of a request body, as the signed message carries it."""
    return hashlib.sha256(body).hexdigest()


def signing_message(digest: str, request_uuid: str, timestamp_ms: int, signed_for: str) -> str:
    """The text that is signed: `{sha256(body)}.{uuid}.{timestamp}.{signed_for}`."""
    return f"{digest}.{request_uuid}.{timestamp_ms}.{signed_for}"


def now_ms() -> int:
    """Wall-clock time in milliseconds, as Epistula timestamps are."""
    return time.time_ns() // 1_000_000


class Signer:
    """Signs requests as one hotkey; the body's hash is computed once for every miner."""

    __slots__ = ("_clock", "_digest", "_keypair", "_last_body", "signed_by")

    def __init__(self, keypair: Keypair, clock: Callable[[], int] = now_ms) -> None:
        self._keypair = keypair
        self._clock = clock
        self.signed_by: str = keypair.ss58_address
        self._last_body: bytes | None = None
        self._digest = ""

    def __repr__(self) -> str:
        return f"Signer(signed_by={self.signed_by!r})"

    def _digest_of(self, body: bytes) -> str:
        """The body's hash; the fan-out signs one body object for many miners in a row."""
        if body is not self._last_body:
            self._last_body, self._digest = body, body_digest(body)
        return self._digest

    def headers(self, body: bytes, signed_for: str) -> dict[str, str]:
        """Fresh Epistula v2 headers for `body` sent to the miner whose hotkey is `signed_for`."""
        timestamp = self._clock()
        request_uuid = str(uuid.uuid4())
        message = signing_message(self._digest_of(body), request_uuid, timestamp, signed_for)
        signature = self._keypair.sign(message.encode())
        return {
            VERSION_HEADER: VERSION,
            TIMESTAMP_HEADER: str(timestamp),
            UUID_HEADER: request_uuid,
            SIGNED_BY_HEADER: self.signed_by,
            SIGNED_FOR_HEADER: signed_for,
            SIGNATURE_HEADER: "0x" + signature.hex(),
        }

    __call__ = headers
