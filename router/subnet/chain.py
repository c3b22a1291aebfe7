"""The chain source: a subnet's metagraph read through the bittensor SDK, and set_weights.

The SDK is an optional extra (`pip install 'bitgate[chain]'`) imported only when a chain pool
is opened; everything here works on objects shaped like the SDK's, so tests need no network.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator
from tenacity import AsyncRetrying, stop_after_attempt, wait_exponential

from router.metagraph import Metagraph, MetagraphError, Neuron
from router.subnet.weights import ValidatorWeights

logger = logging.getLogger(__name__)

T = TypeVar("T")
INSTALL_HINT = "source: chain needs the bittensor SDK: pip install 'bitgate[chain]'"


class ChainError(RuntimeError):
    """The chain could not be reached, or refused a call."""


class ChainConfig(BaseModel):
    """Where a chain pool's metagraph comes from, and whether its weights go back on chain."""

    model_config = ConfigDict(extra="forbid")

    network: str = Field(default="finney", min_length=1, description="network name or ws(s) URL")
    netuid: int = Field(ge=0)
    sync_s: float = Field(default=600.0, gt=0, description="seconds between metagraph syncs")
    attempts: int = Field(default=4, ge=1, description="tries per sync or set_weights")
    backoff_s: float = Field(default=2.0, ge=0, description="first wait between tries")
    call_timeout_s: float = Field(default=120.0, gt=0, description="longest wait for one call")
    set_weights: bool = False
    wallet: str = "default"
    hotkey: str | None = None
    wallet_path: str | None = None

    @model_validator(mode="after")
    def _hotkey_for_weights(self) -> ChainConfig:
        if self.set_weights and not self.hotkey:
            raise ValueError("set_weights: true needs the validator's wallet `hotkey`")
        return self


class Subtensor(Protocol):
    """The part of the SDK's `Subtensor` that bitgate calls."""

    def metagraph(self, netuid: int) -> Any:
        """The subnet's metagraph (lite)."""
        ...

    def set_weights(self, **kwargs: Any) -> Any:
        """Set a validator's weights; (success, message) or an object with `.success`."""
        ...


def connect_subtensor(network: str) -> Subtensor:
    """A live SDK `Subtensor` for the network; ChainError when the SDK is not installed."""
    try:
        import bittensor
    except ImportError:
        raise ChainError(INSTALL_HINT) from None
    factory = getattr(bittensor, "Subtensor", None) or bittensor.subtensor
    subtensor: Subtensor = factory(network=network)
    return subtensor


def open_wallet(config: ChainConfig) -> Any:
    """The SDK wallet whose hotkey signs set_weights."""
    try:
        import bittensor
    except ImportError:
        raise ChainError(INSTALL_HINT) from None
    options: dict[str, Any] = {"name": config.wallet, "hotkey": config.hotkey}
    if config.wallet_path:
        options["path"] = config.wallet_path
    return bittensor.Wallet(**options)


def _values(value: Any) -> list[Any]:
    """A vector from the SDK (numpy array, torch tensor or list) as a list."""
    if hasattr(value, "tolist"):
        listed = value.tolist()
        return listed if isinstance(listed, list) else [listed]
    return list(value)


def _scalar(value: Any) -> int:
    """A scalar from the SDK (int, numpy or torch) as an int."""
    return int(value.item() if hasattr(value, "item") else value)


def _field(sdk: Any, *names: str) -> list[Any]:
    """The first of `names` the metagraph has, as a list (short names first: S, I, ...)."""
    for name in names:
        value = getattr(sdk, name, None)
        if value is not None:
            return _values(value)
    raise MetagraphError(f"chain metagraph: no {' or '.join(names)}")


def _axon(axon: Any) -> dict[str, Any]:
    """An SDK AxonInfo as DESIGN's axon; not serving (`is_serving` false) means 0.0.0.0."""
    ip = str(getattr(axon, "ip", "0.0.0.0"))
    port = int(getattr(axon, "port", 0))
    if not getattr(axon, "is_serving", ip != "0.0.0.0"):
        ip, port = "0.0.0.0", 0
    return {"ip": ip, "port": port, "protocol": "http"}


def metagraph_from_sdk(sdk: Any, name: str | None = None) -> Metagraph:
    """Map the SDK's metagraph (uids, hotkeys, axons, S, I, T, C, D, E, ...) onto ours."""
    uids = [_scalar(u) for u in _field(sdk, "uids")]
    columns = {
        "hotkey": _field(sdk, "hotkeys"),
        "coldkey": _field(sdk, "coldkeys"),
        "axon": [_axon(a) for a in _field(sdk, "axons")],
        "stake": _field(sdk, "S", "stake", "total_stake"),
        "incentive": _field(sdk, "I", "incentive"),
        "trust": _field(sdk, "T", "trust"),
        "consensus": _field(sdk, "C", "consensus"),
        "dividends": _field(sdk, "D", "dividends"),
        "emission": _field(sdk, "E", "emission"),
        "validator_permit": _field(sdk, "validator_permit"),
        "active": _field(sdk, "active"),
        "last_update": _field(sdk, "last_update"),
    }
    for field, values in columns.items():
        if len(values) != len(uids):
            raise MetagraphError(f"chain metagraph: {len(values)} {field}s for {len(uids)} uids")
    neurons = []
    for i, uid in enumerate(uids):
        row = {field: values[i] for field, values in columns.items()}
        row["validator_permit"] = bool(row["validator_permit"])
        row["active"] = bool(row["active"])
        row["last_update"] = int(row["last_update"])
        neurons.append(Neuron.model_validate({"uid": uid, **row}))
    netuid = _scalar(getattr(sdk, "netuid", 0))
    block = _scalar(getattr(sdk, "block", 0))
    return Metagraph(netuid=netuid, name=name, block=block, neurons=neurons)


class ChainLink:
    """One lazily opened SDK connection, used from worker threads one call at a time."""

    def __init__(self, connect: Callable[[], Subtensor], config: ChainConfig) -> None:
        self._connect = connect
        self.config = config
        self._subtensor: Subtensor | None = None
        self._lock = threading.Lock()

    def call(self, action: Callable[[Subtensor], T]) -> T:
        """Run `action` on the connection (blocking); a failure drops it for a fresh one."""
        with self._lock:
            if self._subtensor is None:
                self._subtensor = self._connect()
            try:
                return action(self._subtensor)
            except Exception:
                self._subtensor = None
                raise

    async def run(self, action: Callable[[Subtensor], T]) -> T:
        """`call` in a worker thread, bounded in time, retried with exponential backoff."""
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.config.attempts),
            wait=wait_exponential(multiplier=self.config.backoff_s, max=60.0),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                # A dead websocket can block the SDK for ever; stop waiting, and the next
                # call opens a fresh connection once the stuck one lets go of the lock.
                return await asyncio.wait_for(
                    asyncio.to_thread(self.call, action), self.config.call_timeout_s
                )
        raise AssertionError("unreachable")  # pragma: no cover


class ChainMetagraphSource:
    """A chain pool's metagraph, synced on demand; a failed sync keeps the last good one."""

    kind = "chain"

    def __init__(
        self, link: ChainLink, name: str | None, clock: Callable[[], float] = time.time
    ) -> None:
        self.link = link
        self.name = name
        self.clock = clock
        self.last_error: str | None = None
        self.last_sync: float | None = None
        self.failures = 0

    async def sync(self) -> Metagraph | None:
        """Read the metagraph now; None (and `last_error` set) when every try failed."""
        netuid = self.link.config.netuid
        try:
            metagraph = await self.link.run(
                lambda subtensor: metagraph_from_sdk(subtensor.metagraph(netuid), self.name)
            )
        except Exception as exc:  # the SDK raises many kinds; all mean "keep the last good"
            self.failures += 1
            self.last_error = f"chain sync of netuid {netuid} failed: {exc!r}"
            logger.error("%s; keeping the last good metagraph", self.last_error)
            return None
        self.last_error = None
        self.last_sync = self.clock()
        return metagraph

    def status(self) -> dict[str, Any]:
        """Sync health for /readyz."""
        age = None if self.last_sync is None else round(self.clock() - self.last_sync, 3)
        return {"last_sync_age_s": age, "sync_failures": self.failures}


def _outcome(result: Any) -> tuple[bool, str]:
    """set_weights' answer: `(success, message)` (SDK 9) or an object with `.success` (10)."""
    if isinstance(result, tuple):
        return bool(result[0]), str(result[1]) if len(result) > 1 else ""
    if hasattr(result, "success"):
        return bool(result.success), str(getattr(result, "message", "") or "")
    return bool(result), ""


class ChainWeightSetter:
    """Sets this validator's weights on chain through the SDK."""

    def __init__(self, link: ChainLink, wallet: Callable[[], Any]) -> None:
        self.link = link
        self._open_wallet = wallet
        self._wallet: Any = None

    def _set(self, subtensor: Subtensor, weights: ValidatorWeights) -> None:
        if self._wallet is None:
            self._wallet = self._open_wallet()
        result = subtensor.set_weights(
            wallet=self._wallet,
            netuid=self.link.config.netuid,
            uids=list(weights.uids),
            weights=list(weights.weights),
            wait_for_inclusion=True,
            wait_for_finalization=False,
        )
        success, message = _outcome(result)
        if not success:
            raise ChainError(f"set_weights refused: {message or 'no reason given'}")

    async def set(self, weights: ValidatorWeights) -> None:
        """Set the weights, retried with backoff; raises ChainError when every try failed."""
        await self.link.run(lambda subtensor: self._set(subtensor, weights))
