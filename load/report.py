"""`report.json`: a run's every figure, from the summary down to the time series and miners."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from load.engine import UNSENT, RunResult
from load.hist import Latency
from load.recorder import MinerStats, Recorder

VERSION = 1


def summary(result: RunResult) -> dict[str, Any]:
    """Counts, rates and distributions of the measured phase."""
    rec = result.recorder
    errors = sum(rec.errors.values())
    elapsed = result.elapsed_s
    scenario = result.scenario
    offered = None
    if scenario.rate is not None:
        offered = rec.requests / scenario.limit_s if scenario.duration_s else None
    return {
        "requests": rec.requests,
        "sent": result.sent,
        "not_sent": rec.errors.get(UNSENT, 0),
        "ok": rec.ok,
        "errors": errors,
        "error_rate": errors / rec.requests if rec.requests else 0.0,
        "elapsed_s": round(elapsed, 3),
        "rps": rec.requests / elapsed if elapsed else 0.0,
        "ok_rps": rec.ok / elapsed if elapsed else 0.0,
        "answered_share": rec.ok / rec.requests if rec.requests else None,
        "good_share": rec.good / rec.requests if rec.requests and rec.good_uids else None,
        "good_rps": rec.good / elapsed if elapsed and rec.good_uids else None,
        "fanout": rec.fanout.summary(),
        "offered_rps": offered,
        "late": rec.late,
        "tokens": rec.tokens,
        "tokens_per_s": rec.tokens / elapsed if elapsed else 0.0,
        "latency_ms": rec.latency.stats(),
        "ttft_ms": rec.ttft.stats(),
        "overhead_ms": rec.overhead.stats(),
        "client_overhead_ms": rec.client_overhead.stats(),
        "send_lag_ms": rec.send_lag.stats() if scenario.open_loop else None,
    }


def timeseries(rec: Recorder) -> dict[str, Any]:
    """Per window: offset, sends, completions, ok, errors, tokens, p50 and p99 latency."""
    windows = rec.windows
    return {
        "window_s": rec.window_s,
        "t_s": [i * rec.window_s for i in range(len(windows))],
        "sent": [w.sent for w in windows],
        "done": [w.done for w in windows],
        "ok": [w.ok for w in windows],
        "errors": [w.errors for w in windows],
        "tokens": [w.tokens for w in windows],
        "p50_ms": [w.latency.percentile(50) for w in windows],
        "p99_ms": [w.latency.percentile(99) for w in windows],
    }


def miner_row(uid: int, stats: MinerStats, wins: int, url: str | None) -> dict[str, Any]:
    """One miner's figures."""
    failed = sum(stats.errors.values())
    return {
        "uid": uid,
        "url": url,
        "chosen": stats.chosen,
        "ok": stats.ok,
        "errors": failed,
        "error_rate": failed / stats.chosen if stats.chosen else 0.0,
        "errors_by_kind": dict(stats.errors),
        "won": stats.won,
        "win_share": stats.won / wins if wins else None,
        "mean_reward": stats.reward_sum / stats.rewarded if stats.rewarded else None,
        "latency_ms": stats.latency.stats(),
    }


def miners(result: RunResult) -> list[dict[str, Any]]:
    """Every miner seen, by uid: asked directly, or named in the gateway's `bitgate` blocks."""
    rec = result.recorder
    urls = {e.uid: e.url for e in result.target.endpoints if e.uid is not None}
    wins = sum(stats.won for stats in rec.miners.values())
    return [miner_row(uid, rec.miners[uid], wins, urls.get(uid)) for uid in sorted(rec.miners)]


def build(result: RunResult) -> dict[str, Any]:
    """The whole report document."""
    rec = result.recorder
    return {
        "version": VERSION,
        "started_at": result.started_at,
        "scenario": result.scenario.model_dump(mode="json"),
        "target": {
            "kind": result.target.kind,
            "pool": result.target.pool,
            "endpoints": len(result.target.endpoints),
        },
        "summary": summary(result),
        "errors": dict(rec.errors.most_common()),
        "statuses": {str(k): v for k, v in sorted(rec.statuses.items())},
        "warmup": result.warmup,
        "timeseries": timeseries(rec),
        "miners": miners(result),
        "cdf": {"latency_ms": rec.latency.cdf(), "ttft_ms": rec.ttft.cdf()},
        "histograms": {"latency_us": rec.latency.encode(), "ttft_us": rec.ttft.encode()},
        "cpu_s": result.cpu_s,
    }


def write(document: dict[str, Any], path: Path) -> None:
    """Write a report document as indented JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n")


def read(path: Path) -> dict[str, Any]:
    """A report document back from disk."""
    document = orjson.loads(path.read_bytes())
    if not isinstance(document, dict) or "summary" not in document:
        raise ValueError(f"{path}: not a bitgate load report")
    return document


def latency_of(document: dict[str, Any]) -> Latency:
    """The run's full latency histogram back from its report."""
    return Latency.decode(document["histograms"]["latency_us"])


def line(document: dict[str, Any]) -> str:
    """One human line of a report's summary."""
    s = document["summary"]
    lat, ttft = s["latency_ms"], s["ttft_ms"]
    return (
        f"{s['requests']} requests, {s['ok']} ok, {s['errors']} errors in {s['elapsed_s']:.1f}s: "
        f"{s['rps']:.1f} req/s; latency p50 {_ms(lat['p50'])} p90 {_ms(lat['p90'])} "
        f"p99 {_ms(lat['p99'])} max {_ms(lat['max'])}; ttft p50 {_ms(ttft['p50'])} "
        f"p99 {_ms(ttft['p99'])}{_shares(s)}"
    )


def _shares(s: dict[str, Any]) -> str:
    answered, good = s.get("answered_share"), s.get("good_share")
    text = "" if answered is None else f"; answered {answered:.1%}"
    return text + ("" if good is None else f", good answers {good:.1%}")


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}ms"
