"""`bitgate load compare A.json B.json`: two runs side by side, with B/A ratios."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from load import report

# (label, path into the summary), in the order shown.
ROWS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("requests", ("requests",)),
    ("ok", ("ok",)),
    ("errors", ("errors",)),
    ("error rate", ("error_rate",)),
    ("requests/s", ("rps",)),
    ("ok requests/s", ("ok_rps",)),
    ("tokens/s", ("tokens_per_s",)),
    ("latency p50 ms", ("latency_ms", "p50")),
    ("latency p90 ms", ("latency_ms", "p90")),
    ("latency p99 ms", ("latency_ms", "p99")),
    ("latency max ms", ("latency_ms", "max")),
    ("first token p50 ms", ("ttft_ms", "p50")),
    ("first token p99 ms", ("ttft_ms", "p99")),
    ("gateway overhead p50 ms", ("overhead_ms", "p50")),
    ("gateway overhead p99 ms", ("overhead_ms", "p99")),
)


def _get(summary: dict[str, Any], path: tuple[str, ...]) -> float | None:
    value: Any = summary
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return float(value) if isinstance(value, int | float) else None


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if value == int(value):
        return f"{int(value):,}"
    return f"{value:,.3f}" if abs(value) < 1 else f"{value:,.1f}"


def ratio(a: float | None, b: float | None) -> str:
    """B/A as `1.23x`, or `-` when either is missing or A is zero."""
    if a is None or b is None or a == 0:
        return "-"
    return f"{b / a:.2f}x"


def table(a: dict[str, Any], b: dict[str, Any], names: tuple[str, str]) -> list[str]:
    """The Markdown table of both summaries and their ratios."""
    rows = [f"| metric | A: {names[0]} | B: {names[1]} | B/A |", "|---|---:|---:|---:|"]
    for label, path in ROWS:
        va, vb = _get(a["summary"], path), _get(b["summary"], path)
        if va is None and vb is None:
            continue
        rows.append(f"| {label} | {_fmt(va)} | {_fmt(vb)} | {ratio(va, vb)} |")
    return rows


def error_rows(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Errors by kind in either run."""
    kinds = sorted(set(a["errors"]) | set(b["errors"]))
    if not kinds:
        return []
    rows = ["", "| error kind | A | B |", "|---|---:|---:|"]
    rows += [f"| {k} | {a['errors'].get(k, 0)} | {b['errors'].get(k, 0)} |" for k in kinds]
    return rows


def render(a: dict[str, Any], b: dict[str, Any], names: tuple[str, str]) -> str:
    """Both runs' scenarios, the table and the errors."""
    lines = [
        f"A: {names[0]}: {a['scenario']['target']} ({a['started_at']})",
        f"B: {names[1]}: {b['scenario']['target']} ({b['started_at']})",
        "",
        *table(a, b, names),
        *error_rows(a, b),
    ]
    return "\n".join(lines) + "\n"


def register(parser: argparse.ArgumentParser) -> None:
    """`bitgate load compare` arguments."""
    parser.add_argument("a", type=Path, help="report.json of run A (or its folder)")
    parser.add_argument("b", type=Path, help="report.json of run B (or its folder)")
    parser.add_argument("--out", type=Path, help="also write the Markdown here")
    parser.set_defaults(run=compare)


def compare(args: argparse.Namespace) -> int:
    """Print (and optionally write) the comparison of two reports."""
    paths = [p / "report.json" if p.is_dir() else p for p in (args.a, args.b)]
    try:
        a, b = (report.read(p) for p in paths)
    except (OSError, ValueError) as exc:
        print(f"bitgate load compare: error: {exc}", file=sys.stderr)
        return 2
    names = (_name(a, paths[0]), _name(b, paths[1]))
    text = render(a, b, names)
    print(text, end="")
    if args.out is not None:
        args.out.write_text(text, encoding="utf-8")
    return 0


def _name(document: dict[str, Any], path: Path) -> str:
    name = document["scenario"].get("name")
    return str(name) if name else path.parent.name or str(path)
