"""The report's PNG plots, drawn with matplotlib's Agg backend from a report document."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import ScalarFormatter

BLUE, ORANGE, RED, GREEN, GREY = "#1f77b4", "#ff7f0e", "#d62728", "#2ca02c", "#7f7f7f"
MAX_MINERS = 32
DPI = 110


def _figure(title: str, width: float = 8.0, height: float = 3.6) -> tuple[Figure, Axes]:
    fig, ax = plt.subplots(figsize=(width, height), dpi=DPI)
    ax.set_title(title, loc="left", fontsize=11)
    ax.grid(True, alpha=0.3)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    return fig, ax


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _empty(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color=GREY)


def _edges(series: dict[str, Any], key: str) -> tuple[list[float], list[float]]:
    """Window start times plus the end of the last, and the values with the last repeated."""
    t = list(series["t_s"])
    values = [float("nan") if v is None else float(v) for v in series[key]]
    if not t:
        return [], []
    return [*t, t[-1] + series["window_s"]], [*values, values[-1]]


def latency_over_time(document: dict[str, Any], path: Path) -> Path:
    """p50 and p99 latency per window over the run, errors marked."""
    series = document["timeseries"]
    fig, ax = _figure("Latency over time (by completion)")
    t, p50 = _edges(series, "p50_ms")
    _, p99 = _edges(series, "p99_ms")
    if t:
        ax.fill_between(t, p50, p99, color=BLUE, alpha=0.12, step="post", label="p50–p99")
        ax.step(t, p99, where="post", color=ORANGE, lw=1.6, label="p99")
        ax.step(t, p50, where="post", color=BLUE, lw=1.6, label="p50")
        width = series["window_s"]
        errored = [x + width / 2 for x, e in zip(series["t_s"], series["errors"], strict=True) if e]
        if errored:
            ax.plot(errored, [0] * len(errored), "^", color=RED, ms=6, label="window with errors")
        ax.set_ylim(bottom=0, top=max((v for v in p99 if v == v), default=1.0) * 1.15)
        ax.set_xlim(t[0], t[-1])
        ax.legend(loc="upper left", fontsize=8, frameon=False, ncols=4)
    else:
        _empty(ax, "no requests")
    ax.set_xlabel("seconds into the measured phase")
    ax.set_ylabel("ms")
    return _save(fig, path)


def latency_cdf(document: dict[str, Any], path: Path) -> Path:
    """Share of requests done within each latency, total and to the first token."""
    fig, ax = _figure("Latency CDF")
    cdf = document["cdf"]
    drawn = False
    lines = (("latency_ms", "total", BLUE, "-", 2.4), ("ttft_ms", "first token", GREEN, "--", 1.4))
    for key, label, colour, style, width in lines:
        points = cdf.get(key) or []
        if points:
            xs = [max(points[0][0], 1e-3)] + [max(p[0], 1e-3) for p in points]
            ys = [0.0] + [100 * p[1] for p in points]
            ax.step(xs, ys, where="post", color=colour, ls=style, lw=width, label=label)
            drawn = True
    if drawn:
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(ScalarFormatter())
        ax.tick_params(axis="x", which="minor", labelsize=7)
        for q in (50, 99):
            ax.axhline(q, color=GREY, lw=0.8, ls="--")
            ax.text(ax.get_xlim()[0], q, f" p{q}", va="bottom", fontsize=8, color=GREY)
        ax.legend(loc="lower right", fontsize=8, frameon=False)
        ax.set_ylim(0, 101)
    else:
        _empty(ax, "no requests")
    ax.set_xlabel("latency, ms (log)")
    ax.set_ylabel("% of requests")
    return _save(fig, path)


def throughput(document: dict[str, Any], path: Path) -> Path:
    """Requests sent, answered and failed per second."""
    series = document["timeseries"]
    fig, ax = _figure("Throughput")
    width = series["window_s"] or 1.0
    t = series["t_s"]
    if t:
        ok = [v / width for v in series["ok"]]
        bad = [v / width for v in series["errors"]]
        ax.bar(t, ok, width=width, align="edge", color=GREEN, alpha=0.6, label="ok / s")
        ax.bar(t, bad, width=width, align="edge", bottom=ok, color=RED, alpha=0.8,
               label="errors / s")  # fmt: skip
        edges, sent = _edges(series, "sent")
        sent = [v / width for v in sent]
        ax.step(edges, sent, where="post", color="black", lw=1.4, label="sent / s")
        top = max(max(sent), max(a + b for a, b in zip(ok, bad, strict=True)), 1.0)
        ax.set_ylim(0, top * 1.25)
        ax.set_xlim(edges[0], edges[-1])
        ax.legend(loc="upper right", fontsize=8, frameon=False, ncols=3)
    else:
        _empty(ax, "no requests")
    ax.set_xlabel("seconds into the measured phase (sent: by start; ok, errors: by end)")
    ax.set_ylabel("requests / s")
    return _save(fig, path)


def errors_by_kind(document: dict[str, Any], path: Path) -> Path:
    """A bar per error kind."""
    errors = document["errors"]
    fig, ax = _figure("Errors by kind", height=max(1.8, 0.5 + 0.35 * len(errors)))
    if errors:
        kinds = list(errors)[::-1]
        counts = [errors[k] for k in kinds]
        ax.barh(kinds, counts, color=RED, alpha=0.8)
        for y, count in enumerate(counts):
            ax.text(count, y, f" {count}", va="center", fontsize=8)
        ax.set_xlabel("requests")
    else:
        _empty(ax, f"no errors in {document['summary']['requests']} requests")
        ax.set_yticks([])
        ax.set_xticks([])
    return _save(fig, path)


def miners_plot(document: dict[str, Any], path: Path) -> Path:
    """Per miner: latency p50/p99 and errors, and the share of replies it won."""
    rows = sorted(document["miners"], key=lambda m: -m["chosen"])[:MAX_MINERS]
    rows.sort(key=lambda m: m["uid"])
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8), dpi=DPI)
    for ax in (left, right):
        ax.grid(True, alpha=0.3, axis="y")
    labels = [str(m["uid"]) for m in rows]
    x = list(range(len(rows)))
    p50 = [m["latency_ms"]["p50"] or 0.0 for m in rows]
    p99 = [m["latency_ms"]["p99"] or 0.0 for m in rows]
    left.bar(x, p99, color=ORANGE, alpha=0.5, label="p99")
    left.bar(x, p50, color=BLUE, label="p50")
    errs = [100 * m["error_rate"] for m in rows]
    twin = left.twinx()
    twin.plot(x, errs, "o", color=RED, ms=4, label="errors %")
    twin.set_ylim(0, max(100, *errs) if errs else 100)
    twin.set_ylabel("errors %", color=RED)
    left.set_title("Miner latency (bars) and errors (dots)", loc="left", fontsize=11)
    left.set_xticks(x, labels, fontsize=7)
    left.set_xlabel("miner uid")
    left.set_ylabel("ms")
    left.legend(loc="upper left", fontsize=8, frameon=False)
    shares = [m["win_share"] for m in rows]
    if any(s is not None for s in shares):
        right.bar(x, [100 * (s or 0.0) for s in shares], color=GREEN)
        right.set_title("Share of replies won", loc="left", fontsize=11)
        right.set_ylabel("% of requests")
    else:
        right.bar(x, [m["chosen"] for m in rows], color=BLUE)
        right.set_title("Requests per miner", loc="left", fontsize=11)
        right.set_ylabel("requests")
    right.set_xticks(x, labels, fontsize=7)
    right.set_xlabel("miner uid")
    return _save(fig, path)


def draw_all(document: dict[str, Any], folder: Path) -> dict[str, Path]:
    """Every plot of a report, as PNG files in `folder`; name → path."""
    folder.mkdir(parents=True, exist_ok=True)
    plots = {
        "latency_over_time": latency_over_time(document, folder / "latency_over_time.png"),
        "latency_cdf": latency_cdf(document, folder / "latency_cdf.png"),
        "throughput": throughput(document, folder / "throughput.png"),
        "errors": errors_by_kind(document, folder / "errors.png"),
    }
    if document["miners"]:
        plots["miners"] = miners_plot(document, folder / "miners.png")
    return plots
