"""`report.html`: the summary at a glance, the plots, the errors and the miners of one run."""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1080px;color:#222}
h1{font-size:20px;margin:0 0 4px} h2{font-size:16px;margin:28px 0 8px}
.sub{color:#666;margin-bottom:16px}
.cards{display:flex;flex-wrap:wrap;gap:10px}
.card{border:1px solid #ddd;border-radius:6px;padding:8px 14px;min-width:110px}
.card b{display:block;font-size:20px} .card span{color:#666;font-size:12px}
.bad b{color:#c0392b}
.plots{display:grid;grid-template-columns:1fr 1fr;gap:8px} .plots img{width:100%}
.wide{grid-column:1 / span 2}
table{border-collapse:collapse;font-size:13px} td,th{padding:3px 10px;border-bottom:1px solid #eee}
th{text-align:left;background:#fafafa} td.n{text-align:right;font-variant-numeric:tabular-nums}
"""


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:,.1f} ms"


def _num(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def _card(label: str, value: str, bad: bool = False) -> str:
    return (
        f'<div class="card{" bad" if bad else ""}"><b>{escape(value)}</b><span>{label}</span></div>'
    )


def cards(summary: dict[str, Any]) -> str:
    """The headline figures."""
    lat, ttft = summary["latency_ms"], summary["ttft_ms"]
    items = [
        _card("requests", f"{summary['requests']:,}"),
        _card("ok", f"{summary['ok']:,}"),
        _card(
            "errors",
            f"{summary['errors']:,} ({_pct(summary['error_rate'])})",
            summary["errors"] > 0,
        ),
        _card("requests / s", _num(summary["rps"])),
        _card("latency p50", _ms(lat["p50"])),
        _card("latency p99", _ms(lat["p99"])),
        _card("latency max", _ms(lat["max"])),
        _card("first token p50", _ms(ttft["p50"])),
        _card("tokens / s", _num(summary["tokens_per_s"])),
    ]
    if summary["overhead_ms"]["p50"] is not None:
        items.append(_card("gateway overhead p50", _ms(summary["overhead_ms"]["p50"])))
    if summary.get("late"):
        items.append(_card("sent late (> 10 ms)", f"{summary['late']:,}", True))
    return '<div class="cards">' + "".join(items) + "</div>"


def table(header: list[str], rows: list[list[str]], numeric_from: int = 1) -> str:
    """An HTML table; columns from `numeric_from` on are right-aligned."""
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(
            f"<td{' class=n' if i >= numeric_from else ''}>{escape(cell)}</td>"
            for i, cell in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def distribution_rows(summary: dict[str, Any]) -> list[list[str]]:
    """p50/p90/p99/max/mean rows of each distribution that has values."""
    names = {
        "latency_ms": "latency",
        "ttft_ms": "time to first token",
        "overhead_ms": "gateway overhead (header)",
        "send_lag_ms": "send lag behind schedule",
    }
    rows = []
    for key, label in names.items():
        stats = summary.get(key)
        if stats and stats["p50"] is not None:
            rows.append([label, *(_num(stats[k], 2) for k in ("p50", "p90", "p99", "max", "mean"))])
    return rows


def miner_rows(miners: list[dict[str, Any]]) -> list[list[str]]:
    """One row per miner."""
    return [
        [
            str(m["uid"]),
            f"{m['chosen']:,}",
            f"{m['ok']:,}",
            f"{m['errors']:,}",
            ", ".join(f"{k} {v}" for k, v in m["errors_by_kind"].items()) or "–",
            f"{m['won']:,}",
            _pct(m["win_share"]),
            _num(m["mean_reward"], 3),
            _num(m["latency_ms"]["p50"]),
            _num(m["latency_ms"]["p99"]),
        ]
        for m in miners
    ]


def render(document: dict[str, Any], plots: dict[str, Path], folder: Path) -> str:
    """The whole page; plot paths relative to `folder`."""
    summary, scenario = document["summary"], document["scenario"]
    rel = {name: path.relative_to(folder).as_posix() for name, path in plots.items()}
    title = scenario.get("name") or scenario["target"]
    shape = (
        f"closed loop, {scenario['concurrency'] or 16} clients"
        if scenario["rate"] is None
        else f"open loop, {scenario['rate']:g}"
        + (f" → {scenario['rate_to']:g}" if scenario["rate_to"] else "")
        + f" req/s ({scenario['arrival']})"
    )
    model = scenario["model"] or "(each miner's own)"
    parts = [
        f"<!doctype html><meta charset=utf-8><title>bitgate load: {escape(title)}</title>",
        f"<style>{STYLE}</style>",
        f"<h1>bitgate load: {escape(title)}</h1>",
        f'<div class="sub">{escape(scenario["target"])} · model {escape(model)}'
        f" · {escape(shape)} · {summary['elapsed_s']:.1f} s measured after "
        f"{scenario['warmup_s']:g} s warm-up · stream share {scenario['stream']:g} · "
        f"started {escape(document['started_at'])}</div>",
        cards(summary),
        '<h2>Plots</h2><div class="plots">',
    ]
    for name in ("latency_over_time", "throughput", "latency_cdf", "errors"):
        if name in rel:
            parts.append(f'<img src="{escape(rel[name])}" alt="{name}">')
    if "miners" in rel:
        parts.append(f'<img class="wide" src="{escape(rel["miners"])}" alt="miners">')
    parts.append("</div><h2>Distributions (ms)</h2>")
    parts.append(table(["", "p50", "p90", "p99", "max", "mean"], distribution_rows(summary)))
    parts.append(
        f"<p>Sent {summary['sent']:,} of {summary['requests']:,} requests due; "
        f"{summary['ok']:,} came back ok and {summary['errors']:,} failed.</p>"
    )
    if document["errors"]:
        parts.append("<h2>Errors by kind</h2>")
        parts.append(
            table(["kind", "requests"], [[k, f"{v:,}"] for k, v in document["errors"].items()])
        )
    if document["miners"]:
        parts.append("<h2>Miners</h2>")
        header = ["uid", "asked", "ok", "errors", "error kinds", "won", "win share"]
        header += ["mean reward", "p50 ms", "p99 ms"]
        parts.append(table(header, miner_rows(document["miners"])))
    return "\n".join(parts) + "\n"


def write(document: dict[str, Any], plots: dict[str, Path], folder: Path) -> Path:
    """Write `report.html` into `folder`."""
    path = folder / "report.html"
    path.write_text(render(document, plots, folder), encoding="utf-8")
    return path
