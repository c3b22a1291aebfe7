"""What the soak watches in the gateway process: memory, fds, sockets, tasks; and the verdict."""

from __future__ import annotations

import os
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from load.procs import rss_kib

GROWTH_LIMIT = 0.10
# Counts under load swing with what is in flight at the moment of the sample (tasks went
# 60 -> 215 -> 71 within 15 s at 40 req/s): they are judged under load only over enough
# samples for a quarter's median to mean something, and always at idle, after a drain,
# where a leaked task or socket has nowhere to hide. They may also grow by COUNT_SLACK.
COUNT_SLACK = 10
MIN_SAMPLES_FOR_COUNTS = 40
WATCHED = ("rss_mib", "fds", "sockets", "tasks")
IDLE_WATCHED = ("tasks", "fds", "sockets", "miner_conns", "close_wait")


TCP_ESTABLISHED, TCP_CLOSE_WAIT = "01", "08"


def socket_inodes(pid: int) -> tuple[int, set[str]]:
    """A process's open file descriptors, and the inodes of those that are sockets."""
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return 0, set()
    inodes: set[str] = set()
    for name in names:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return len(names), inodes


def tcp_states(pid: int, inodes: set[str], own_port: int) -> dict[str, int]:
    """The process's TCP connections: to miners (established), and half-closed ones."""
    counts = {"miner_conns": 0, "close_wait": 0}
    for table in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10 or fields[9] not in inodes:
                continue
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if fields[3] == TCP_CLOSE_WAIT:
                counts["close_wait"] += 1
            elif fields[3] == TCP_ESTABLISHED and local_port != own_port:
                counts["miner_conns"] += 1
    return counts


def process_sample(pid: int, own_port: int) -> dict[str, float]:
    """RSS (MiB), open fds and sockets, connections to miners and half-closed ones, now;
    `alive` 0 once the process is gone (its figures then read 0, which is no pass)."""
    fds, inodes = socket_inodes(pid)
    rss = rss_kib(pid)
    return {
        "alive": int(rss is not None),
        "rss_mib": round((rss or 0) / 1024, 2),
        "fds": fds,
        "sockets": len(inodes),
        **tcp_states(pid, inodes, own_port),
    }


@dataclass(frozen=True, slots=True)
class Growth:
    """How one figure moved from the start of the measured part of the run to its end."""

    name: str
    start: float
    end: float
    allowed: float

    @property
    def ok(self) -> bool:
        """Within the limit."""
        return self.end <= self.allowed

    def report(self) -> dict[str, Any]:
        """As the report shows it."""
        change = (self.end - self.start) / self.start if self.start else 0.0
        return {
            "start": self.start,
            "end": self.end,
            "allowed": round(self.allowed, 2),
            "change": round(change, 4),
            "ok": self.ok,
        }


def growth(name: str, values: list[float]) -> Growth:
    """The median of the first quarter of `values` against the median of the last quarter."""
    quarter = max(len(values) // 4, 1)
    start = statistics.median(values[:quarter])
    end = statistics.median(values[-quarter:])
    allowed = start * (1 + GROWTH_LIMIT)
    if name != "rss_mib":
        allowed = max(allowed, start + COUNT_SLACK)
    return Growth(name, start, end, allowed)


def verdict(samples: list[dict[str, Any]], warmup_s: float) -> dict[str, Any]:
    """Each watched figure's growth after the warm-up, and whether all of them held."""
    measured = [s for s in samples if s["t_s"] >= warmup_s]
    if len(measured) < 2:
        return {"passed": False, "reason": "fewer than two samples after the warm-up"}
    checks = {name: growth(name, [float(s[name]) for s in measured]) for name in WATCHED}
    judged = [
        name for name in WATCHED if name == "rss_mib" or len(measured) >= MIN_SAMPLES_FOR_COUNTS
    ]
    return {
        "passed": all(checks[name].ok for name in judged),
        "judged": judged,
        "samples_after_warmup": len(measured),
        "growth": {name: checks[name].report() for name in WATCHED},
    }


def idle_check(before: dict[str, float], after: dict[str, float]) -> dict[str, Any]:
    """Once traffic has stopped and drained past every keep-alive (clients' 5 s, the miner
    pool's 30 s): tasks, fds, sockets and miner connections back where they were after the
    warm-up, nothing half-closed."""
    checks = {
        name: Growth(name, before[name], after[name], before[name] * (1 + GROWTH_LIMIT) + 2)
        for name in IDLE_WATCHED
    }
    return {
        "passed": all(g.ok for g in checks.values()),
        "growth": {name: g.report() for name, g in checks.items()},
    }


def write_plot(report: dict[str, Any], path: Path) -> None:
    """Four panels over time: RSS, fds and sockets, tasks and in-flight, latency."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = report["samples"]
    t = [s["t_s"] / 60 for s in samples]
    fig, axes = plt.subplots(2, 2, figsize=(11, 6.5), dpi=100, sharex=True)
    panels = [
        (axes[0][0], "RSS (MiB)", ("rss_mib",)),
        (axes[0][1], "open fds and sockets", ("fds", "sockets")),
        (axes[1][0], "asyncio tasks, requests in flight", ("tasks", "inflight")),
        (axes[1][1], "latency of served requests (ms)", ("p50_ms", "p99_ms")),
    ]
    for ax, title, keys in panels:
        top = 1.0
        for key in keys:
            values = [s.get(key) for s in samples]
            top = max(top, *(v for v in values if v is not None))
            ax.plot(t, values, label=key, lw=1.4)
        ax.axvline(report["warmup_s"] / 60, color="grey", ls="--", lw=1)
        ax.set_title(title, loc="left", fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, loc="upper left")
        ax.set_ylim(0, top * 1.08)
    for ax in axes[1]:
        ax.set_xlabel("minutes (dashed: end of warm-up)")
    reasons = report.get("reasons", [])
    verdict_text = "held" if report["passed"] else f"FAILED: {'; '.join(reasons)[:90]}"
    fig.suptitle(
        f"bitgate soak: {report['duration_s'] / 60:.0f} min at {report['rate_rps']:.1f} req/s "
        f"(half of {report['capacity_rps']:.1f}); {verdict_text}",
        fontsize=11,
    )
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
