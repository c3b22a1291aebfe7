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


def open_files(pid: int) -> tuple[int, int]:
    """A process's open file descriptors, and how many of them are sockets."""
    fds = sockets = 0
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return 0, 0
    for name in names:
        fds += 1
        try:
            if os.readlink(f"/proc/{pid}/fd/{name}").startswith("socket:"):
                sockets += 1
        except OSError:
            continue
    return fds, sockets


def process_sample(pid: int) -> dict[str, float]:
    """RSS (MiB), open fds and sockets of a process now."""
    fds, sockets = open_files(pid)
    return {"rss_mib": round((rss_kib(pid) or 0) / 1024, 2), "fds": fds, "sockets": sockets}


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
    """Once traffic has stopped and drained: tasks, fds and sockets back where they were."""
    checks = {
        name: Growth(name, before[name], after[name], before[name] * (1 + GROWTH_LIMIT) + 2)
        for name in ("tasks", "fds", "sockets")
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
        for key in keys:
            ax.plot(t, [s.get(key) for s in samples], label=key, lw=1.4)
        ax.axvline(report["warmup_s"] / 60, color="grey", ls="--", lw=1)
        ax.set_title(title, loc="left", fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, loc="upper left")
        ax.set_ylim(bottom=0)
    for ax in axes[1]:
        ax.set_xlabel("minutes (dashed: end of warm-up)")
    verdict_text = "held" if report["passed"] else "GREW"
    fig.suptitle(
        f"bitgate soak: {report['duration_s'] / 60:.0f} min at {report['rate_rps']:.1f} req/s "
        f"(half of {report['capacity_rps']:.1f}); {verdict_text}",
        fontsize=11,
    )
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
