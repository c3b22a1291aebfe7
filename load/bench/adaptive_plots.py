"""The adaptive fan-out sections' PNGs: a pool under load, and latency against good answers."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from load.bench.adaptive import LoadPoint
from load.bench.plots import DPI, _save
from load.bench.run import Scenario

COLOURS = ("#1f77b4", "#ff7f0e")


def under_load(points: list[LoadPoint], path: Path) -> Path:
    """Answered share, good share and goodput against offered load, per mode."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8), dpi=DPI)
    for index, mode in enumerate(dict.fromkeys(p.mode for p in points)):
        colour = COLOURS[index % len(COLOURS)]
        mine = [p for p in points if p.mode == mode]
        xs = [p.multiple for p in mine]
        style = "-" if mode.startswith("adaptive") else "--"
        answered = [100 * (p.run.summary.get("answered_share") or 0.0) for p in mine]
        good = [100 * (p.run.summary.get("good_share") or 0.0) for p in mine]
        left.plot(xs, answered, "o" + style, color=colour, label=f"{mode}: answered")
        left.plot(xs, good, "s:", color=colour, alpha=0.6, label=f"{mode}: good")
        goodput = [p.run.summary["ok_rps"] for p in mine]
        right.plot(xs, goodput, "o" + style, color=colour, label=mode)
    left.set_xlabel("offered load, x width-10 capacity")
    left.set_ylabel("% of requests")
    left.set_ylim(0, 102)
    right.set_xlabel("offered load, x width-10 capacity")
    right.set_ylabel("answers / s")
    for ax in (left, right):
        ax.set_xscale("log")
        ax.grid(True, alpha=0.3, which="both")
        ax.legend(fontsize=7, frameon=False)
    fig.suptitle("A pool under load: adaptive (solid) and fixed width 10 (dashed)", fontsize=11)
    return _save(fig, path)


def tail(rows: list[tuple[str, Scenario]], path: Path) -> Path:
    """Each strategy's p50 and p90 (first token when streamed) against its good-answer share."""
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=DPI)
    for label, run in rows:
        s = run.summary
        lat = s["ttft_ms"] if "streamed" in label else s["latency_ms"]
        good = 100 * (s.get("good_share") or 0.0)
        if lat["p50"] is None:
            continue
        ax.plot([lat["p50"], lat["p90"]], [good, good], "o-", label=label)
    ax.set_xscale("log")
    ax.set_xlabel("latency p50 to p90, ms (log; streamed: first token)")
    ax.set_ylabel("% good answers")
    ax.set_ylim(0, 102)
    ax.grid(True, alpha=0.3, which="both")
    ax.legend(fontsize=7, frameon=False)
    ax.set_title("The tail: latency against good answers", loc="left", fontsize=11)
    return _save(fig, path)
