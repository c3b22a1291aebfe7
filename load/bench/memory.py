"""Gateway memory with 1,000 requests in flight: slow miners hold every request open."""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from load import report
from load.bench.run import GRACE_S, Load, Scenario, command
from load.procs import gateway, rss_kib, sim_pool

CONCURRENCY = 1000
MINER_MS = 2000
FANOUT = 10
SAMPLE_S = 0.2
MIN_DURATION_S = 8.0
# Room for 1,000 requests × 10 miner calls at once, so none waits for a connection.
GATEWAY_ENV = {"BITGATE_MAX_CONNECTIONS": str(CONCURRENCY * FANOUT + 1000)}


@dataclass(slots=True)
class Memory:
    """The gateway's RSS before, during and after the load, and the load's report."""

    idle_kib: int | None
    run: Scenario | None = None
    samples: list[tuple[float, int]] = field(default_factory=list)
    after_kib: int | None = None

    @property
    def peak_kib(self) -> int | None:
        """The highest RSS sampled under load."""
        return max((kib for _, kib in self.samples), default=None)


def measure(workdir: Path, duration_s: float) -> Memory:
    """Idle RSS, then 1,000 closed-loop clients for `duration_s` while sampling RSS."""
    profiles = workdir / "slow.yaml"
    profiles.write_text(yaml.safe_dump({"miners": [{"name": "slow", "latency": MINER_MS}]}))
    with (
        sim_pool(workdir, FANOUT, profiles=profiles) as pool,
        gateway(pool.metagraph, workdir / "gateway-memory.log", env=GATEWAY_ENV) as gw,
    ):
        time.sleep(1.0)
        memory = Memory(rss_kib(gw.proc.pid))
        options = {"strategy": "best_of", "top_k": FANOUT, "sample": FANOUT}
        options["ranker"] = "heuristic"
        load = Load(CONCURRENCY, None, 0.0, max(duration_s, MIN_DURATION_S), 30.0, options)
        out = workdir / "memory-run"
        print("running: gateway memory at 1,000 concurrent ...", file=sys.stderr, flush=True)
        cmd = command(gw.url + "/v1", pool.name, load, out, {"gateway": gw.proc.pid})
        started = time.monotonic()
        limit = started + load.warmup_s + duration_s + load.timeout_s + GRACE_S
        with subprocess.Popen(cmd, stdout=subprocess.DEVNULL) as proc:
            while proc.poll() is None and time.monotonic() < limit:
                kib = rss_kib(gw.proc.pid)
                if kib is not None:
                    memory.samples.append((time.monotonic() - started, kib))
                time.sleep(SAMPLE_S)
            if proc.poll() is None:
                proc.kill()
                raise subprocess.TimeoutExpired(cmd, limit - started)
        if proc.returncode:
            raise subprocess.CalledProcessError(proc.returncode, cmd)
        memory.after_kib = rss_kib(gw.proc.pid)
        memory.run = Scenario("memory", report.read(out / "report.json"))
    return memory


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _mib(kib: int | None) -> str:
    return "-" if kib is None else f"{kib / 1024:.0f}"


def section(memory: Memory, duration_s: float) -> list[str]:
    """The Markdown section."""
    s = memory.run.summary if memory.run else None
    growth = (
        f"{(memory.peak_kib - memory.idle_kib) / CONCURRENCY:.1f}"
        if memory.peak_kib is not None and memory.idle_kib is not None
        else "-"
    )
    lines = [
        "## Gateway memory at 1,000 concurrent requests",
        "",
        f"{FANOUT} sim miners that answer after {MINER_MS} ms; {CONCURRENCY:,} closed-loop "
        f"clients ({max(duration_s, MIN_DURATION_S):g} s, no warm-up), each request fanned out "
        "to all "
        f"{FANOUT} (`best_of`, heuristic ranker), so about {CONCURRENCY:,} requests and "
        f"{CONCURRENCY * FANOUT:,} miner calls are open at once; the gateway's connection pool "
        f"is raised to {GATEWAY_ENV['BITGATE_MAX_CONNECTIONS']} for it. RSS from /proc every "
        f"{SAMPLE_S:g} s.",
        "",
        "| idle RSS MiB | peak RSS MiB | after RSS MiB | KiB per request in flight | requests "
        "| rps | p50 ms | p99 ms | errors |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    if s is not None:
        lat = s["latency_ms"]
        lines.append(
            f"| {_mib(memory.idle_kib)} | {_mib(memory.peak_kib)} | {_mib(memory.after_kib)} "
            f"| {growth} | {s['requests']} | {s['rps']:.1f} | {_ms(lat['p50'])} "
            f"| {_ms(lat['p99'])} | {s['errors']} |"
        )
    lines += ["", "![gateway RSS under 1,000 concurrent requests](bench/memory.png)", ""]
    return lines
