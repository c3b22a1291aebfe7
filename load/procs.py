"""Benchmark processes: the sim pool and the gateway, always stopped; and CPU accounting."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
POLL_S = 0.05
CHAT_PATH = "/v1/chat/completions"


class ProcessError(RuntimeError):
    """A benchmark process that did not start."""


@dataclass(frozen=True, slots=True)
class SimPool:
    """A running simulated pool: its process, metagraph and miners' base URLs."""

    proc: subprocess.Popen[str]
    metagraph: Path
    name: str
    urls: list[str]


@dataclass(frozen=True, slots=True)
class Gateway:
    """A running gateway process and its base URL."""

    proc: subprocess.Popen[str]
    url: str


def free_port() -> int:
    """A loopback port that is free now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def stop(proc: subprocess.Popen[str]) -> None:
    """SIGTERM, then SIGKILL if it lingers; waits for the exit."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(STOP_TIMEOUT_S)


def miner_urls(metagraph: Path) -> tuple[str, list[str]]:
    """The pool's model id and each serving miner's base URL, by uid."""
    document = json.loads(metagraph.read_text())
    name = document.get("name") or f"sn{document['netuid']}"
    urls = []
    for neuron in sorted(document["neurons"], key=lambda n: n["uid"]):
        axon = neuron["axon"]
        urls.append(f"http://{axon['ip']}:{axon['port']}")
    return name, urls


def _wait_line(proc: subprocess.Popen[str], marker: str) -> str:
    """The first stdout line containing `marker`; fails if the process exits first."""
    assert proc.stdout is not None
    for line in proc.stdout:
        if marker in line:
            return line
    raise ProcessError(f"{proc.args!r} exited with {proc.wait()} before it was ready")


@contextlib.contextmanager
def sim_pool(
    workdir: Path, count: int = 10, mix: str = "instant", profiles: Path | None = None
) -> Iterator[SimPool]:
    """A simulated miner pool in its own process (a mix or a profiles file), stopped on exit."""
    metagraph = workdir / f"sim-metagraph-{count}-{mix}.json"
    command = [sys.executable, "-m", "gateway", "miner", "sim", "--count", str(count)]
    command += ["--mix", mix]
    command += ["--base-port", "0", "--metagraph-out", str(metagraph)]
    if profiles is not None:
        command += ["--profiles", str(profiles)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        _wait_line(proc, "metagraph")
        name, urls = miner_urls(metagraph)
        yield SimPool(proc, metagraph, name, urls)
    finally:
        stop(proc)


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/readyz", timeout=1) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


@contextlib.contextmanager
def gateway(
    metagraph: Path, log: Path, args: Sequence[str] = (), env: dict[str, str] | None = None
) -> Iterator[Gateway]:
    """`bitgate serve` in its own process on a free loopback port, stopped on exit."""
    port = free_port()
    command = [sys.executable, "-m", "gateway", "serve", "--metagraph", str(metagraph)]
    command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", *args]
    with log.open("w") as out:
        proc = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            # Its miners listen on loopback, which the axon policy refuses unless allowed.
            env={**os.environ, "BITGATE_AXON_ALLOW": "127.0.0.0/8", **(env or {})},
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _ready(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise ProcessError(f"the gateway did not become ready; see {log}")
            time.sleep(POLL_S)
        yield Gateway(proc, url)
    finally:
        stop(proc)


def rss_kib(pid: int) -> int | None:
    """A process's resident memory in KiB, from /proc (None off Linux or once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def cpu_seconds(pid: int) -> float | None:
    """A process's user+system CPU seconds from /proc (None off Linux)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float | None:
    """CPU seconds every core of the machine has spent busy, from /proc/stat (None off Linux)."""
    try:
        first = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    except OSError:
        return None
    ticks = [int(x) for x in first[1:9]]
    idle = ticks[3] + ticks[4]
    return (sum(ticks) - idle) / os.sysconf("SC_CLK_TCK")


def wait_quiet(max_wait_s: float, busy_cores: float = 0.25, window_s: float = 1.0) -> float | None:
    """Wait until the machine uses under `busy_cores` cores over a window; the last reading."""
    deadline = time.monotonic() + max_wait_s
    while True:
        before = machine_busy_seconds()
        time.sleep(window_s)
        after = machine_busy_seconds()
        if before is None or after is None:
            return None
        reading = (after - before) / window_s
        if reading < busy_cores or time.monotonic() >= deadline:
            return reading


def cpu_snapshot(watch: dict[str, int]) -> dict[str, float | None]:
    """CPU seconds of this process (`loadgen`), each watched process, and the whole machine."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    snapshot = {name: cpu_seconds(pid) for name, pid in watch.items()}
    snapshot["loadgen"] = usage.ru_utime + usage.ru_stime
    snapshot["machine"] = machine_busy_seconds()
    return snapshot


def cpu_spent(
    before: dict[str, float | None], after: dict[str, float | None]
) -> dict[str, float | None]:
    """CPU seconds each process spent between two snapshots (None when unknown)."""
    spent: dict[str, float | None] = {}
    for name, start in before.items():
        end = after.get(name)
        spent[name] = None if start is None or end is None else end - start
    return spent


async def cpu_at(at: float, watch: dict[str, int]) -> dict[str, float | None]:
    """The CPU snapshot at perf-counter time `at`."""
    await asyncio.sleep(max(at - time.perf_counter(), 0.0))
    return cpu_snapshot(watch)
