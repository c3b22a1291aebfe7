"""The benchmark suite's PNGs: straggler CDFs, cost against width and pool size, memory."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.ticker import ScalarFormatter

from load.bench.memory import Memory
from load.bench.run import Scenario
from load.bench.scale import Point

DPI = 110
STYLES = {"best_of": "-", "race": "--"}


def stragglers(rows: list[tuple[str, str, Scenario]], deadline_ms: float, path: Path) -> Path:
    """Latency CDF of every straggler run, the deadline marked."""
    fig, ax = plt.subplots(figsize=(8, 4.8), dpi=DPI)
    colours = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728"]
    variants = list(dict.fromkeys(v for v, _, _ in rows))
    for variant, strategy, run in rows:
        points = run.report["cdf"]["latency_ms"]
        if not points:
            continue
        xs = [points[0][0]] + [p[0] for p in points]
        ys = [0.0] + [100 * p[1] for p in points]
        colour = colours[variants.index(variant) % len(colours)]
        ax.step(xs, ys, where="post", ls=STYLES.get(strategy, "-"), color=colour, lw=1.6,
                label=f"{variant}, {strategy}")  # fmt: skip
    ax.axvline(deadline_ms, color="#7f7f7f", ls=":", lw=1.2)
    ax.text(deadline_ms, 3, " deadline", color="#7f7f7f", fontsize=8)
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.set_xlabel("latency, ms (log)")
    ax.set_ylabel("% of requests")
    ax.set_title("Stragglers: latency CDF, best_of (solid) and race (dashed)", loc="left",
                 fontsize=11)  # fmt: skip
    ax.grid(True, alpha=0.3, which="both")
    ax.legend(fontsize=8, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncols=2)
    return _save(fig, path)


def scale(widths: list[Point], pools: list[Point], path: Path) -> Path:
    """Gateway CPU per request and throughput against fan-out width and pool size."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8), dpi=DPI)
    for ax, points, label in ((left, widths, "fan-out width"), (right, pools, "pool size")):
        xs = [p.size for p in points]
        cpu = [_cpu_ms(p) for p in points]
        ax.plot(xs, cpu, "o-", color="#1f77b4", label="gateway CPU ms / request")
        ax.set_xlabel(label)
        ax.set_ylabel("CPU ms / request", color="#1f77b4")
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
        twin = ax.twinx()
        twin.plot(xs, [p.run.summary["rps"] for p in points], "s--", color="#ff7f0e")
        twin.set_ylabel("requests / s", color="#ff7f0e")
        twin.set_ylim(bottom=0)
        if label == "pool size":
            ax.set_xscale("log")
            ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.set_xticks(xs)
        ax.set_title(f"Cost against {label}", loc="left", fontsize=11)
    return _save(fig, path)


def memory(found: Memory, path: Path) -> Path:
    """Gateway RSS over the 1,000-client load."""
    fig, ax = plt.subplots(figsize=(8, 3.4), dpi=DPI)
    if found.samples:
        ax.plot(
            [t for t, _ in found.samples], [k / 1024 for _, k in found.samples], color="#1f77b4"
        )
    if found.idle_kib is not None:
        ax.axhline(found.idle_kib / 1024, color="#7f7f7f", ls="--", lw=1)
        ax.text(0, found.idle_kib / 1024, " idle", va="bottom", fontsize=8, color="#7f7f7f")
    ax.set_xlabel("seconds since the load started")
    ax.set_ylabel("gateway RSS, MiB")
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    ax.set_title("Gateway memory with 1,000 requests in flight", loc="left", fontsize=11)
    return _save(fig, path)


def _cpu_ms(point: Point) -> float:
    spent, requests = point.run.cpu_s.get("gateway"), point.run.summary["requests"]
    return 0.0 if spent is None or not requests else 1000.0 * spent / requests


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
