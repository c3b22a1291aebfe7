"""Adaptive fan-out: a pool under load (adaptive against fixed width), and the tail (race,
best_of hearing everyone, adaptive best_of and cascade on a pool with fixed miner roles)."""

from __future__ import annotations

import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from load.bench.run import Load, Scenario, run
from load.procs import gateway, sim_pool
from miners.sim.profiles import build_mix

LOAD_MS = 300.0
LOAD_CAPACITY = 4
LOAD_MINERS = 10
# 8 good miners and 2 wrong ones: the good-answer share means something under load.
LOAD_POOL: list[dict[str, Any]] = [
    {
        "name": f"{'good' if i < 8 else 'wrong'}-{i}",
        "quality": "good" if i < 8 else "wrong",
        "latency": LOAD_MS,
        "capacity": LOAD_CAPACITY,
        "retry_after_s": 1.0,
    }
    for i in range(LOAD_MINERS)
]
# Width-10 capacity: every miner's slots, each held LOAD_MS, shared by ten per request.
WIDTH10_RPS = LOAD_MINERS * LOAD_CAPACITY / (LOAD_MS / 1000.0) / 10
MULTIPLES = (0.5, 1.0, 3.0, 7.5, 10.0)
MODES: dict[str, dict[str, Any]] = {
    "adaptive (default)": {},
    "fixed width 10": {"wait": "all"},
}
# A fixed-width gateway: every request takes all ten miners, and waits for every one.
FIXED_ENV = {"BITGATE_ROUTING__MIN_SAMPLE": "10"}

TAIL_POOL: list[dict[str, Any]] = [
    {"name": "good-400", "latency": {"kind": "normal", "ms": 400, "sd_ms": 80}},
    {"name": "good-900", "latency": {"kind": "normal", "ms": 900, "sd_ms": 150}},
    {"name": "good-1800", "latency": {"kind": "normal", "ms": 1800, "sd_ms": 300}},
    {"name": "wrong-80", "quality": "wrong", "latency": {"kind": "normal", "ms": 80, "sd_ms": 15}},
    {"name": "off-topic-100", "quality": "off_topic", "latency": 100},
    {"name": "partial-120", "quality": "partial", "latency": 120},
    {"name": "wrong-150", "quality": "wrong", "latency": 150},
    {"name": "terse-90", "quality": "terse", "latency": 90},
    {"name": "rambling-200", "quality": "rambling", "latency": 200},
    {"name": "good-slow-6000", "latency": 6000},
]
# Races last: their late calls to the slow miner run on into the next row.
TAIL_ROWS: list[tuple[str, dict[str, Any], float]] = [
    ("best_of, hearing everyone", {"strategy": "best_of", "wait": "all"}, 0.0),
    ("best_of, adaptive (default)", {"strategy": "best_of"}, 0.0),
    ("best_of, adaptive, streamed", {"strategy": "best_of"}, 1.0),
    ("cascade", {"strategy": "cascade"}, 0.0),
    ("race", {"strategy": "race"}, 0.0),
    ("race, streamed", {"strategy": "race"}, 1.0),
]
TAIL_WARMUP_S = 12.0
TAIL_CONCURRENCY = 6


def good_uids(pool: Sequence[dict[str, Any]]) -> tuple[int, ...]:
    """The uids whose profile answers well (the sim knows)."""
    return tuple(i for i, p in enumerate(pool) if p.get("quality", "good") == "good")


@dataclass(frozen=True, slots=True)
class LoadPoint:
    """One offered load of one mode."""

    mode: str
    multiple: float
    rate: float
    run: Scenario


def under_load(workdir: Path, duration_s: float) -> list[LoadPoint]:
    """Open-loop Poisson load from 0.5x to 10x the width-10 capacity, per mode."""
    profiles = workdir / "adaptive-load.yaml"
    profiles.write_text(yaml.safe_dump({"miners": LOAD_POOL}))
    points: list[LoadPoint] = []
    with sim_pool(workdir, LOAD_MINERS, profiles=profiles) as pool:
        for mode, options in MODES.items():
            env = FIXED_ENV if options.get("wait") == "all" else {}
            for multiple in MULTIPLES:
                rate = round(WIDTH10_RPS * multiple, 2)
                log = workdir / f"gateway-adaptive-{len(points)}.log"
                args = ["--ranker", "heuristic", "--top-k", "10", "--sample", "10"]
                with gateway(pool.metagraph, log, args, env) as gw:
                    load = Load(None, rate, 2.0, duration_s, 10.0, dict(options),
                                arrival="poisson", good_uids=good_uids(LOAD_POOL))  # fmt: skip
                    label = f"adaptive under load: {mode}, {multiple:g}x"
                    found = run(label, gw.url + "/v1", pool.name, load, workdir)
                    points.append(LoadPoint(mode, multiple, rate, found))
    return points


def tail(workdir: Path, duration_s: float) -> list[tuple[str, Scenario]]:
    """Each strategy on the fixed-role pool, closed loop, one gateway warmed by default traffic
    first (the stop rule and cascade read who beat whom, as on a gateway in service)."""
    profiles = workdir / "adaptive-tail.yaml"
    profiles.write_text(yaml.safe_dump({"miners": TAIL_POOL}))
    rows: list[tuple[str, Scenario]] = []
    good = good_uids(TAIL_POOL)
    with sim_pool(workdir, len(TAIL_POOL), profiles=profiles) as pool:
        log = workdir / "gateway-tail.log"
        with gateway(pool.metagraph, log, ["--top-k", "10", "--sample", "10"]) as gw:
            warm = Load(TAIL_CONCURRENCY, None, 0.0, TAIL_WARMUP_S, 20.0, {}, good_uids=good)
            run("tail: warm-up", gw.url + "/v1", pool.name, warm, workdir)
            for label, options, stream in TAIL_ROWS:
                load = Load(TAIL_CONCURRENCY, None, 2.0, duration_s, 20.0, dict(options),
                            stream=stream, good_uids=good)  # fmt: skip
                found = run(f"tail: {label}", gw.url + "/v1", pool.name, load, workdir)
                rows.append((label, found))
    return rows


def demo_good_uids() -> tuple[int, ...]:
    """The demo mix's good miners."""
    return tuple(i for i, p in enumerate(build_mix("demo", 10)) if p.quality == "good")


def agreement(metrics_text: str) -> dict[str, int]:
    """Early stops by agreement with hearing every miner (true, tied, false), from /metrics."""
    counts = {"true": 0, "tied": 0, "false": 0}
    for line in metrics_text.splitlines():
        if line.startswith("bitgate_early_stop_agreement_total{"):
            for key in counts:
                if f'same="{key}"' in line:
                    counts[key] += int(float(line.rsplit(" ", 1)[1]))
    return counts


@dataclass(frozen=True, slots=True)
class DemoRow:
    """One strategy on the demo pool, with its early stops' agreement with hearing all."""

    label: str
    run: Scenario
    stops: dict[str, int] = field(default_factory=dict)


def demo(workdir: Path, duration_s: float) -> list[DemoRow]:
    """race and the default on `bitgate demo`'s pool, two clients, as a user would try it."""
    rows: list[DemoRow] = []
    with sim_pool(workdir, 10, mix="demo") as pool:
        for label, options in (("race", {"strategy": "race"}), ("default (best_of)", {})):
            log = workdir / f"gateway-demo-{len(rows)}.log"
            with gateway(pool.metagraph, log, ["--top-k", "10"]) as gw:
                load = Load(2, None, 5.0, duration_s, 20.0, options, good_uids=demo_good_uids())
                found = run(f"demo: {label}", gw.url + "/v1", pool.name, load, workdir)
                with urllib.request.urlopen(gw.url + "/metrics", timeout=5) as resp:
                    stops = agreement(resp.read().decode())
                rows.append(DemoRow(label, found, stops))
    return rows


def demo_lines(rows: list[DemoRow]) -> list[str]:
    """The demo pool's table."""
    lines = [
        "The demo pool (`bitgate demo`'s ten miners, default ranker, 2 closed-loop clients, 5 s "
        "warm-up). Same winner: of all requests, the share whose answer is the one hearing "
        "every miner picks (the late replies are ranked in the background and compared; "
        "`bitgate_early_stop_agreement`); or tied: one within 0.02 of its reward.",
        "",
        "| strategy | requests | good | p50 ms | p90 ms | mean asked | mean waited "
        "| same winner as hearing all: exact / or tied |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        s = row.run.summary
        lat, fan = s["latency_ms"], s.get("fanout") or {}
        same = "-"
        if row.label != "race" and s["ok"]:
            worse, tied = row.stops.get("false", 0), row.stops.get("tied", 0)
            same = f"{1.0 - (worse + tied) / s['ok']:.3f} / {1.0 - worse / s['ok']:.3f}"
        lines.append(
            f"| {row.label} | {s['requests']} | {_share(s.get('good_share'))} "
            f"| {_ms(lat['p50'])} | {_ms(lat['p90'])} | {fan.get('mean_asked', '-')} "
            f"| {fan.get('mean_waited', '-')} | {same} |"
        )
    lines.append("")
    return lines


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def load_section(points: list[LoadPoint], duration_s: float) -> list[str]:
    """The Markdown of the pool-under-load section."""
    lines = [
        "## Adaptive fan-out: a pool under load",
        "",
        f"{LOAD_MINERS} sim miners answering in {LOAD_MS:g} ms with `capacity: {LOAD_CAPACITY}` "
        "(429 with `Retry-After: 1` beyond), 8 good and 2 wrong; width-10 capacity "
        f"{WIDTH10_RPS:.1f} requests/s. Open-loop Poisson load, 2 s warm-up, {duration_s:g} s "
        "measured, a fresh gateway per row (heuristic ranker, `sample` 10). Adaptive: the "
        "default (width from what the pool can spare, best_of waiting for what can still win). "
        "Fixed: `min_sample` 10 and `wait: all` (every request takes all ten, and hears them). "
        "Answered: 200s of all requests; goodput: answers/s; good: answers from a good miner, "
        "of all requests.",
        "",
        "| mode | offered | req/s | answered | goodput/s | good | p50 ms | p99 ms "
        "| mean width | mean waited | mean queue ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for p in points:
        s = p.run.summary
        lat, fan = s["latency_ms"], s.get("fanout") or {}
        lines.append(
            f"| {p.mode} | {p.multiple:g}x | {p.rate:g} | {_share(s.get('answered_share'))} "
            f"| {s['ok_rps']:.1f} | {_share(s.get('good_share'))} | {_ms(lat['p50'])} "
            f"| {_ms(lat['p99'])} | {fan.get('mean_asked', '-')} | {fan.get('mean_waited', '-')} "
            f"| {fan.get('mean_queue_ms', '-')} |"
        )
    lines += ["", "![a pool under load, adaptive and fixed width](bench/adaptive-load.png)", ""]
    return lines


def tail_section(
    rows: list[tuple[str, Scenario]], duration_s: float, demo_rows: list[DemoRow]
) -> list[str]:
    """The Markdown of the tail section."""
    roles = ", ".join(p["name"] for p in TAIL_POOL)
    lines = [
        "## Adaptive fan-out: the tail on a pool with fixed roles",
        "",
        f"10 sim miners with fixed roles ({roles}): hearing everyone takes 6 s and the first "
        f"reply is usually wrong. One gateway (default ranker), warmed by {TAIL_WARMUP_S:g} s of "
        f"default traffic (the stop rule and cascade learn who beats whom, as in service), then "
        f"each row: closed loop, {TAIL_CONCURRENCY} clients, 2 s warm-up, {duration_s:g} s "
        "measured. Good: the answer came from a good miner. Streamed rows: latency to the "
        "first token.",
        "",
        "| strategy | requests | good | p50 ms | p90 ms | first token p50 / p90 ms "
        "| mean asked | mean waited | stopped |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for label, found in rows:
        s = found.summary
        lat, ttft, fan = s["latency_ms"], s["ttft_ms"], s.get("fanout") or {}
        first = f"{_ms(ttft['p50'])} / {_ms(ttft['p90'])}" if "streamed" in label else "-"
        stops = ", ".join(f"{k} {v}" for k, v in (fan.get("stopped") or {}).items())
        lines.append(
            f"| {label} | {s['requests']} | {_share(s.get('good_share'))} | {_ms(lat['p50'])} "
            f"| {_ms(lat['p90'])} | {first} | {fan.get('mean_asked', '-')} "
            f"| {fan.get('mean_waited', '-')} | {stops} |"
        )
    lines += ["", "![latency against good answers per strategy](bench/adaptive-tail.png)", ""]
    return lines + demo_lines(demo_rows)
