"""Who may sign requests to a miner: an allowlist, or hotkeys with enough stake in a metagraph."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from pathlib import Path

from router.metagraph import FileMetagraphSource, Metagraph

logger = logging.getLogger(__name__)

DEFAULT_RELOAD_S = 10.0
# SN1's validator-permit stake (macrocosm-os/prompting NEURON_VPERMIT_TAO_LIMIT): a hotkey with
# less is not a validator whose requests a miner should spend its GPU on.
DEFAULT_MIN_STAKE = 4096.0


class SignerPolicy:
    """Allows a signer that is on the allowlist, or staked at least `min_stake` in the metagraph."""

    def __init__(
        self,
        allowed: Iterable[str] = (),
        metagraph: Path | None = None,
        min_stake: float = 0.0,
        allow_any: bool = False,
    ) -> None:
        self.allowed = frozenset(allowed)
        self.min_stake = min_stake
        self.allow_any = allow_any
        self.source = FileMetagraphSource(metagraph) if metagraph is not None else None
        self.stakes: dict[str, float] = {}
        if self.source is not None:
            self._use(self.source.load())
        if not (self.allowed or self.source or allow_any):
            raise ValueError("name allowed signers (hotkeys or a metagraph), or allow any signer")

    def __call__(self, hotkey: str) -> bool:
        """Whether `hotkey` may sign requests to this miner."""
        if self.allow_any or hotkey in self.allowed:
            return True
        stake = self.stakes.get(hotkey)
        return stake is not None and stake >= self.min_stake

    def _use(self, metagraph: Metagraph) -> None:
        self.stakes = {neuron.hotkey: neuron.stake for neuron in metagraph.neurons}

    def reload(self) -> bool:
        """Reload the metagraph if its file changed; whether the stakes changed."""
        if self.source is None:
            return False
        metagraph = self.source.poll()
        if metagraph is None:
            return False
        self._use(metagraph)
        return True

    async def watch(self, interval_s: float = DEFAULT_RELOAD_S) -> None:
        """Reload the metagraph in a worker thread every `interval_s`, until cancelled."""
        while True:
            await asyncio.sleep(interval_s)
            if await asyncio.to_thread(self.reload):
                logger.info("signer stakes reloaded: %d hotkeys", len(self.stakes))
