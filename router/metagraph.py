"""The pool's registry of miners: neurons, the metagraph, and the file source."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

logger = logging.getLogger(__name__)

NOT_SERVING_IP = "0.0.0.0"


class MetagraphError(ValueError):
    """A metagraph that cannot be read or does not validate."""


class Axon(BaseModel):
    """Where a neuron serves: Bittensor's axon info."""

    model_config = ConfigDict(extra="allow")

    ip: str
    port: int = Field(ge=0, le=65535)
    protocol: str = "http"


class Neuron(BaseModel):
    """One uid of a subnet: a miner or a validator."""

    model_config = ConfigDict(extra="allow", frozen=True)

    uid: int = Field(ge=0)
    hotkey: str
    coldkey: str = ""
    axon: Axon
    stake: float = Field(default=0.0, ge=0)
    incentive: float = Field(default=0.0, ge=0)
    trust: float = 0.0
    consensus: float = 0.0
    dividends: float = 0.0
    emission: float = 0.0
    validator_permit: bool = False
    active: bool = True
    last_update: int = 0

    @property
    def serving(self) -> bool:
        """Whether the axon is reachable: a real ip and a port (Bittensor's rule)."""
        return self.axon.ip not in (NOT_SERVING_IP, "") and self.axon.port > 0

    @property
    def base_url(self) -> str:
        """The miner's base URL, `http://{ip}:{port}`."""
        ip = self.axon.ip
        host = f"[{ip}]" if ":" in ip else ip
        scheme = "https" if self.axon.protocol == "https" else "http"
        return f"{scheme}://{host}:{self.axon.port}"


class Metagraph(BaseModel):
    """One pool's snapshot of the subnet's neurons."""

    model_config = ConfigDict(extra="allow")

    netuid: int = Field(default=0, ge=0)
    name: str | None = None
    block: int = 0
    neurons: list[Neuron]

    @property
    def pool_name(self) -> str:
        """The pool's model id: the metagraph's name, else `sn{netuid}`."""
        return self.name or f"sn{self.netuid}"

    def by_uid(self) -> dict[int, Neuron]:
        """Neurons keyed by uid."""
        return {n.uid: n for n in self.neurons}


def describe_validation_error(exc: ValidationError) -> str:
    """One line naming the first bad field of a pydantic error, as `a.b.0.c: message`
    (files and settings; the HTTP API names the field in `gateway.errors` instead)."""
    err = exc.errors()[0]
    where = ".".join(str(part) for part in err["loc"]) or "(root)"
    message = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        message = "unknown field"
    return f"{where}: {message}"


def parse_metagraph(raw: bytes | str, source: str = "metagraph") -> Metagraph:
    """Validate a metagraph document, raising `MetagraphError` that names the bad field."""
    try:
        return Metagraph.model_validate_json(raw)
    except ValidationError as exc:
        raise MetagraphError(f"{source}: {describe_validation_error(exc)}") from None


def load_metagraph(path: Path) -> Metagraph:
    """Read and validate a metagraph JSON file."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise MetagraphError(f"{path}: cannot read ({exc.strerror})") from None
    return parse_metagraph(raw, str(path))


class FileMetagraphSource:
    """A metagraph file, reloaded when it changes; a bad version keeps the last good one."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self.last_error: str | None = None

    def _current_stamp(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def load(self) -> Metagraph:
        """Load the file now, raising `MetagraphError` when it is bad."""
        stamp = self._current_stamp()
        try:
            metagraph = load_metagraph(self.path)
        except MetagraphError as exc:
            self._stamp = stamp
            self.last_error = str(exc)
            raise
        self._stamp = stamp
        self.last_error = None
        return metagraph

    def poll(self) -> Metagraph | None:
        """A new metagraph if the file changed and validates, else None."""
        stamp = self._current_stamp()
        if stamp == self._stamp:
            return None
        try:
            return self.load()
        except MetagraphError as exc:
            logger.error("metagraph reload failed, keeping the last good one: %s", exc)
            return None
