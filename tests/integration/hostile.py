"""What the hostile-input tests share: miners that answer with set bytes, a pool file of them,
and the longest the gateway's `/healthz` went unanswered while something ran."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx
import orjson

from tests.integration.faults.miners import Exchange, FaultServer
from tests.support import LoopThread

T = TypeVar("T")
POLL_INTERVAL_S = 0.01
MAX_POLLS = 20_000


def answering(body: bytes) -> Callable[[Exchange], Any]:
    """A miner fault that answers every request with `body`, as JSON."""

    async def answer(ex: Exchange) -> None:
        await ex.answer(body)

    return answer


def streaming(body: bytes) -> Callable[[Exchange], Any]:
    """A miner fault that answers every request with `body`, as an event stream."""

    async def stream(ex: Exchange) -> None:
        await ex.events(body)

    return stream


def chat_reply(message: dict[str, Any], usage: dict[str, int] | None = None) -> bytes:
    """An OpenAI chat completion with one choice."""
    choice = {"index": 0, "message": {"role": "assistant", **message}, "finish_reason": "stop"}
    reply: dict[str, Any] = {"id": "m", "object": "chat.completion", "choices": [choice]}
    if usage is not None:
        reply["usage"] = usage
    return orjson.dumps(reply)


class Miner(FaultServer):
    """A fault server whose stop also ends the exchanges still running (a slow answer)."""

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.connections.add(task)
        try:
            await super()._serve(reader, writer)
        finally:
            self.connections.discard(task)

    async def stop(self) -> None:
        """Stop listening, and end every exchange (its socket closed)."""
        await super().stop()
        for task in list(self.connections):
            task.cancel()
        await asyncio.gather(*self.connections, return_exceptions=True)


@contextmanager
def miners(
    loop: LoopThread, *bodies: bytes, delay_s: float = 0.0, stream: bool = False
) -> Iterator[list[int]]:
    """One miner per body on loopback (sent as JSON, or as an event stream); their ports."""
    fault = streaming if stream else answering
    servers = [loop.run(Miner(fault(b), delay_s=delay_s).start()) for b in bodies]
    try:
        yield [s.port for s in servers]
    finally:
        for server in servers:
            loop.run(server.stop())


def pool_file(path: Path, ports: list[int], name: str = "sim") -> Path:
    """A metagraph file of miners at these loopback ports."""
    neurons = [
        {
            "uid": uid,
            "hotkey": f"hk{uid}",
            "axon": {"ip": "127.0.0.1", "port": port, "protocol": "http"},
            "incentive": 1.0,
            "active": True,
        }
        for uid, port in enumerate(ports)
    ]
    path.write_bytes(orjson.dumps({"netuid": 1, "name": name, "block": 1, "neurons": neurons}))
    return path


def longest_stall(base_url: str, action: Callable[[], T]) -> tuple[T, float]:
    """Run `action` while polling `/healthz`; its result, and the longest gap in seconds
    between two answered polls (from before the action starts to after it ends)."""
    gaps: list[float] = []
    stop = threading.Event()
    started = threading.Event()

    def poll() -> None:
        last = time.perf_counter()
        with httpx.Client(timeout=60) as client:
            for _ in range(MAX_POLLS):
                try:
                    client.get(base_url + "/healthz").raise_for_status()
                except httpx.HTTPError:
                    continue
                now = time.perf_counter()
                gaps.append(now - last)
                last = now
                started.set()
                if stop.is_set():
                    return
                time.sleep(POLL_INTERVAL_S)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    started.wait(10)
    time.sleep(0.1)
    try:
        result = action()
    finally:
        stop.set()
        poller.join(60)
    return result, max(gaps[1:], default=float("inf"))
