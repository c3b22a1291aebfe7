"""The simulated miner pool: N OpenAI-compatible miners on loopback ports, in one process."""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import socket
from collections.abc import Sequence
from pathlib import Path

from aiohttp import web

from miners.epistula_verify import DEFAULT_SKEW_S, DEFAULT_WINDOW_S, SignerCheck, Verifier
from miners.sim.miner import SimMiner
from miners.sim.profiles import MinerProfile
from router.metagraph import Axon, Metagraph, Neuron

__all__ = ["SimMiner", "SimPool", "start_pool"]

SIM_BLOCK = 4_200_000
SHUTDOWN_TIMEOUT_S = 0.25
LISTEN_BACKLOG = 1024
_BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def sim_key(label: str) -> str:
    """A made-up but well-formed SS58-looking key (48 base58 characters, starting `5Sim`)."""
    number = int.from_bytes(hashlib.sha256(label.encode()).digest(), "big")
    digits = []
    while number:
        number, digit = divmod(number, 58)
        digits.append(_BASE58[digit])
    return ("5Sim" + "".join(digits) + _BASE58[0] * 48)[:48]


def default_incentives(size: int) -> list[float]:
    """Incentives that decrease with uid and sum to one."""
    total = size * (size + 1) / 2
    return [round((size - uid) / total, 6) for uid in range(size)]


def advertised_ip(host: str) -> str:
    """The ip a client should call: loopback for a wildcard bind."""
    return {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)


class SimPool:
    """A running pool of simulated miners, one port each."""

    def __init__(
        self, host: str, miners: list[SimMiner], ports: list[int], runners: list[web.AppRunner]
    ) -> None:
        self.host = host
        self.miners = miners
        self.ports = ports
        self._runners = runners

    @property
    def profiles(self) -> list[MinerProfile]:
        """Each miner's profile, by uid."""
        return [miner.profile for miner in self.miners]

    @property
    def urls(self) -> list[str]:
        """Each miner's base URL, by uid."""
        ip = advertised_ip(self.host)
        host = f"[{ip}]" if ":" in ip else ip
        return [f"http://{host}:{port}" for port in self.ports]

    @staticmethod
    def hotkey(name: str, uid: int) -> str:
        """The hotkey of miner `uid` in the pool's metagraph called `name`."""
        return sim_key(f"{name}/{uid}/hotkey")

    def require_epistula(
        self,
        allowed: SignerCheck,
        name: str = "sim",
        window_s: float = DEFAULT_WINDOW_S,
        skew_s: float = DEFAULT_SKEW_S,
    ) -> None:
        """From now on each miner answers only requests an allowed signer signed for its hotkey."""
        for uid, miner in enumerate(self.miners):
            miner.verifier = Verifier(self.hotkey(name, uid), allowed, window_s, skew_s)

    def request_counts(self) -> list[int]:
        """How many completion requests each miner has accepted, by uid."""
        return [miner.requests for miner in self.miners]

    def in_flight(self) -> list[int]:
        """How many requests each miner is answering now, by uid."""
        return [miner.in_flight for miner in self.miners]

    def cancelled_counts(self) -> list[int]:
        """How many requests each miner saw its caller abandon mid-answer, by uid."""
        return [miner.cancelled for miner in self.miners]

    def metagraph(self, name: str = "sim", netuid: int = 1) -> Metagraph:
        """The pool as a metagraph: uid i on port i, incentive decreasing with uid."""
        defaults = default_incentives(len(self.miners))
        neurons = [
            self._neuron(uid, name, port, profile, defaults[uid])
            for uid, (port, profile) in enumerate(zip(self.ports, self.profiles, strict=True))
        ]
        return Metagraph(netuid=netuid, name=name, block=SIM_BLOCK, neurons=neurons)

    def _neuron(
        self, uid: int, name: str, port: int, profile: MinerProfile, incentive: float
    ) -> Neuron:
        """One miner's neuron."""
        return Neuron.model_validate(
            {
                "uid": uid,
                "hotkey": self.hotkey(name, uid),
                "coldkey": sim_key(f"{name}/{uid}/coldkey"),
                "axon": Axon(ip=advertised_ip(self.host), port=port),
                "incentive": incentive if profile.incentive is None else profile.incentive,
                "active": True,
                "validator_permit": False,
                "last_update": SIM_BLOCK - uid,
                "sim_profile": profile.name,
            }
        )

    def write_metagraph(self, path: Path, name: str = "sim", netuid: int = 1) -> Metagraph:
        """Write the metagraph JSON file atomically and return it."""
        metagraph = self.metagraph(name, netuid)
        partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        partial.write_text(metagraph.model_dump_json(indent=2) + "\n", encoding="utf-8")
        partial.replace(path)
        return metagraph

    async def stop(self) -> None:
        """Close every miner's port and finish its open requests."""
        runners, self._runners = self._runners, []
        await asyncio.gather(*(runner.cleanup() for runner in runners))

    async def __aenter__(self) -> SimPool:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (port 0 picks a free one)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family, backlog=LISTEN_BACKLOG)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror}") from None


async def _serve(miner: SimMiner, sock: socket.socket) -> web.AppRunner:
    """Start one miner on its socket."""
    runner = web.AppRunner(
        miner.app(), access_log=None, handler_cancellation=True, shutdown_timeout=SHUTDOWN_TIMEOUT_S
    )
    await runner.setup()
    await web.SockSite(runner, sock).start()
    return runner


async def start_pool(
    profiles: Sequence[MinerProfile], host: str = "127.0.0.1", base_port: int = 0, seed: int = 0
) -> SimPool:
    """Start one miner per profile on ports base_port.. (0: free ports); RNGs seeded per miner."""
    miners = [
        SimMiner(profile, random.Random(f"{seed}/{uid}")) for uid, profile in enumerate(profiles)
    ]
    sockets: list[socket.socket] = []
    runners: list[web.AppRunner] = []
    try:
        for uid in range(len(miners)):
            sockets.append(_listen(host, base_port + uid if base_port else 0))
        ports = [sock.getsockname()[1] for sock in sockets]
        for miner, sock in zip(miners, sockets, strict=True):
            runners.append(await _serve(miner, sock))
    except BaseException:
        await SimPool(host, miners, [], runners).stop()
        for sock in sockets[len(runners) :]:
            sock.close()
        raise
    return SimPool(host, miners, ports, runners)
