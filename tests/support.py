"""Helpers for tests over real sockets: free ports, a loop in a thread, gateway processes."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx
import redis
from fastapi.testclient import TestClient

from gateway.app import create_app
from gateway.config import Settings
from miners.sim.profiles import MinerProfile
from router.axon_policy import LOOPBACK

T = TypeVar("T")
ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class LoopThread:
    """An event loop running in a thread, for servers that tests call synchronously."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        """Run `coro` on the thread's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        """Stop the loop and the thread."""
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def wait_http(url: str, timeout: float = 20.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Poll `url` until it answers 200; fail early if `proc` died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            out = proc.stdout.read().decode() if proc.stdout else ""
            raise RuntimeError(f"process exited with {proc.returncode}: {out[-2000:]}")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"{url} did not come up in {timeout}s")


class GatewayProcess:
    """`bitgate serve` in a subprocess on a free port.

    Its output goes to a file, not a pipe: a gateway writes a log line per request, and a
    pipe nobody reads would fill up and stall it."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        cmd = [sys.executable, "-m", "gateway", "serve", "--port", str(self.port), *args]
        # Test miners listen on loopback, which the axon policy refuses unless allowed.
        full_env = {**os.environ, "BITGATE_AXON_ALLOW": LOOPBACK, **(env or {})}
        self.output = tempfile.TemporaryFile()  # noqa: SIM115 - closed by stop()
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, env=full_env, stdout=self.output, stderr=subprocess.STDOUT
        )
        try:
            wait_http(self.base_url + "/healthz", proc=self.proc)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}\n{self.stop()[-2000:]}") from None
        except BaseException:
            self.stop()
            raise

    def stop(self) -> str:
        """Stop the gateway and return what it printed."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.output.closed:
            return ""
        self.output.seek(0)
        out = self.output.read().decode(errors="replace")
        self.output.close()
        return out


def profiles(*specs: dict[str, Any] | str) -> list[MinerProfile]:
    """Miner profiles from short specs: a quality name, or a dict of profile fields."""
    out = []
    for spec in specs:
        fields = {"quality": spec} if isinstance(spec, str) else spec
        out.append(MinerProfile.model_validate({"name": str(fields), **fields}))
    return out


def eventually(probe: Callable[[], T], expected: T, timeout: float = 5.0) -> bool:
    """Poll `probe` until it returns `expected` or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while True:
        if probe() == expected:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


class RedisServer:
    """A real `redis-server` on a free loopback port, which tests may stop and restart."""

    def __init__(self, workdir: Path, port: int | None = None, *options: str) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed; `make test` installs it")
        self.binary = binary
        self.workdir = workdir
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.options = options  # more redis-server flags, e.g. --enable-debug-command yes
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        """Start the server and wait until it answers PING."""
        cmd = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.workdir),
            *self.options,
        ]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 10
        try:
            while True:
                try:
                    client.ping()
                    return
                except redis.ConnectionError:
                    if time.monotonic() > deadline or self.proc.poll() is not None:
                        self.stop()
                        raise RuntimeError("redis-server did not start") from None
                    time.sleep(0.05)
        finally:
            client.close()

    def stop(self) -> None:
        """Stop the server; its data is gone (nothing is saved to disk)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """A Dockerfile's instructions as (keyword, rest), continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", path.read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(maxsplit=1)[0].upper(), line.split(maxsplit=1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


@contextmanager
def gateway(metagraph: Path | None = None, **settings: Any) -> Iterator[TestClient]:
    """The gateway app in process, its lifespan running; `settings` by their flat names."""
    if metagraph is not None:
        settings["metagraph"] = metagraph
    with TestClient(create_app(Settings(**settings))) as client:
        yield client
